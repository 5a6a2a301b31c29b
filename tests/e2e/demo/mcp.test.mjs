// An AI agent meets the local demo the way MCP clients do, driven by the official
// `@modelcontextprotocol/sdk` auth helpers, untouched: a bare call to the tool gets a 401 whose
// challenge names the RFC 9728 metadata; from there the SDK discovers keyway's issuer
// (RFC 8414), registers itself (RFC 7591), sends the person through the code flow with PKCE and
// the `resource` parameter, and exchanges the code; the token then opens the tool's API.
// The person's part (login and consent forms) is played with plain HTTP.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';

import { auth, extractWWWAuthenticateParams } from '@modelcontextprotocol/sdk/client/auth.js';

import { Jar, signIn } from '../issuer/harness.mjs';
import { ISSUER, PASSWORD, TOOL, startDemo } from './harness.mjs';

const REDIRECT = 'http://127.0.0.1:8977/callback';

/** An OAuthClientProvider that keeps everything in memory, as a CLI agent would on disk. */
class MemoryProvider {
  constructor() {
    this.saved = {};
    this.authorizationUrl = null;
  }
  get redirectUrl() { return REDIRECT; }
  get clientMetadata() {
    return {
      client_name: 'Test MCP agent',
      redirect_uris: [REDIRECT],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    };
  }
  clientInformation() { return this.saved.client; }
  saveClientInformation(info) { this.saved.client = info; }
  tokens() { return this.saved.tokens; }
  saveTokens(tokens) { this.saved.tokens = tokens; }
  redirectToAuthorization(url) { this.authorizationUrl = url; }
  saveCodeVerifier(v) { this.saved.verifier = v; }
  codeVerifier() { return this.saved.verifier; }
}

let demo;
before(async () => { demo = await startDemo(); });
after(async () => { await demo?.stop(); });

test('an MCP client finds the issuer from the tool, registers, signs alice in and calls the API', async () => {
  const serverUrl = new URL(`${TOOL}/api/whoami`);
  const challenge = await fetch(serverUrl);
  assert.equal(challenge.status, 401);
  const { resourceMetadataUrl, scope } = extractWWWAuthenticateParams(challenge);
  assert.equal(String(resourceMetadataUrl), `${TOOL}/.well-known/oauth-protected-resource`);
  assert.equal(scope, 'tool:read');

  const provider = new MemoryProvider();
  assert.equal(await auth(provider, { serverUrl, resourceMetadataUrl }), 'REDIRECT');
  assert.ok(provider.saved.client?.client_id?.startsWith('dcr.'), 'registered dynamically');
  const url = provider.authorizationUrl;
  assert.equal(url.origin, ISSUER);
  assert.equal(url.searchParams.get('resource'), TOOL);
  assert.equal(url.searchParams.get('code_challenge_method'), 'S256');

  // alice signs in and consents (a registered agent is always third party).
  const { location, pages } = await signIn(new Jar(), url.toString(), {
    user: 'alice@example.com', password: PASSWORD,
  });
  assert.deepEqual(pages, ['login', 'consent']);
  const back = new URL(location);
  assert.equal(`${back.origin}${back.pathname}`, REDIRECT);
  assert.equal(back.searchParams.get('iss'), ISSUER);
  assert.equal(back.searchParams.get('state'), url.searchParams.get('state'));

  assert.equal(
    await auth(provider, { serverUrl, resourceMetadataUrl, authorizationCode: back.searchParams.get('code') }),
    'AUTHORIZED',
  );
  const { access_token: token } = provider.saved.tokens;
  const [, payload] = token.split('.');
  const claims = JSON.parse(Buffer.from(payload, 'base64url').toString());
  assert.equal(claims.aud, TOOL);
  assert.equal(claims.client_id, provider.saved.client.client_id);

  const api = await fetch(serverUrl, { headers: { authorization: `Bearer ${token}` } });
  assert.equal(api.status, 200);
  const who = await api.json();
  assert.equal(who['x-forwarded-email'], 'alice@example.com');
  assert.match(who['x-forwarded-groups'], /engineering/);
});
