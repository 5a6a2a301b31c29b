// The negative suite: every case sends what a confused or malicious client, person or attacker
// would send, and asserts the exact error (status, OAuth error code, where it is delivered).
// Problems with the client or its redirect URI are shown to the person and never redirected
// (RFC 6749 §4.1.2.1); everything else goes back to the redirect URI with state and iss.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import {
  Jar, PASSWORD, RESOURCE, RP, SECRETS, USERS, authorizeOnly, basicAuth, codeFlow, form, oidc, parseForm,
  request, rp, signIn, sleep, startIssuer, tokenPost,
} from './harness.mjs';

const WEBAPP = 'default.webapp';
const CHALLENGE = 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM';
const VERIFIER = 'dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk';

let iss;
let webapp;
let spa;
let svc;
let signedIn; // a jar with a session for ada

before(async () => {
  iss = await startIssuer({ store: 'sqlite', args: ['--dcr', '--dcr-rate', '2', '--refresh-grace', '1s'] });
  webapp = await rp(iss.url, WEBAPP, { secret: SECRETS[WEBAPP] });
  spa = await rp(iss.url, 'default.spa');
  svc = await rp(iss.url, 'default.svc', { secret: SECRETS['default.svc'] });
  signedIn = new Jar();
  await codeFlow(webapp, { jar: signedIn });
});
after(async () => { await iss?.stop(); });

function authzUrl(overrides = {}, drop = []) {
  const params = {
    client_id: WEBAPP,
    redirect_uri: `${RP}/cb`,
    response_type: 'code',
    scope: 'openid',
    state: 'st-1',
    code_challenge: CHALLENGE,
    code_challenge_method: 'S256',
    ...overrides,
  };
  for (const d of drop) delete params[d];
  const u = new URL(`${iss.url}/authorize`);
  for (const [k, v] of Object.entries(params)) u.searchParams.set(k, v);
  return u.toString();
}

/** A page for the person (never a redirect to the client). */
async function expectPage(res, status, text) {
  assert.equal(res.status, status);
  assert.equal(res.headers.get('location'), null, 'must not redirect');
  assert.match(res.headers.get('content-type'), /text\/html/);
  const html = await res.text();
  if (text) assert.match(html, text);
  assert.match(res.headers.get('content-security-policy') ?? '', /frame-ancestors 'none'/);
  return html;
}

/** An error sent back to the client's redirect URI, with state and iss. */
function expectRedirectError(res, error, { redirectUri = `${RP}/cb`, state = 'st-1', description } = {}) {
  assert.equal(res.status, 303, `status ${res.status}`);
  const loc = new URL(res.headers.get('location'));
  assert.equal(`${loc.origin}${loc.pathname}`, redirectUri);
  assert.equal(loc.searchParams.get('error'), error);
  assert.equal(loc.searchParams.get('code'), null);
  assert.equal(loc.searchParams.get('iss'), iss.url);
  if (state) assert.equal(loc.searchParams.get('state'), state);
  if (description) assert.match(loc.searchParams.get('error_description'), description);
}

/** An RFC 6749 error JSON body. */
function expectJsonError(r, status, error, description) {
  assert.equal(r.status, status, r.text);
  assert.equal(r.json?.error, error, r.text);
  if (description) assert.match(r.json.error_description ?? '', description);
}

async function json(res) {
  const text = await res.text();
  let body = null;
  try { body = JSON.parse(text); } catch { /* not JSON */ }
  return { status: res.status, json: body, text, headers: res.headers };
}

/** A fresh, unexchanged code for webapp (signed in as ada). */
async function freshCode(client = webapp, opts = {}) {
  const out = await authorizeOnly(client, { jar: signedIn, scope: 'openid email offline_access', ...opts });
  assert.ok(out.code, `no code: ${out.location}`);
  return out;
}

describe('authorization endpoint: client and redirect URI problems are shown, never redirected', () => {
  const cases = [
    ['a redirect URI that extends the registered one', `${RP}/cb/more`],
    ['a redirect URI with a trailing slash', `${RP}/cb/`],
    ['a redirect URI on another port', 'http://127.0.0.1:10/cb'],
    ['a redirect URI with userinfo', 'http://user@127.0.0.1:9/cb'],
    ['a redirect URI differing in case', `${RP}/CB`],
    ['a redirect URI with an extra query', `${RP}/cb?x=1`],
  ];
  for (const [name, uri] of cases) {
    it(`refuses ${name}`, async () => {
      const res = await fetch(authzUrl({ redirect_uri: uri }), { redirect: 'manual' });
      await expectPage(res, 400, /redirect_uri does not\s+exactly match/);
    });
  }

  it('refuses an unknown client_id', async () => {
    const res = await fetch(authzUrl({ client_id: 'default.nobody' }), { redirect: 'manual' });
    await expectPage(res, 400, /unknown client_id/);
  });

  it('refuses a missing redirect_uri', async () => {
    const res = await fetch(authzUrl({}, ['redirect_uri']), { redirect: 'manual' });
    await expectPage(res, 400, /no redirect_uri/);
  });
});

describe('authorization endpoint: errors returned to the client', () => {
  it('requires PKCE: missing code_challenge', async () => {
    const res = await fetch(authzUrl({}, ['code_challenge', 'code_challenge_method']), { redirect: 'manual' });
    expectRedirectError(res, 'invalid_request', { description: /PKCE is required/ });
  });

  it('refuses the plain PKCE method', async () => {
    const res = await fetch(authzUrl({ code_challenge_method: 'plain' }), { redirect: 'manual' });
    expectRedirectError(res, 'invalid_request', { description: /S256 is required/ });
  });

  it('refuses a code_challenge without a method (defaults to plain)', async () => {
    const res = await fetch(authzUrl({}, ['code_challenge_method']), { redirect: 'manual' });
    expectRedirectError(res, 'invalid_request', { description: /S256 is required/ });
  });

  it('refuses a malformed S256 code_challenge', async () => {
    const res = await fetch(authzUrl({ code_challenge: CHALLENGE.slice(1) }), { redirect: 'manual' });
    expectRedirectError(res, 'invalid_request', { description: /43 base64url/ });
  });

  it('refuses response_type=token', async () => {
    const res = await fetch(authzUrl({ response_type: 'token' }), { redirect: 'manual' });
    expectRedirectError(res, 'unsupported_response_type');
  });

  it('refuses response_mode=fragment', async () => {
    const res = await fetch(authzUrl({ response_mode: 'fragment' }), { redirect: 'manual' });
    expectRedirectError(res, 'invalid_request', { description: /response_mode/ });
  });

  it('refuses request objects', async () => {
    const res = await fetch(authzUrl({ request: 'eyJhbGciOiJub25lIn0.e30.' }), { redirect: 'manual' });
    expectRedirectError(res, 'invalid_request', { description: /request objects/ });
  });

  it('refuses a scope the app may not ask for', async () => {
    const res = await fetch(authzUrl({ scope: 'openid admin' }), { redirect: 'manual' });
    expectRedirectError(res, 'invalid_scope');
  });

  it('refuses an unknown resource (RFC 8707)', async () => {
    const res = await fetch(authzUrl({ resource: 'https://elsewhere.example/api' }), { redirect: 'manual' });
    expectRedirectError(res, 'invalid_target');
  });

  it('answers prompt=none without a session with login_required', async () => {
    const res = await fetch(authzUrl({ prompt: 'none' }), { redirect: 'manual' });
    expectRedirectError(res, 'login_required');
  });

  it('answers prompt=none for a third-party app without consent with consent_required', async () => {
    const url = authzUrl({ client_id: 'default.spa', redirect_uri: `${RP}/spa/cb`, prompt: 'none', scope: 'openid profile' });
    const res = await request(signedIn, url);
    expectRedirectError(res, 'consent_required', { redirectUri: `${RP}/spa/cb` });
  });

  it('refuses prompt=none combined with login', async () => {
    const res = await fetch(authzUrl({ prompt: 'none login' }), { redirect: 'manual' });
    expectRedirectError(res, 'invalid_request');
  });

  it('tells a person outside the allowed groups, and the app gets access_denied', async () => {
    const url = authzUrl({ client_id: 'default.finance', redirect_uri: `${RP}/finance/cb` });
    const res = await request(signedIn, url);
    const html = await expectPage(res, 403, /not allowed to use Finance tool/);
    const link = /href="([^"]*error=access_denied[^"]*)"/.exec(html);
    assert.ok(link, 'a link back to the app with access_denied');
    // With prompt=none the app gets the error directly.
    const silent = await request(signedIn, authzUrl({ client_id: 'default.finance', redirect_uri: `${RP}/finance/cb`, prompt: 'none' }));
    expectRedirectError(silent, 'access_denied', { redirectUri: `${RP}/finance/cb` });
  });

  it('returns access_denied when the person denies consent', async () => {
    const jar = new Jar();
    const out = await authorizeOnly(spa, { jar, redirectUri: `${RP}/spa/cb`, consent: 'deny' });
    const back = new URL(out.location);
    assert.equal(back.searchParams.get('error'), 'access_denied');
    assert.equal(back.searchParams.get('state'), out.state);
    assert.equal(back.searchParams.get('iss'), iss.url);
  });
});

describe('forms: CSRF and tampering', () => {
  async function consentForm(jar) {
    const url = authzUrl({ client_id: 'default.spa', redirect_uri: `${RP}/spa/cb`, scope: 'openid email', prompt: 'consent' });
    const res = await request(jar, url);
    assert.equal(res.status, 200);
    return parseForm(await res.text(), '/consent');
  }

  it('refuses a consent form without its CSRF token', async () => {
    const jar = new Jar();
    await codeFlow(webapp, { jar });
    const f = await consentForm(jar);
    const { csrf, ...rest } = f.fields;
    assert.ok(csrf);
    const res = await request(jar, `${iss.url}/consent`, form({ ...rest, decision: 'allow' }));
    await expectPage(res, 403, /CSRF/);
  });

  it('refuses a consent form posted without the CSRF cookie (cross-site)', async () => {
    const jar = new Jar();
    await codeFlow(webapp, { jar });
    const f = await consentForm(jar);
    jar.delete('keyway_issuer_csrf');
    const res = await request(jar, `${iss.url}/consent`, form({ ...f.fields, decision: 'allow' }));
    await expectPage(res, 403, /CSRF/);
  });

  it('keeps one CSRF token across sign-in and consent pages open in two tabs', async () => {
    // Each tab is an arrival from the app's site: a browser leaves SameSite=Strict cookies out.
    const jar = new Jar();
    const tabs = [];
    for (const state of ['tab-1', 'tab-2']) {
      const res = await request(jar, authzUrl({ state }), { crossSite: true });
      assert.equal(res.status, 200);
      tabs.push(parseForm(await res.text(), '/login'));
    }
    assert.ok(tabs[0].fields.csrf);
    for (const [i, f] of tabs.entries()) {
      const res = await request(jar, `${iss.url}/login`, form({ ...f.fields, email: USERS[0].email, password: PASSWORD }));
      assert.equal(res.status, 303, `tab ${i + 1}`);
      const back = await request(jar, new URL(res.headers.get('location'), iss.url).toString());
      assert.equal(new URL(back.headers.get('location')).searchParams.get('state'), `tab-${i + 1}`);
    }
    const consent = [];
    for (const state of ['c-1', 'c-2']) {
      const url = authzUrl({ client_id: 'default.spa', redirect_uri: `${RP}/spa/cb`, scope: 'openid email', prompt: 'consent', state });
      const res = await request(jar, url, { crossSite: true });
      assert.equal(res.status, 200);
      consent.push(parseForm(await res.text(), '/consent'));
    }
    for (const [i, f] of consent.entries()) {
      const res = await request(jar, `${iss.url}/consent`, form({ ...f.fields, decision: 'allow' }));
      assert.equal(res.status, 303, `consent tab ${i + 1}`);
      assert.equal(new URL(res.headers.get('location')).searchParams.get('state'), `c-${i + 1}`);
    }
  });

  it('refuses a login form with a wrong CSRF token', async () => {
    const jar = new Jar();
    const page = await request(jar, authzUrl());
    const f = parseForm(await page.text(), '/login');
    const res = await request(jar, `${iss.url}/login`, form({ ...f.fields, csrf: 'x'.repeat(43), email: USERS[0].email, password: 'irrelevant' }));
    await expectPage(res, 403, /CSRF/);
    assert.equal(jar.get('keyway_issuer_session'), undefined);
  });

  it('refuses consent for a scope the app may not ask for (tampered request field)', async () => {
    const jar = new Jar();
    await codeFlow(webapp, { jar });
    const f = await consentForm(jar);
    const request_ = new URLSearchParams(f.fields.request);
    request_.set('scope', 'openid offline_access');
    const res = await request(jar, `${iss.url}/consent`, form({ ...f.fields, request: request_.toString(), decision: 'allow' }));
    expectRedirectError(res, 'invalid_scope', { redirectUri: `${RP}/spa/cb` });
  });

  it('refuses a consent decision other than allow or deny', async () => {
    const jar = new Jar();
    await codeFlow(webapp, { jar });
    const f = await consentForm(jar);
    const r = await json(await request(jar, `${iss.url}/consent`, form({ ...f.fields, decision: 'maybe' })));
    expectJsonError(r, 400, 'invalid_request', /decision/);
  });
});

describe('malformed and oversized input', () => {
  // RFC 6749 §4.1.2.1: a redirect to the client once client_id and redirect_uri are valid (and
  // state can be returned exactly), a page for the person otherwise.
  it('sends a repeated or oversized authorization parameter back to the client as invalid_request', async () => {
    expectRedirectError(await fetch(`${authzUrl()}&scope=openid`, { redirect: 'manual' }), 'invalid_request', { description: /^parameter scope is repeated$/ });
    expectRedirectError(await fetch(authzUrl({ nonce: 'x'.repeat(5000) }), { redirect: 'manual' }), 'invalid_request', { description: /^a parameter is too long$/ });
  });

  it('answers several resource parameters with invalid_target (one audience per request)', async () => {
    const url = `${authzUrl({ resource: RESOURCE })}&resource=${encodeURIComponent(`${RP}/other`)}`;
    expectRedirectError(await fetch(url, { redirect: 'manual' }), 'invalid_target', { description: /^only one resource per authorization request is supported$/ });
  });

  it('shows a page when the malformed request names no single valid client, redirect URI or state', async () => {
    const evil = encodeURIComponent('<b>again</b>');
    for (const url of [
      `${authzUrl()}&client_id=default.spa`,
      `${authzUrl()}&redirect_uri=${encodeURIComponent(`${RP}/cb`)}`,
      `${authzUrl()}&state=${evil}`,
      authzUrl({ state: 'x'.repeat(5000) }),
      `${authzUrl({ client_id: 'default.nobody' })}&scope=openid`,
      `${authzUrl({ redirect_uri: 'https://evil.example/cb' })}&scope=openid`,
    ]) {
      const html = await expectPage(await fetch(url, { redirect: 'manual' }), 400, /The request is malformed/);
      assert.ok(!html.includes('again') && !html.includes('xxxx') && !html.includes('evil.example'));
    }
  });

  it('refuses an oversized token request body', async () => {
    const r = await tokenPost(iss.url, { grant_type: 'client_credentials', pad: 'x'.repeat(70 * 1024) }, { basic: ['default.svc', SECRETS['default.svc']] });
    expectJsonError(r, 400, 'invalid_request');
  });

  it('refuses a JSON token request', async () => {
    const r = await json(await fetch(`${iss.url}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: basicAuth('default.svc', SECRETS['default.svc']) },
      body: JSON.stringify({ grant_type: 'client_credentials' }),
    }));
    expectJsonError(r, 400, 'invalid_request', /x-www-form-urlencoded/);
  });

  it('refuses a malformed Basic header', async () => {
    const r = await tokenPost(iss.url, { grant_type: 'client_credentials' }, { headers: { authorization: 'Basic !!!notbase64' } });
    expectJsonError(r, 401, 'invalid_client');
  });

  it('never answers garbage with a server error', async () => {
    const bodies = [
      '%zz=%%', '\u0000\u0001\u0002', 'grant_type=authorization_code&code=%E0%A4%A', '&&&===',
      `grant_type=refresh_token&refresh_token=${'\u{1F600}'.repeat(100)}`,
    ];
    for (const body of bodies) {
      for (const path of ['/token', '/revoke', '/introspect', '/login', '/consent', '/register', '/authorize', '/end_session']) {
        const res = await fetch(`${iss.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body, redirect: 'manual' });
        assert.ok(res.status < 500, `${path} ${JSON.stringify(body)} → ${res.status}`);
      }
    }
    const res = await fetch(`${iss.url}/authorize?%%%`, { redirect: 'manual' });
    assert.ok(res.status < 500);
  });
});

describe('token endpoint: authorization_code', () => {
  /** The legitimate redemption still works after a refused one (the code was not burnt). */
  async function stillRedeemable(code, verifier, client = [WEBAPP, SECRETS[WEBAPP]], redirectUri = `${RP}/cb`) {
    const body = { grant_type: 'authorization_code', code, redirect_uri: redirectUri, code_verifier: verifier };
    const r = await tokenPost(iss.url, client[1] ? body : { ...body, client_id: client[0] }, client[1] ? { basic: client } : {});
    assert.equal(r.status, 200, r.text);
    assert.ok(r.json.access_token);
  }

  it('refuses a wrong code_verifier without burning the code', async () => {
    const { code, verifier } = await freshCode();
    const r = await tokenPost(iss.url, { grant_type: 'authorization_code', code, redirect_uri: `${RP}/cb`, code_verifier: VERIFIER }, { basic: [WEBAPP, SECRETS[WEBAPP]] });
    expectJsonError(r, 400, 'invalid_grant', /^code_verifier does not match the code_challenge$/);
    await stillRedeemable(code, verifier);
  });

  it('refuses a missing code_verifier', async () => {
    const { code } = await freshCode();
    const r = await tokenPost(iss.url, { grant_type: 'authorization_code', code, redirect_uri: `${RP}/cb` }, { basic: [WEBAPP, SECRETS[WEBAPP]] });
    expectJsonError(r, 400, 'invalid_request', /code_verifier/);
  });

  it('refuses a replayed code and revokes the tokens the first use issued', async () => {
    const { code, verifier } = await freshCode();
    const fields = { grant_type: 'authorization_code', code, redirect_uri: `${RP}/cb`, code_verifier: verifier };
    const first = await tokenPost(iss.url, fields, { basic: [WEBAPP, SECRETS[WEBAPP]] });
    assert.equal(first.status, 200, first.text);
    assert.equal((await oidc.tokenIntrospection(webapp, first.json.access_token)).active, true);
    const second = await tokenPost(iss.url, fields, { basic: [WEBAPP, SECRETS[WEBAPP]] });
    expectJsonError(second, 400, 'invalid_grant', /already used/);
    assert.equal((await oidc.tokenIntrospection(webapp, first.json.access_token)).active, false, 'access token revoked');
    assert.equal((await oidc.tokenIntrospection(webapp, first.json.refresh_token)).active, false, 'refresh token revoked');
    const r = await tokenPost(iss.url, { grant_type: 'refresh_token', refresh_token: first.json.refresh_token }, { basic: [WEBAPP, SECRETS[WEBAPP]] });
    expectJsonError(r, 400, 'invalid_grant');
    const ui = await fetch(`${iss.url}/userinfo`, { headers: { authorization: `Bearer ${first.json.access_token}` } });
    assert.equal(ui.status, 401);
  });

  it('leaves no live token when one code is redeemed concurrently', async () => {
    for (let round = 0; round < 3; round++) {
      const { code, verifier } = await freshCode();
      const fields = { grant_type: 'authorization_code', code, redirect_uri: `${RP}/cb`, code_verifier: verifier };
      const results = await Promise.all([1, 2, 3].map(() => tokenPost(iss.url, fields, { basic: [WEBAPP, SECRETS[WEBAPP]] })));
      const ok = results.filter((r) => r.status === 200);
      assert.ok(ok.length <= 1, 'at most one redemption succeeds');
      for (const r of results.filter((x) => x.status !== 200)) expectJsonError(r, 400, 'invalid_grant');
      // Any replay revokes what the code issued: nothing from it stays usable.
      for (const r of ok) {
        assert.equal((await oidc.tokenIntrospection(webapp, r.json.access_token)).active, false);
        assert.equal((await oidc.tokenIntrospection(webapp, r.json.refresh_token)).active, false);
      }
    }
  });

  it('refuses a code issued to another client', async () => {
    const jar = new Jar();
    const out = await authorizeOnly(spa, { jar, redirectUri: `${RP}/spa/cb` });
    assert.ok(out.code);
    const r = await tokenPost(iss.url, { grant_type: 'authorization_code', code: out.code, redirect_uri: `${RP}/spa/cb`, code_verifier: out.verifier }, { basic: [WEBAPP, SECRETS[WEBAPP]] });
    expectJsonError(r, 400, 'invalid_grant', /^the code was issued to another client$/);
    await stillRedeemable(out.code, out.verifier, ['default.spa'], `${RP}/spa/cb`);
  });

  it('refuses a redirect_uri that differs from the authorization request', async () => {
    const { code, verifier } = await freshCode();
    const r = await tokenPost(iss.url, { grant_type: 'authorization_code', code, redirect_uri: `${RP}/cb/`, code_verifier: verifier }, { basic: [WEBAPP, SECRETS[WEBAPP]] });
    expectJsonError(r, 400, 'invalid_grant', /^redirect_uri does not match the authorization request$/);
    await stillRedeemable(code, verifier);
  });

  it('refuses an unknown code', async () => {
    const r = await tokenPost(iss.url, { grant_type: 'authorization_code', code: 'made-up', redirect_uri: `${RP}/cb`, code_verifier: VERIFIER }, { basic: [WEBAPP, SECRETS[WEBAPP]] });
    expectJsonError(r, 400, 'invalid_grant', /invalid or has expired/);
  });

  it('refuses the code grant for a client_credentials-only client', async () => {
    const r = await tokenPost(iss.url, { grant_type: 'authorization_code', code: 'x', redirect_uri: `${RP}/cb`, code_verifier: VERIFIER }, { basic: ['default.svc', SECRETS['default.svc']] });
    expectJsonError(r, 400, 'unauthorized_client');
  });
});

describe('token endpoint: refresh_token', () => {
  it('revokes the family when a rotated refresh token is reused', async () => {
    const { tokens } = await codeFlow(webapp, { jar: signedIn });
    const next = await oidc.refreshTokenGrant(webapp, tokens.refresh_token);
    await sleep(2100); // past the 1s grace window
    const r = await tokenPost(iss.url, { grant_type: 'refresh_token', refresh_token: tokens.refresh_token }, { basic: [WEBAPP, SECRETS[WEBAPP]] });
    expectJsonError(r, 400, 'invalid_grant', /already used; the grant has been revoked/);
    const r2 = await tokenPost(iss.url, { grant_type: 'refresh_token', refresh_token: next.refresh_token }, { basic: [WEBAPP, SECRETS[WEBAPP]] });
    expectJsonError(r2, 400, 'invalid_grant', /expired or was revoked/);
  });

  it('refuses a refresh token of another client', async () => {
    const { tokens } = await codeFlow(webapp, { jar: signedIn });
    const r = await tokenPost(iss.url, { grant_type: 'refresh_token', refresh_token: tokens.refresh_token, client_id: 'default.spa' });
    expectJsonError(r, 400, 'invalid_grant', /another client/);
    const svcTry = await tokenPost(iss.url, { grant_type: 'refresh_token', refresh_token: tokens.refresh_token }, { basic: ['default.svc', SECRETS['default.svc']] });
    expectJsonError(svcTry, 400, 'unauthorized_client');
  });

  it('refuses an unknown refresh token', async () => {
    const r = await tokenPost(iss.url, { grant_type: 'refresh_token', refresh_token: 'nope' }, { basic: [WEBAPP, SECRETS[WEBAPP]] });
    expectJsonError(r, 400, 'invalid_grant', /invalid/);
  });
});

describe('token endpoint: client authentication and grants', () => {
  it('refuses client_credentials for a public client', async () => {
    const r = await tokenPost(iss.url, { grant_type: 'client_credentials', client_id: 'default.spa' });
    expectJsonError(r, 400, 'unauthorized_client');
  });

  it('refuses client_credentials for a confidential client without that grant', async () => {
    const r = await tokenPost(iss.url, { grant_type: 'client_credentials' }, { basic: ['default.finance', SECRETS['default.finance']] });
    expectJsonError(r, 400, 'unauthorized_client');
  });

  it('refuses a wrong client secret (client_secret_basic) with a Basic challenge', async () => {
    const r = await tokenPost(iss.url, { grant_type: 'client_credentials' }, { basic: ['default.svc', 'wrong'] });
    expectJsonError(r, 401, 'invalid_client');
    assert.match(r.headers.get('www-authenticate'), /^Basic/);
  });

  it('refuses a wrong client secret (client_secret_post)', async () => {
    const r = await tokenPost(iss.url, { grant_type: 'client_credentials', client_id: 'default.svc', client_secret: 'wrong' });
    expectJsonError(r, 401, 'invalid_client');
  });

  it('refuses a confidential client without a secret', async () => {
    const r = await tokenPost(iss.url, { grant_type: 'client_credentials', client_id: 'default.svc' });
    expectJsonError(r, 401, 'invalid_client');
  });

  it('refuses an unknown client', async () => {
    const r = await tokenPost(iss.url, { grant_type: 'client_credentials' }, { basic: ['default.nobody', 'x'] });
    expectJsonError(r, 401, 'invalid_client');
  });

  it('refuses two client authentication methods at once', async () => {
    const r = await tokenPost(iss.url, { grant_type: 'client_credentials', client_secret: SECRETS['default.svc'] }, { basic: ['default.svc', SECRETS['default.svc']] });
    expectJsonError(r, 400, 'invalid_request', /exactly one/);
  });

  it('refuses an unsupported grant type', async () => {
    const r = await tokenPost(iss.url, { grant_type: 'password', username: 'ada', password: 'x' }, { basic: ['default.svc', SECRETS['default.svc']] });
    expectJsonError(r, 400, 'unsupported_grant_type');
  });

  it('refuses a missing grant type', async () => {
    const r = await tokenPost(iss.url, {}, { basic: ['default.svc', SECRETS['default.svc']] });
    expectJsonError(r, 400, 'invalid_request', /grant_type/);
  });

  it('refuses OpenID scopes in client_credentials', async () => {
    await assert.rejects(oidc.clientCredentialsGrant(svc, { scope: 'openid' }), (e) => e.error === 'invalid_scope');
    const r = await tokenPost(iss.url, { grant_type: 'client_credentials', scope: 'api:admin' }, { basic: ['default.svc', SECRETS['default.svc']] });
    expectJsonError(r, 400, 'invalid_scope');
  });

  it('refuses an unknown resource in client_credentials', async () => {
    const r = await tokenPost(iss.url, { grant_type: 'client_credentials', resource: 'https://elsewhere.example/' }, { basic: ['default.svc', SECRETS['default.svc']] });
    expectJsonError(r, 400, 'invalid_target');
  });
});

describe('userinfo, introspection, revocation, logout', () => {
  it('refuses userinfo with a garbage token', async () => {
    const r = await json(await fetch(`${iss.url}/userinfo`, { headers: { authorization: 'Bearer garbage' } }));
    expectJsonError(r, 401, 'invalid_token');
    assert.match(r.headers.get('www-authenticate'), /^Bearer error="invalid_token"/);
  });

  it('challenges userinfo without a token', async () => {
    const res = await fetch(`${iss.url}/userinfo`);
    assert.equal(res.status, 401);
    assert.match(res.headers.get('www-authenticate'), /^Bearer/);
  });

  it('refuses userinfo for a client_credentials token (no openid scope)', async () => {
    const t = await oidc.clientCredentialsGrant(svc, { scope: 'api:read' });
    const r = await json(await fetch(`${iss.url}/userinfo`, { headers: { authorization: `Bearer ${t.access_token}` } }));
    // RFC 6750 §3.1: the body's error is the header's.
    expectJsonError(r, 403, 'insufficient_scope', /^the token lacks the openid scope$/);
    assert.equal(r.headers.get('www-authenticate'), 'Bearer error="insufficient_scope", scope="openid"');
  });

  it('refuses introspection by a public client', async () => {
    const r = await json(await fetch(`${iss.url}/introspect`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'client_id=default.spa&token=x' }));
    expectJsonError(r, 401, 'invalid_client');
  });

  it('refuses introspection without client authentication', async () => {
    const r = await json(await fetch(`${iss.url}/introspect`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'token=x' }));
    expectJsonError(r, 401, 'invalid_client');
  });

  it('refuses an unsupported token_type_hint at revocation', async () => {
    const r = await json(await fetch(`${iss.url}/revoke`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basicAuth(WEBAPP, SECRETS[WEBAPP]) },
      body: 'token=x&token_type_hint=id_token',
    }));
    expectJsonError(r, 400, 'unsupported_token_type');
  });

  it("does not let a client revoke another client's refresh token", async () => {
    const { tokens } = await codeFlow(webapp, { jar: signedIn });
    await oidc.tokenRevocation(svc, tokens.refresh_token);
    assert.equal((await oidc.tokenIntrospection(webapp, tokens.refresh_token)).active, true);
  });

  it('refuses an unregistered post_logout_redirect_uri and keeps the session', async () => {
    const jar = new Jar();
    const { tokens } = await codeFlow(webapp, { jar });
    const url = oidc.buildEndSessionUrl(webapp, { id_token_hint: tokens.id_token, post_logout_redirect_uri: `${RP}/bye/` });
    await expectPage(await request(jar, url.toString()), 400, /post_logout_redirect_uri/);
    const still = await request(jar, authzUrl({ prompt: 'none' }));
    assert.ok(new URL(still.headers.get('location')).searchParams.get('code'), 'still signed in');
  });

  it('refuses a forged id_token_hint', async () => {
    const forged = `${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from(`{"iss":"${iss.url}","sub":"ada@example.com","aud":"${WEBAPP}"}`).toString('base64url')}.`;
    const r = await json(await fetch(`${iss.url}/end_session?id_token_hint=${forged}`, { redirect: 'manual' }));
    expectJsonError(r, 400, 'invalid_request', /id_token_hint/);
  });

  it('asks for confirmation before logging out without an id_token_hint', async () => {
    const jar = new Jar();
    await codeFlow(webapp, { jar });
    const res = await request(jar, `${iss.url}/end_session`);
    const html = await expectPage(res, 200, /Sign out\?/);
    assert.ok(parseForm(html, '/logout'));
    const still = await request(jar, authzUrl({ prompt: 'none' }));
    assert.ok(new URL(still.headers.get('location')).searchParams.get('code'), 'a GET alone does not sign out');
  });

  it('ends no session on an id_token_hint alone, and asks the person to confirm', async () => {
    const jar = new Jar();
    const { tokens } = await codeFlow(webapp, { jar });
    const signedInNow = async () => {
      const res = await request(jar, authzUrl({ prompt: 'none' }));
      return new URL(res.headers.get('location')).searchParams.has('code');
    };
    const url = oidc.buildEndSessionUrl(webapp, { id_token_hint: tokens.id_token, post_logout_redirect_uri: `${RP}/bye`, state: 'out-1' });
    // Another browser holding the person's ID token (a link someone was sent): nothing to end there.
    const stranger = await request(new Jar(), url.toString());
    assert.equal(stranger.status, 303);
    assert.equal(stranger.headers.get('location'), `${RP}/bye?state=out-1`);
    // A form another site posts here carries no SameSite=Lax session cookie: nothing ends either.
    const crossSite = await request(null, `${iss.url}/end_session`, form(Object.fromEntries(url.searchParams)));
    assert.equal(crossSite.status, 303);
    assert.ok(await signedInNow(), 'the hint alone ended no session');
    // The person signs in again (a new session): the earlier session's hint must be confirmed.
    const again = await signIn(jar, authzUrl({ prompt: 'login' }));
    assert.ok(again.location);
    const html = await expectPage(await request(jar, url.toString()), 200, /Sign out\?/);
    assert.ok(await signedInNow(), 'a GET alone does not sign out');
    const { fields } = parseForm(html, '/logout');
    const { csrf, ...carried } = fields;
    assert.ok(csrf);
    assert.deepEqual(carried, { post_logout_redirect_uri: `${RP}/bye`, client_id: WEBAPP, state: 'out-1' });
    // What another site could post (no CSRF token of this browser) is refused.
    await expectPage(await request(jar, `${iss.url}/logout`, form({ ...carried, csrf: 'x'.repeat(43) })), 403, /CSRF/);
    assert.ok(await signedInNow());
    const out = await request(jar, `${iss.url}/logout`, form(fields));
    assert.equal(out.status, 303);
    assert.equal(out.headers.get('location'), `${RP}/bye?state=out-1`);
    assert.ok(!(await signedInNow()), 'signed out once confirmed');
  });
});

describe('sign-in throttle: nobody can lock a person out', () => {
  // Behind a trusted proxy (here: the test itself on 127.0.0.1), X-Forwarded-For gives each
  // attempt its own client address.
  let guarded;
  let app;
  before(async () => {
    guarded = await startIssuer({ store: 'sqlite', args: ['--trusted-proxies', '127.0.0.1'] });
    app = await rp(guarded.url, WEBAPP, { secret: SECRETS[WEBAPP] });
  });
  after(async () => { await guarded?.stop(); });

  /** The login form of a new authorization request in `jar` (`prompt=login` when signed in). */
  async function loginForm(jar) {
    const url = oidc.buildAuthorizationUrl(app, {
      redirect_uri: `${RP}/cb`, scope: 'openid', code_challenge: CHALLENGE, code_challenge_method: 'S256', prompt: 'login',
    });
    const page = await request(jar, url.toString());
    assert.equal(page.status, 200);
    return parseForm(await page.text(), '/login').fields;
  }

  function attempt(jar, fields, from, email, password) {
    const f = form({ ...fields, email, password });
    return request(jar, `${guarded.url}/login`, { ...f, headers: { ...f.headers, 'x-forwarded-for': from } });
  }

  it('slows down guessing at an account from many addresses without refusing its owner', async () => {
    const victim = USERS[0].email;
    // She signs in once on her laptop: the browser becomes a known device for her account.
    const laptop = new Jar();
    await codeFlow(app, { jar: laptop, scope: 'openid' });
    const set = laptop.get('keyway_issuer_device');
    assert.match(set ?? '', /^[A-Za-z0-9_-]{43}$/, 'a device cookie');
    // 21 addresses guess five times each: 105 failures, more than the account's shared budget
    // of 100 (the last address's five at once).
    const attacker = new Jar();
    const fields = await loginForm(attacker);
    for (let i = 0; i < 20; i++) {
      for (let n = 0; n < 5; n++) assert.equal((await attempt(attacker, fields, `203.0.113.${i}`, victim, 'wrong')).status, 401);
    }
    const last = await Promise.all([0, 1, 2, 3, 4].map(() => attempt(attacker, fields, '203.0.113.20', victim, 'wrong')));
    assert.deepEqual(last.map((r) => r.status), [401, 401, 401, 401, 401]);
    // Each of those addresses is refused for her account now, even with the right password.
    const refused = await attempt(attacker, fields, '203.0.113.3', victim, PASSWORD);
    assert.equal(refused.status, 429);
    assert.match(await refused.text(), /Too many failed attempts/);
    // She, on a new device at a new address: slowed down (3 s), not refused.
    const phone = new Jar();
    let start = Date.now();
    const slowed = await attempt(phone, await loginForm(phone), '198.51.100.99', victim, PASSWORD);
    assert.equal(slowed.status, 303);
    assert.ok(Date.now() - start >= 3000, `slowed down: ${Date.now() - start} ms`);
    // On her laptop, even from an address the attacker used up: in at once.
    const again = await loginForm(laptop);
    start = Date.now();
    const known = await attempt(laptop, again, '203.0.113.3', victim, PASSWORD);
    assert.equal(known.status, 303);
    assert.ok(Date.now() - start < 3000, `not slowed down: ${Date.now() - start} ms`);
    const cookie = known.headers.getSetCookie().find((c) => c.startsWith('keyway_issuer_device='));
    assert.match(cookie, /HttpOnly/);
    assert.match(cookie, /SameSite=Strict/);
    assert.match(cookie, /Max-Age=7776000/);
  });
});

describe('dynamic client registration', () => {
  async function register(metadata, contentType = 'application/json') {
    return json(await fetch(`${iss.url}/register`, {
      method: 'POST',
      headers: { 'content-type': contentType },
      body: typeof metadata === 'string' ? metadata : JSON.stringify(metadata),
    }));
  }
  const good = { client_name: 'Agent', redirect_uris: ['http://127.0.0.1:4000/cb'] };

  it('refuses an http redirect URI that is not loopback', async () => {
    expectJsonError(await register({ ...good, redirect_uris: ['http://agent.example/cb'] }), 400, 'invalid_redirect_uri');
  });

  it('refuses a redirect URI with a fragment', async () => {
    expectJsonError(await register({ ...good, redirect_uris: ['https://agent.example/cb#frag'] }), 400, 'invalid_redirect_uri');
  });

  it('refuses a custom-scheme and a javascript: redirect URI', async () => {
    expectJsonError(await register({ ...good, redirect_uris: ['javascript:alert(1)'] }), 400, 'invalid_redirect_uri');
    expectJsonError(await register({ ...good, redirect_uris: ['com.example.app:/cb'] }), 400, 'invalid_redirect_uri');
  });

  it('refuses a registration without redirect URIs', async () => {
    expectJsonError(await register({ client_name: 'x' }), 400, 'invalid_redirect_uri');
  });

  it('refuses confidential clients', async () => {
    expectJsonError(await register({ ...good, token_endpoint_auth_method: 'client_secret_basic' }), 400, 'invalid_client_metadata');
  });

  it('refuses scopes outside the allowed set', async () => {
    expectJsonError(await register({ ...good, scope: 'openid admin' }), 400, 'invalid_client_metadata');
  });

  it('refuses the client_credentials grant', async () => {
    expectJsonError(await register({ ...good, grant_types: ['client_credentials'] }), 400, 'invalid_client_metadata');
  });

  it('refuses malformed JSON and a non-JSON body', async () => {
    expectJsonError(await register('{"redirect_uris": ['), 400, 'invalid_client_metadata');
    expectJsonError(await register('redirect_uris=x', 'application/x-www-form-urlencoded'), 400, 'invalid_request');
  });

  it('rate-limits registrations', async () => {
    let limited = null;
    for (let i = 0; i < 6 && !limited; i++) {
      const r = await register(good);
      if (r.status === 201) continue;
      limited = r;
    }
    assert.ok(limited, 'a registration was refused');
    expectJsonError(limited, 429, 'temporarily_unavailable');
    // Seconds until the clock minute (the window of --dcr-rate) ends.
    const after = Number(limited.headers.get('retry-after'));
    assert.ok(Number.isInteger(after) && after >= 1 && after <= 60, `Retry-After: ${after}`);
  });
});

describe('expired codes and tokens', () => {
  let short;
  let agent;
  before(async () => {
    // Registered clients use the issuer-wide lifetimes, so they can be made very short here.
    short = await startIssuer({
      store: 'sqlite',
      args: ['--dcr', '--code-ttl', '3s', '--access-token-ttl', '1s', '--refresh-idle-ttl', '4s', '--refresh-grace', '1s'],
    });
    agent = await oidc.dynamicClientRegistration(new URL(short.url), {
      client_name: 'Short-lived agent',
      redirect_uris: ['http://127.0.0.1:4000/cb'],
      grant_types: ['authorization_code', 'refresh_token'],
      scope: 'openid email offline_access',
    }, oidc.None(), { execute: [oidc.allowInsecureRequests] });
  });
  after(async () => { await short?.stop(); });

  it('refuses an expired authorization code', async () => {
    const jar = new Jar();
    const out = await authorizeOnly(agent, { jar, redirectUri: 'http://127.0.0.1:4000/cb', scope: 'openid email offline_access' });
    assert.ok(out.code);
    await sleep(4100); // past the 3s code lifetime
    const r = await tokenPost(short.url, { grant_type: 'authorization_code', code: out.code, redirect_uri: 'http://127.0.0.1:4000/cb', code_verifier: out.verifier, client_id: agent.clientMetadata().client_id });
    expectJsonError(r, 400, 'invalid_grant', /invalid or has expired/);
  });

  it('refuses an expired access token at userinfo and introspects it as inactive', async () => {
    const jar = new Jar();
    const { tokens } = await codeFlow(agent, { jar, redirectUri: 'http://127.0.0.1:4000/cb', scope: 'openid email offline_access' });
    assert.equal(tokens.expires_in, 1);
    await sleep(2100);
    const r = await json(await fetch(`${short.url}/userinfo`, { headers: { authorization: `Bearer ${tokens.access_token}` } }));
    expectJsonError(r, 401, 'invalid_token');
    // Refresh still works within its idle window… then expires when idle.
    const again = await oidc.refreshTokenGrant(agent, tokens.refresh_token);
    await sleep(4100);
    const expired = await tokenPost(short.url, { grant_type: 'refresh_token', refresh_token: again.refresh_token, client_id: agent.clientMetadata().client_id });
    expectJsonError(expired, 400, 'invalid_grant', /expired or was revoked/);
  });
});
