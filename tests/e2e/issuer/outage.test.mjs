// A store that is down gives 503 (RFC 6749 `temporarily_unavailable`, Retry-After) and loses
// nothing: PostgreSQL is reached through a TCP relay that the test cuts and restores; SQLite is
// write-locked by another process (the sqlite3 shell) and released.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';

import {
  PG_URL, SECRETS, codeFlow, freePort, freshPgSchema, listen, oidc, rp, startIssuer, tokenPost,
} from './harness.mjs';

const WEBAPP = 'default.webapp';

/** A TCP relay to PostgreSQL that can be cut (every connection reset) and restored. */
class Relay {
  constructor(target) {
    this.target = target;
    this.sockets = new Set();
    this.server = null;
  }

  async start(port = 0) {
    this.server = net.createServer((client) => {
      const upstream = net.connect(this.target.port, this.target.host);
      this.sockets.add(client);
      this.sockets.add(upstream);
      const drop = () => { client.destroy(); upstream.destroy(); this.sockets.delete(client); this.sockets.delete(upstream); };
      client.on('error', drop).on('close', drop);
      upstream.on('error', drop).on('close', drop);
      client.pipe(upstream).pipe(client);
    });
    await listen(this.server, port);
    this.port = this.server.address().port;
    return this.port;
  }

  async cut() {
    const closed = new Promise((resolve) => this.server.close(resolve));
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
    await closed;
  }
}

async function expect503(res) {
  assert.equal(res.status, 503);
  assert.ok(res.headers.get('retry-after'));
  const body = await res.json();
  assert.equal(body.error, 'temporarily_unavailable');
}

describe('store outage: PostgreSQL unreachable', () => {
  let iss;
  let relay;
  let schema;
  before(async () => {
    const pg = new URL(PG_URL);
    relay = new Relay({ host: pg.hostname, port: Number(pg.port || 5432) });
    const port = await relay.start(await freePort());
    schema = freshPgSchema();
    const url = new URL(schema.url);
    url.host = `127.0.0.1:${port}`;
    iss = await startIssuer({ store: url.toString() });
  });
  after(async () => {
    await iss?.stop();
    await relay?.cut().catch(() => {});
    schema?.drop();
  });

  it('answers 503 while the database is down and loses nothing', async () => {
    const webapp = await rp(iss.url, WEBAPP, { secret: SECRETS[WEBAPP] });
    const { tokens, jar } = await codeFlow(webapp);
    assert.equal((await fetch(`${iss.url}/readyz`)).status, 200);

    await relay.cut();
    assert.equal((await fetch(`${iss.url}/readyz`)).status, 503);
    const refresh = await fetch(`${iss.url}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${Buffer.from(`${WEBAPP}:${SECRETS[WEBAPP]}`).toString('base64')}` },
      body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: tokens.refresh_token }),
    });
    await expect503(refresh);
    const intro = await fetch(`${iss.url}/introspect`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${Buffer.from(`${WEBAPP}:${SECRETS[WEBAPP]}`).toString('base64')}` },
      body: new URLSearchParams({ token: tokens.access_token }),
    });
    await expect503(intro);
    const authz = oidc.buildAuthorizationUrl(webapp, {
      redirect_uri: 'http://127.0.0.1:9/cb', scope: 'openid', code_challenge: await oidc.calculatePKCECodeChallenge(oidc.randomPKCECodeVerifier()), code_challenge_method: 'S256',
    });
    const page = await fetch(authz, { headers: { cookie: jar.header() }, redirect: 'manual' });
    assert.equal(page.status, 503);
    // client_credentials needs no store: it keeps working.
    const cc = await tokenPost(iss.url, { grant_type: 'client_credentials' }, { basic: ['default.svc', SECRETS['default.svc']] });
    assert.equal(cc.status, 200);

    await relay.start(relay.port);
    // Everything issued before the outage still works: the refresh token was not consumed.
    let ready = 0;
    for (let i = 0; i < 50 && ready !== 200; i++) {
      ready = (await fetch(`${iss.url}/readyz`)).status;
      if (ready !== 200) await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(ready, 200);
    const again = await oidc.refreshTokenGrant(webapp, tokens.refresh_token);
    assert.ok(again.access_token);
    assert.equal((await oidc.tokenIntrospection(webapp, tokens.access_token)).active, true);
    const sso = await codeFlow(webapp, { jar });
    assert.deepEqual(sso.pages, [], 'the sign-in session survived');
  });
});

const hasSqlite3 = spawnSync('sqlite3', ['-version']).status === 0;

describe('store outage: SQLite write-locked by another process', () => {
  let iss;
  before(async () => { iss = await startIssuer({ store: 'sqlite' }); });
  after(async () => { await iss?.stop(); });

  it('answers 503 while the database is locked and recovers', { skip: !hasSqlite3 && 'the sqlite3 shell is not installed' }, async () => {
    const webapp = await rp(iss.url, WEBAPP, { secret: SECRETS[WEBAPP] });
    const { tokens } = await codeFlow(webapp);
    const shell = spawn('sqlite3', [path.join(iss.dir, 'issuer.db')], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    shell.stdout.on('data', (d) => { out += d; });
    shell.stdin.write("BEGIN EXCLUSIVE;\nSELECT 'locked';\n");
    for (let i = 0; i < 100 && !out.includes('locked'); i++) await new Promise((r) => setTimeout(r, 50));
    assert.match(out, /locked/);
    try {
      const res = await fetch(`${iss.url}/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${Buffer.from(`${WEBAPP}:${SECRETS[WEBAPP]}`).toString('base64')}` },
        body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: tokens.refresh_token }),
      });
      await expect503(res);
    } finally {
      shell.stdin.end('ROLLBACK;\n.quit\n');
      await new Promise((resolve) => shell.on('exit', resolve));
    }
    const again = await oidc.refreshTokenGrant(webapp, tokens.refresh_token);
    assert.ok(again.refresh_token);
  });
});
