// keyway-proxy's sign-in state in a real browser (Debian chromium through playwright-core), against
// the npm oidc-provider: each sign-in in progress has a login cookie, so repeated starts (tabs,
// reloads, long links) must neither pile up into request heads the proxy refuses (431, which
// would lock the browser out for the cookies' 10 minutes, sign-out included) nor make a cookie
// over the 4 KiB a browser keeps (dropped silently, and the sign-in fails at the callback).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';

import { chromium } from 'playwright-core';

import { stack } from './harness.mjs';

const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

describe('sign-in state cookies in a real browser', () => {
  let s;
  let ctx;
  let dir;
  // Every request the browser sends to the proxy: its status and the size of its Cookie header.
  const seen = [];
  before(async () => {
    s = await stack();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'keyway-chromium-'));
    ctx = await chromium.launchPersistentContext(dir, {
      executablePath: '/usr/bin/chromium', headless: true, args: CHROMIUM_ARGS,
    });
    ctx.on('requestfinished', async (req) => {
      if (!req.url().startsWith(s.url)) return;
      const res = await req.response();
      seen.push({ url: req.url(), status: res?.status(), cookie: (await req.headerValue('cookie'))?.length ?? 0 });
    });
  });
  after(async () => {
    await ctx?.close().catch(() => {});
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
    await s?.close();
  });

  const loginCookies = async () => (await ctx.cookies(s.url)).filter((c) => c.name.startsWith('_keyway_proxy_login_'));

  /** On the provider's pages: signs in as `login` and consents, until the browser is back. */
  async function providerSignIn(page, login) {
    await page.fill('input[name=login]', login);
    await page.fill('input[name=password]', 'any');
    // The login form, then the consent page (the proxy asks with prompt=consent).
    for (let i = 0; i < 3 && !page.url().startsWith(s.url); i += 1) {
      await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
    }
    assert.ok(page.url().startsWith(s.url), page.url());
  }

  it('keeps at most four sign-ins; the last one completes and sign-out works', async () => {
    const page = await ctx.newPage();
    // 24 tabs' worth of sign-in starts with long links (1 KiB return paths): unbounded, their
    // login cookies would pass the proxy's 32 KiB header limit, and before that the 16 KiB of a
    // server sharing the host (cookies ignore ports: here the provider, a Node server).
    const query = `q=${'x'.repeat(1000)}`;
    for (let i = 0; i < 24; i += 1) {
      const res = await page.goto(`${s.url}/tab-${i}?${query}`);
      assert.equal(res.status(), 200, `start ${i}`);
      assert.ok(page.url().startsWith(`${s.op.issuer}/interaction/`), page.url());
    }
    const pending = await loginCookies();
    assert.ok(pending.length <= 4, `${pending.length} login cookies`);
    for (const c of pending) assert.ok(c.name.length + c.value.length < 4096, `${c.name}: ${c.value.length}`);

    // The last sign-in completes and lands where it started.
    await providerSignIn(page, 'alice');
    const echo = JSON.parse(await page.innerText('body'));
    assert.equal(echo.url, `/tab-23?${query}`);
    assert.equal(echo.headers['x-forwarded-user'], 'alice');

    // Sign-out (typed: Sec-Fetch-Site none) reaches the proxy and goes on to the provider.
    await page.goto(`${s.url}/oauth2/sign_out`);
    assert.ok(page.url().startsWith(`${s.op.issuer}/session/end`), page.url());
    assert.deepEqual(await loginCookies(), []);
    assert.equal((await ctx.cookies(s.url)).find((c) => c.name === '_keyway_proxy'), undefined);

    const out = seen.find((r) => r.url.startsWith(`${s.url}/oauth2/sign_out`));
    assert.equal(out?.status, 302, JSON.stringify(out));
    assert.ok(!seen.some((r) => r.status === 431), 'no request refused for its header size');
    const largest = Math.max(...seen.map((r) => r.cookie));
    assert.ok(largest < 8 * 1024, `largest Cookie header sent to the proxy: ${largest} bytes`);
    await page.close();
  });

  it('signs in from a link whose return path is too long, landing on its path', async () => {
    // Another person on a fresh browser (the provider's session of the first is still there).
    await ctx.clearCookies();
    const page = await ctx.newPage();
    // Kept whole, this return path would make a login cookie of over 6 KiB, which chromium drops.
    await page.goto(`${s.url}/reports/42?filter=${'y'.repeat(5000)}`);
    assert.ok(page.url().startsWith(`${s.op.issuer}/interaction/`), page.url());
    await providerSignIn(page, 'bob');
    const echo = JSON.parse(await page.innerText('body'));
    assert.equal(echo.url, '/reports/42');
    assert.equal(echo.headers['x-forwarded-user'], 'bob');
    await page.close();
  });
});
