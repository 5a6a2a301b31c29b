// keyway-proxy refuses a person's token issued to a client its app does not admit, as keyway's
// issuer does before issuing one (defence in depth): the issuer (its binary, SQLite) admits
// default.spa for the tool's resource; the proxy's policy.json says so too, then stops saying so
// (as a policy that changed, or an issuer that got it wrong). Tokens come from npm
// `openid-client` running the real code flow.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { RP, SECRETS, codeFlow, rp, startIssuer } from '../issuer/harness.mjs';
import { COOKIE_SECRET, freePort, startProxy, startUpstream, writeConfig } from './harness.mjs';

const CLIENT = 'default.webapp';

describe('keyway-proxy: whose person tokens it takes', () => {
  let issuer;
  let upstream;
  let proxy;
  let url;
  let policy;
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
  redirectURIs: ["${url}/oauth2/callback", "${RP}/cb"]
  scopes: [openid, email, "tool:read"]
  resource: "${url}"
  access: {delegatedClients: [default.spa]}
---
apiVersion: keyway.dev/v1alpha1
kind: ConnectedApp
metadata: {name: spa}
spec:
  displayName: Third-party SPA
  clientType: public
  trust: thirdParty
  redirectURIs: ["${RP}/spa/cb"]
  scopes: [openid, email, "tool:read"]
`,
    });
    upstream = await startUpstream();
    policy = {
      resource: url,
      scopes: ['openid', 'email', 'tool:read'],
      access: { delegatedClients: ['default.spa'], rules: [{ path: '/api', scopes: ['tool:read'] }] },
    };
    proxy = await startProxy({
      port,
      upstreamPort: upstream.port,
      files: {
        'client-id': CLIENT,
        'client-secret': `${SECRETS[CLIENT]}\n`,
        'issuer-url': `${issuer.url}\n`,
        'cookie-secret': COOKIE_SECRET,
        'policy.json': policy,
      },
    });
  });
  after(async () => {
    await proxy?.stop();
    await upstream?.close();
    await issuer?.stop();
  });

  const call = (token) => fetch(`${url}/api/items`, { headers: { authorization: `Bearer ${token}` } });

  it('takes the app\'s own and a delegated client\'s tokens, and refuses others with the challenge', async () => {
    const spa = await rp(issuer.url, 'default.spa');
    const own = await rp(issuer.url, CLIENT, { secret: SECRETS[CLIENT] });
    const delegated = (await codeFlow(spa, { redirectUri: `${RP}/spa/cb`, scope: 'openid tool:read', params: { resource: url } })).tokens.access_token;
    const mine = (await codeFlow(own, { redirectUri: `${RP}/cb`, scope: 'openid tool:read', params: { resource: url } })).tokens.access_token;
    for (const token of [delegated, mine]) {
      const res = await call(token);
      assert.equal(res.status, 200, await res.text());
    }
    // The app stops admitting the SPA: its token, still valid at the issuer, is refused.
    writeConfig(proxy.dir, { 'policy.json': { ...policy, access: { ...policy.access, delegatedClients: [] } } });
    const deadline = Date.now() + 10_000;
    let res;
    while ((res = await call(delegated)).status === 200) {
      assert.ok(Date.now() < deadline, 'the new policy was never read');
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.equal(res.status, 401);
    assert.deepEqual(await res.json(), {
      error: 'invalid_token', error_description: 'the access token was issued to a client this app does not admit',
    });
    assert.equal(
      res.headers.get('www-authenticate'),
      `Bearer resource_metadata="${url}/.well-known/oauth-protected-resource", scope="tool:read", error="invalid_token", error_description="the access token was issued to a client this app does not admit"`,
    );
    // The app's own token still passes.
    assert.equal((await call(mine)).status, 200);
  });
});
