// The local demo in a real browser: `keyway demo` (the README's first command, built binary)
// driven by Debian chromium through playwright-core. alice signs in and sees her identity in the
// demo tool; bob is refused; a third-party agent shows the consent page and its token reaches
// the tool's API; sign-out works; the account page lists and revokes a grant. Screenshots of
// every page land in tests/artifacts/screenshots/.
import http from 'node:http';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';

import { chromium } from 'playwright-core';

import { listen } from '../ports.mjs';
import { ISSUER, PASSWORD, TOOL, startDemo } from './harness.mjs';

const SHOTS = path.resolve(import.meta.dirname, '../../artifacts/screenshots');
const AGENT_REDIRECT = 'http://127.0.0.1:8976/callback';
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

let demo;
const contexts = [];

async function browser() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'keyway-chromium-'));
  const ctx = await chromium.launchPersistentContext(dir, {
    executablePath: '/usr/bin/chromium', headless: true, args: CHROMIUM_ARGS,
  });
  contexts.push({ ctx, dir });
  return ctx;
}

async function shot(page, name) {
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
}

async function signIn(page, email) {
  await page.waitForSelector('#email');
  await page.fill('#email', email);
  await page.fill('#password', PASSWORD);
  await Promise.all([page.waitForLoadState('load'), page.click('button[type=submit]')]);
}

before(async () => {
  fs.mkdirSync(SHOTS, { recursive: true });
  demo = await startDemo();
});

after(async () => {
  for (const { ctx, dir } of contexts) {
    await ctx.close().catch(() => {});
    fs.rmSync(dir, { recursive: true, force: true });
  }
  if (demo) {
    // Ctrl-C stops everything cleanly and frees the ports.
    const { code } = await demo.stop();
    assert.equal(code, 0, demo.output());
  }
});

test('the demo prints what to open', () => {
  assert.match(demo.output(), /keyway demo is running/);
  assert.match(demo.output(), /http:\/\/127\.0\.0\.1:4180\//);
  assert.match(demo.output(), /alice@example\.com/);
});

test('the demo service gets a token and calls the API; the tool names the client', async () => {
  const secret = demo.output().match(/demo\.service:([A-Za-z0-9_-]+)/)?.[1];
  assert.ok(secret, 'the demo prints the service secret');
  const tokenRes = await fetch(`${ISSUER}/token`, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      authorization: `Basic ${Buffer.from(`demo.service:${secret}`).toString('base64')}`,
    },
    body: new URLSearchParams({ grant_type: 'client_credentials', scope: 'tool:read', resource: TOOL }),
  });
  const token = await tokenRes.json();
  assert.equal(tokenRes.status, 200, JSON.stringify(token));
  const api = await fetch(`${TOOL}/api/whoami`, { headers: { authorization: `Bearer ${token.access_token}` } });
  assert.equal(api.status, 200);
  assert.equal((await api.json())['x-forwarded-user'], 'demo.service');
  // Without a token the API answers with an RFC 9728 challenge an agent can follow.
  const bare = await fetch(`${TOOL}/api/whoami`);
  assert.equal(bare.status, 401);
  assert.match(bare.headers.get('www-authenticate'), /^Bearer resource_metadata="http:\/\/127\.0\.0\.1:4180\/\.well-known\/oauth-protected-resource"/);
});

test('alice signs in and the tool sees her identity; sign-out ends the session', async () => {
  const ctx = await browser();
  const page = await ctx.newPage();
  await page.goto(`${TOOL}/`);
  assert.ok(page.url().startsWith(`${ISSUER}/`), `sent to the issuer, got ${page.url()}`);
  await shot(page, '01-login');
  await signIn(page, 'alice@example.com');
  assert.ok(page.url().startsWith(`${TOOL}/`), `back at the tool, got ${page.url()}`);
  assert.equal(await page.textContent('#email'), 'alice@example.com');
  assert.match(await page.textContent('#groups'), /engineering/);
  await shot(page, '02-tool-alice');

  await Promise.all([page.waitForURL(`${ISSUER}/**`), page.click('a[href="/oauth2/sign_out"]')]);
  // The issuer asks before ending its own session, then returns to the tool.
  const confirm = await page.$('form[action="/logout"] button[type=submit]');
  if (confirm) {
    await shot(page, '03-sign-out-confirm');
    await Promise.all([page.waitForURL((u) => !u.pathname.startsWith('/logout')), confirm.click()]);
  }
  await page.waitForLoadState('load');
  await shot(page, '03-signed-out');
  // Signed out of the tool and of the issuer: the tool sends us back to the login form.
  await page.goto(`${TOOL}/`);
  assert.ok(page.url().startsWith(`${ISSUER}/`), `login again after sign-out, got ${page.url()}`);
  assert.ok(await page.$('#password'), 'the issuer asks for the password again');
});

test('bob (sales) is refused with a clear page', async () => {
  const ctx = await browser();
  const page = await ctx.newPage();
  await page.goto(`${TOOL}/`);
  await signIn(page, 'bob@example.com');
  const text = await page.textContent('body');
  await shot(page, '04-bob-refused');
  assert.ok(!page.url().startsWith(`${TOOL}/`) || !(await page.$('#user')), 'bob never reaches the tool');
  assert.match(text, /Demo tool/);
  assert.match(text, /not allowed|no access|access denied|may not/i);
});

test('a third-party agent asks for consent; its token reaches the API; the account page revokes it', async () => {
  const ctx = await browser();
  const page = await ctx.newPage();
  // The agent's loopback redirect URI (RFC 8252): a listener that takes the authorization response.
  let callback;
  const agent = http.createServer((req, res) => {
    const url = new URL(req.url, AGENT_REDIRECT);
    // Only the authorization response counts (the browser also asks for /favicon.ico).
    if (url.pathname === '/callback') callback = url;
    res.writeHead(200, { 'content-type': 'text/html' }).end('<p>The agent got the code.</p>');
  });
  await listen(agent, 8976);
  after(() => agent.close());
  const verifier = crypto.randomBytes(32).toString('base64url');
  const challenge = crypto.createHash('sha256').update(verifier).digest('base64url');
  const state = crypto.randomBytes(16).toString('base64url');
  const auth = new URL(`${ISSUER}/authorize`);
  auth.search = new URLSearchParams({
    response_type: 'code', client_id: 'demo.agent', redirect_uri: AGENT_REDIRECT,
    scope: 'openid email groups offline_access tool:read', state,
    code_challenge: challenge, code_challenge_method: 'S256', resource: TOOL,
  }).toString();
  await page.goto(auth.toString());
  await signIn(page, 'alice@example.com');
  const consent = await page.textContent('body');
  assert.match(consent, /Demo agent/);
  assert.match(consent, /tool:read|demo tool/i);
  await shot(page, '05-consent');
  await Promise.all([page.waitForURL(`${AGENT_REDIRECT}**`), page.click('button[value=allow]')]);
  assert.ok(callback, 'the browser was sent to the agent');
  assert.equal(callback.searchParams.get('state'), state);
  assert.equal(callback.searchParams.get('iss'), ISSUER);

  const tokenRes = await fetch(`${ISSUER}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'authorization_code', code: callback.searchParams.get('code'),
      redirect_uri: AGENT_REDIRECT, client_id: 'demo.agent', code_verifier: verifier, resource: TOOL,
    }),
  });
  const tokens = await tokenRes.json();
  assert.equal(tokenRes.status, 200, JSON.stringify(tokens));
  assert.ok(tokens.refresh_token, 'offline_access gives a refresh token');
  const api = await fetch(`${TOOL}/api/whoami`, { headers: { authorization: `Bearer ${tokens.access_token}` } });
  assert.equal(api.status, 200);
  assert.equal((await api.json())['x-forwarded-email'], 'alice@example.com');

  await page.goto(`${ISSUER}/account`);
  assert.match(await page.textContent('body'), /Demo agent/);
  await shot(page, '06-account');
  await Promise.all([page.waitForLoadState('load'), page.click('button[aria-label^="Revoke access of Demo agent"]')]);
  await page.goto(`${ISSUER}/account`);
  assert.doesNotMatch(await page.textContent('body'), /Demo agent/);
  await shot(page, '07-account-revoked');

  const refreshRes = await fetch(`${ISSUER}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: tokens.refresh_token, client_id: 'demo.agent' }),
  });
  assert.equal(refreshRes.status, 400);
  assert.equal((await refreshRes.json()).error, 'invalid_grant');
});
