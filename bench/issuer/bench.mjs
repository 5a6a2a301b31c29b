// Benchmark: client_credentials token issuance with keep-alive, keyway-issuer vs npm
// `oidc-provider` (both issuing ES256-signed JWT access tokens), and the raw P-256 signing rate
// of `openssl speed ecdsap256`, all measured in this one run on this machine.
//
//   node bench/issuer/bench.mjs [--duration 10] [--connections 32] [--threads 2] [--check]
//
// Needs: wrk, openssl, the npm peers of tests/e2e (npm ci there), and a release build of
// keyway-issuer in KEYWAY_BIN_DIR (default: target/release). `bash bench/issuer/run.sh` does
// all of that. With --check the exit code is 1 when a goal is missed:
//   keyway ≥ 10 × oidc-provider, and keyway ≥ 40 % of openssl's single-core P-256 sign rate.
import { execFile, execFileSync, spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { parseArgs, promisify } from 'node:util';
import { pathToFileURL } from 'node:url';

const ROOT = path.resolve(import.meta.dirname, '../..');
const { values: opts } = parseArgs({
  options: {
    duration: { type: 'string', default: '10' },
    connections: { type: 'string', default: '32' },
    threads: { type: 'string', default: '2' },
    check: { type: 'boolean', default: false },
  },
});
const BIN_DIR = process.env.KEYWAY_BIN_DIR ?? path.join(ROOT, 'target/release');
const { default: Provider } = await import(pathToFileURL(path.join(ROOT, 'tests/e2e/node_modules/oidc-provider/lib/index.js')));

const CLIENT_ID = 'default.bench';
const SECRET = crypto.randomBytes(32).toString('base64url'); // 256-bit, like the operator's
const RESOURCE = 'https://api.bench.example/';

async function freePort() {
  const srv = net.createServer();
  await new Promise((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const { port } = srv.address();
  await new Promise((resolve) => srv.close(resolve));
  return port;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitFor(url) {
  for (let i = 0; i < 300; i++) {
    try {
      if ((await fetch(url)).status < 500) return;
    } catch { /* not up yet */ }
    await sleep(50);
  }
  throw new Error(`${url} did not come up`);
}

/**
 * Runs wrk against a token endpoint; returns requests/s and checks every answer was 200.
 * Asynchronous: oidc-provider runs in this process and must keep serving meanwhile.
 */
async function wrk(tokenUrl, body, label) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'keyway-bench-'));
  const script = path.join(dir, 'post.lua');
  const auth = Buffer.from(`${encodeURIComponent(CLIENT_ID)}:${encodeURIComponent(SECRET)}`).toString('base64');
  fs.writeFileSync(script, [
    'wrk.method = "POST"',
    `wrk.body = ${JSON.stringify(body)}`,
    'wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"',
    `wrk.headers["Authorization"] = "Basic ${auth}"`,
    '',
  ].join('\n'));
  const { stdout: out } = await promisify(execFile)('wrk', [
    '-t', opts.threads, '-c', opts.connections, '-d', `${opts.duration}s`, '--latency', '-s', script, tokenUrl,
  ], { encoding: 'utf8' });
  fs.rmSync(dir, { recursive: true, force: true });
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1]);
  const non2xx = Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(out)?.[1] ?? 0);
  const p99 = /99%\s+(\S+)/.exec(out)?.[1];
  if (!Number.isFinite(rps) || rps <= 0) throw new Error(`no requests/s from wrk for ${label}:\n${out}`);
  if (non2xx > 0) throw new Error(`${label}: ${non2xx} responses were not 200:\n${out}`);
  return { rps, p99 };
}

/** One token request by fetch, to check the setup issues what we think before measuring. */
async function sample(tokenUrl, body) {
  const res = await fetch(tokenUrl, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      authorization: `Basic ${Buffer.from(`${encodeURIComponent(CLIENT_ID)}:${encodeURIComponent(SECRET)}`).toString('base64')}`,
    },
    body,
  });
  const json = await res.json();
  if (res.status !== 200) throw new Error(`${tokenUrl}: ${res.status} ${JSON.stringify(json)}`);
  const header = JSON.parse(Buffer.from(json.access_token.split('.')[0], 'base64url'));
  return { alg: header.alg, typ: header.typ };
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
  scopes: [api:read]
  resource: "${RESOURCE}"
  access: {allowedClients: [${CLIENT_ID}]}
`);
  fs.writeFileSync(path.join(clients, `${CLIENT_ID}.secret`), SECRET);
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const proc = spawn(path.join(BIN_DIR, 'keyway-issuer'), [
    '--issuer-url', url, '--listen', `127.0.0.1:${port}`,
    '--store', `sqlite://${path.join(dir, 'issuer.db')}`,
    '--clients-dir', clients, '--keys-dir', path.join(dir, 'keys'),
  ], { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, RUST_LOG: 'warn' } });
  await waitFor(`${url}/healthz`);
  return {
    url,
    stop: async () => {
      proc.kill('SIGTERM');
      await new Promise((r) => proc.on('exit', r));
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function startOidcProvider() {
  const port = await freePort();
  const issuer = `http://127.0.0.1:${port}`;
  const { privateKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = { ...privateKey.export({ format: 'jwk' }), kid: 'bench', alg: 'ES256', use: 'sig' };
  const provider = new Provider(issuer, {
    clients: [{
      client_id: CLIENT_ID,
      client_secret: SECRET,
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      id_token_signed_response_alg: 'ES256', // the only key is P-256
    }],
    jwks: { keys: [jwk] },
    scopes: ['api:read'],
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => RESOURCE,
        useGrantedResource: () => true,
        getResourceServerInfo: () => ({
          scope: 'api:read',
          audience: RESOURCE,
          accessTokenFormat: 'jwt',
          accessTokenTTL: 600,
          jwt: { sign: { alg: 'ES256' } },
        }),
      },
    },
  });
  const server = http.createServer({ keepAlive: true }, provider.callback());
  server.keepAliveTimeout = 60_000;
  await new Promise((resolve) => server.listen(port, '127.0.0.1', resolve));
  return { url: issuer, stop: () => new Promise((r) => { server.closeAllConnections(); server.close(r); }) };
}

function opensslSign() {
  const out = execFileSync('openssl', ['speed', '-seconds', '5', 'ecdsap256'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  // "256 bits ecdsa (nistp256)   0.0000s   0.0001s  40000.0  12000.0"
  const line = out.split('\n').find((l) => /ecdsa \(nistp256\)/.test(l));
  const nums = line?.trim().split(/\s+/).filter((x) => /^[\d.]+$/.test(x)).map(Number);
  if (!nums || nums.length < 3) throw new Error(`cannot read openssl output:\n${out}`);
  return nums[nums.length - 2]; // sign/s
}

const body = new URLSearchParams({ grant_type: 'client_credentials', scope: 'api:read', resource: RESOURCE }).toString();
const results = { machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model }, wrk: { threads: Number(opts.threads), connections: Number(opts.connections), seconds: Number(opts.duration) } };

results.openssl_ecdsap256_sign_per_s = opensslSign();

const keyway = await startKeyway();
try {
  results.keyway_token = await sample(`${keyway.url}/token`, body);
  await wrk(`${keyway.url}/token`, body, 'keyway warm-up');
  results.keyway = await wrk(`${keyway.url}/token`, body, 'keyway-issuer');
} finally {
  await keyway.stop();
}

const op = await startOidcProvider();
try {
  results.oidc_provider_token = await sample(`${op.url}/token`, body);
  await wrk(`${op.url}/token`, body, 'oidc-provider warm-up');
  results.oidc_provider = await wrk(`${op.url}/token`, body, 'oidc-provider');
} finally {
  await op.stop();
}

const vsProvider = results.keyway.rps / results.oidc_provider.rps;
const vsOpenssl = results.keyway.rps / results.openssl_ecdsap256_sign_per_s;
results.ratios = { keyway_over_oidc_provider: Number(vsProvider.toFixed(2)), keyway_over_openssl_sign: Number(vsOpenssl.toFixed(3)) };
results.goals = { '10x oidc-provider': vsProvider >= 10, '40% of openssl sign rate': vsOpenssl >= 0.4 };

console.log(JSON.stringify(results, null, 2));
console.log(`
client_credentials, keep-alive, ${opts.connections} connections, ${opts.duration}s each, ${results.machine.cpus} CPUs
  openssl speed ecdsap256 (1 core)  ${results.openssl_ecdsap256_sign_per_s.toFixed(0).padStart(8)} sign/s
  keyway-issuer                     ${results.keyway.rps.toFixed(0).padStart(8)} tokens/s  (p99 ${results.keyway.p99})
  oidc-provider                     ${results.oidc_provider.rps.toFixed(0).padStart(8)} tokens/s  (p99 ${results.oidc_provider.p99})
  keyway / oidc-provider            ${vsProvider.toFixed(1).padStart(8)} ×    goal ≥ 10 ×   ${vsProvider >= 10 ? 'met' : 'MISSED'}
  keyway / openssl sign rate        ${(vsOpenssl * 100).toFixed(0).padStart(7)} %    goal ≥ 40 %   ${vsOpenssl >= 0.4 ? 'met' : 'MISSED'}`);

if (opts.check && !(vsProvider >= 10 && vsOpenssl >= 0.4)) process.exit(1);
