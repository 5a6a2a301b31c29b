// Several keyway-issuer replicas sharing one PostgreSQL store (and signing keys) behind a load
// balancer that sends every request to the next replica in turn: a whole sign-in, code exchange,
// refresh rotation, reuse detection, revocation and logout must work however requests land, and
// the sign-in throttle and registration limit must be one budget for all replicas.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';

import {
  Jar, PASSWORD, RP, SECRETS, USERS, codeFlow, form, freePort, freshPgSchema, listen, oidc, parseForm, request, rp, sleep,
  startIssuer,
} from './harness.mjs';

const WEBAPP = 'default.webapp';
const DCR_RATE = 4;

/** An HTTP load balancer: request n goes to backend n mod N. Counts requests per backend. */
async function roundRobin(port, backends) {
  let next = 0;
  const hits = backends.map(() => 0);
  const server = http.createServer((req, res) => {
    const i = next++ % backends.length;
    hits[i] += 1;
    const target = new URL(backends[i]);
    const up = http.request({
      host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers,
    }, (r) => {
      res.writeHead(r.statusCode, r.rawHeaders);
      r.pipe(res);
    });
    up.on('error', () => { res.writeHead(502); res.end(); });
    req.pipe(up);
  });
  await listen(server, port);
  return { hits, close: () => new Promise((resolve) => { server.closeAllConnections(); server.close(resolve); }) };
}

describe('keyway-issuer replicas sharing one PostgreSQL store', () => {
  let schema;
  let keysDir;
  let replicas = [];
  let lb;
  let url;
  before(async () => {
    schema = freshPgSchema();
    keysDir = fs.mkdtempSync(path.join(os.tmpdir(), 'keyway-replica-keys-'));
    const port = await freePort();
    url = `http://127.0.0.1:${port}`;
    // The first replica creates the keys and migrates; the other two start together (the
    // migration is idempotent and serialised by the database).
    const args = ['--refresh-grace', '1s', '--dcr', '--dcr-rate', String(DCR_RATE)];
    replicas.push(await startIssuer({ store: schema.url, issuerUrl: url, keysDir, args }));
    replicas.push(...await Promise.all([1, 2].map(() => startIssuer({ store: schema.url, issuerUrl: url, keysDir, args }))));
    lb = await roundRobin(port, replicas.map((r) => r.direct));
  });
  after(async () => {
    await lb?.close();
    for (const r of replicas) await r.stop();
    schema?.drop();
    if (keysDir) fs.rmSync(keysDir, { recursive: true, force: true });
  });

  it('serves one consistent issuer whichever replica answers', async () => {
    const docs = await Promise.all(replicas.map(async (r) => (await fetch(`${r.direct}/.well-known/openid-configuration`)).json()));
    for (const d of docs) assert.deepEqual(d, docs[0]);
    assert.equal(docs[0].issuer, url);
    const jwks = await Promise.all(replicas.map(async (r) => (await fetch(`${r.direct}/jwks`)).json()));
    for (const j of jwks) assert.deepEqual(j, jwks[0]);
  });

  it('runs sign-in, code exchange, refresh, reuse detection and revocation across replicas', async () => {
    const webapp = await rp(url, WEBAPP, { secret: SECRETS[WEBAPP] });
    const jar = new Jar();
    const { tokens, claims } = await codeFlow(webapp, { jar });
    assert.equal(claims.iss, url);
    const info = await oidc.fetchUserInfo(webapp, tokens.access_token, claims.sub);
    assert.equal(info.sub, claims.sub);
    // Single sign-on holds whichever replica sees the cookie.
    for (let i = 0; i < 3; i++) {
      const again = await codeFlow(webapp, { jar, scope: 'openid' });
      assert.deepEqual(again.pages, []);
    }
    const second = await oidc.refreshTokenGrant(webapp, tokens.refresh_token);
    const third = await oidc.refreshTokenGrant(webapp, second.refresh_token);
    await sleep(2100);
    await assert.rejects(oidc.refreshTokenGrant(webapp, tokens.refresh_token), (e) => e.error === 'invalid_grant');
    await assert.rejects(oidc.refreshTokenGrant(webapp, third.refresh_token), (e) => e.error === 'invalid_grant');
    for (let i = 0; i < 3; i++) {
      assert.equal((await oidc.tokenIntrospection(webapp, third.refresh_token)).active, false);
    }
    await oidc.tokenRevocation(webapp, third.access_token);
    for (let i = 0; i < 3; i++) {
      assert.equal((await oidc.tokenIntrospection(webapp, third.access_token)).active, false, `replica ${i}`);
    }
    assert.ok(lb.hits.every((n) => n > 5), `every replica served requests: ${lb.hits}`);
  });

  it('lets exactly one of several replicas redeem a code', async () => {
    const webapp = await rp(url, WEBAPP, { secret: SECRETS[WEBAPP] });
    const jar = new Jar();
    await codeFlow(webapp, { jar });
    for (let round = 0; round < 3; round++) {
      const verifier = oidc.randomPKCECodeVerifier();
      const authz = oidc.buildAuthorizationUrl(webapp, {
        redirect_uri: `${RP}/cb`, scope: 'openid', code_challenge: await oidc.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256',
      });
      const res = await request(jar, authz.toString());
      const code = new URL(res.headers.get('location')).searchParams.get('code');
      assert.ok(code);
      const body = new URLSearchParams({ grant_type: 'authorization_code', code, redirect_uri: `${RP}/cb`, code_verifier: verifier });
      const auth = `Basic ${Buffer.from(`${WEBAPP}:${SECRETS[WEBAPP]}`).toString('base64')}`;
      // Straight to each replica at once.
      const results = await Promise.all(replicas.map((r) => fetch(`${r.direct}/token`, {
        method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: auth }, body,
      })));
      const statuses = results.map((r) => r.status);
      assert.ok(statuses.filter((s) => s === 200).length <= 1, `${statuses}`);
      assert.ok(statuses.every((s) => s === 200 || s === 400), `${statuses}`);
    }
  });

  it('throttles password guessing with one budget across replicas', async () => {
    const webapp = await rp(url, WEBAPP, { secret: SECRETS[WEBAPP] });
    const jar = new Jar();
    const authz = oidc.buildAuthorizationUrl(webapp, {
      redirect_uri: `${RP}/cb`, scope: 'openid', code_challenge: await oidc.calculatePKCECodeChallenge(oidc.randomPKCECodeVerifier()), code_challenge_method: 'S256',
    });
    const page = await request(jar, authz.toString());
    assert.equal(page.status, 200);
    const { fields } = parseForm(await page.text(), '/login');
    const attempt = (password) => request(jar, `${url}/login`, form({ ...fields, email: USERS[1].email, password }));
    const before = [...lb.hits];
    // Five failures, spread by the balancer over the three replicas (at most two each).
    for (let i = 0; i < 5; i++) assert.equal((await attempt('wrong')).status, 401);
    assert.ok(lb.hits.every((n, i) => n > before[i]), `every replica saw a failure: ${lb.hits}`);
    // Every replica now refuses, even the right password: the failures were counted together.
    for (const r of replicas) {
      const res = await request(jar, `${r.direct}/login`, form({ ...fields, email: USERS[1].email, password: PASSWORD }));
      assert.equal(res.status, 429);
      assert.match(await res.text(), /Too many failed attempts/);
    }
  });

  it('limits registrations per minute with one budget across replicas', async () => {
    // Stay inside one clock minute (the window) for the whole burst.
    const intoMinute = Date.now() % 60_000;
    if (intoMinute > 55_000) await sleep(60_500 - intoMinute);
    const before = [...lb.hits];
    const statuses = [];
    for (let i = 0; i < DCR_RATE + 2; i++) {
      const res = await fetch(`${url}/register`, {
        method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ redirect_uris: ['http://127.0.0.1/cb'] }),
      });
      statuses.push(res.status);
      if (res.status === 429) assert.equal((await res.json()).error, 'temporarily_unavailable');
    }
    assert.ok(lb.hits.every((n, i) => n >= before[i] + 2), `every replica saw registrations: ${lb.hits}`);
    assert.deepEqual(statuses, [...Array(DCR_RATE).fill(201), 429, 429]);
  });
});
