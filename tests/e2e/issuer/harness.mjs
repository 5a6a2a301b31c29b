// Shared pieces of the keyway-issuer end-to-end suite: the `keyway-issuer` binary from
// KEYWAY_BIN_DIR started on a free loopback port with ConnectedApp manifests, static users and
// either store (SQLite in a temp dir, or PostgreSQL in a fresh schema), a small cookie jar, and a
// headless sign-in that posts the issuer's login and consent forms as a browser would.
//
// Everything OAuth-side is done by npm `openid-client` (a certified relying party); this file only
// plays the person in front of the browser.
import { execFileSync, spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import * as oidc from 'openid-client';

import { freePort, listen } from '../ports.mjs';

export const BIN_DIR = process.env.KEYWAY_BIN_DIR
  ?? path.resolve(import.meta.dirname, '../../../target/debug');
export const PG_URL = process.env.KEYWAY_TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

// Where relying parties "live": never fetched, the sign-in stops at the redirect.
export const RP = 'http://127.0.0.1:9';
export const RESOURCE = 'http://127.0.0.1:9/api';
export const PASSWORD = 'correct horse battery staple';
// argon2id PHC hash of PASSWORD (fixed salt; test fixture only).
const PASSWORD_HASH = '$argon2id$v=19$m=19456,t=2,p=1$a2V5d2F5LWUyZS1zYWx0IQ$3UPO3oz/H5LGnFEVqYmvg5X3WGsCZ0niPbO/AiwQcXs';

export const SECRETS = {
  'default.webapp': 'webapp-secret-0123456789abcdefghijklmnopqrstuv',
  'default.svc': 'svc-secret-0123456789abcdefghijklmnopqrstuvwxyz',
  'default.finance': 'finance-secret-0123456789abcdefghijklmnopqrstu',
};

export const USERS = [
  { email: 'ada@example.com', name: 'Ada Lovelace', groups: ['engineering', 'admins'] },
  { email: 'bob@example.com', name: 'Bob', groups: ['sales'] },
];

/** The ConnectedApps every test issuer serves. */
export const MANIFESTS = `
apiVersion: keyway.dev/v1alpha1
kind: ConnectedApp
metadata: {name: webapp}
spec:
  displayName: Web app
  description: A first-party confidential web app.
  redirectURIs: ["${RP}/cb"]
  postLogoutRedirectURIs: ["${RP}/bye"]
  grantTypes: [authorization_code, refresh_token, client_credentials]
  scopes: [openid, profile, email, groups, offline_access, api:read]
  resource: "${RESOURCE}"
  # Machines (client_credentials tokens for this resource) must be listed; so must the clients
  # that may obtain a signed-in person's token for it.
  access: {allowedClients: [default.svc, default.webapp], delegatedClients: [default.spa]}
---
apiVersion: keyway.dev/v1alpha1
kind: ConnectedApp
metadata: {name: spa}
spec:
  displayName: Third-party SPA
  description: A public, third-party client.
  clientType: public
  trust: thirdParty
  redirectURIs: ["${RP}/spa/cb"]
  scopes: [openid, profile, email, api:read]
---
apiVersion: keyway.dev/v1alpha1
kind: ConnectedApp
metadata: {name: svc}
spec:
  displayName: Batch service
  grantTypes: [client_credentials]
  scopes: [api:read, api:write]
---
apiVersion: keyway.dev/v1alpha1
kind: ConnectedApp
metadata: {name: finance}
spec:
  displayName: Finance tool
  redirectURIs: ["${RP}/finance/cb"]
  scopes: [openid, email]
  access: {allowedGroups: [finance]}
`;

export { freePort, listen };

export function psql(sql) {
  return execFileSync('psql', [PG_URL, '-v', 'ON_ERROR_STOP=1', '-qAtc', sql], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** A new, empty PostgreSQL schema and the store URL that selects it. */
export function freshPgSchema(url = PG_URL) {
  const schema = `keyway_e2e_${process.pid}_${crypto.randomBytes(4).toString('hex')}`;
  psql(`CREATE SCHEMA ${schema}`);
  const u = new URL(url);
  u.searchParams.set('options[search_path]', schema);
  return { schema, url: u.toString(), drop: () => psql(`DROP SCHEMA IF EXISTS ${schema} CASCADE`) };
}

/**
 * Starts keyway-issuer. `store`: 'sqlite' | 'postgres' | a store URL.
 * Returns { url, dir, proc, stop(), logs() }.
 */
export async function startIssuer({ store = 'sqlite', args = [], manifests = MANIFESTS, release = false, port: fixedPort, users: withUsers = true, env: extraEnv = {}, issuerUrl, keysDir } = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'keyway-issuer-e2e-'));
  const clients = path.join(dir, 'clients');
  fs.mkdirSync(clients);
  fs.writeFileSync(path.join(clients, 'apps.yaml'), manifests);
  for (const [id, secret] of Object.entries(SECRETS)) {
    fs.writeFileSync(path.join(clients, `${id}.secret`), `${secret}\n`);
  }
  const users = USERS.map((u) => `- email: ${u.email}\n  name: ${u.name}\n  passwordHash: "${PASSWORD_HASH}"\n  groups: [${u.groups.join(', ')}]\n`).join('');
  fs.writeFileSync(path.join(dir, 'users.yaml'), users);
  let storeUrl = store;
  let schema;
  if (store === 'sqlite') storeUrl = `sqlite://${path.join(dir, 'issuer.db')}`;
  if (store === 'postgres') {
    schema = freshPgSchema();
    storeUrl = schema.url;
  }
  const port = fixedPort ?? await freePort();
  const direct = `http://127.0.0.1:${port}`;
  // Replicas behind a load balancer share one issuer URL (and keys); `direct` is this process.
  const url = issuerUrl ?? direct;
  const bin = path.join(release ? path.resolve(BIN_DIR, '../release') : BIN_DIR, 'keyway-issuer');
  const proc = spawn(bin, [
    '--issuer-url', url,
    '--listen', `127.0.0.1:${port}`,
    '--store', storeUrl,
    '--clients-dir', clients,
    ...(withUsers ? ['--users-file', path.join(dir, 'users.yaml')] : []),
    '--keys-dir', keysDir ?? path.join(dir, 'keys'),
    ...args,
  ], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? 'warn', ...extraEnv } });
  let output = '';
  proc.stdout.on('data', (d) => { output += d; });
  proc.stderr.on('data', (d) => { output += d; });
  let exited = null;
  proc.on('exit', (code, signal) => { exited = { code, signal }; });
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (exited) {
      schema?.drop();
      throw new Error(`keyway-issuer exited (${JSON.stringify(exited)}):\n${output}`);
    }
    try {
      const res = await fetch(`${direct}/healthz`);
      if (res.ok) break;
    } catch { /* not listening yet */ }
    if (Date.now() > deadline) {
      proc.kill('SIGKILL');
      schema?.drop();
      throw new Error(`keyway-issuer did not start:\n${output}`);
    }
    await sleep(50);
  }
  return {
    url,
    direct,
    dir,
    proc,
    storeUrl,
    logs: () => output,
    async stop() {
      if (!exited) {
        proc.kill('SIGTERM');
        await new Promise((resolve) => {
          const t = setTimeout(() => { proc.kill('SIGKILL'); resolve(); }, 5000);
          proc.on('exit', () => { clearTimeout(t); resolve(); });
        });
      }
      schema?.drop();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** A cookie jar for one browser (cookies ignore ports on 127.0.0.1). */
export class Jar {
  constructor() { this.cookies = new Map(); this.strict = new Set(); }

  store(res) {
    for (const line of res.headers.getSetCookie()) {
      const [pair, ...attrs] = line.split(';');
      const i = pair.indexOf('=');
      const name = pair.slice(0, i).trim();
      const value = pair.slice(i + 1).trim();
      const lower = attrs.map((a) => a.trim().toLowerCase());
      const maxAge = lower.find((a) => a.startsWith('max-age='));
      if (value === '' || maxAge === 'max-age=0') this.cookies.delete(name);
      else this.cookies.set(name, value);
      if (lower.includes('samesite=strict')) this.strict.add(name);
      else this.strict.delete(name);
    }
  }

  get(name) { return this.cookies.get(name); }

  set(name, value) { this.cookies.set(name, value); }

  delete(name) { this.cookies.delete(name); }

  /** The Cookie header; `crossSite`: a navigation from another site, without Strict cookies. */
  header({ crossSite = false } = {}) {
    return [...this.cookies].filter(([k]) => !(crossSite && this.strict.has(k))).map(([k, v]) => `${k}=${v}`).join('; ');
  }
}

/**
 * fetch with the jar, no redirect following. `crossSite: true` plays a top-level navigation
 * from another site (an app sending the browser here): SameSite=Strict cookies stay behind.
 */
export async function request(jar, url, { crossSite = false, ...init } = {}) {
  const headers = new Headers(init.headers ?? {});
  const cookies = jar?.header({ crossSite });
  if (cookies) headers.set('cookie', cookies);
  const res = await fetch(url, { ...init, headers, redirect: 'manual' });
  jar?.store(res);
  return res;
}

const ENTITIES = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", '#39': "'", '#x27': "'", '#x2F': '/', '#x2f': '/', '#47': '/' };
export function unescapeHtml(s) {
  return s.replace(/&(#x[0-9a-fA-F]+|#[0-9]+|[a-z]+);/g, (m, e) => {
    if (e in ENTITIES) return ENTITIES[e];
    if (e.startsWith('#x')) return String.fromCodePoint(parseInt(e.slice(2), 16));
    if (e.startsWith('#')) return String.fromCodePoint(parseInt(e.slice(1), 10));
    return m;
  });
}

/** The first POST form of a page: its action and hidden fields. */
export function parseForm(html, action) {
  const forms = [...html.matchAll(/<form\b([^>]*)>([\s\S]*?)<\/form>/g)];
  for (const [, attrs, body] of forms) {
    const act = unescapeHtml(/action="([^"]*)"/.exec(attrs)?.[1] ?? '');
    if (action && act !== action) continue;
    const fields = {};
    for (const [input] of body.matchAll(/<input\b[^>]*>/g)) {
      if (!/type="hidden"/.test(input)) continue;
      const name = /name="([^"]*)"/.exec(input)?.[1];
      const value = /value="([^"]*)"/.exec(input)?.[1] ?? '';
      if (name) fields[unescapeHtml(name)] = unescapeHtml(value);
    }
    return { action: act, fields };
  }
  return null;
}

export function form(fields) {
  return { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(fields).toString() };
}

/**
 * Plays the person: starts at `url`, follows redirects on the issuer, fills the login form
 * (`user`/`password`) and answers the consent form (`consent`: 'allow' | 'deny'), until a
 * redirect leaves the issuer. Returns { location, pages, res } where `location` is the URL the
 * issuer sent the browser to (the relying party's redirect URI with code or error) or null if
 * the issuer stopped on a page (then `res`/`html` are that page).
 */
export async function signIn(jar, url, { user = USERS[0].email, password = PASSWORD, consent = 'allow', maxSteps = 10 } = {}) {
  const origin = new URL(url).origin;
  const pages = [];
  let res = await request(jar, url);
  for (let step = 0; step < maxSteps; step++) {
    if ([301, 302, 303, 307].includes(res.status)) {
      const next = new URL(res.headers.get('location'), origin);
      if (next.origin !== origin) return { location: next.toString(), pages, res };
      res = await request(jar, next.toString());
      continue;
    }
    const html = await res.text();
    if (res.status === 200 && html.includes('action="/login"')) {
      pages.push('login');
      const f = parseForm(html, '/login');
      res = await request(jar, `${origin}/login`, form({ ...f.fields, email: user, password }));
      continue;
    }
    if (res.status === 200 && html.includes('action="/consent"')) {
      pages.push('consent');
      if (!consent) return { location: null, pages, res, html };
      const f = parseForm(html, '/consent');
      res = await request(jar, `${origin}/consent`, form({ ...f.fields, decision: consent }));
      continue;
    }
    return { location: null, pages, res, html };
  }
  throw new Error('too many steps');
}

/** openid-client configuration for a client of the test issuer. */
export async function rp(issuerUrl, clientId, { secret, auth = 'basic' } = {}) {
  let clientAuth;
  if (secret === undefined) clientAuth = oidc.None();
  else if (auth === 'post') clientAuth = oidc.ClientSecretPost(secret);
  else clientAuth = oidc.ClientSecretBasic(secret);
  const config = await oidc.discovery(new URL(issuerUrl), clientId, secret, clientAuth, {
    execute: [oidc.allowInsecureRequests],
  });
  // Verify ID token signatures against the JWKS too (not only the claims).
  oidc.enableNonRepudiationChecks(config);
  return config;
}

/**
 * The whole code flow with PKCE for a relying party: authorization URL, sign-in, code exchange.
 * Returns { tokens, claims, jar, pages, verifier, nonce, state, location }.
 */
export async function codeFlow(config, { jar = new Jar(), redirectUri = `${RP}/cb`, scope = 'openid email profile offline_access', params = {}, user, consent } = {}) {
  const verifier = oidc.randomPKCECodeVerifier();
  const challenge = await oidc.calculatePKCECodeChallenge(verifier);
  const state = oidc.randomState();
  const nonce = oidc.randomNonce();
  const url = oidc.buildAuthorizationUrl(config, {
    redirect_uri: redirectUri,
    scope,
    code_challenge: challenge,
    code_challenge_method: 'S256',
    state,
    nonce,
    ...params,
  });
  const { location, pages, html, res } = await signIn(jar, url.toString(), { user, consent });
  if (!location) throw new Error(`sign-in stopped on a page (${res.status}): ${html?.slice(0, 400)}`);
  const tokens = await oidc.authorizationCodeGrant(config, new URL(location), {
    pkceCodeVerifier: verifier,
    expectedState: state,
    expectedNonce: nonce,
    idTokenExpected: scope.split(' ').includes('openid'),
  });
  return { tokens, claims: tokens.claims(), jar, pages, verifier, nonce, state, location };
}

/** Starts an authorization and stops at the redirect back (code not exchanged). */
export async function authorizeOnly(config, { jar = new Jar(), redirectUri = `${RP}/cb`, scope = 'openid email', params = {}, user, consent } = {}) {
  const verifier = oidc.randomPKCECodeVerifier();
  const challenge = await oidc.calculatePKCECodeChallenge(verifier);
  const state = oidc.randomState();
  const url = oidc.buildAuthorizationUrl(config, {
    redirect_uri: redirectUri, scope, code_challenge: challenge, code_challenge_method: 'S256', state, ...params,
  });
  const out = await signIn(jar, url.toString(), { user, consent });
  const code = out.location ? new URL(out.location).searchParams.get('code') : null;
  return { ...out, code, verifier, state, jar, url: url.toString() };
}

/** A raw token-endpoint POST (for negative cases openid-client would refuse to send). */
export async function tokenPost(issuerUrl, fields, { basic, headers = {} } = {}) {
  const h = { 'content-type': 'application/x-www-form-urlencoded', ...headers };
  if (basic) h.authorization = `Basic ${Buffer.from(`${encodeURIComponent(basic[0])}:${encodeURIComponent(basic[1])}`).toString('base64')}`;
  const res = await fetch(`${issuerUrl}/token`, { method: 'POST', headers: h, body: new URLSearchParams(fields).toString() });
  const text = await res.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status: res.status, json, text, headers: res.headers };
}

export function basicAuth(id, secret) {
  return `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`;
}

/**
 * Verifies a compact JWS against the issuer's JWKS with node:crypto (ES256, RS256, EdDSA) and
 * returns { header, payload }; throws if the signature or key is wrong.
 */
export async function verifyJwt(issuerUrl, token) {
  const [h, p, sig] = token.split('.');
  const header = JSON.parse(Buffer.from(h, 'base64url'));
  const jwks = await (await fetch(`${issuerUrl}/jwks`)).json();
  const jwk = jwks.keys.find((k) => k.kid === header.kid);
  if (!jwk) throw new Error(`no key ${header.kid} in the JWKS`);
  if (jwk.alg && jwk.alg !== header.alg) throw new Error(`alg ${header.alg} does not match the key's ${jwk.alg}`);
  const key = crypto.createPublicKey({ key: jwk, format: 'jwk' });
  const input = Buffer.from(`${h}.${p}`);
  const signature = Buffer.from(sig, 'base64url');
  let ok;
  if (header.alg === 'ES256') ok = crypto.verify('sha256', input, { key, dsaEncoding: 'ieee-p1363' }, signature);
  else if (header.alg === 'RS256') ok = crypto.verify('sha256', input, key, signature);
  else if (header.alg === 'EdDSA') ok = crypto.verify(null, input, key, signature);
  else throw new Error(`unexpected alg ${header.alg}`);
  if (!ok) throw new Error('bad signature');
  return { header, payload: JSON.parse(Buffer.from(p, 'base64url')) };
}

/**
 * The `at_hash` an ID token signed with `alg` must carry for `accessToken` (OIDC Core 3.1.3.6:
 * base64url of the left half of the hash; SHA-512 for EdDSA/Ed25519). openid-client 6 does not
 * check at_hash on token responses (its oauth4webapi checks only c_hash and s_hash, in hybrid
 * responses), so the tests do.
 */
export function atHash(alg, accessToken) {
  const hash = { ES256: 'sha256', RS256: 'sha256', EdDSA: 'sha512' }[alg];
  if (!hash) throw new Error(`unexpected alg ${alg}`);
  const digest = crypto.createHash(hash).update(accessToken, 'ascii').digest();
  return digest.subarray(0, digest.length / 2).toString('base64url');
}

/** The stores every flow runs against. */
export const STORES = ['sqlite', 'postgres'];

export { oidc };
