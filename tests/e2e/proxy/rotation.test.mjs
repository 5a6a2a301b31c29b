// Cookie-secret rotation under a running keyway-proxy: the mounted cookie-secret changes, and
// cookies sealed with the previous secret (sessions and sign-ins in progress) keep working for
// --cookie-secret-grace seconds, a session being sealed with the new secret at its next refresh;
// afterwards they are refused. Tampered and foreign cookies stay refused throughout. And across a
// restart: a proxy started after the change reads the previous secret and when it was replaced
// from the mounted files (cookie-secret-previous, cookie-secret-replaced-at) and keeps opening
// its cookies until the grace ends.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { after, before, describe, it } from 'node:test';

import { COOKIE_SECRET, Jar, browse, seal, stack, startProxy, writeConfig } from './harness.mjs';

const GRACE = 8;
const NEW_SECRET = crypto.randomBytes(32).toString('base64');
const UNAUTHENTICATED = { error: 'unauthenticated', error_description: 'authentication required' };
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function forged(secret, clientId = 'tool') {
  const now = Math.floor(Date.now() / 1000);
  return seal({
    sid: crypto.randomUUID(),
    who: { sub: 'forged', groups: ['engineering'], scopes: ['tool:read'], exp: now + 300 },
    exp: now + 300,
    end: now + 3600,
  }, { secret, clientId });
}

describe('cookie-secret rotation', () => {
  let s;
  // Access tokens of 3 s: a real session needs a refresh within the grace period.
  before(async () => { s = await stack({ accessTokenTTL: 3, env: { KEYWAY_COOKIE_SECRET_GRACE: String(GRACE) } }); });
  after(async () => { await s?.close(); });

  const api = (cookie) => fetch(`${s.url}/whoami`, { headers: { cookie, accept: 'application/json' } });
  const sessionCookie = (res) => res.headers.getSetCookie().find((c) => c.startsWith('_keyway_proxy='));
  async function assertRefused(cookie) {
    const r = await api(cookie);
    assert.equal(r.status, 401);
    assert.deepEqual(await r.json(), UNAUTHENTICATED);
    assert.ok(r.headers.getSetCookie().some((c) => c.startsWith('_keyway_proxy=;') && c.includes('Max-Age=0')));
  }

  it('keeps old sessions and sign-ins for the grace period, seals them again at refresh, then refuses them', async () => {
    // A signed-in browser, a session without refresh due, and a sign-in started before the
    // rotation (its login-state cookie).
    const jar = new Jar();
    const first = await browse(jar, `${s.url}/whoami`, { login: 'alice' });
    assert.equal(first.res.status, 200, first.visited.join('\n'));
    const signedIn = Date.now();
    const old = `_keyway_proxy=${jar.get('_keyway_proxy')}`;
    const oldForged = `_keyway_proxy=${forged(COOKIE_SECRET)}`;
    const pending = new Jar();
    const start = await fetch(`${s.url}/pending`, { headers: { accept: 'text/html' }, redirect: 'manual' });
    assert.equal(start.status, 302);
    pending.update(start);
    assert.ok(pending.names().some((n) => n.startsWith('_keyway_proxy_login_')), pending.names().join());

    // Before the change, a cookie of the new secret is refused; then the file changes.
    await assertRefused(`_keyway_proxy=${forged(NEW_SECRET)}`);
    writeConfig(s.proxy.dir, { 'cookie-secret': `${NEW_SECRET}\n` });
    const deadline = Date.now() + 10_000;
    while ((await api(`_keyway_proxy=${forged(NEW_SECRET)}`)).status !== 200) {
      assert.ok(Date.now() < deadline, 'rotation never seen');
      await sleep(100);
    }
    const rotated = Date.now();

    // Within the grace: an old session passes as it is (not rewritten: replicas that have not
    // seen the new secret yet still open it), also from the cache.
    for (let i = 0; i < 2; i += 1) {
      const r = await api(oldForged);
      assert.equal(r.status, 200);
      assert.equal((await r.json()).headers['x-forwarded-user'], 'forged');
      assert.equal(sessionCookie(r), undefined);
    }

    // Tampered old cookies, other secrets and other apps' cookies are refused as before.
    const tampered = Buffer.from(old.slice('_keyway_proxy='.length), 'base64url');
    tampered[20] ^= 1;
    await assertRefused(`_keyway_proxy=${tampered.toString('base64url')}`);
    await assertRefused(`_keyway_proxy=${forged(crypto.randomBytes(32).toString('base64'))}`);
    await assertRefused(`_keyway_proxy=${forged(COOKIE_SECRET, 'other-app')}`);
    await assertRefused(`_keyway_proxy=${forged(NEW_SECRET, 'other-app')}`);

    // The sign-in started before the rotation completes (its state was sealed with the old secret).
    const done = await browse(pending, start.headers.get('location'), { login: 'bob' });
    assert.equal(done.res.status, 200, done.visited.join('\n'));
    assert.equal((await done.res.json()).headers['x-forwarded-user'], 'bob');

    // alice's access token expires: the refresh seals her session with the new secret.
    await sleep(Math.max(0, signedIn + 4500 - Date.now()));
    const r = await api(old);
    assert.equal(r.status, 200);
    assert.equal((await r.json()).headers['x-forwarded-user'], 'alice');
    const resealed = sessionCookie(r);
    assert.ok(resealed, r.headers.getSetCookie().join('\n'));
    const fresh = resealed.split(';')[0];
    assert.notEqual(fresh, old);
    assert.ok(Date.now() - rotated < GRACE * 1000, 'the checks above ran within the grace period');

    // After the grace: old cookies are refused and cleared (the cached one too); the re-sealed
    // one still works.
    await sleep(Math.max(0, rotated + (GRACE + 1.5) * 1000 - Date.now()));
    await assertRefused(oldForged);
    await assertRefused(old);
    const kept = await api(fresh);
    assert.equal(kept.status, 200);
    assert.equal((await kept.json()).headers['x-forwarded-user'], 'alice');
    const metrics = await s.proxy.metrics();
    assert.match(metrics, /keyway_proxy_config_reloads_total\{result="ok"\} 1\b/);
    assert.match(metrics, /keyway_proxy_session_refreshes_total\{result="ok"\} [12]\b/);
  });
});

describe('cookie-secret rotation with --cookie-secret-grace 0', () => {
  let s;
  before(async () => { s = await stack({ env: { KEYWAY_COOKIE_SECRET_GRACE: '0' } }); });
  after(async () => { await s?.close(); });

  it('refuses the old secret at once', async () => {
    const api = (cookie) => fetch(`${s.url}/whoami`, { headers: { cookie, accept: 'application/json' } });
    const old = `_keyway_proxy=${forged(COOKIE_SECRET)}`;
    assert.equal((await api(old)).status, 200, 'control: the current secret');
    writeConfig(s.proxy.dir, { 'cookie-secret': NEW_SECRET });
    const deadline = Date.now() + 10_000;
    while ((await api(`_keyway_proxy=${forged(NEW_SECRET)}`)).status !== 200) {
      assert.ok(Date.now() < deadline, 'rotation never seen');
      await sleep(100);
    }
    const r = await api(old);
    assert.equal(r.status, 401);
    assert.deepEqual(await r.json(), UNAUTHENTICATED);
  });
});

describe('cookie-secret rotation across a restart of the proxy', () => {
  let s;
  const env = {
    KEYWAY_SCOPES: 'openid email profile groups offline_access',
    KEYWAY_PROMPT: 'consent',
    KEYWAY_COOKIE_SECRET_GRACE: String(GRACE),
  };
  before(async () => { s = await stack({ env }); });
  // s.close() stops the proxy stack() started; the restarted one is stopped here.
  after(async () => { await s?.proxy.stop(); await s?.close(); });

  const api = (cookie) => fetch(`${s.url}/whoami`, { headers: { cookie, accept: 'application/json' } });
  /** Stops the proxy and starts the binary again on the same port with these Secret files. */
  async function restart(files) {
    await s.proxy.stop();
    s.proxy = await startProxy({ port: Number(new URL(s.url).port), upstreamPort: s.upstream.port, files, env });
  }

  it('keeps opening cookies of the replaced secret the files name, until its grace ends', async () => {
    const jar = new Jar();
    const first = await browse(jar, `${s.url}/whoami`, { login: 'alice' });
    assert.equal(first.res.status, 200, first.visited.join('\n'));
    const old = `_keyway_proxy=${jar.get('_keyway_proxy')}`;

    // The Secret now holds a new cookie secret and names the old one as replaced just now (what
    // keyway-operator writes); the pod's proxy restarts and reads it.
    const replacedAt = Math.floor(Date.now() / 1000);
    await restart({
      ...s.files,
      'cookie-secret': `${NEW_SECRET}\n`,
      'cookie-secret-previous': `${COOKIE_SECRET}\n`,
      'cookie-secret-replaced-at': `${replacedAt}\n`,
    });
    const r = await api(old);
    assert.equal(r.status, 200, 'the session sealed with the replaced secret still opens');
    assert.equal((await r.json()).headers['x-forwarded-user'], 'alice');
    assert.equal((await api(`_keyway_proxy=${forged(NEW_SECRET)}`)).status, 200, 'the new secret too');
    assert.equal((await api(`_keyway_proxy=${forged(crypto.randomBytes(32).toString('base64'))}`)).status, 401);
    assert.ok(Date.now() / 1000 < replacedAt + GRACE, 'the checks above ran within the grace period');

    // Once the grace has passed since the replacement, the old session is refused, also by a
    // proxy started again.
    await sleep(Math.max(0, (replacedAt + GRACE + 1) * 1000 - Date.now()));
    const late = await api(old);
    assert.equal(late.status, 401);
    assert.deepEqual(await late.json(), UNAUTHENTICATED);
    await restart({
      ...s.files,
      'cookie-secret': NEW_SECRET,
      'cookie-secret-previous': COOKIE_SECRET,
      'cookie-secret-replaced-at': String(replacedAt),
    });
    assert.equal((await api(old)).status, 401);
  });
});
