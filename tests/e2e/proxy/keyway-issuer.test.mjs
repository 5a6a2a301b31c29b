// keyway-proxy against keyway's own issuer (tests/e2e/issuer/harness.mjs, SQLite store): sign in
// through the proxy; an expired session is refreshed once (the issuer rotates the refresh token);
// then sign out: the refresh token is revoked at the issuer (introspection and a refresh attempt
// both refuse it) and the browser continues to the issuer's end_session.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { Jar as IssuerJar, PASSWORD, SECRETS, USERS, signIn, startIssuer } from '../issuer/harness.mjs';
import { COOKIE_SECRET, freePort, startProxy, startUpstream, unseal } from './harness.mjs';

const CLIENT = 'default.webapp';
const basic = `Basic ${Buffer.from(`${CLIENT}:${SECRETS[CLIENT]}`).toString('base64')}`;

// The two tests run side by side: the sign-out test runs while the refresh test waits a minute.
describe('keyway-proxy with keyway-issuer', { concurrency: true }, () => {
  let issuer;
  let upstream;
  let proxy;
  let url;
  before(async () => {
    const port = await freePort();
    url = `http://127.0.0.1:${port}`;
    issuer = await startIssuer({
      manifests: `
apiVersion: keyway.dev/v1alpha1
kind: ConnectedApp
metadata: {name: webapp}
spec:
  displayName: Tool behind keyway-proxy
  redirectURIs: ["${url}/oauth2/callback"]
  postLogoutRedirectURIs: ["${url}/public/signed-out"]
  grantTypes: [authorization_code, refresh_token]
  scopes: [openid, profile, email, groups, offline_access]
  resource: "${url}"
  # The shortest the spec allows: the refresh test waits for the session to expire.
  tokenLifetimes: {access: 1m}
`,
    });
    upstream = await startUpstream();
    proxy = await startProxy({
      port,
      upstreamPort: upstream.port,
      files: {
        'client-id': CLIENT,
        'client-secret': `${SECRETS[CLIENT]}\n`,
        'issuer-url': `${issuer.url}\n`,
        'cookie-secret': COOKIE_SECRET,
        'policy.json': { resource: url, scopes: ['openid', 'profile', 'email', 'groups', 'offline_access'], access: { rules: [{ path: '/public', public: true }] } },
      },
      env: { KEYWAY_POST_LOGOUT_REDIRECT_URL: `${url}/public/signed-out` },
    });
  });
  after(async () => {
    await proxy?.stop();
    await upstream?.close();
    await issuer?.stop();
  });

  const introspect = async (token) => {
    const res = await fetch(`${issuer.url}/introspect`, {
      method: 'POST',
      headers: { authorization: basic, 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ token, token_type_hint: 'refresh_token' }),
    });
    assert.equal(res.status, 200);
    return (await res.json()).active;
  };

  /** Signs USERS[0] in through the proxy; returns the session cookie (`name=value`). */
  const signInThroughProxy = async () => {
    const start = await fetch(`${url}/page`, { headers: { accept: 'text/html' }, redirect: 'manual' });
    assert.equal(start.status, 302);
    const login = start.headers.getSetCookie()[0].split(';')[0];
    const { location } = await signIn(new IssuerJar(), start.headers.get('location'), { user: USERS[0].email, password: PASSWORD });
    assert.ok(location?.startsWith(`${url}/oauth2/callback?`), location);
    const cb = await fetch(location, { headers: { cookie: login }, redirect: 'manual' });
    assert.equal(cb.status, 302, await cb.text());
    return cb.headers.getSetCookie().find((c) => c.startsWith('_keyway_proxy=')).split(';')[0];
  };

  it('refreshes an expired session once at the issuer, which rotates the refresh token', async () => {
    const cookie = await signInThroughProxy();
    const { rt } = unseal(cookie.slice('_keyway_proxy='.length), { clientId: CLIENT });
    await new Promise((resolve) => setTimeout(resolve, 61_000));
    const results = await Promise.all(Array.from({ length: 4 }, () => fetch(`${url}/page`, { headers: { cookie } })));
    const renewed = new Set();
    for (const r of results) {
      assert.equal(r.status, 200);
      assert.equal((await r.json()).headers['x-forwarded-email'], USERS[0].email);
      const set = r.headers.getSetCookie().find((c) => c.startsWith('_keyway_proxy='));
      assert.ok(set, 'a new session cookie');
      // Each answer seals the session anew (a fresh nonce); the refresh token inside is the same.
      renewed.add(unseal(set.split(';')[0].slice('_keyway_proxy='.length), { clientId: CLIENT }).rt);
    }
    assert.equal(renewed.size, 1, 'one refresh for the four requests');
    const [next] = renewed;
    assert.ok(next && next !== rt, 'the issuer rotated the refresh token');
    assert.equal(await introspect(rt), false, 'the old refresh token is spent');
    assert.equal(await introspect(next), true);
    assert.match(await proxy.metrics(), /keyway_proxy_session_refreshes_total\{result="ok"\} 1\n/);
  });

  it('signs in, then signs out revoking the refresh token at the issuer', async () => {
    const cookie = await signInThroughProxy();
    const page = await fetch(`${url}/page`, { headers: { cookie } });
    assert.equal(page.status, 200);
    assert.equal((await page.json()).headers['x-forwarded-email'], USERS[0].email);
    const { rt } = unseal(cookie.slice('_keyway_proxy='.length), { clientId: CLIENT });
    assert.ok(rt, 'the session holds a refresh token');
    assert.equal(await introspect(rt), true);

    const out = await fetch(`${url}/oauth2/sign_out`, { method: 'POST', headers: { cookie, origin: url }, redirect: 'manual' });
    assert.equal(out.status, 302);
    const end = new URL(out.headers.get('location'));
    assert.equal(`${end.origin}${end.pathname}`, `${issuer.url}/end_session`);
    assert.equal(end.searchParams.get('client_id'), CLIENT);
    assert.equal(end.searchParams.get('post_logout_redirect_uri'), `${url}/public/signed-out`);
    assert.equal(await introspect(rt), false, 'revoked at the issuer');
    const refresh = await fetch(`${issuer.url}/token`, {
      method: 'POST',
      headers: { authorization: basic, 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: rt }),
    });
    assert.equal(refresh.status, 400);
    assert.equal((await refresh.json()).error, 'invalid_grant');
    assert.match(await proxy.metrics(), /keyway_proxy_token_revocations_total\{result="ok"\} 1/);
  });
});
