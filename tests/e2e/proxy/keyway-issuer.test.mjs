// keyway-proxy against keyway's own issuer (tests/e2e/issuer/harness.mjs, SQLite store): sign in
// through the proxy; an expired session is refreshed once (the issuer rotates the refresh token);
// then sign out: the refresh token is revoked at the issuer (introspection and a refresh attempt
// both refuse it) and the browser continues to the issuer's end_session, naming its session with
// the ID token as id_token_hint, so that the issuer ends exactly that session without asking.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { Jar as IssuerJar, PASSWORD, SECRETS, USERS, request, signIn, startIssuer, verifyJwt } from '../issuer/harness.mjs';
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

  /** Signs USERS[0] in through the proxy in the browser of `jar` (the issuer's cookies); returns
   * the session cookie and the sign-out cookie (`name=value`) and what the issuer asked for. */
  const signInThroughProxy = async (jar = new IssuerJar()) => {
    const start = await fetch(`${url}/page`, { headers: { accept: 'text/html' }, redirect: 'manual' });
    assert.equal(start.status, 302);
    const login = start.headers.getSetCookie()[0].split(';')[0];
    const { location, pages } = await signIn(jar, start.headers.get('location'), { user: USERS[0].email, password: PASSWORD });
    assert.ok(location?.startsWith(`${url}/oauth2/callback?`), location);
    const cb = await fetch(location, { headers: { cookie: login }, redirect: 'manual' });
    assert.equal(cb.status, 302, await cb.text());
    const set = cb.headers.getSetCookie();
    const cookie = set.find((c) => c.startsWith('_keyway_proxy=')).split(';')[0];
    const signOut = set.find((c) => c.startsWith('_keyway_proxy_signout='));
    return { cookie, signOut, pages };
  };

  it('refreshes an expired session once at the issuer, which rotates the refresh token', async () => {
    const { cookie } = await signInThroughProxy();
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
    const { cookie } = await signInThroughProxy();
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
    assert.match(await proxy.metrics(), /keyway_proxy_token_revocations_total\{result="ok"\} [12]/);
  });

  it('signs out with id_token_hint: the issuer ends exactly that session, without asking', async () => {
    // The same person signed in from two browsers.
    const jar = new IssuerJar();
    const other = new IssuerJar();
    const { cookie, signOut } = await signInThroughProxy(jar);
    await signInThroughProxy(other);
    const cookies = [cookie, signOut?.split(';')[0]].filter(Boolean).join('; ');
    const out = await fetch(`${url}/oauth2/sign_out`, { method: 'POST', headers: { cookie: cookies, origin: url }, redirect: 'manual' });
    assert.equal(out.status, 302);
    const end = new URL(out.headers.get('location'));
    assert.equal(`${end.origin}${end.pathname}`, `${issuer.url}/end_session`);
    assert.equal(end.searchParams.get('client_id'), CLIENT);

    // The browser follows with its issuer session: signed out at once, no confirmation page.
    const res = await request(jar, end.href);
    assert.equal(res.status, 303, await res.text());
    assert.equal(res.headers.get('location'), `${url}/public/signed-out`);
    // That browser must sign in again; the other one is still signed in.
    assert.deepEqual((await signInThroughProxy(jar)).pages, ['login']);
    assert.deepEqual((await signInThroughProxy(other)).pages, []);

    // The hint was the sign-in's ID token, kept in its own cookie sent only to the sign-out
    // endpoint (and deleted by it).
    const { header, payload } = await verifyJwt(issuer.url, end.searchParams.get('id_token_hint'));
    assert.equal(header.typ, 'JWT');
    assert.equal(payload.aud, CLIENT);
    assert.equal(payload.email, USERS[0].email);
    assert.match(signOut, /^_keyway_proxy_signout=[^;]+; Path=\/oauth2\/sign_out; HttpOnly; SameSite=Lax; Max-Age=\d+$/);
    assert.ok(out.headers.getSetCookie().some((c) => /^_keyway_proxy_signout=; Path=\/oauth2\/sign_out;.*Max-Age=0/.test(c)), out.headers.getSetCookie().join('\n'));
    console.log(`# ID token ${end.searchParams.get('id_token_hint').length} bytes, sign-out cookie ${signOut.split(';')[0].length}, session cookie ${cookie.length}`);
  });
});
