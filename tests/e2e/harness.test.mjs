// The shared pieces of the harnesses, where a mistake would hang a file until the runner's
// 10-minute timeout instead of failing it: a bind that fails is an error at once; the ports handed
// out before a server binds them are ones no outgoing connection can take in between; stopping a
// process returns whether it exited by a code, by a signal, or not at all.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import net from 'node:net';
import { describe, it } from 'node:test';

import { PORT_RANGE, freePort, listen } from './ports.mjs';
import { terminate } from './processes.mjs';

/** Resolves with `promise`'s outcome, or with `late` when it takes more than `ms`. */
function within(ms, promise, late = `still waiting after ${ms} ms`) {
  let timer;
  const clock = new Promise((resolve) => { timer = setTimeout(() => resolve(late), ms); });
  return Promise.race([promise, clock]).finally(() => clearTimeout(timer));
}

describe('test ports', () => {
  it('listen rejects with the bind error when the port is taken', async () => {
    const first = net.createServer();
    const port = await listen(first);
    try {
      const outcome = await within(2000, listen(net.createServer(), port).then(() => 'listened', (e) => e));
      assert.ok(outcome instanceof Error, String(outcome));
      assert.match(outcome.message, new RegExp(`127\\.0\\.0\\.1:${port}: .*EADDRINUSE`));
    } finally {
      first.close();
    }
  });

  it('freePort hands out distinct ports below the ephemeral range that can be bound', async () => {
    // Outgoing connections take local ports from the ephemeral range meanwhile.
    const server = net.createServer((s) => s.on('error', () => {}));
    const port = await listen(server);
    const clients = await Promise.all(Array.from({ length: 50 }, () => new Promise((resolve, reject) => {
      const c = net.connect(port, '127.0.0.1', () => resolve(c));
      c.on('error', reject);
    })));
    try {
      const seen = new Set();
      for (let i = 0; i < 100; i += 1) {
        const p = await freePort();
        assert.ok(p >= PORT_RANGE.low && p < PORT_RANGE.high, `${p} is outside ${PORT_RANGE.low}-${PORT_RANGE.high - 1}`);
        assert.ok(!clients.some((c) => c.localPort === p), `${p} is a connection's local port`);
        assert.ok(!seen.has(p), `${p} handed out twice`);
        seen.add(p);
      }
      const last = [...seen].at(-1);
      const s = net.createServer();
      assert.equal(await listen(s, last), last);
      s.close();
    } finally {
      for (const c of clients) c.destroy();
      server.close();
    }
  });
});

describe('stopping a process', () => {
  /** A Node process running `script`, once it has run it (it prints `ready`). */
  const sleeper = (script) => {
    const proc = spawn(process.execPath, ['-e', `${script}; console.log('ready')`], { stdio: ['ignore', 'pipe', 'ignore'] });
    return new Promise((resolve) => proc.stdout.once('data', () => resolve(proc)));
  };

  it('returns once a process exits on SIGTERM', async () => {
    const proc = await sleeper('setTimeout(() => {}, 60000)');
    assert.equal(await within(5000, terminate(proc).then(() => 'stopped')), 'stopped');
    assert.equal(proc.signalCode, 'SIGTERM');
  });

  it('returns at once for a process a signal already ended', async () => {
    const proc = await sleeper('setTimeout(() => {}, 60000)');
    const gone = new Promise((resolve) => proc.once('exit', resolve));
    proc.kill('SIGKILL');
    await gone;
    assert.equal(await within(2000, terminate(proc).then(() => 'stopped')), 'stopped');
  });

  it('kills a process that ignores SIGTERM and says so', async () => {
    const proc = await sleeper("process.on('SIGTERM', () => {}); setTimeout(() => {}, 60000)");
    const outcome = await within(5000, terminate(proc, 300).then(() => 'stopped', (e) => e));
    assert.ok(outcome instanceof Error, String(outcome));
    assert.match(outcome.message, /did not exit within 300 ms of SIGTERM/);
    assert.equal(proc.signalCode, 'SIGKILL');
  });
});
