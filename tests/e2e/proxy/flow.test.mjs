// keyway-proxy against the npm oidc-provider: protected resource metadata, the browser flow by
// HTTP (redirects, the provider's login and consent forms), bearer tokens the provider issues,
// refresh once per session, sign-out through RP-initiated logout.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';

import { Jar, browse, policy, stack, unseal } from './harness.mjs';

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
    // A GET without Fetch metadata gets the confirmation page; browse() posts its form.
    const out = await browse(jar, `${s.url}/oauth2/sign_out`);
    assert.equal(out.res.status, 200, out.visited.join('\n'));
    assert.equal(out.visited[1], `POST ${s.url}/oauth2/sign_out?rd=%2F`, out.visited.join('\n'));
    assert.equal((await out.res.json()).url, '/public/signed-out');
    // The provider accepted the ID token the proxy kept as id_token_hint, and ended the session.
    const end = out.visited.map((v) => new URL(v.split(' ')[1])).find((u) => u.pathname === '/session/end');
    assert.ok(end, out.visited.join('\n'));
    const hint = end.searchParams.get('id_token_hint');
    assert.ok(hint, `no id_token_hint: ${end}`);
    const claims = JSON.parse(Buffer.from(hint.split('.')[1], 'base64url'));
    assert.deepEqual([claims.iss, claims.sub, claims.aud], [s.op.issuer, 'alice', 'tool']);
    assert.equal(end.searchParams.get('client_id'), 'tool');
    assert.equal(jar.get('_keyway_proxy_signout'), undefined);
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

  it('writes one JSON access line per request, without the token or the query', async () => {
    const token = await s.op.clientCredentials('tool:read');
    const r = await fetch(`${s.url}/api/items/logged?secret=q-value`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(r.status, 200);
    // Lines are written in batches, once the proxy is idle: wait for it, briefly.
    const deadline = Date.now() + 2000;
    let line;
    while (!(line = s.proxy.logs.find((l) => l.target === 'access' && l.path === '/api/items/logged')) && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    assert.ok(line, JSON.stringify(s.proxy.logs.slice(-3)));
    assert.deepEqual(
      { method: line.method, version: line.version, status: line.status, outcome: line.outcome, user: line.user, remote: line.remote },
      { method: 'GET', version: 'HTTP/1.1', status: 200, outcome: 'allowed', user: 'svc', remote: '127.0.0.1' },
    );
    assert.ok(Number.isInteger(line.duration_us));
    const all = JSON.stringify(s.proxy.logs);
    assert.ok(!all.includes(token) && !all.includes(token.split('.')[2]), 'no token in the logs');
    assert.ok(!all.includes('q-value'), 'no query in the logs');
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

describe('sign-out revokes the refresh token', () => {
  let s;
  before(async () => { s = await stack({ accessTokenTTL: 2 }); });
  after(async () => { await s?.close(); });

  async function signIn(login = 'alice') {
    const jar = new Jar();
    const { res } = await browse(jar, `${s.url}/page`, { login });
    assert.equal(res.status, 200);
    const session = unseal(jar.get('_keyway_proxy'));
    assert.ok(session.rt, 'the session holds a refresh token');
    assert.equal(await s.op.active(session.rt), true);
    return { jar, rt: session.rt };
  }
  const signOut = (jar, headers) => fetch(`${s.url}/oauth2/sign_out?rd=/after`, {
    method: 'POST', redirect: 'manual', headers: { cookie: jar.header(), ...headers },
  });

  it('refuses cross-origin sign-outs and confirms GETs of unknown origin, revoking nothing', async () => {
    const { jar, rt } = await signIn();
    for (const headers of [
      { origin: 'https://evil.example' },
      { origin: 'null' },
      { 'sec-fetch-site': 'same-site' },
      { 'sec-fetch-site': 'cross-site', origin: s.url },
      {},
    ]) {
      const r = await signOut(jar, headers);
      assert.equal(r.status, 403, JSON.stringify(headers));
      assert.deepEqual(await r.json(), { error: 'access_denied', error_description: 'cross-origin sign-out refused' });
      assert.deepEqual(r.headers.getSetCookie(), []);
    }
    for (const headers of [{}, { 'sec-fetch-site': 'cross-site' }, { origin: 'https://evil.example' },
      // A browser's prefetch of a same-origin sign-out link must not sign out.
      { 'sec-fetch-site': 'same-origin', 'sec-purpose': 'prefetch' }]) {
      const r = await fetch(`${s.url}/oauth2/sign_out?rd=/x%22%3E`, { redirect: 'manual', headers: { cookie: jar.header(), ...headers } });
      assert.equal(r.status, 200, JSON.stringify(headers));
      assert.deepEqual(r.headers.getSetCookie(), []);
      assert.equal(r.headers.get('content-security-policy'), "default-src 'none'; frame-ancestors 'none'");
      assert.match(await r.text(), /<form method="post" action="\/oauth2\/sign_out\?rd=%2Fx%22%3E">/);
    }
    const head = await fetch(`${s.url}/oauth2/sign_out`, { method: 'HEAD', redirect: 'manual', headers: { cookie: jar.header(), 'sec-fetch-site': 'same-origin' } });
    assert.equal(head.status, 200);
    assert.deepEqual(head.headers.getSetCookie(), []);
    const put = await fetch(`${s.url}/oauth2/sign_out`, { method: 'PUT', headers: { cookie: jar.header(), origin: s.url } });
    assert.equal(put.status, 405);
    assert.equal(await s.op.active(rt), true, 'nothing was revoked');
    const still = await fetch(`${s.url}/api/x`, { headers: { cookie: jar.header() } });
    assert.equal(still.status, 200);
  });

  it('revokes the refresh token at the provider; a copied cookie cannot refresh', async () => {
    const { jar, rt } = await signIn();
    const copied = jar.header();
    const refreshes = s.op.counts.refresh;
    const out = await signOut(jar, { origin: s.url, 'sec-fetch-site': 'same-origin' });
    assert.equal(out.status, 302);
    const end = new URL(out.headers.get('location'));
    assert.equal(end.origin + end.pathname, `${s.op.issuer}/session/end`);
    assert.equal(end.searchParams.get('client_id'), 'tool');
    assert.equal(end.searchParams.get('post_logout_redirect_uri'), `${s.url}/public/signed-out`);
    assert.ok(out.headers.getSetCookie().some((c) => /^_keyway_proxy=;.*Max-Age=0/i.test(c)), out.headers.getSetCookie().join('\n'));
    assert.equal(await s.op.active(rt), false, 'the refresh token is revoked');
    assert.match(await s.proxy.metrics(), /keyway_proxy_token_revocations_total\{result="ok"\} [1-9]/);
    // Once its access token has expired, the copied cookie must refresh, and cannot.
    await new Promise((resolve) => setTimeout(resolve, 2500));
    const api = await fetch(`${s.url}/api/x`, { headers: { cookie: copied, accept: 'application/json' } });
    assert.equal(api.status, 401);
    assert.equal((await api.json()).error, 'unauthenticated');
    const page = await fetch(`${s.url}/page`, { headers: { cookie: copied, accept: 'text/html' }, redirect: 'manual' });
    assert.equal(page.status, 302);
    assert.ok(page.headers.get('location').startsWith(`${s.op.issuer}/auth?`));
    assert.equal(s.op.counts.refresh, refreshes, 'the provider refused the refresh');
    assert.match(await s.proxy.metrics(), /keyway_proxy_session_refreshes_total\{result="error"\} [1-9]/);
    assert.ok(!s.proxy.logs.some((l) => JSON.stringify(l).includes(rt)), 'no refresh token in the logs');
  });

  it('signs out from a same-origin link (GET with Sec-Fetch-Site), revoking too', async () => {
    const { jar, rt } = await signIn();
    const out = await fetch(`${s.url}/oauth2/sign_out`, { redirect: 'manual', headers: { cookie: jar.header(), 'sec-fetch-site': 'same-origin' } });
    assert.equal(out.status, 302);
    assert.ok(out.headers.get('location').startsWith(`${s.op.issuer}/session/end?`));
    assert.equal(await s.op.active(rt), false);
  });

  it('still signs out when the revocation fails, and logs it without the token', async () => {
    const { jar, rt } = await signIn();
    // A wrong client secret: the provider refuses the client at the revocation endpoint.
    fs.writeFileSync(path.join(s.proxy.dir, 'client-secret'), 'wrong-secret');
    const deadline = Date.now() + 10_000;
    while (!/keyway_proxy_config_reloads_total\{result="ok"\} [1-9]/.test(await s.proxy.metrics())) {
      assert.ok(Date.now() < deadline, 'config reloaded');
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const out = await signOut(jar, { origin: s.url });
    assert.equal(out.status, 302);
    assert.ok(out.headers.get('location').startsWith(`${s.op.issuer}/session/end?`));
    assert.ok(out.headers.getSetCookie().some((c) => /^_keyway_proxy=;.*Max-Age=0/i.test(c)));
    assert.match(await s.proxy.metrics(), /keyway_proxy_token_revocations_total\{result="error"\} 1/);
    const line = s.proxy.logs.find((l) => l.fields?.message === 'refresh token revocation failed' || l.message === 'refresh token revocation failed');
    assert.ok(line, JSON.stringify(s.proxy.logs.slice(-5)));
    assert.match(JSON.stringify(line), /revocation answered 401: invalid_client/);
    assert.ok(!s.proxy.logs.some((l) => JSON.stringify(l).includes(rt)), 'no refresh token in the logs');
    assert.equal(await s.op.active(rt), true, 'the provider refused the revocation');
  });
});
