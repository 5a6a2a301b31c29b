// keyway-proxy against the npm oidc-provider: protected resource metadata, the browser flow by
// HTTP (redirects, the provider's login and consent forms), bearer tokens the provider issues,
// refresh once per session, sign-out through RP-initiated logout.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { Jar, browse, policy, stack } from './harness.mjs';

describe('keyway-proxy with oidc-provider', () => {
  let s;
  before(async () => { s = await stack(); });
  after(async () => { await s?.close(); });

  it('serves RFC 9728 metadata naming the resource, issuer and scopes', async () => {
    const res = await fetch(`${s.url}/.well-known/oauth-protected-resource`);
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), {
      resource: s.resource,
      authorization_servers: [s.op.issuer],
      scopes_supported: ['openid', 'offline_access', 'email', 'profile', 'groups', 'tool:read', 'tool:write'],
      bearer_methods_supported: ['header'],
    });
  });

  it('answers API requests without credentials with a 401 challenge', async () => {
    const res = await fetch(`${s.url}/api/items`, { headers: { accept: 'application/json' } });
    assert.equal(res.status, 401);
    assert.equal(
      res.headers.get('www-authenticate'),
      `Bearer resource_metadata="${s.url}/.well-known/oauth-protected-resource", scope="tool:read"`,
    );
    assert.deepEqual(await res.json(), { error: 'unauthenticated', error_description: 'authentication required' });
  });

  it('signs a browser in and forwards identity headers, not the session cookie', async () => {
    const jar = new Jar();
    const { res, visited } = await browse(jar, `${s.url}/hello/world?x=1`, { login: 'alice' });
    assert.equal(res.status, 200, visited.join('\n'));
    const echo = await res.json();
    assert.equal(echo.url, '/hello/world?x=1');
    assert.equal(echo.headers['x-forwarded-user'], 'alice');
    assert.equal(echo.headers['x-forwarded-email'], 'alice@example.com');
    assert.equal(echo.headers['x-forwarded-groups'], 'engineering');
    assert.equal(echo.headers['x-auth-request-user'], 'alice');
    assert.equal(echo.headers['x-forwarded-proto'], 'http');
    assert.equal(echo.headers['x-forwarded-for'], '127.0.0.1');
    assert.ok(!(echo.headers.cookie ?? '').includes('_keyway_proxy'), echo.headers.cookie);
    assert.ok(jar.get('_keyway_proxy'), jar.names().join());
    assert.ok(!jar.names().some((n) => n.startsWith('_keyway_proxy_login')), 'login state cleared');
    const authz = new URL(visited[1].slice(4));
    assert.equal(authz.origin + authz.pathname, `${s.op.issuer}/auth`);
    for (const p of ['state', 'nonce', 'code_challenge', 'resource', 'redirect_uri']) {
      assert.ok(authz.searchParams.get(p), p);
    }
    assert.equal(authz.searchParams.get('code_challenge_method'), 'S256');
    assert.equal(authz.searchParams.get('resource'), s.resource);
    // The session now opens API paths that need tool:read (granted at consent).
    const api = await fetch(`${s.url}/api/items`, { headers: { cookie: jar.header() } });
    assert.equal(api.status, 200);
    // alice is not in admins.
    const admin = await fetch(`${s.url}/admin`, { headers: { cookie: jar.header() } });
    assert.equal(admin.status, 403);
    assert.equal((await admin.json()).error, 'access_denied');
  });

  it('lets two tabs sign in at the same time', async () => {
    const jar = new Jar();
    const starts = [];
    for (const page of ['/tab-one', '/tab-two']) {
      const r = await fetch(`${s.url}${page}`, { headers: { accept: 'text/html', cookie: jar.header() }, redirect: 'manual' });
      assert.equal(r.status, 302);
      jar.update(r);
      starts.push(r.headers.get('location'));
    }
    assert.equal(jar.names().filter((n) => n.startsWith('_keyway_proxy_login_')).length, 2);
    // The first tab finishes after the second one started.
    const one = await browse(jar, starts[0], { login: 'alice' });
    assert.equal(one.res.status, 200, one.visited.join('\n'));
    assert.equal((await one.res.json()).url, '/tab-one');
    const two = await browse(jar, starts[1], { login: 'alice' });
    assert.equal(two.res.status, 200, two.visited.join('\n'));
    assert.equal((await two.res.json()).url, '/tab-two');
    assert.ok(!jar.names().some((n) => n.startsWith('_keyway_proxy_login')));
  });

  it('splits a large session across cookies and reads it back', async () => {
    const jar = new Jar();
    const { res } = await browse(jar, `${s.url}/big`, { login: 'many-groups-250' });
    assert.equal(res.status, 200);
    const names = jar.names().filter((n) => n.startsWith('_keyway_proxy'));
    assert.ok(names.includes('_keyway_proxy_0') && names.includes('_keyway_proxy_1'), names.join());
    assert.ok(!names.includes('_keyway_proxy'));
    const again = await fetch(`${s.url}/api/x`, { headers: { cookie: jar.header() } });
    assert.equal(again.status, 200);
    const echo = await again.json();
    assert.equal(echo.headers['x-forwarded-groups'].split(',').length, 251);
    assert.ok(!(echo.headers.cookie ?? '').includes('_keyway_proxy'));
  });

  it('lets admins into admin paths', async () => {
    const jar = new Jar();
    const { res } = await browse(jar, `${s.url}/admin/panel`, { login: 'admin-bob' });
    assert.equal(res.status, 200);
    const echo = await res.json();
    assert.equal(echo.url, '/admin/panel');
    assert.equal(echo.headers['x-forwarded-groups'], 'admins,engineering');
  });

  it('refuses service tokens whose client is not in allowedClients', async () => {
    const read = await s.op.clientCredentials('tool:read');
    const res = await fetch(`${s.url}/api/items`, { headers: { authorization: `Bearer ${read}` } });
    assert.equal(res.status, 403);
    assert.deepEqual(await res.json(), { error: 'access_denied', error_description: 'you may not access this resource' });
  });

  it('signs out: clears the session and ends the provider session', async () => {
    const jar = new Jar();
    const first = await browse(jar, `${s.url}/page`, { login: 'alice' });
    assert.equal(first.res.status, 200);
    assert.ok(jar.get('_keyway_proxy'));
    const out = await browse(jar, `${s.url}/oauth2/sign_out`);
    assert.equal(out.res.status, 200, out.visited.join('\n'));
    assert.equal((await out.res.json()).url, '/public/signed-out');
    assert.ok(out.visited.some((v) => v.includes('/session/end')), out.visited.join('\n'));
    assert.equal(jar.get('_keyway_proxy'), undefined);
    // The next visit must sign in again at the provider (a login form, not a silent redirect).
    const res = await fetch(`${s.url}/page`, { headers: { accept: 'text/html', cookie: jar.header() }, redirect: 'manual' });
    assert.equal(res.status, 302);
    jar.update(res);
    let url = res.headers.get('location');
    let page;
    for (let i = 0; i < 5; i += 1) {
      page = await fetch(url, { headers: { cookie: jar.header() }, redirect: 'manual' });
      jar.update(page);
      if (page.status < 300 || page.status >= 400) break;
      url = new URL(page.headers.get('location'), url).href;
    }
    assert.equal(page.status, 200);
    assert.match(await page.text(), /name="login"/);
  });
});

describe('bearer tokens issued by oidc-provider', () => {
  let s;
  before(async () => {
    // Service tokens (client_credentials: sub is the client) pass only when the client is listed.
    s = await stack({ policyFor: (resource) => ({ ...policy(resource), access: { ...policy(resource).access, allowedClients: ['svc'] } }) });
  });
  after(async () => { await s?.close(); });

  it('accepts bearer tokens the provider issues, and enforces scopes', async () => {
    const read = await s.op.clientCredentials('tool:read');
    const ok = await fetch(`${s.url}/api/items`, { headers: { authorization: `Bearer ${read}` } });
    assert.equal(ok.status, 200);
    const echo = await ok.json();
    assert.equal(echo.headers['x-forwarded-user'], 'svc');
    assert.equal(echo.headers.authorization, `Bearer ${read}`);
    const again = await fetch(`${s.url}/api/items`, { headers: { authorization: `Bearer ${read}` } });
    assert.equal(again.status, 200);
    assert.match(await s.proxy.metrics(), /keyway_proxy_token_cache_hits_total [1-9]/);
    const post = await fetch(`${s.url}/api/items`, { method: 'POST', headers: { authorization: `Bearer ${read}` } });
    assert.equal(post.status, 403);
    assert.equal(
      post.headers.get('www-authenticate'),
      `Bearer resource_metadata="${s.url}/.well-known/oauth-protected-resource", scope="tool:read tool:write", error="insufficient_scope", error_description="the access token lacks a required scope"`,
    );
    assert.equal((await post.json()).error, 'insufficient_scope');
    const both = await s.op.clientCredentials('tool:read tool:write');
    const post2 = await fetch(`${s.url}/api/items`, { method: 'POST', headers: { authorization: `Bearer ${both}` }, body: 'hi' });
    assert.equal(post2.status, 200);
    assert.equal((await post2.json()).body, 'hi');
  });

});

describe('session refresh', () => {
  let s;
  before(async () => { s = await stack({ accessTokenTTL: 2 }); });
  after(async () => { await s?.close(); });

  it('refreshes an expired session once, however many requests arrive together', async () => {
    const jar = new Jar();
    const { res } = await browse(jar, `${s.url}/start`, { login: 'alice' });
    assert.equal(res.status, 200);
    assert.equal(s.op.counts.refresh, 0);
    await new Promise((resolve) => setTimeout(resolve, 2500));
    const cookie = jar.header();
    const results = await Promise.all(Array.from({ length: 8 }, () => fetch(`${s.url}/api/x`, { headers: { cookie } })));
    for (const r of results) {
      assert.equal(r.status, 200);
      assert.equal((await r.json()).headers['x-forwarded-user'], 'alice');
      assert.ok(r.headers.getSetCookie().some((c) => c.startsWith('_keyway_proxy=')), 'new session cookie');
    }
    assert.equal(s.op.counts.refresh, 1);
    jar.update(results[0]);
    const after = await fetch(`${s.url}/api/x`, { headers: { cookie: jar.header() } });
    assert.equal(after.status, 200);
    assert.equal(after.headers.getSetCookie().length, 0);
    assert.equal(s.op.counts.refresh, 1);
    assert.match(await s.proxy.metrics(), /keyway_proxy_session_refreshes_total\{result="ok"\} 1/);
  });
});
