// Benchmark (issue 3): client_credentials token issuance with keep-alive, keyway-issuer vs npm
// `oidc-provider` (both issuing ES256-signed RFC 9068 JWT access tokens to a client using
// client_secret_basic with a 256-bit secret), and the raw P-256 signing rate of
// `openssl speed ecdsap256`, all measured in this one run on this machine.
//
//   node bench/issuer/bench.mjs [--duration 10] [--connections 128] [--threads 1] [--runs 3]
//                               [--server-cpu 0] [--load-cpu 1] [--check]
//
// Fairness: each server runs as its own process pinned (taskset) to --server-cpu, `openssl speed`
// runs pinned to that same core, and wrk (same threads, connections, duration and request for
// both servers) runs pinned to --load-cpu, so the load generator never takes the server's CPU.
// The CPU time each server used during the measured run (utime + stime from /proc) is reported
// per token. Goals (exit code 1 with --check when missed):
//   keyway ≥ 10 × oidc-provider, and keyway ≥ 40 % of openssl's single-core P-256 sign rate.
//
// Needs: wrk, openssl, taskset, the npm peers of tests/e2e (npm ci there), and a release build of
// keyway-issuer in KEYWAY_BIN_DIR (default: target/release). `bash bench/issuer/run.sh` does
// all of that.
import { execFile, execFileSync, spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs, promisify } from 'node:util';

// Ports below the kernel's ephemeral range, as the end-to-end tests take them.
import { freePort } from '../../tests/e2e/ports.mjs';

const ROOT = path.resolve(import.meta.dirname, '../..');
const { values: opts } = parseArgs({
  options: {
    duration: { type: 'string', default: '10' },
    connections: { type: 'string', default: '128' },
    threads: { type: 'string', default: '1' },
    runs: { type: 'string', default: '3' },
    'server-cpu': { type: 'string', default: '0' },
    'load-cpu': { type: 'string', default: '1' },
    check: { type: 'boolean', default: false },
  },
});
const BIN_DIR = process.env.KEYWAY_BIN_DIR ?? path.join(ROOT, 'target/release');

const CLIENT_ID = 'default.bench';
const SECRET = crypto.randomBytes(32).toString('base64url'); // 256-bit, like the operator's
const RESOURCE = 'https://api.bench.example/';
const SCOPE = 'api:read';
const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());

// Pin only when there are two distinct usable cores.
const cpus = os.availableParallelism();
const pinned = cpus >= 2 && opts['server-cpu'] !== opts['load-cpu'];
if (!pinned) console.error(`warning: ${cpus} CPU(s): server and load generator are not pinned apart`);
const onCore = (cpu, cmd, args) => (pinned ? ['taskset', ['-c', cpu, cmd, ...args]] : [cmd, args]);
const onServerCore = (cmd, args) => onCore(opts['server-cpu'], cmd, args);
const onLoadCore = (cmd, args) => onCore(opts['load-cpu'], cmd, args);


const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitFor(url, proc) {
  for (let i = 0; i < 600; i++) {
    if (proc.exitCode !== null) throw new Error(`${url}: the server exited (${proc.exitCode})`);
    try {
      if ((await fetch(url)).status < 500) return;
    } catch { /* not up yet */ }
    await sleep(50);
  }
  throw new Error(`${url} did not come up`);
}

/** CPU seconds (user + system) a process has used so far, all threads included. */
function cpuSeconds(pid) {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK; // fields 14 and 15 of proc(5)
}

function basicAuth() {
  return `Basic ${Buffer.from(`${encodeURIComponent(CLIENT_ID)}:${encodeURIComponent(SECRET)}`).toString('base64')}`;
}

/**
 * Runs wrk (pinned to the load core) against a token endpoint and measures the server's CPU time
 * meanwhile; every answer must be 200.
 */
async function wrk(tokenUrl, body, label, serverPid, seconds) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'keyway-bench-'));
  const script = path.join(dir, 'post.lua');
  fs.writeFileSync(script, [
    'wrk.method = "POST"',
    `wrk.body = ${JSON.stringify(body)}`,
    'wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"',
    `wrk.headers["Authorization"] = "${basicAuth()}"`,
    '',
  ].join('\n'));
  // A shell runs wrk and then prints its own /proc stat, whose cutime + cstime is wrk's CPU time.
  const [cmd, args] = onLoadCore('sh', [
    '-c', 'wrk "$@" && echo "wrk-stat: $(cat /proc/$$/stat)"', 'sh',
    '-t', opts.threads, '-c', opts.connections, '-d', `${seconds}s`, '--timeout', '10s', '--latency', '-s', script, tokenUrl,
  ]);
  const cpu0 = cpuSeconds(serverPid);
  const t0 = process.hrtime.bigint();
  const { stdout: out } = await promisify(execFile)(cmd, args, { encoding: 'utf8' });
  const wall = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = cpuSeconds(serverPid) - cpu0;
  const shStat = /wrk-stat: .*\) (.*)/.exec(out)?.[1].split(' ');
  const wrkCpu = shStat ? (Number(shStat[13]) + Number(shStat[14])) / CLK_TCK : NaN; // cutime, cstime
  fs.rmSync(dir, { recursive: true, force: true });
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1]);
  const requests = Number(/(\d+) requests in/.exec(out)?.[1]);
  const non2xx = Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(out)?.[1] ?? 0);
  const errors = /Socket errors:.*/.exec(out)?.[0];
  // wrk counts a request unanswered after 10 s (`--timeout`) as a timeout; a server that is still
  // warming up (oidc-provider's first seconds on a slow machine) may have some. Connect, read and
  // write errors always fail the bench; timeouts fail a measured run only. A slow answer within
  // the 10 s is counted, in the rate and in the latency.
  const [, connectErr, readErr, writeErr, timeouts] = (/connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(errors ?? '') ?? []).map(Number);
  const p99 = /99%\s+(\S+)/.exec(out)?.[1];
  if (!Number.isFinite(rps) || rps <= 0) throw new Error(`no requests/s from wrk for ${label}:\n${out}`);
  if (non2xx > 0) throw new Error(`${label}: ${non2xx} responses were not 200:\n${out}`);
  const warmUp = label.endsWith('warm-up');
  if (errors && (connectErr || readErr || writeErr || !warmUp || !timeouts)) throw new Error(`${label}: ${errors}\n${out}`);
  return {
    rps: Math.round(rps),
    p99,
    server_cpu_us_per_token: Number(((cpu * 1e6) / requests).toFixed(1)),
    server_cores_busy: Number((cpu / wall).toFixed(2)),
    wrk_cpu_us_per_request: Number(((wrkCpu * 1e6) / requests).toFixed(1)),
    wrk_cores_busy: Number((wrkCpu / wall).toFixed(2)),
  };
}

/** One token request, to check that the setup issues what we think before measuring. */
async function sample(tokenUrl, body) {
  const res = await fetch(tokenUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basicAuth() },
    body,
  });
  const json = await res.json();
  if (res.status !== 200) throw new Error(`${tokenUrl}: ${res.status} ${JSON.stringify(json)}`);
  const [h, p] = json.access_token.split('.').slice(0, 2).map((x) => JSON.parse(Buffer.from(x, 'base64url')));
  if (h.alg !== 'ES256' || !/^at\+jwt$/i.test(h.typ) || p.aud !== RESOURCE || p.client_id !== CLIENT_ID) {
    throw new Error(`${tokenUrl}: unexpected token ${JSON.stringify({ h, p })}`);
  }
  return { alg: h.alg, typ: h.typ, bytes: json.access_token.length };
}

/** Starts a server process pinned to the server core; resolves once `readyUrl` answers. */
async function startServer(cmd, args, env, readyUrl) {
  const [c, a] = onServerCore(cmd, args);
  // Default logging (info) for keyway-issuer, as in production.
  const { RUST_LOG: _, ...inherited } = process.env;
  const proc = spawn(c, a, { stdio: ['ignore', 'ignore', 'inherit'], env: { ...inherited, ...env } });
  await waitFor(readyUrl, proc);
  return {
    pid: proc.pid,
    stop: async () => {
      if (proc.exitCode === null) {
        proc.kill('SIGTERM');
        await new Promise((r) => proc.on('exit', r));
      }
    },
  };
}

async function startKeyway() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'keyway-bench-issuer-'));
  const clients = path.join(dir, 'clients');
  fs.mkdirSync(clients);
  fs.writeFileSync(path.join(clients, 'bench.yaml'), `apiVersion: keyway.dev/v1alpha1
kind: ConnectedApp
metadata: {name: bench}
spec:
  displayName: Bench
  grantTypes: [client_credentials]
  scopes: [${SCOPE}]
  resource: "${RESOURCE}"
  access: {allowedClients: [${CLIENT_ID}]}
`);
  fs.writeFileSync(path.join(clients, `${CLIENT_ID}.secret`), SECRET);
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const server = await startServer(path.join(BIN_DIR, 'keyway-issuer'), [
    '--issuer-url', url, '--listen', `127.0.0.1:${port}`,
    '--store', `sqlite://${path.join(dir, 'issuer.db')}`,
    '--clients-dir', clients, '--keys-dir', path.join(dir, 'keys'),
  ], {}, `${url}/healthz`);
  return {
    url,
    pid: server.pid,
    stop: async () => {
      await server.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function startOidcProvider() {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const server = await startServer(process.execPath, [path.join(import.meta.dirname, 'oidc-provider.mjs')], {
    E2E_DIR: path.join(ROOT, 'tests/e2e'),
    PORT: String(port),
    CLIENT_ID,
    CLIENT_SECRET: SECRET,
    RESOURCE,
    SCOPE,
  }, `${url}/.well-known/openid-configuration`);
  return { url, pid: server.pid, stop: server.stop };
}

/**
 * `openssl speed ecdsap256` pinned to the server core: sign/s per CPU-second of user time (its
 * default divisor) and, with `-elapsed`, per wall-clock second (what a pinned server competes
 * with when other processes share the core).
 */
function opensslSign(elapsed) {
  const [cmd, args] = onServerCore('openssl', ['speed', ...(elapsed ? ['-elapsed'] : []), '-seconds', '5', 'ecdsap256']);
  const out = execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  // "256 bits ecdsa (nistp256)   0.0000s   0.0001s  40000.0  12000.0"
  const line = out.split('\n').find((l) => /ecdsa \(nistp256\)/.test(l));
  const nums = line?.trim().split(/\s+/).filter((x) => /^[\d.]+$/.test(x)).map(Number);
  if (!nums || nums.length < 3) throw new Error(`cannot read openssl output:\n${out}`);
  return Math.round(nums[nums.length - 2]); // sign/s
}

/**
 * Starts both servers, checks a token of each and warms each up, then measures them in turns
 * (keyway-issuer, oidc-provider, keyway-issuer, …) so that both sample the same stretch of time:
 * on a shared or virtual machine the speed of the server core drifts over minutes, and measuring
 * one server's runs after the other's would hand the drift to the ratio. Each server's fastest
 * run (the least disturbed) is reported, with every run's rate alongside.
 */
async function measureInTurns(servers) {
  const started = [];
  try {
    for (const s of servers) started.push({ ...s, server: await s.start() });
    const out = {};
    for (const { key, label, server } of started) {
      out[key] = { token: await sample(`${server.url}/token`, body), runs: [] };
      await wrk(`${server.url}/token`, body, `${label} warm-up`, server.pid, 3);
    }
    for (let i = 0; i < Number(opts.runs); i++) {
      for (const { key, label, server } of started) {
        out[key].runs.push(await wrk(`${server.url}/token`, body, label, server.pid, opts.duration));
      }
    }
    return Object.fromEntries(Object.entries(out).map(([key, { token, runs }]) => {
      const best = runs.reduce((a, b) => (b.rps > a.rps ? b : a));
      return [key, { token, ...best, runs_rps: runs.map((x) => x.rps), runs_cpu_us_per_token: runs.map((x) => x.server_cpu_us_per_token) }];
    }));
  } finally {
    for (const { server } of started) await server.stop();
  }
}

const body = new URLSearchParams({ grant_type: 'client_credentials', scope: SCOPE, resource: RESOURCE }).toString();
const results = {
  machine: { cpus, model: os.cpus()[0]?.model, loadavg: os.loadavg().map((x) => Number(x.toFixed(2))) },
  setup: {
    pinned,
    server_cpu: pinned ? Number(opts['server-cpu']) : null,
    load_cpu: pinned ? Number(opts['load-cpu']) : null,
    wrk: { threads: Number(opts.threads), connections: Number(opts.connections), seconds: Number(opts.duration), runs: Number(opts.runs) },
  },
};

results.openssl_ecdsap256 = {
  sign_per_cpu_s: opensslSign(false),
  // Fastest of --runs, like the servers.
  sign_per_wall_s: Math.max(...Array.from({ length: Number(opts.runs) }, () => opensslSign(true))),
};
Object.assign(results, await measureInTurns([
  { key: 'keyway', label: 'keyway-issuer', start: startKeyway },
  { key: 'oidc_provider', label: 'oidc-provider', start: startOidcProvider },
]));

const perCpuS = (r) => 1e6 / r.server_cpu_us_per_token;
const ossl = results.openssl_ecdsap256;
results.ratios = {
  // Wall-clock throughput (the issue's measure; meaningful when nothing else uses the server core).
  keyway_over_oidc_provider: Number((results.keyway.rps / results.oidc_provider.rps).toFixed(2)),
  keyway_over_openssl_sign: Number((results.keyway.rps / ossl.sign_per_wall_s).toFixed(3)),
  // Per CPU-second of the server (robust when other processes share the machine).
  cpu_keyway_over_oidc_provider: Number((perCpuS(results.keyway) / perCpuS(results.oidc_provider)).toFixed(2)),
  cpu_keyway_over_openssl_sign: Number((perCpuS(results.keyway) / ossl.sign_per_cpu_s).toFixed(3)),
};
const r = results.ratios;
results.goals = {
  '10x oidc-provider': r.keyway_over_oidc_provider >= 10,
  '40% of openssl sign rate': r.keyway_over_openssl_sign >= 0.4,
  '10x oidc-provider (per CPU-second)': r.cpu_keyway_over_oidc_provider >= 10,
  '40% of openssl sign rate (per CPU-second)': r.cpu_keyway_over_openssl_sign >= 0.4,
};

const row = (name, x) => `  ${name.padEnd(16)}${String(x.rps).padStart(8)} tokens/s ${x.server_cpu_us_per_token.toFixed(1).padStart(7)} µs ${String(Math.round(perCpuS(x))).padStart(8)} tokens/CPU-s  ${x.server_cores_busy.toFixed(2)} server cores busy, wrk ${x.wrk_cpu_us_per_request} µs/request ${x.wrk_cores_busy} cores, p99 ${x.p99}`;
const goal = (v, min, unit) => `${(unit === '%' ? (v * 100).toFixed(0) : v.toFixed(1)).padStart(6)} ${unit}  ${v >= min ? 'met' : 'MISSED'}`;
console.log(JSON.stringify(results, null, 2));
console.log(`
client_credentials, keep-alive, wrk -t${opts.threads} -c${opts.connections} ${opts.duration}s --timeout 10s (fastest of ${opts.runs} runs each, the servers in turns), ${pinned ? `server and openssl on CPU ${opts['server-cpu']}, wrk on CPU ${opts['load-cpu']}` : 'not pinned'}, load average ${results.machine.loadavg[0]}
                  wall-clock        CPU/token  per CPU-second
  openssl sign    ${String(ossl.sign_per_wall_s).padStart(8)} sign/s   ${(1e6 / ossl.sign_per_cpu_s).toFixed(1).padStart(7)} µs ${String(ossl.sign_per_cpu_s).padStart(8)} sign/CPU-s
${row('keyway-issuer', results.keyway)}
${row('oidc-provider', results.oidc_provider)}
  goal                              wall-clock         per CPU-second
  keyway ≥ 10 × oidc-provider       ${goal(r.keyway_over_oidc_provider, 10, '×')}    ${goal(r.cpu_keyway_over_oidc_provider, 10, '×')}
  keyway ≥ 40 % of openssl sign     ${goal(r.keyway_over_openssl_sign, 0.4, '%')}    ${goal(r.cpu_keyway_over_openssl_sign, 0.4, '%')}`);

if (opts.check && !Object.values(results.goals).every(Boolean)) process.exit(1);
