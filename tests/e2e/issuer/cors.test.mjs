// CORS as a browser sees it: discovery and JWKS for any origin; token, revocation, userinfo and
// registration for the origins of registered redirect URIs and --cors-allowed-origins only,
// with correct preflights; never Access-Control-Allow-Credentials; nothing on the pages and on
// introspection.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { RP, SECRETS, basicAuth, codeFlow, rp, sleep, startIssuer } from './harness.mjs';

const RP_ORIGIN = new URL(RP).origin;
const SPA = 'https://spa.example';
const EVIL = 'https://evil.example';

describe('keyway-issuer CORS', () => {
  let iss;
  const seen = [];
  before(async () => {
    iss = await startIssuer({ store: 'sqlite', args: ['--dcr', '--cors-allowed-origins', SPA] });
  });
  after(async () => {
    await iss?.stop();
  });

  async function call(path, { method = 'GET', origin, headers = {}, body } = {}) {
    const res = await fetch(`${iss.url}${path}`, {
      method, body, redirect: 'manual', headers: { ...(origin ? { origin } : {}), ...headers },
    });
    seen.push(res);
    return res;
  }
  const preflight = (path, origin, method = 'POST') => call(path, {
    method: 'OPTIONS', origin, headers: { 'access-control-request-method': method, 'access-control-request-headers': 'authorization,content-type' },
  });
  const corsHeaders = (res) => [...res.headers.keys()].filter((k) => k.startsWith('access-control-'));

  it('serves discovery and the JWKS to any origin', async () => {
    for (const path of ['/.well-known/openid-configuration', '/.well-known/oauth-authorization-server', '/jwks']) {
      const res = await call(path, { origin: EVIL });
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('access-control-allow-origin'), '*');
      const pre = await preflight(path, EVIL, 'GET');
      assert.equal(pre.status, 204);
      assert.equal(pre.headers.get('access-control-allow-origin'), '*');
      assert.equal(pre.headers.get('access-control-allow-methods'), 'GET');
    }
  });

  it('answers preflights for registered and configured origins, and refuses others', async () => {
    for (const path of ['/token', '/revoke', '/userinfo', '/register']) {
      for (const origin of [RP_ORIGIN, SPA]) {
        const res = await preflight(path, origin);
        assert.equal(res.status, 204, `${path} ${origin}`);
        assert.equal(res.headers.get('access-control-allow-origin'), origin);
        assert.equal(res.headers.get('access-control-allow-methods'), path === '/userinfo' ? 'GET, POST' : 'POST');
        assert.match(res.headers.get('access-control-allow-headers'), /Authorization/);
        assert.match(res.headers.get('access-control-allow-headers'), /Content-Type/);
        assert.equal(res.headers.get('access-control-max-age'), '600');
        assert.equal(res.headers.get('vary'), 'Origin');
      }
      for (const origin of [EVIL, 'http://127.0.0.1:10', 'null']) {
        const res = await preflight(path, origin);
        assert.deepEqual(corsHeaders(res), [], `${path} ${origin}`);
        assert.equal(res.headers.get('vary'), 'Origin');
      }
    }
  });

  it('lets an allowed origin read token, userinfo and revocation answers, errors included', async () => {
    const tok = await call('/token', {
      method: 'POST', origin: SPA,
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basicAuth('default.svc', SECRETS['default.svc']) },
      body: 'grant_type=client_credentials',
    });
    assert.equal(tok.status, 200);
    assert.equal(tok.headers.get('access-control-allow-origin'), SPA);
    assert.equal(tok.headers.get('vary'), 'Origin');
    const bad = await call('/token', {
      method: 'POST', origin: SPA,
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basicAuth('default.svc', 'wrong') },
      body: 'grant_type=client_credentials',
    });
    assert.equal(bad.status, 401);
    assert.equal(bad.headers.get('access-control-allow-origin'), SPA);
    assert.match(bad.headers.get('access-control-expose-headers'), /WWW-Authenticate/);

    const webapp = await rp(iss.url, 'default.webapp', { secret: SECRETS['default.webapp'] });
    const { tokens } = await codeFlow(webapp, { scope: 'openid email' });
    const info = await call('/userinfo', { origin: RP_ORIGIN, headers: { authorization: `Bearer ${tokens.access_token}` } });
    assert.equal(info.status, 200);
    assert.equal(info.headers.get('access-control-allow-origin'), RP_ORIGIN);
    const evil = await call('/userinfo', { origin: EVIL, headers: { authorization: `Bearer ${tokens.access_token}` } });
    assert.equal(evil.headers.get('access-control-allow-origin'), null);
    const revoked = await call('/revoke', {
      method: 'POST', origin: RP_ORIGIN,
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basicAuth('default.webapp', SECRETS['default.webapp']) },
      body: new URLSearchParams({ token: tokens.access_token }).toString(),
    });
    assert.equal(revoked.status, 200);
    assert.equal(revoked.headers.get('access-control-allow-origin'), RP_ORIGIN);
  });

  it('allows the origins of dynamically registered clients', async () => {
    const origin = 'http://127.0.0.1:7123';
    assert.equal((await preflight('/token', origin)).headers.get('access-control-allow-origin'), null);
    const reg = await call('/register', {
      method: 'POST', origin: SPA, headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ redirect_uris: [`${origin}/cb`] }),
    });
    assert.equal(reg.status, 201);
    assert.equal(reg.headers.get('access-control-allow-origin'), SPA);
    await sleep(1100);
    assert.equal((await preflight('/token', origin)).headers.get('access-control-allow-origin'), origin);
  });

  it('keeps introspection and the pages same-origin', async () => {
    for (const path of ['/introspect', '/login', '/consent', '/authorize', '/account', '/end_session']) {
      assert.deepEqual(corsHeaders(await preflight(path, RP_ORIGIN)), [], path);
      assert.deepEqual(corsHeaders(await call(path, { origin: RP_ORIGIN })), [], path);
    }
  });

  it('never allows credentials', () => {
    assert.ok(seen.length > 40, `${seen.length} responses`);
    for (const res of seen) assert.equal(res.headers.get('access-control-allow-credentials'), null, res.url);
  });
});
