// Bearer-token validation details against oidc-provider: the exp/nbf leeway on both sides, the
// rate limit of JWKS refetches caused by unknown `kid`s (fetches counted at the provider), and a
// rotated client-secret file used at the token endpoint without a restart.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';

import { Jar, browse, raw, stack } from './harness.mjs';

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

describe('token validation', () => {
  let s;
  // Leeway 30 s (the default, stated); unknown kids refetch at most every 2 s.
  before(async () => { s = await stack({ env: { KEYWAY_CLOCK_SKEW: '30', KEYWAY_JWKS_MIN_REFRESH: '2' } }); });
  after(async () => { await s?.close(); });

  const bearer = (token) => raw(s.url, '/api/items', { headers: { authorization: `Bearer ${token}` } });
  const now = () => Math.floor(Date.now() / 1000);

  it('accepts exp and nbf inside the leeway and refuses them just outside', async () => {
    const cases = [
      [{ iat: now() - 300, exp: now() - 20 }, 200],
      [{ iat: now() - 300, exp: now() - 40 }, 401],
      [{ nbf: now() + 20 }, 200],
      [{ nbf: now() + 40 }, 401],
    ];
    for (const [claims, status] of cases) {
      const r = await bearer(s.token(claims));
      assert.equal(r.status, status, JSON.stringify(claims));
      if (status === 401) {
        assert.deepEqual(JSON.parse(r.body), { error: 'invalid_token', error_description: 'the access token is invalid or expired' });
      }
    }
  });

  it('refetches the JWKS at most once per --jwks-min-refresh for unknown kids', async () => {
    await sleep(2100); // past the interval since the keys were loaded at start
    const before = s.op.counts.jwks;
    const flood = (n, tag) => Promise.all(Array.from({ length: n }, (_, i) => bearer(s.token({}, { kid: `${tag}-${i}` }))));
    for (const r of await flood(20, 'a')) assert.equal(r.status, 401);
    assert.equal(s.op.counts.jwks, before + 1, 'one fetch for 20 unknown kids');
    for (const r of await flood(20, 'b')) assert.equal(r.status, 401);
    assert.equal(s.op.counts.jwks, before + 1, 'none within the interval');
    // A token with the provider's own key still passes meanwhile.
    assert.equal((await bearer(s.token())).status, 200);
    await sleep(2100);
    for (const r of await flood(5, 'c')) assert.equal(r.status, 401);
    assert.equal(s.op.counts.jwks, before + 2, 'one more after the interval');
    // The load at start and the two refetches.
    assert.match(await s.proxy.metrics(), /keyway_proxy_jwks_refreshes_total\{result="ok"\} 3\n/);
  });

  it('uses a rotated client-secret file at the token endpoint', async () => {
    const secretFile = path.join(s.proxy.dir, 'client-secret');
    const reloads = async () => Number((await s.proxy.metrics()).match(/keyway_proxy_config_reloads_total\{result="ok"\} (\d+)/)?.[1] ?? 0);
    async function rotate(secret) {
      const seen = await reloads();
      fs.writeFileSync(secretFile, `${secret}\n`);
      const deadline = Date.now() + 10_000;
      while (await reloads() === seen) {
        assert.ok(Date.now() < deadline, 'configuration reloaded');
        await sleep(100);
      }
    }
    const signIn = () => browse(new Jar(), `${s.url}/page`, { login: 'alice' });
    await rotate('not-the-secret');
    const refused = await signIn();
    assert.equal(refused.res.status, 502, refused.visited.join('\n'));
    assert.deepEqual(await refused.res.json(), { error: 'login_failed', error_description: 'the code exchange failed' });
    assert.ok(s.proxy.logs.some((l) => /token answered 401: invalid_client/.test(JSON.stringify(l))));
    await rotate('tool-secret');
    const ok = await signIn();
    assert.equal(ok.res.status, 200, ok.visited.join('\n'));
    assert.equal((await ok.res.json()).headers['x-forwarded-user'], 'alice');
  });
});
