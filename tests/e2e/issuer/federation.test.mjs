// Federation: keyway-issuer signs people in at npm `oidc-provider` (a certified OpenID provider)
// as its upstream IdP, and the upstream's groups claim (mapped with a prefix) reaches the ID
// token, the access token, userinfo and the ConnectedApps' access rules. The relying party is
// npm `openid-client`, as everywhere in this suite.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';

import Provider from 'oidc-provider';

import {
  Jar, RP, SECRETS, USERS, freePort, listen, oidc, parseForm, request, rp, signIn, startIssuer, unescapeHtml,
  verifyJwt,
} from './harness.mjs';

const WEBAPP = 'default.webapp';
const UPSTREAM_SECRET = 'keyway-at-upstream-0123456789abcdefghijklmnop';

// The finance app admits only members of the upstream's finance group (after mapping).
const MANIFESTS = `
apiVersion: keyway.dev/v1alpha1
kind: ConnectedApp
metadata: {name: webapp}
spec:
  displayName: Web app
  redirectURIs: ["${RP}/cb"]
  scopes: [openid, profile, email, groups, offline_access]
---
apiVersion: keyway.dev/v1alpha1
kind: ConnectedApp
metadata: {name: finance}
spec:
  displayName: Finance tool
  redirectURIs: ["${RP}/finance/cb"]
  scopes: [openid, email, groups]
  access: {allowedGroups: ["corp:finance"]}
---
apiVersion: keyway.dev/v1alpha1
kind: ConnectedApp
metadata: {name: mail}
spec:
  displayName: Mail archive
  clientType: public
  redirectURIs: ["${RP}/mail/cb"]
  scopes: [openid, email, offline_access]
  access: {allowedEmailDomains: ["corp.example"]}
`;

/** oidc-provider with a fixed EC signing key, dev login/consent, and a groups claim. */
async function startUpstream(keywayUrl) {
  const port = await freePort();
  const issuer = `http://127.0.0.1:${port}`;
  const { privateKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = { ...privateKey.export({ format: 'jwk' }), kid: 'up-1', alg: 'ES256', use: 'sig' };
  const provider = new Provider(issuer, {
    clients: [{
      client_id: 'keyway',
      client_secret: UPSTREAM_SECRET,
      redirect_uris: [`${keywayUrl}/upstream/callback`],
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
      id_token_signed_response_alg: 'ES256',
    }],
    jwks: { keys: [jwk] },
    features: { devInteractions: { enabled: true } },
    scopes: ['openid', 'email', 'profile', 'groups'],
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name'],
      groups: ['groups'],
    },
    findAccount: (_ctx, id) => ({
      accountId: id,
      // `unv…` accounts have an unverified address, `nov…` ones say nothing about it.
      claims: () => ({
        sub: id,
        email: `${id}@corp.example`,
        ...(id.startsWith('nov') ? {} : { email_verified: !id.startsWith('unv') }),
        name: `Upstream ${id}`,
        groups: id.startsWith('fin') ? ['finance', 'staff'] : ['engineering', 'staff'],
      }),
    }),
    pkce: { required: () => true },
    cookies: { keys: ['federation-e2e-cookie-key'] },
  });
  provider.on('server_error', (_ctx, err) => console.error('upstream error', err));
  const server = http.createServer(provider.callback());
  await listen(server, port);
  return { issuer, close: () => new Promise((resolve) => { server.closeAllConnections(); server.close(resolve); }) };
}

/**
 * A browser through keyway and the upstream: takes "Continue with …" on keyway's login page,
 * signs in at the upstream's dev login form as `login`, consents there, and stops when a
 * redirect reaches the relying party.
 */
async function federatedSignIn(jar, url, { login, stopAt = RP, maxSteps = 25, provider = '', rewrite = (u) => u }) {
  const visited = [];
  let res = await request(jar, url);
  for (let step = 0; step < maxSteps; step++) {
    visited.push(`${res.status} ${url}`);
    if (res.status >= 300 && res.status < 400) {
      url = rewrite(new URL(res.headers.get('location'), url).toString());
      if (url.startsWith(stopAt)) return { location: url, visited };
      res = await request(jar, url);
      continue;
    }
    const html = await res.text();
    const upstreamLink = new RegExp(`href="(/upstream/start${provider ? `/${provider}` : ''}\\?[^"]*)"`).exec(html);
    if (res.status === 200 && upstreamLink) {
      url = new URL(upstreamLink[1].replaceAll('&amp;', '&'), url).toString();
      res = await request(jar, url);
      continue;
    }
    const f = parseForm(html);
    if (res.status === 200 && f && html.includes('name="login"')) {
      url = new URL(f.action, url).toString();
      res = await request(jar, url, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ ...f.fields, login, password: 'any' }) });
      continue;
    }
    if (res.status === 200 && f && f.fields.prompt === 'consent') {
      url = new URL(f.action, url).toString();
      res = await request(jar, url, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(f.fields) });
      continue;
    }
    return { location: null, res, html, visited };
  }
  throw new Error(`too many steps:\n${visited.join('\n')}`);
}

async function authorizationUrl(config, redirectUri, scope) {
  const verifier = oidc.randomPKCECodeVerifier();
  const state = oidc.randomState();
  const nonce = oidc.randomNonce();
  const url = oidc.buildAuthorizationUrl(config, {
    redirect_uri: redirectUri,
    scope,
    code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    state,
    nonce,
  });
  return { url: url.toString(), verifier, state, nonce };
}

describe('federation with oidc-provider as the upstream IdP', () => {
  let upstream;
  let iss;
  before(async () => {
    const port = await freePort();
    upstream = await startUpstream(`http://127.0.0.1:${port}`);
    iss = await startIssuer({
      port,
      manifests: MANIFESTS,
      users: false,
      args: [
        '--upstream-issuer', upstream.issuer,
        '--upstream-client-id', 'keyway',
        '--upstream-name', 'Corp SSO',
        '--upstream-scopes', 'openid email profile groups',
        '--upstream-groups-claim', 'groups',
        '--upstream-groups-prefix', 'corp:',
      ],
      env: { KEYWAY_UPSTREAM_CLIENT_SECRET: UPSTREAM_SECRET },
    });
  });
  after(async () => {
    await iss?.stop();
    await upstream?.close();
  });

  it('offers the upstream on the login page', async () => {
    const webapp = await rp(iss.url, WEBAPP, { secret: SECRETS[WEBAPP] });
    const { url } = await authorizationUrl(webapp, `${RP}/cb`, 'openid');
    const res = await fetch(url, { redirect: 'manual' });
    assert.equal(res.status, 200);
    const html = await res.text();
    assert.match(html, /Continue with Corp SSO/);
    assert.ok(!html.includes('action="/login"'), 'no password form without static users');
  });

  it("signs in through the upstream and carries its groups into keyway's tokens", async () => {
    const webapp = await rp(iss.url, WEBAPP, { secret: SECRETS[WEBAPP] });
    const jar = new Jar();
    const a = await authorizationUrl(webapp, `${RP}/cb`, 'openid email profile groups offline_access');
    const out = await federatedSignIn(jar, a.url, { login: 'alice' });
    assert.ok(out.location, `stopped on a page: ${out.res?.status} ${out.html?.slice(0, 300)}\n${out.visited.join('\n')}`);
    assert.ok(out.visited.some((v) => v.includes(`${upstream.issuer}/`)), 'went through the upstream');
    const tokens = await oidc.authorizationCodeGrant(webapp, new URL(out.location), {
      pkceCodeVerifier: a.verifier, expectedState: a.state, expectedNonce: a.nonce,
    });
    const claims = tokens.claims();
    assert.equal(claims.email, 'alice@corp.example');
    assert.equal(claims.name, 'Upstream alice');
    assert.deepEqual([...claims.groups].sort(), ['corp:engineering', 'corp:staff']);
    const { payload } = await verifyJwt(iss.url, tokens.access_token);
    assert.deepEqual([...payload.groups].sort(), ['corp:engineering', 'corp:staff']);
    const info = await oidc.fetchUserInfo(webapp, tokens.access_token, claims.sub);
    assert.deepEqual([...info.groups].sort(), ['corp:engineering', 'corp:staff']);
    // The groups survive a refresh (snapshot in the refresh family).
    const refreshed = await oidc.refreshTokenGrant(webapp, tokens.refresh_token);
    assert.deepEqual([...refreshed.claims().groups].sort(), ['corp:engineering', 'corp:staff']);
  });

  it("enforces the app's access rules on the upstream's groups", async () => {
    const finance = await rp(iss.url, 'default.finance', { secret: SECRETS['default.finance'] });
    // alice (engineering) is refused…
    const jar = new Jar();
    const a = await authorizationUrl(finance, `${RP}/finance/cb`, 'openid groups');
    const refused = await federatedSignIn(jar, a.url, { login: 'alice' });
    assert.equal(refused.location, null);
    assert.equal(refused.res.status, 403);
    assert.match(refused.html, /not allowed to use Finance tool/);
    // …fina (finance) gets in.
    const jar2 = new Jar();
    const b = await authorizationUrl(finance, `${RP}/finance/cb`, 'openid groups');
    const ok = await federatedSignIn(jar2, b.url, { login: 'fina', stopAt: `${RP}/finance/cb` });
    assert.ok(ok.location);
    const tokens = await oidc.authorizationCodeGrant(finance, new URL(ok.location), {
      pkceCodeVerifier: b.verifier, expectedState: b.state, expectedNonce: b.nonce,
    });
    assert.ok(tokens.claims().groups.includes('corp:finance'));
  });

  /** The refusal page for a callback that does not belong to this browser's sign-in. */
  async function expectRefused(res, jar, forged = []) {
    assert.equal(res.status, 400);
    assert.equal(res.headers.get('location'), null);
    assert.match(res.headers.get('content-type'), /^text\/html/);
    assert.match(res.headers.get('content-security-policy'), /frame-ancestors 'none'/);
    const html = await res.text();
    assert.match(html, /Sign-in did not complete/);
    assert.match(html, /does not match a sign-in started in this browser/);
    for (const f of forged) assert.ok(!html.includes(f), `reflects ${f}`);
    assert.ok(!res.headers.getSetCookie().some((c) => c.startsWith('keyway_issuer_session=')));
    assert.equal(jar?.get('keyway_issuer_session'), undefined);
  }

  /** Signs in at the upstream and stops at its redirect to keyway's callback. */
  async function upstreamCallback(jar, login, opts = {}) {
    const webapp = await rp(iss.url, WEBAPP, { secret: SECRETS[WEBAPP] });
    const a = await authorizationUrl(webapp, `${RP}/cb`, 'openid email');
    const out = await federatedSignIn(jar, a.url, { login, stopAt: `${iss.url}/upstream/callback`, ...opts });
    assert.ok(out.location, `no callback: ${out.res?.status}\n${out.visited.join('\n')}`);
    return new URL(out.location);
  }

  it('refuses a callback without its pending-sign-in cookie (no session is created)', async () => {
    const jar = new Jar();
    const cb = await upstreamCallback(jar, 'alice');
    // The genuine response, in another browser (no keyway_issuer_upstream cookie).
    await expectRefused(await fetch(cb, { redirect: 'manual' }), null);
    await expectRefused(await fetch(`${iss.url}/upstream/callback?code=x&state=forged`, { redirect: 'manual' }), null);
  });

  it('refuses a wrong state, a mismatched iss and a missing iss (advertised by oidc-provider), then accepts the genuine callback', async () => {
    const md = await (await fetch(`${upstream.issuer}/.well-known/openid-configuration`)).json();
    assert.equal(md.authorization_response_iss_parameter_supported, true);
    const jar = new Jar();
    const cb = await upstreamCallback(jar, 'alice');
    assert.equal(cb.searchParams.get('iss'), upstream.issuer);
    const tamper = (name, value) => {
      const u = new URL(cb);
      if (value === null) u.searchParams.delete(name);
      else u.searchParams.set(name, value);
      return u;
    };
    const evil = '<script>alert(1)</script>';
    await expectRefused(await request(jar, tamper('state', evil)), jar, [evil]);
    await expectRefused(await request(jar, tamper('iss', 'http://127.0.0.1:1')), jar, ['127.0.0.1:1']);
    await expectRefused(await request(jar, tamper('iss', `${upstream.issuer}/`)), jar);
    await expectRefused(await request(jar, tamper('iss', null)), jar);
    // None of them consumed the pending sign-in or the upstream's code.
    const ok = await request(jar, cb);
    assert.equal(ok.status, 303);
    assert.match(ok.headers.get('location'), /^\/authorize\?/);
    assert.ok(jar.get('keyway_issuer_session'));
  });

  it("refuses an ID token carrying another sign-in's nonce", async () => {
    const jar = new Jar();
    // The browser's authorization request to the upstream is altered: the upstream then signs
    // the other nonce (as for a code obtained in another sign-in and injected here).
    let rewritten = 0;
    const cb = await upstreamCallback(jar, 'alice', {
      rewrite: (u) => {
        const x = new URL(u);
        if (!u.startsWith(`${upstream.issuer}/auth?`) || !x.searchParams.get('nonce')) return u;
        rewritten += 1;
        x.searchParams.set('nonce', 'injected-nonce-0123456789');
        return x.toString();
      },
    });
    assert.equal(rewritten, 1);
    await expectRefused(await request(jar, cb), jar);
  });

  it('does not let an unverified or unattested upstream email pass allowedEmailDomains', async () => {
    const mail = await rp(iss.url, 'default.mail');
    for (const login of ['unv-bob', 'nov-carl']) {
      const jar = new Jar();
      const a = await authorizationUrl(mail, `${RP}/mail/cb`, 'openid email');
      const out = await federatedSignIn(jar, a.url, { login, stopAt: `${RP}/mail/cb` });
      assert.equal(out.location, null, login);
      assert.equal(out.res.status, 403, login);
      assert.match(out.html, /not allowed to use Mail archive/);
    }
    // A verified address at the same domain gets in.
    const jar = new Jar();
    const a = await authorizationUrl(mail, `${RP}/mail/cb`, 'openid email offline_access');
    const ok = await federatedSignIn(jar, a.url, { login: 'alice', stopAt: `${RP}/mail/cb` });
    assert.ok(ok.location, ok.html);
    const tokens = await oidc.authorizationCodeGrant(mail, new URL(ok.location), {
      pkceCodeVerifier: a.verifier, expectedState: a.state, expectedNonce: a.nonce,
    });
    assert.equal(tokens.claims().email, 'alice@corp.example');
    assert.equal(tokens.claims().email_verified, true);
    assert.equal((await oidc.refreshTokenGrant(mail, tokens.refresh_token)).claims().email, 'alice@corp.example');
  });

  it('keeps an unverified upstream email out of ID tokens, access tokens, userinfo and refreshed tokens', async () => {
    const webapp = await rp(iss.url, WEBAPP, { secret: SECRETS[WEBAPP] });
    for (const login of ['unv-bob', 'nov-carl']) {
      const jar = new Jar();
      const a = await authorizationUrl(webapp, `${RP}/cb`, 'openid email profile offline_access');
      const out = await federatedSignIn(jar, a.url, { login });
      assert.ok(out.location, out.html);
      const tokens = await oidc.authorizationCodeGrant(webapp, new URL(out.location), {
        pkceCodeVerifier: a.verifier, expectedState: a.state, expectedNonce: a.nonce,
      });
      const claims = tokens.claims();
      assert.equal(claims.sub, `default:${login}`);
      assert.equal(claims.name, `Upstream ${login}`);
      assert.equal(claims.email, undefined, login);
      assert.equal(claims.email_verified, undefined, login);
      const { payload } = await verifyJwt(iss.url, tokens.access_token);
      assert.equal(payload.email, undefined);
      const info = await oidc.fetchUserInfo(webapp, tokens.access_token, claims.sub);
      assert.equal(info.email, undefined);
      const refreshed = await oidc.refreshTokenGrant(webapp, tokens.refresh_token);
      assert.equal(refreshed.claims().email, undefined);
      assert.equal((await verifyJwt(iss.url, refreshed.access_token)).payload.email, undefined);
    }
  });
});

describe('several identity sources on one login page (static users and two upstreams)', () => {
  let corp;
  let partner;
  let iss;
  let dir;
  before(async () => {
    const port = await freePort();
    corp = await startUpstream(`http://127.0.0.1:${port}`);
    partner = await startUpstream(`http://127.0.0.1:${port}`);
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'keyway-upstreams-'));
    const file = path.join(dir, 'upstreams.yaml');
    fs.writeFileSync(file, `- id: partner
  issuer: ${partner.issuer}
  clientId: keyway
  clientSecret: ${UPSTREAM_SECRET}
  name: Partner SSO
  scopes: openid email profile groups
  insecureTrustUnverifiedEmail: true
`);
    iss = await startIssuer({
      port,
      manifests: MANIFESTS,
      args: [
        '--upstream-issuer', corp.issuer,
        '--upstream-client-id', 'keyway',
        '--upstream-name', 'Corp SSO',
        '--upstream-scopes', 'openid email profile groups',
        '--upstreams-file', file,
      ],
      env: { KEYWAY_UPSTREAM_CLIENT_SECRET: UPSTREAM_SECRET },
    });
  });
  after(async () => {
    await iss?.stop();
    await corp?.close();
    await partner?.close();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('offers the password form and both providers, each button leading to its own upstream', async () => {
    const webapp = await rp(iss.url, WEBAPP, { secret: SECRETS[WEBAPP] });
    const { url } = await authorizationUrl(webapp, `${RP}/cb`, 'openid');
    const res = await fetch(url, { redirect: 'manual' });
    assert.equal(res.status, 200);
    const html = await res.text();
    assert.ok(html.includes('action="/login"'), 'password form for static users');
    const buttons = [...html.matchAll(/<a class="[^"]*" href="(\/upstream\/start[^"]*)">Continue with ([^<]*)<\/a>/g)]
      .map(([, href, name]) => [name, unescapeHtml(href)]);
    assert.deepEqual(buttons.map(([name]) => name), ['Corp SSO', 'Partner SSO']);
    for (const [[, href], up] of [[buttons[0], corp], [buttons[1], partner]]) {
      const jar = new Jar();
      const go = await request(jar, new URL(href, iss.url));
      assert.equal(go.status, 303);
      const loc = new URL(go.headers.get('location'));
      assert.equal(`${loc.origin}${loc.pathname}`, `${up.issuer}/auth`);
      assert.equal(loc.searchParams.get('client_id'), 'keyway');
      assert.equal(loc.searchParams.get('redirect_uri'), `${iss.url}/upstream/callback`);
      assert.ok(jar.get('keyway_issuer_upstream'));
    }
    assert.match(buttons[0][1], /^\/upstream\/start\?request=/);
    assert.match(buttons[1][1], /^\/upstream\/start\/partner\?request=/);
  });

  it('gives each source its own subjects: a static user, and the same upstream sub at two providers', async () => {
    const webapp = await rp(iss.url, WEBAPP, { secret: SECRETS[WEBAPP] });
    const subOf = async (signInWith) => {
      const a = await authorizationUrl(webapp, `${RP}/cb`, 'openid email');
      const location = await signInWith(a.url);
      assert.ok(location);
      const tokens = await oidc.authorizationCodeGrant(webapp, new URL(location), {
        pkceCodeVerifier: a.verifier, expectedState: a.state, expectedNonce: a.nonce,
      });
      return tokens.claims();
    };
    const staticUser = await subOf(async (url) => (await signIn(new Jar(), url)).location);
    assert.equal(staticUser.sub, USERS[0].email);
    const viaCorp = await subOf(async (url) => (await federatedSignIn(new Jar(), url, { login: 'alice' })).location);
    const viaPartner = await subOf(async (url) => (await federatedSignIn(new Jar(), url, { login: 'alice', provider: 'partner' })).location);
    assert.equal(viaCorp.sub, 'default:alice');
    assert.equal(viaPartner.sub, 'partner:alice');
    // The partner is configured to trust its unverified addresses (insecure, opt-in)…
    const trusted = await subOf(async (url) => (await federatedSignIn(new Jar(), url, { login: 'unv-bob', provider: 'partner' })).location);
    assert.equal(trusted.email, 'unv-bob@corp.example');
    assert.equal(trusted.email_verified, true);
    // …the default provider is not.
    const dropped = await subOf(async (url) => (await federatedSignIn(new Jar(), url, { login: 'unv-bob' })).location);
    assert.equal(dropped.email, undefined);
  });
});
