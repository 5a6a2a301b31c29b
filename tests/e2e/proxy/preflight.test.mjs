// CORS preflights: with --skip-auth-preflight, an OPTIONS request carrying Origin and
// Access-Control-Request-Method reaches the tool without credentials (browsers never send any
// on a preflight), with client identity headers removed and none set; everything else still
// needs authentication. Off by default: preflights get 401 like any request without credentials.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { raw, seal, stack } from './harness.mjs';

const UNAUTHENTICATED = { error: 'unauthenticated', error_description: 'authentication required' };
const PREFLIGHT = { origin: 'https://other.example.com', 'access-control-request-method': 'POST' };
const SPOOFED = {
  'x-forwarded-user': 'admin', 'x-forwarded-email': 'admin@example.com', 'x-forwarded-groups': 'admins',
  'x-auth-request-user': 'admin', 'x-forwarded-access-token': 'forged',
};
const IDENTITY = ['x-forwarded-user', 'x-forwarded-email', 'x-forwarded-groups', 'x-forwarded-preferred-username',
  'x-forwarded-access-token', 'x-auth-request-user', 'x-auth-request-email', 'x-auth-request-groups'];

function assertUnauthenticated(r) {
  assert.equal(r.status, 401, r.body);
  assert.deepEqual(JSON.parse(r.body), UNAUTHENTICATED);
  assert.match(r.headers['www-authenticate'], /^Bearer resource_metadata="/);
}

describe('CORS preflight, --skip-auth-preflight off (the default)', () => {
  let s;
  before(async () => { s = await stack(); });
  after(async () => { await s?.close(); });

  it('a preflight needs authentication like any request', async () => {
    assertUnauthenticated(await raw(s.url, '/api/items', { method: 'OPTIONS', headers: { ...PREFLIGHT, ...SPOOFED } }));
  });
});

describe('CORS preflight, --skip-auth-preflight on', () => {
  let s;
  before(async () => { s = await stack({ env: { KEYWAY_SKIP_AUTH_PREFLIGHT: 'true', KEYWAY_PASS_ACCESS_TOKEN: 'true' } }); });
  after(async () => { await s?.close(); });

  it('forwards a preflight unauthenticated, with spoofed identity headers removed', async () => {
    const r = await raw(s.url, '/api/items?x=1', { method: 'OPTIONS', headers: { ...PREFLIGHT, ...SPOOFED } });
    assert.equal(r.status, 200, r.body);
    const echo = JSON.parse(r.body);
    assert.equal(echo.method, 'OPTIONS');
    assert.equal(echo.url, '/api/items?x=1');
    assert.equal(echo.headers.origin, PREFLIGHT.origin);
    assert.equal(echo.headers['access-control-request-method'], 'POST');
    for (const h of IDENTITY) assert.equal(echo.headers[h], undefined, h);
  });

  it('never sets identity headers on a preflight, even with credentials', async () => {
    const cookie = `_keyway_proxy=${seal({
      sid: 's', who: { sub: 'mallory', groups: ['engineering'], exp: Math.floor(Date.now() / 1000) + 300 },
      exp: Math.floor(Date.now() / 1000) + 300, end: Math.floor(Date.now() / 1000) + 3600,
    })}`;
    for (const credentials of [{ authorization: `Bearer ${s.token()}` }, { cookie }]) {
      const r = await raw(s.url, '/admin/panel', { method: 'OPTIONS', headers: { ...PREFLIGHT, ...credentials } });
      assert.equal(r.status, 200, r.body);
      const echo = JSON.parse(r.body);
      for (const h of IDENTITY) assert.equal(echo.headers[h], undefined, h);
      assert.ok(!(echo.headers.cookie ?? '').includes('_keyway_proxy'), 'the session cookie is not forwarded');
    }
  });

  it('OPTIONS without Access-Control-Request-Method still needs authentication', async () => {
    assertUnauthenticated(await raw(s.url, '/api/items', { method: 'OPTIONS', headers: { origin: PREFLIGHT.origin, ...SPOOFED } }));
  });

  it('OPTIONS without Origin still needs authentication', async () => {
    assertUnauthenticated(await raw(s.url, '/api/items', {
      method: 'OPTIONS', headers: { 'access-control-request-method': 'POST', ...SPOOFED },
    }));
  });

  it('another method with the preflight headers still needs authentication', async () => {
    for (const method of ['GET', 'POST', 'DELETE']) {
      assertUnauthenticated(await raw(s.url, '/api/items', { method, headers: { ...PREFLIGHT, ...SPOOFED } }));
    }
  });

  it('the proxy\'s own endpoints are not forwarded', async () => {
    const r = await raw(s.url, '/oauth2/callback', { method: 'OPTIONS', headers: PREFLIGHT });
    assert.equal(r.status, 400, r.body);
    assert.equal(JSON.parse(r.body).error, 'invalid_request');
  });

  it('counts preflights apart', async () => {
    assert.match(await s.proxy.metrics(), /keyway_proxy_requests_total\{outcome="preflight"\} 3\b/);
  });
});
