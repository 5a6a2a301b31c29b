// The issuer's signing keys in-cluster, end to end across three binaries: `keyway-operator
// controller` keeps them in a Secret of the Kubernetes API test server (`fake-apiserver`), a
// projector below copies that Secret into a directory the way kubelet updates a mounted Secret
// (a new timestamped directory, then an atomic `..data` symlink swap), and `keyway-issuer
// --keys-read-only` serves from that directory. Checked: before the Secret exists the issuer is
// not ready and answers the token endpoint with 503; the successor is published before it signs,
// signs after its `not_before`, and a token signed before the rotation still verifies against
// the JWKS after it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { BIN_DIR, SECRETS, freePort, sleep, startIssuer } from './harness.mjs';

const SECRET = 'issuer-signing-keys';

/** Starts a binary and resolves once a line of its output matches `ready`. */
async function startBinary(name, args, env, ready) {
  const proc = spawn(path.join(BIN_DIR, name), args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  let output = '';
  const match = new Promise((resolve, reject) => {
    const onData = (d) => {
      output += d;
      const m = output.match(ready);
      if (m) resolve(m);
    };
    proc.stdout.on('data', onData);
    proc.stderr.on('data', onData);
    proc.on('exit', (code) => reject(new Error(`${name} exited ${code}:\n${output}`)));
    setTimeout(() => reject(new Error(`${name} not ready:\n${output}`)), 30_000);
  });
  const m = await match;
  return { proc, match: m, logs: () => output };
}

/** Writes `data` (name → base64) into `dir` as kubelet does for a mounted Secret. */
function project(dir, generation, data) {
  const ts = `..${new Date().toISOString().replace(/[-:.]/g, '_')}_${generation}`;
  fs.mkdirSync(path.join(dir, ts));
  for (const [name, b64] of Object.entries(data)) {
    fs.writeFileSync(path.join(dir, ts, name), Buffer.from(b64, 'base64'), { mode: 0o400 });
  }
  fs.symlinkSync(ts, path.join(dir, '..data_tmp'));
  fs.renameSync(path.join(dir, '..data_tmp'), path.join(dir, '..data'));
  for (const name of fs.readdirSync(dir)) {
    if (!name.startsWith('..') && !(name in data)) fs.unlinkSync(path.join(dir, name));
  }
  for (const name of Object.keys(data)) {
    if (!fs.existsSync(path.join(dir, name))) fs.symlinkSync(`..data/${name}`, path.join(dir, name));
  }
}

const b64url = (s) => Buffer.from(s, 'base64url');

/** Verifies a JWS against a JWKS with node's crypto (no keyway code involved). */
function verifiesAgainst(jwt, jwks) {
  const [h, p, s] = jwt.split('.');
  const header = JSON.parse(b64url(h));
  const jwk = jwks.keys.find((k) => k.kid === header.kid);
  if (!jwk) return false;
  const key = crypto.createPublicKey({ key: jwk, format: 'jwk' });
  const data = Buffer.from(`${h}.${p}`);
  assert.equal(header.alg, 'ES256');
  return crypto.verify('sha256', data, { key, dsaEncoding: 'ieee-p1363' }, b64url(s));
}

const kidOf = (jwt) => JSON.parse(b64url(jwt.split('.')[0])).kid;

test('operator-rotated Secret, projected like kubelet, served by a read-only issuer', { timeout: 120_000 }, async (t) => {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'keyway-signing-keys-e2e-'));
  // Undone in reverse order once the test ends.
  const cleanup = [() => fs.rmSync(work, { recursive: true, force: true })];
  t.after(async () => { for (const step of cleanup.reverse()) await step(); });
  const api = await startBinary('fake-apiserver', ['--listen', '127.0.0.1:0'], {}, /listening on (http:\/\/127\.0\.0\.1:\d+)/);
  const apiUrl = api.match[1];
  cleanup.push(() => api.proc.kill('SIGTERM'));
  const kubeconfig = path.join(work, 'kubeconfig');
  fs.writeFileSync(kubeconfig, JSON.stringify({
    apiVersion: 'v1', kind: 'Config', 'current-context': 'fake',
    clusters: [{ name: 'fake', cluster: { server: apiUrl } }],
    users: [{ name: 'fake', user: {} }],
    contexts: [{ name: 'fake', context: { cluster: 'fake', user: 'fake', namespace: 'default' } }],
  }));
  // The projector: what kubelet does for a pod that mounts the Secret.
  const keysDir = path.join(work, 'keys');
  fs.mkdirSync(keysDir);
  let version = null;
  let generation = 0;
  let secret = null;
  let projecting = true;
  const projector = (async () => {
    while (projecting) {
      const res = await fetch(`${apiUrl}/api/v1/namespaces/default/secrets/${SECRET}`);
      if (res.ok) {
        const s = await res.json();
        if (s.metadata.resourceVersion !== version) {
          version = s.metadata.resourceVersion;
          secret = s;
          project(keysDir, ++generation, s.data ?? {});
        }
      }
      await sleep(200);
    }
  })();
  cleanup.push(async () => { projecting = false; await projector; });

  // Before the operator ran, the mounted Secret is empty: the issuer serves but is not ready,
  // and refuses to mint tokens.
  const issuer = await startIssuer({ keysDir, args: ['--keys-read-only'] });
  cleanup.push(() => issuer.stop());
  assert.equal((await fetch(`${issuer.direct}/readyz`)).status, 503);
  assert.deepEqual((await (await fetch(`${issuer.direct}/jwks`)).json()).keys, []);
  const askToken = () => fetch(`${issuer.direct}/token`, {
    method: 'POST',
    headers: {
      authorization: `Basic ${Buffer.from(`default.svc:${SECRETS['default.svc']}`).toString('base64')}`,
      'content-type': 'application/x-www-form-urlencoded',
    },
    body: 'grant_type=client_credentials&scope=api%3Aread',
  });
  const early = await askToken();
  assert.equal(early.status, 503);
  assert.equal((await early.json()).error, 'temporarily_unavailable');

  // Rotation 20 s, lead 10 s: the successor appears 10 s after the first key and signs 10 s later.
  const operator = await startBinary('keyway-operator', [
    'controller', '--issuer-url', 'https://id.example.test', '--leader-elect=false',
    '--http-addr', `127.0.0.1:${await freePort()}`,
    '--issuer-signing-keys-secret', `default/${SECRET}`,
    '--issuer-key-rotation', '20s', '--issuer-key-publish-lead', '10s', '--issuer-key-retention', '1h',
  ], { KUBECONFIG: kubeconfig, KEYWAY_LOG: 'info' }, /created the issuer's signing-key Secret/);
  cleanup.push(() => operator.proc.kill('SIGTERM'));

  const deadline = Date.now() + 30_000;
  while ((await fetch(`${issuer.direct}/readyz`)).status !== 200) {
    assert.ok(Date.now() < deadline, `issuer never ready:\n${issuer.logs()}`);
    await sleep(100);
  }
  const token = async () => {
    const res = await askToken();
    assert.equal(res.status, 200, await res.clone().text());
    return (await res.json()).access_token;
  };
  const jwks = async () => (await fetch(`${issuer.direct}/jwks`)).json();

  const before = await token();
  const k1 = kidOf(before);
  const first = await jwks();
  assert.deepEqual(first.keys.map((k) => k.kid), [k1]);
  assert.ok(verifiesAgainst(before, first));
  const fileOf = (kid) => JSON.parse(Buffer.from(secret.data[`${kid}.json`], 'base64'));

  // The successor is published before it signs.
  let published;
  for (const until = Date.now() + 40_000; ; await sleep(250)) {
    assert.ok(Date.now() < until, `no successor in the JWKS:\n${operator.logs()}\n${issuer.logs()}`);
    published = await jwks();
    if (published.keys.length === 2) break;
  }
  const k2 = published.keys.map((k) => k.kid).find((k) => k !== k1);
  const notBefore = fileOf(k2).not_before;
  assert.equal(typeof notBefore, 'number');
  if (Date.now() / 1000 < notBefore - 1) {
    assert.equal(kidOf(await token()), k1, 'the successor signed before its not_before');
  } else {
    t.diagnostic('successor seen too late to check that it does not sign early');
  }

  // After its start it signs; the token from before the rotation still verifies.
  let after;
  for (const until = Date.now() + 30_000; ; await sleep(500)) {
    assert.ok(Date.now() < until, `the successor never signed:\n${issuer.logs()}`);
    after = await token();
    if (kidOf(after) === k2) break;
  }
  assert.ok(Date.now() / 1000 >= notBefore);
  const now = await jwks();
  assert.ok(verifiesAgainst(after, now));
  assert.ok(verifiesAgainst(before, now), 'a token signed before the rotation no longer verifies');
});
