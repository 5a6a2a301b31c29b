// keyway-issuer driven by npm `openid-client` (a certified relying party), against each store:
// discovery, the code flow with PKCE through the real login and consent forms, ID token and
// access token validation, userinfo, refresh with rotation and reuse detection, revocation,
// introspection, client_credentials, single sign-on, the account page, RP-initiated logout and
// dynamic client registration.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';

import {
  Jar, PASSWORD, RESOURCE, RP, SECRETS, STORES, USERS, authorizeOnly, codeFlow, form, oidc, parseForm, request,
  atHash, rp, signIn, sleep, startIssuer, tokenPost, verifyJwt,
} from './harness.mjs';

const WEBAPP = 'default.webapp';

async function rejects(promise, error, status) {
  await assert.rejects(promise, (e) => {
    assert.equal(e.error, error, `${e.name}: ${e.message}`);
    if (status) assert.equal(e.status, status);
    return true;
  });
}

for (const store of STORES) {
  describe(`keyway-issuer with openid-client (${store} store)`, () => {
    let iss;
    let webapp;
    before(async () => {
      iss = await startIssuer({ store, args: ['--refresh-grace', '1s', '--dcr'] });
      webapp = await rp(iss.url, WEBAPP, { secret: SECRETS[WEBAPP] });
    });
    after(async () => { await iss?.stop(); });

    it('publishes consistent, complete discovery documents', async () => {
      const oidcDoc = await (await fetch(`${iss.url}/.well-known/openid-configuration`)).json();
      const rfc8414 = await (await fetch(`${iss.url}/.well-known/oauth-authorization-server`)).json();
      assert.deepEqual(oidcDoc, rfc8414);
      assert.equal(oidcDoc.issuer, iss.url);
      assert.deepEqual(oidcDoc.code_challenge_methods_supported, ['S256']);
      assert.equal(oidcDoc.authorization_response_iss_parameter_supported, true);
      assert.deepEqual(oidcDoc.response_types_supported, ['code']);
      for (const g of ['authorization_code', 'refresh_token', 'client_credentials']) {
        assert.ok(oidcDoc.grant_types_supported.includes(g), g);
      }
      assert.deepEqual(
        [...oidcDoc.token_endpoint_auth_methods_supported].sort(),
        ['client_secret_basic', 'client_secret_post', 'none'],
      );
      assert.ok(oidcDoc.id_token_signing_alg_values_supported.includes('ES256'));
      assert.equal(oidcDoc.registration_endpoint, `${iss.url}/register`);
      for (const e of ['authorization_endpoint', 'token_endpoint', 'userinfo_endpoint', 'jwks_uri',
        'revocation_endpoint', 'introspection_endpoint', 'end_session_endpoint']) {
        assert.ok(oidcDoc[e].startsWith(`${iss.url}/`), e);
      }
      const jwks = await (await fetch(oidcDoc.jwks_uri)).json();
      assert.ok(jwks.keys.length >= 1);
      assert.ok(jwks.keys.every((k) => k.kid && !('d' in k)), 'public keys only');
      // openid-client accepted the document as well (discovery in `before`).
      assert.equal(webapp.serverMetadata().issuer, iss.url);
    });

    it('runs the code flow with PKCE through the login form and issues a valid ID token', async () => {
      const { tokens, claims, pages, location, nonce } = await codeFlow(webapp);
      assert.deepEqual(pages, ['login'], 'first-party app: no consent page');
      const back = new URL(location);
      assert.equal(back.searchParams.get('iss'), iss.url, 'RFC 9207 iss in the response');
      assert.equal(claims.iss, iss.url);
      assert.equal(claims.sub, USERS[0].email);
      assert.equal(claims.aud, WEBAPP);
      assert.equal(claims.nonce, nonce);
      assert.equal(claims.email, USERS[0].email);
      assert.equal(claims.email_verified, true);
      assert.deepEqual(claims.groups, USERS[0].groups);
      assert.ok(typeof claims.auth_time === 'number' && claims.auth_time <= claims.iat);
      assert.ok(claims.sid);
      // at_hash binds the ID token to this access token and no other.
      assert.equal(claims.at_hash, atHash('ES256', tokens.access_token));
      const tampered = `${tokens.access_token.slice(0, -2)}${tokens.access_token.endsWith('AA') ? 'BB' : 'AA'}`;
      assert.notEqual(claims.at_hash, atHash('ES256', tampered));
      const other = await codeFlow(webapp);
      assert.notEqual(claims.at_hash, atHash('ES256', other.tokens.access_token));
      assert.equal(tokens.token_type.toLowerCase(), 'bearer');
      assert.ok(tokens.expires_in > 0);
      assert.ok(tokens.refresh_token, 'refresh token for offline_access');
      const { header } = await verifyJwt(iss.url, tokens.id_token);
      assert.equal(header.alg, 'ES256');
    });

    it('issues RFC 9068 access tokens whose audience is the resource', async () => {
      const { tokens } = await codeFlow(webapp, {
        scope: 'openid email api:read',
        params: { resource: RESOURCE },
      });
      const { header, payload } = await verifyJwt(iss.url, tokens.access_token);
      assert.equal(header.typ, 'at+jwt');
      assert.equal(payload.iss, iss.url);
      assert.equal(payload.aud, RESOURCE);
      assert.equal(payload.client_id, WEBAPP);
      assert.equal(payload.sub, USERS[0].email);
      assert.equal(payload.scope, 'openid email api:read');
      assert.equal(payload.email, USERS[0].email);
      assert.ok(payload.jti && payload.exp > payload.iat);
      assert.equal(payload.groups, undefined, 'groups only with profile or groups scope');
    });

    it('serves userinfo for the access token', async () => {
      const { tokens, claims } = await codeFlow(webapp, { scope: 'openid email groups' });
      const info = await oidc.fetchUserInfo(webapp, tokens.access_token, claims.sub);
      assert.deepEqual(info, {
        sub: USERS[0].email,
        email: USERS[0].email,
        email_verified: true,
        groups: USERS[0].groups,
      });
      await assert.rejects(oidc.fetchUserInfo(webapp, tokens.access_token, 'someone-else'));
    });

    it('rotates refresh tokens and revokes the family when a rotated one is reused', async () => {
      const { tokens } = await codeFlow(webapp);
      const second = await oidc.refreshTokenGrant(webapp, tokens.refresh_token);
      assert.notEqual(second.refresh_token, tokens.refresh_token);
      assert.ok(second.access_token);
      const idClaims = second.claims();
      assert.equal(idClaims.sub, USERS[0].email);
      const third = await oidc.refreshTokenGrant(webapp, second.refresh_token);
      await sleep(2100); // past the 1s grace window
      await rejects(oidc.refreshTokenGrant(webapp, tokens.refresh_token), 'invalid_grant', 400);
      // The whole family is revoked: the current token is dead too.
      await rejects(oidc.refreshTokenGrant(webapp, third.refresh_token), 'invalid_grant', 400);
      const intro = await oidc.tokenIntrospection(webapp, third.refresh_token);
      assert.equal(intro.active, false);
    });

    it('gives concurrent refreshes with one token one successor within the grace window', async () => {
      const { tokens } = await codeFlow(webapp);
      const results = await Promise.all([1, 2, 3].map(() => oidc.refreshTokenGrant(webapp, tokens.refresh_token)));
      for (const r of results) assert.ok(r.access_token);
      const successors = new Set(results.map((r) => r.refresh_token));
      assert.equal(successors.size, 1, 'one successor for all: the family does not fork');
      const [next] = successors;
      assert.notEqual(next, tokens.refresh_token);
      assert.equal((await oidc.tokenIntrospection(webapp, tokens.refresh_token)).active, false);
      assert.equal((await oidc.tokenIntrospection(webapp, next)).active, true);
      const after = await oidc.refreshTokenGrant(webapp, next);
      assert.ok(after.access_token);
      // Past the 1s window, a rotated token is reuse: the whole family is revoked.
      await sleep(2100);
      await rejects(oidc.refreshTokenGrant(webapp, next), 'invalid_grant', 400);
      await rejects(oidc.refreshTokenGrant(webapp, after.refresh_token), 'invalid_grant', 400);
    });

    it('narrows scope on refresh but never widens it', async () => {
      const { tokens } = await codeFlow(webapp, { scope: 'openid email offline_access' });
      const narrowed = await oidc.refreshTokenGrant(webapp, tokens.refresh_token, { scope: 'openid' });
      assert.equal(narrowed.scope, 'openid');
      await rejects(oidc.refreshTokenGrant(webapp, narrowed.refresh_token, { scope: 'openid groups' }), 'invalid_scope', 400);
    });

    it('revokes refresh tokens and access tokens (RFC 7009)', async () => {
      const { tokens } = await codeFlow(webapp);
      await oidc.tokenRevocation(webapp, tokens.refresh_token, { token_type_hint: 'refresh_token' });
      await rejects(oidc.refreshTokenGrant(webapp, tokens.refresh_token), 'invalid_grant', 400);
      assert.equal((await oidc.tokenIntrospection(webapp, tokens.access_token)).active, true);
      await oidc.tokenRevocation(webapp, tokens.access_token);
      assert.equal((await oidc.tokenIntrospection(webapp, tokens.access_token)).active, false);
      await assert.rejects(oidc.fetchUserInfo(webapp, tokens.access_token, USERS[0].email));
      // Unknown tokens: still 200 (RFC 7009 §2.2).
      await oidc.tokenRevocation(webapp, 'not-a-token');
    });

    it('introspects access and refresh tokens for authenticated clients (RFC 7662)', async () => {
      const { tokens } = await codeFlow(webapp, { scope: 'openid email offline_access' });
      const at = await oidc.tokenIntrospection(webapp, tokens.access_token);
      assert.equal(at.active, true);
      assert.equal(at.client_id, WEBAPP);
      assert.equal(at.sub, USERS[0].email);
      assert.equal(at.scope, 'openid email offline_access');
      assert.equal(at.iss, iss.url);
      assert.equal(at.token_type, 'Bearer');
      assert.ok(at.exp > Date.now() / 1000);
      const rt = await oidc.tokenIntrospection(webapp, tokens.refresh_token);
      assert.equal(rt.active, true);
      assert.equal(rt.token_type, 'refresh_token');
      assert.equal(rt.client_id, WEBAPP);
      // Another confidential client learns nothing about webapp's refresh token.
      const svc = await rp(iss.url, 'default.svc', { secret: SECRETS['default.svc'] });
      assert.equal((await oidc.tokenIntrospection(svc, tokens.refresh_token)).active, false);
      assert.equal((await oidc.tokenIntrospection(webapp, 'garbage')).active, false);
    });

    it('introspects a token only for its client and its resource server (RFC 7662 §4)', async () => {
      const svc = await rp(iss.url, 'default.svc', { secret: SECRETS['default.svc'] });
      const finance = await rp(iss.url, 'default.finance', { secret: SECRETS['default.finance'] });
      const inactive = { active: false };
      assert.deepEqual(await oidc.tokenIntrospection(finance, 'not-a-token'), inactive);
      // A person's token for webapp: finance and svc are third parties, and get exactly the
      // answer for an unknown token.
      const { tokens } = await codeFlow(webapp, { scope: 'openid email groups offline_access' });
      const own = await oidc.tokenIntrospection(webapp, tokens.access_token);
      assert.equal(own.active, true);
      assert.equal(own.email, USERS[0].email);
      assert.deepEqual(own.groups, USERS[0].groups);
      for (const other of [finance, svc]) {
        assert.deepEqual(await oidc.tokenIntrospection(other, tokens.access_token), inactive);
        assert.deepEqual(await oidc.tokenIntrospection(other, tokens.refresh_token), inactive);
      }
      // The public SPA's token for webapp's resource (Bob's: the consent test counts on Ada having
      // none for the SPA): webapp is the resource server and sees it with the person's claims;
      // nobody else does.
      const spa = await rp(iss.url, 'default.spa');
      const viaSpa = await codeFlow(spa, {
        redirectUri: `${RP}/spa/cb`, scope: 'openid email profile', params: { resource: RESOURCE }, user: USERS[1].email,
      });
      const seen = await oidc.tokenIntrospection(webapp, viaSpa.tokens.access_token);
      assert.equal(seen.active, true);
      assert.equal(seen.client_id, 'default.spa');
      assert.equal(seen.aud, RESOURCE);
      assert.equal(seen.email, USERS[1].email);
      assert.deepEqual(seen.groups, USERS[1].groups);
      assert.deepEqual(await oidc.tokenIntrospection(finance, viaSpa.tokens.access_token), inactive);
      assert.deepEqual(await oidc.tokenIntrospection(svc, viaSpa.tokens.access_token), inactive);
      // svc's client_credentials token for the resource: svc and webapp, not finance.
      const cc = await oidc.clientCredentialsGrant(svc, { scope: 'api:read', resource: RESOURCE });
      assert.equal((await oidc.tokenIntrospection(svc, cc.access_token)).active, true);
      assert.equal((await oidc.tokenIntrospection(webapp, cc.access_token)).client_id, 'default.svc');
      assert.deepEqual(await oidc.tokenIntrospection(finance, cc.access_token), inactive);
    });

    it('issues client_credentials tokens with client_secret_basic and client_secret_post', async () => {
      for (const auth of ['basic', 'post']) {
        const svc = await rp(iss.url, 'default.svc', { secret: SECRETS['default.svc'], auth });
        const t = await oidc.clientCredentialsGrant(svc, { scope: 'api:read', resource: RESOURCE });
        assert.equal(t.refresh_token, undefined);
        assert.equal(t.id_token, undefined);
        assert.equal(t.scope, 'api:read');
        const { header, payload } = await verifyJwt(iss.url, t.access_token);
        assert.equal(header.typ, 'at+jwt');
        assert.equal(payload.sub, 'default.svc');
        assert.equal(payload.client_id, 'default.svc');
        assert.equal(payload.aud, RESOURCE);
        assert.equal(payload.scope, 'api:read');
        assert.equal((await oidc.tokenIntrospection(svc, t.access_token)).active, true);
      }
    });

    it('signs in once for several apps and asks a third-party app for consent once', async () => {
      const jar = new Jar();
      await codeFlow(webapp, { jar });
      const spa = await rp(iss.url, 'default.spa');
      const first = await codeFlow(spa, { jar, redirectUri: `${RP}/spa/cb`, scope: 'openid email' });
      assert.deepEqual(first.pages, ['consent'], 'signed in already; consent asked');
      assert.equal(first.claims.sub, USERS[0].email);
      const again = await codeFlow(spa, { jar, redirectUri: `${RP}/spa/cb`, scope: 'openid email' });
      assert.deepEqual(again.pages, [], 'consent remembered');
      // A wider scope set asks again.
      const wider = await codeFlow(spa, { jar, redirectUri: `${RP}/spa/cb`, scope: 'openid email profile' });
      assert.deepEqual(wider.pages, ['consent']);
      // prompt=consent always asks.
      const forced = await codeFlow(spa, { jar, redirectUri: `${RP}/spa/cb`, scope: 'openid', params: { prompt: 'consent' } });
      assert.deepEqual(forced.pages, ['consent']);
      // prompt=login asks for the password again.
      const relogin = await codeFlow(webapp, { jar, params: { prompt: 'login' } });
      assert.deepEqual(relogin.pages, ['login']);
    });

    it('asks for the password again when the sign-in is older than max_age', async () => {
      const jar = new Jar();
      const first = await codeFlow(webapp, { jar, scope: 'openid' });
      const fresh = await codeFlow(webapp, { jar, scope: 'openid', params: { max_age: '60' } });
      assert.deepEqual(fresh.pages, [], 'recent enough');
      await sleep(2100);
      const stale = await codeFlow(webapp, { jar, scope: 'openid', params: { max_age: '1' } });
      assert.deepEqual(stale.pages, ['login']);
      assert.ok(stale.claims.auth_time > first.claims.auth_time, 'auth_time is the new sign-in');
    });

    it('lists granted apps on the account page and revoking one kills its refresh tokens', async () => {
      const jar = new Jar();
      const { tokens } = await codeFlow(webapp, { jar });
      const page = await request(jar, `${iss.url}/account`);
      assert.equal(page.status, 200);
      const html = await page.text();
      assert.ok(html.includes('Web app'), 'the app is listed by name');
      assert.match(page.headers.get('content-security-policy') ?? '', /frame-ancestors 'none'/);
      const f = [...html.matchAll(/<form\b[\s\S]*?<\/form>/g)]
        .map(([x]) => x)
        .find((x) => x.includes('action="/account/revoke"') && x.includes(`value="${WEBAPP}"`));
      assert.ok(f, 'a revoke form for the app');
      const fields = parseForm(f, '/account/revoke').fields;
      const res = await request(jar, `${iss.url}/account/revoke`, form(fields));
      assert.equal(res.status, 303);
      await rejects(oidc.refreshTokenGrant(webapp, tokens.refresh_token), 'invalid_grant', 400);
      const after = await (await request(jar, `${iss.url}/account`)).text();
      assert.ok(!after.includes(`value="${WEBAPP}"`), 'no longer listed');
    });

    it('logs out through the end_session endpoint and ends single sign-on', async () => {
      const jar = new Jar();
      const { tokens } = await codeFlow(webapp, { jar });
      const url = oidc.buildEndSessionUrl(webapp, {
        id_token_hint: tokens.id_token,
        post_logout_redirect_uri: `${RP}/bye`,
        state: 'after-logout',
      });
      const res = await request(jar, url.toString());
      assert.equal(res.status, 303);
      assert.equal(res.headers.get('location'), `${RP}/bye?state=after-logout`);
      // The session is gone: prompt=none now answers login_required through openid-client.
      const out = await authorizeOnly(webapp, { jar, params: { prompt: 'none' } });
      assert.ok(out.location);
      const back = new URL(out.location);
      assert.equal(back.searchParams.get('error'), 'login_required');
      assert.equal(back.searchParams.get('iss'), iss.url);
      await assert.rejects(
        oidc.authorizationCodeGrant(webapp, back, { pkceCodeVerifier: out.verifier, expectedState: out.state }),
        (e) => e.error === 'login_required',
      );
    });

    it('registers a public client dynamically (RFC 7591) and signs in with consent', async () => {
      const reg = await oidc.dynamicClientRegistration(new URL(iss.url), {
        client_name: 'Agent',
        redirect_uris: ['http://127.0.0.1:33418/callback'],
        grant_types: ['authorization_code', 'refresh_token'],
        token_endpoint_auth_method: 'none',
        scope: 'openid email offline_access',
      }, oidc.None(), { execute: [oidc.allowInsecureRequests] });
      const meta = reg.clientMetadata();
      assert.ok(meta.client_id.startsWith('dcr.'));
      assert.equal(meta.token_endpoint_auth_method, 'none');
      const flow = await codeFlow(reg, { redirectUri: 'http://127.0.0.1:33418/callback', scope: 'openid email offline_access' });
      assert.deepEqual(flow.pages, ['login', 'consent'], 'registered clients are third-party');
      assert.equal(flow.claims.aud, meta.client_id);
      const refreshed = await oidc.refreshTokenGrant(reg, flow.tokens.refresh_token);
      assert.ok(refreshed.access_token);
    });

    it('reports readiness with the store up', async () => {
      const res = await fetch(`${iss.url}/readyz`);
      assert.equal(res.status, 200);
      const direct = await tokenPost(iss.url, { grant_type: 'client_credentials' }, { basic: ['default.svc', SECRETS['default.svc']] });
      assert.equal(direct.status, 200);
      assert.equal(direct.headers.get('cache-control'), 'no-store');
    });
  });
}

describe('keyway-issuer sign-in for people', () => {
  let iss;
  before(async () => { iss = await startIssuer({ store: 'sqlite' }); });
  after(async () => { await iss?.stop(); });

  it('shows the login page again on a wrong password, without a session', async () => {
    const webapp = await rp(iss.url, WEBAPP, { secret: SECRETS[WEBAPP] });
    const jar = new Jar();
    const url = oidc.buildAuthorizationUrl(webapp, {
      redirect_uri: `${RP}/cb`,
      scope: 'openid',
      code_challenge: await oidc.calculatePKCECodeChallenge(oidc.randomPKCECodeVerifier()),
      code_challenge_method: 'S256',
    });
    const page = await request(jar, url.toString());
    assert.equal(page.status, 200);
    const f = parseForm(await page.text(), '/login');
    for (const [user, password] of [[USERS[0].email, 'wrong'], ['nobody@example.com', 'whatever']]) {
      const res = await request(jar, `${iss.url}/login`, form({ ...f.fields, email: user, password }));
      assert.equal(res.status, 401);
      const html = await res.text();
      assert.match(html, /The email address or password is not correct/);
      assert.ok(parseForm(html, '/login'), 'the form is shown again');
    }
    assert.equal(jar.get('keyway_issuer_session'), undefined);
    // The right password then signs in and resumes the authorization request.
    const ok = await request(jar, `${iss.url}/login`, form({ ...f.fields, email: USERS[0].email, password: PASSWORD }));
    assert.equal(ok.status, 303);
    assert.match(ok.headers.get('location'), /^\/authorize\?/);
    assert.ok(jar.get('keyway_issuer_session'));
  });
});

describe('keyway-issuer signing algorithms', () => {
  for (const alg of ['RS256', 'EdDSA']) {
    it(`signs ID and access tokens with ${alg} when selected, and openid-client accepts them`, async () => {
      const iss = await startIssuer({ store: 'sqlite', args: ['--signing-alg', alg] });
      try {
        const meta = await (await fetch(`${iss.url}/.well-known/openid-configuration`)).json();
        assert.ok(meta.id_token_signing_alg_values_supported.includes(alg), JSON.stringify(meta.id_token_signing_alg_values_supported));
        const webapp = await rp(iss.url, WEBAPP, { secret: SECRETS[WEBAPP] });
        const { tokens, claims } = await codeFlow(webapp, { scope: 'openid email' });
        assert.equal(claims.email, USERS[0].email);
        assert.equal((await verifyJwt(iss.url, tokens.id_token)).header.alg, alg);
        assert.equal(claims.at_hash, atHash(alg, tokens.access_token));
        assert.equal(claims.at_hash.length, alg === 'EdDSA' ? 43 : 22);
        const at = await verifyJwt(iss.url, tokens.access_token);
        assert.equal(at.header.alg, alg);
        assert.equal(at.header.typ, 'at+jwt');
      } finally {
        await iss.stop();
      }
    });
  }
});

describe('keyway-issuer clients from ConnectedApp manifests', () => {
  const sha = (s) => `sha256:${crypto.createHash('sha256').update(s).digest('hex')}`;
  const future = new Date(Date.now() + 3600_000).toISOString().replace(/\.\d+Z$/, 'Z');
  const past = new Date(Date.now() - 3600_000).toISOString().replace(/\.\d+Z$/, 'Z');
  // As the operator writes it: status carries the hashes of the accepted secrets.
  const manifest = `
apiVersion: keyway.dev/v1alpha1
kind: ConnectedApp
metadata: {name: reporter, namespace: batch}
spec:
  displayName: Reporter
  clientID: reporter-pinned
  grantTypes: [client_credentials]
  scopes: [reports:read]
status:
  clientID: reporter-pinned
  clientSecrets:
    - hash: "${sha('current-secret-0123456789abcdefghijklmnopqrstuv')}"
    - hash: "${sha('rotating-out-0123456789abcdefghijklmnopqrstuv')}"
      expiresAt: "${future}"
    - hash: "${sha('expired-secret-0123456789abcdefghijklmnopqrstu')}"
      expiresAt: "${past}"
`;
  let iss;
  before(async () => { iss = await startIssuer({ store: 'sqlite', manifests: manifest }); });
  after(async () => { await iss?.stop(); });

  it('verifies client secrets against the hashes in status, honouring expiry', async () => {
    const cc = (secret) => tokenPost(iss.url, { grant_type: 'client_credentials' }, { basic: ['reporter-pinned', secret] });
    assert.equal((await cc('current-secret-0123456789abcdefghijklmnopqrstuv')).status, 200);
    assert.equal((await cc('rotating-out-0123456789abcdefghijklmnopqrstuv')).status, 200);
    const expired = await cc('expired-secret-0123456789abcdefghijklmnopqrstu');
    assert.equal(expired.status, 401);
    assert.equal(expired.json.error, 'invalid_client');
    const t = await cc('current-secret-0123456789abcdefghijklmnopqrstuv');
    const { payload } = await verifyJwt(iss.url, t.json.access_token);
    assert.equal(payload.client_id, 'reporter-pinned');
    assert.equal(payload.scope, 'reports:read');
  });

  it('picks up a new manifest file without a restart', async () => {
    fs.writeFileSync(path.join(iss.dir, 'clients', 'late.yaml'), `
apiVersion: keyway.dev/v1alpha1
kind: ConnectedApp
metadata: {name: late}
spec:
  displayName: Late arrival
  grantTypes: [client_credentials]
  scopes: [x:read]
`);
    fs.writeFileSync(path.join(iss.dir, 'clients', 'default.late.secret'), 'late-secret-0123456789abcdefghijklmnopqrstuvwxyz\n');
    let status = 0;
    for (let i = 0; i < 30 && status !== 200; i++) {
      status = (await tokenPost(iss.url, { grant_type: 'client_credentials' }, { basic: ['default.late', 'late-secret-0123456789abcdefghijklmnopqrstuvwxyz'] })).status;
      if (status !== 200) await sleep(500);
    }
    assert.equal(status, 200);
  });
});
