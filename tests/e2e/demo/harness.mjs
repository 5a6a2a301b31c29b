// Starts `keyway demo` (the built binary from KEYWAY_BIN_DIR) on its documented ports and waits
// until the issuer and the proxy answer. The demo's ports are fixed (5556, 4180), so demo test
// files run one after the other (tests/run.sh passes --test-concurrency=1).
import { spawn } from 'node:child_process';
import path from 'node:path';

export const BIN_DIR = process.env.KEYWAY_BIN_DIR ?? path.resolve(import.meta.dirname, '../../../target/debug');
export const ISSUER = 'http://127.0.0.1:5556';
export const TOOL = 'http://127.0.0.1:4180';
export const PASSWORD = 'keyway-demo';

async function waitFor(url, deadlineMs, output) {
  const end = Date.now() + deadlineMs;
  for (;;) {
    try {
      const r = await fetch(url);
      if (r.ok) return;
    } catch { /* not up yet */ }
    if (Date.now() > end) throw new Error(`${url} not up after ${deadlineMs} ms; demo said:\n${output()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Runs `keyway demo`; `stop()` sends Ctrl-C (SIGINT) and waits for it to exit. */
export async function startDemo() {
  const child = spawn(path.join(BIN_DIR, 'keyway'), ['demo'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (d) => { output += d; });
  child.stderr.on('data', (d) => { output += d; });
  const exited = new Promise((r) => child.once('exit', (code, signal) => r({ code, signal })));
  await waitFor(`${ISSUER}/.well-known/openid-configuration`, 30000, () => output);
  await waitFor(`${TOOL}/healthz`, 30000, () => output);
  return {
    output: () => output,
    async stop() {
      if (child.exitCode === null) child.kill('SIGINT');
      return exited;
    },
  };
}
