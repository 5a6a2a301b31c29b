// The seams between apps, over the wire (the keyway-issuer binary on both stores, npm
// `openid-client` as every relying party, npm `@modelcontextprotocol/sdk` registering itself):
// - a person's token for an app's resource goes only to clients that app admits
//   (`access.delegatedClients`, `access.dynamicClients`), never to another app however trusted;
// - a client asking for a resource it does not hold always sees the consent page, and a consent
//   covers only the resource it was given for;
// - a dynamically registered client cannot take an app's name, and its consent page says it is
//   unverified and where the answer goes.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';

import { registerClient } from '@modelcontextprotocol/sdk/client/auth.js';

import {
  Jar, MANIFESTS as APPS, RESOURCE, RP, SECRETS, STORES, authorizeOnly, codeFlow, oidc, rp, startIssuer, unescapeHtml,
} from './harness.mjs';

const TRACKER = 'http://127.0.0.1:9/tickets';

// The harness's apps (webapp holds RESOURCE and admits default.spa), plus a tracker that
// admits the SPA and registered clients, and a first-party helper that holds no resource.
const MANIFESTS = `${APPS}
---
apiVersion: keyway.dev/v1alpha1
kind: ConnectedApp
metadata: {name: tracker}
spec:
  displayName: Ticket tracker
  redirectURIs: ["${RP}/tracker/cb"]
  scopes: [openid, email, "tickets:read"]
  resource: "${TRACKER}"
  access: {delegatedClients: [default.spa], dynamicClients: withConsent}
`;

for (const store of STORES) {
  describe(`between apps (${store})`, () => {
    let iss;
    let finance;
    let spa;
    let signedIn; // a jar with a session for ada (signed in through webapp)
    before(async () => {
      iss = await startIssuer({ store, manifests: MANIFESTS, args: ['--dcr'] });
      finance = await rp(iss.url, 'default.finance', { secret: SECRETS['default.finance'] });
      spa = await rp(iss.url, 'default.spa');
      const webapp = await rp(iss.url, 'default.webapp', { secret: SECRETS['default.webapp'] });
      signedIn = new Jar();
      await codeFlow(webapp, { jar: signedIn });
    });
    after(async () => { await iss?.stop(); });

    it('gives an app no code for a resource whose app does not admit it (item 1)', async () => {
      // finance is first party and signed-in ada would get a code at once: not for webapp's
      // resource, whatever the scopes.
      for (const scope of ['openid email', 'openid']) {
        const out = await authorizeOnly(finance, {
          jar: signedIn, redirectUri: `${RP}/finance/cb`, scope, params: { resource: RESOURCE },
        });
        assert.deepEqual(out.pages, []);
        assert.ok(out.location?.startsWith(`${RP}/finance/cb?`), out.location);
        const p = new URL(out.location).searchParams;
        assert.equal(p.get('error'), 'invalid_target', out.location);
        assert.equal(p.get('code'), null);
        assert.equal(p.get('iss'), iss.url);
      }
    });

    it('asks for consent per resource, and grants only the holder\'s scopes (items 1 and 2)', async () => {
      const jar = new Jar();
      // For webapp's resource: consent, then a token for it.
      const first = await codeFlow(spa, {
        jar, redirectUri: `${RP}/spa/cb`, scope: 'openid email', params: { resource: RESOURCE },
      });
      assert.deepEqual(first.pages, ['login', 'consent']);
      const payload = JSON.parse(Buffer.from(first.tokens.access_token.split('.')[1], 'base64url'));
      assert.equal(payload.aud, RESOURCE);
      assert.equal(payload.client_id, 'default.spa');
      // The same again: remembered.
      const again = await authorizeOnly(spa, { jar, redirectUri: `${RP}/spa/cb`, scope: 'openid email', params: { resource: RESOURCE } });
      assert.deepEqual(again.pages, []);
      assert.ok(again.code);
      // The tracker is another resource: asked again, and the page names it.
      const other = await authorizeOnly(spa, {
        jar, redirectUri: `${RP}/spa/cb`, scope: 'openid email', params: { resource: TRACKER }, consent: null,
      });
      assert.deepEqual(other.pages, ['consent']);
      const text = unescapeHtml(other.html);
      assert.match(text, /Access is limited to <strong>Ticket tracker<\/strong> <code>http:\/\/127\.0\.0\.1:9\/tickets<\/code>/);
      // api:read is the SPA's but not the tracker's.
      const wide = await authorizeOnly(spa, { jar, redirectUri: `${RP}/spa/cb`, scope: 'openid api:read', params: { resource: TRACKER } });
      assert.equal(new URL(wide.location).searchParams.get('error'), 'invalid_scope', wide.location);
    });

    it('refuses a registered client an app\'s name, and marks it unverified (items 1 and 5)', async () => {
      const metadata = (name) => ({
        client_name: name, redirect_uris: ['http://127.0.0.1:7100/callback'],
        grant_types: ['authorization_code', 'refresh_token'], token_endpoint_auth_method: 'none', scope: 'openid email',
      });
      const meta = await oidc.discovery(new URL(iss.url), 'x', undefined, oidc.None(), { execute: [oidc.allowInsecureRequests] });
      const server = meta.serverMetadata();
      for (const name of ['Ticket tracker', 'ticket-TRACKER']) {
        const res = await fetch(server.registration_endpoint, {
          method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(metadata(name)),
        });
        assert.equal(res.status, 400, name);
        const body = await res.json();
        assert.equal(body.error, 'invalid_client_metadata');
        assert.match(body.error_description, /client_name/);
      }
      // A real MCP client registers under its own name.
      const info = await registerClient(iss.url, { metadata: server, clientMetadata: metadata('Laptop agent') });
      assert.ok(info.client_id.startsWith('dcr.'), info.client_id);
      const agent = await rp(iss.url, info.client_id);
      // webapp takes no registered clients.
      const refused = await authorizeOnly(agent, {
        jar: signedIn, redirectUri: 'http://127.0.0.1:7100/callback', scope: 'openid', params: { resource: RESOURCE },
      });
      assert.equal(new URL(refused.location).searchParams.get('error'), 'invalid_target', refused.location);
      // The tracker does, with consent on a page that says who vouches for whom.
      const page = await authorizeOnly(agent, {
        jar: signedIn, redirectUri: 'http://127.0.0.1:7100/callback', scope: 'openid email', params: { resource: TRACKER }, consent: null,
      });
      assert.deepEqual(page.pages, ['consent']);
      const text = unescapeHtml(page.html);
      assert.match(text, /Unverified app\.<\/strong> Laptop agent registered itself/);
      assert.match(text, /goes back to <strong>127\.0\.0\.1:7100 \(a program on this device\)<\/strong>/);
      const done = await codeFlow(agent, {
        jar: signedIn, redirectUri: 'http://127.0.0.1:7100/callback', scope: 'openid email', params: { resource: TRACKER },
      });
      assert.deepEqual(done.pages, ['consent']);
      const claims = JSON.parse(Buffer.from(done.tokens.access_token.split('.')[1], 'base64url'));
      assert.equal(claims.aud, TRACKER);
      assert.equal(claims.client_id, info.client_id);
    });

    it('takes away a refresh when the app no longer admits the client (item 1)', async () => {
      const jar = new Jar();
      const flow = await codeFlow(spa, {
        jar, redirectUri: `${RP}/spa/cb`, scope: 'openid email', params: { resource: TRACKER },
      });
      assert.ok(flow.tokens.refresh_token, 'the SPA gets a refresh token');
      let refreshToken = flow.tokens.refresh_token;
      refreshToken = (await oidc.refreshTokenGrant(spa, refreshToken)).refresh_token;
      const file = path.join(iss.dir, 'clients', 'apps.yaml');
      fs.writeFileSync(file, MANIFESTS.replace('delegatedClients: [default.spa], dynamicClients', 'delegatedClients: [], dynamicClients'));
      // The issuer re-reads its manifests every 5 s; each refresh before that rotates the token.
      const deadline = Date.now() + 15_000;
      let error;
      for (;;) {
        try {
          refreshToken = (await oidc.refreshTokenGrant(spa, refreshToken)).refresh_token;
        } catch (e) {
          error = e;
          break;
        }
        assert.ok(Date.now() < deadline, 'the new manifest was never read');
        await new Promise((resolve) => setTimeout(resolve, 500));
      }
      assert.equal(error.error, 'invalid_grant', String(error));
      fs.writeFileSync(file, MANIFESTS);
    });
  });
}
