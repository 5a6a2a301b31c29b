// Shared pieces of the keyway-proxy end-to-end tests: the npm `oidc-provider` as the OpenID
// provider (fixed RSA signing key, JWT access tokens for the tool's resource), an upstream "tool"
// that echoes what it receives (plus websocket, SSE and upload endpoints), the keyway-proxy
// binary started from KEYWAY_BIN_DIR, a small cookie jar and a headless browser sign-in by HTTP.
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';

import Provider from 'oidc-provider';

import { freePort, listen } from '../ports.mjs';
import { terminate } from '../processes.mjs';

export const BIN_DIR = process.env.KEYWAY_BIN_DIR
  ?? path.resolve(import.meta.dirname, '../../../target/debug');

export { freePort, listen, terminate };

const b64u = (buf) => Buffer.from(buf).toString('base64url');

/** An RSA signing key as private/public JWKs and KeyObjects. */
export function makeKey(kid = 'k1') {
  const { privateKey, publicKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = { ...privateKey.export({ format: 'jwk' }), kid, alg: 'RS256', use: 'sig' };
  return { kid, privateKey, publicKey, jwk };
}

/** Signs a JWT. `alg` RS256 (with key), HS256 (with a secret buffer) or none. */
export function signJwt(payload, { key, alg = 'RS256', kid = key?.kid, typ = 'at+jwt', secret } = {}) {
  const header = { alg, typ };
  if (kid !== undefined) header.kid = kid;
  const input = `${b64u(JSON.stringify(header))}.${b64u(JSON.stringify(payload))}`;
  let sig = '';
  if (alg === 'RS256') sig = b64u(crypto.sign('sha256', Buffer.from(input), key.privateKey));
  else if (alg === 'HS256') sig = b64u(crypto.createHmac('sha256', secret).update(input).digest());
  return `${input}.${sig}`;
}

/** The npm oidc-provider with a client for the proxy and a service client. */
export async function startProvider({ proxyUrl, resource, key, accessTokenTTL = 300, extraClients = [] }) {
  const port = await freePort();
  const issuer = `http://127.0.0.1:${port}`;
  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: 'tool',
        client_secret: 'tool-secret',
        redirect_uris: [`${proxyUrl}/oauth2/callback`],
        post_logout_redirect_uris: [`${proxyUrl}/public/signed-out`],
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
      },
      {
        client_id: 'svc',
        client_secret: 'svc-secret',
        grant_types: ['client_credentials'],
        response_types: [],
        redirect_uris: [],
      },
      ...extraClients,
    ],
    jwks: { keys: [key.jwk] },
    features: {
      devInteractions: { enabled: true },
      clientCredentials: { enabled: true },
      rpInitiatedLogout: { enabled: true },
      revocation: { enabled: true },
      introspection: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => resource,
        useGrantedResource: () => true,
        getResourceServerInfo: () => ({
          scope: 'tool:read tool:write',
          audience: resource,
          accessTokenFormat: 'jwt',
          accessTokenTTL,
        }),
      },
    },
    scopes: ['openid', 'offline_access', 'email', 'profile', 'groups', 'tool:read', 'tool:write'],
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['preferred_username'],
      groups: ['groups'],
    },
    conformIdTokenClaims: false,
    findAccount: (_ctx, id) => ({
      accountId: id,
      claims: () => ({
        sub: id,
        email: `${id}@example.com`,
        email_verified: true,
        preferred_username: id,
        groups: id.startsWith('admin') ? ['admins', 'engineering']
          // Accounts named many-groups-N belong to N groups (large sessions).
          : id.startsWith('many-groups-') ? ['engineering', ...Array.from({ length: Number(id.slice(12)) }, (_, i) => `team-${i}-of-a-large-organisation`)]
            : ['engineering'],
      }),
    }),
    pkce: { required: () => true },
    cookies: { keys: ['e2e-cookie-key'] },
  });
  const counts = { refresh: 0, code: 0, jwks: 0 };
  provider.on('grant.success', (ctx) => {
    const gt = ctx.oidc.params?.grant_type;
    if (gt === 'refresh_token') counts.refresh += 1;
    if (gt === 'authorization_code') counts.code += 1;
  });
  provider.on('server_error', (_ctx, err) => console.error('provider error', err));
  const handle = provider.callback();
  const server = http.createServer((req, res) => {
    if (req.url.startsWith('/jwks')) counts.jwks += 1;
    handle(req, res);
  });
  await listen(server, port);
  return {
    issuer,
    provider,
    counts,
    async clientCredentials(scope = 'tool:read') {
      const res = await fetch(`${issuer}/token`, {
        method: 'POST',
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          authorization: `Basic ${Buffer.from('svc:svc-secret').toString('base64')}`,
        },
        body: new URLSearchParams({ grant_type: 'client_credentials', scope, resource }),
      });
      const body = await res.json();
      if (!res.ok) throw new Error(`client_credentials: ${JSON.stringify(body)}`);
      return body.access_token;
    },
    /** RFC 7662 introspection as the proxy's client: is this (refresh) token still active? */
    async active(token, hint = 'refresh_token') {
      const res = await fetch(`${issuer}/token/introspection`, {
        method: 'POST',
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          authorization: `Basic ${Buffer.from('tool:tool-secret').toString('base64')}`,
        },
        body: new URLSearchParams({ token, token_type_hint: hint }),
      });
      const body = await res.json();
      if (!res.ok) throw new Error(`introspection: ${JSON.stringify(body)}`);
      return body.active;
    },
    close: () => new Promise((resolve) => { server.closeAllConnections(); server.close(resolve); }),
  };
}

function wsAccept(key) {
  return crypto.createHash('sha1').update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
}

/** Encodes a websocket text frame (masked when sent by a client). */
export function wsFrame(text, mask) {
  const payload = Buffer.from(text);
  const len = payload.length;
  const head = len < 126 ? Buffer.from([0x81, (mask ? 0x80 : 0) | len])
    : Buffer.from([0x81, (mask ? 0x80 : 0) | 126, len >> 8, len & 0xff]);
  if (!mask) return Buffer.concat([head, payload]);
  const m = crypto.randomBytes(4);
  const body = Buffer.from(payload.map((b, i) => b ^ m[i % 4]));
  return Buffer.concat([head, m, body]);
}

/** Decodes one websocket frame: { text, rest } or null when incomplete. */
export function wsParse(buf) {
  if (buf.length < 2) return null;
  let len = buf[1] & 0x7f;
  let off = 2;
  if (len === 126) { if (buf.length < 4) return null; len = buf.readUInt16BE(2); off = 4; }
  const masked = (buf[1] & 0x80) !== 0;
  const m = masked ? buf.subarray(off, off + 4) : null;
  if (masked) off += 4;
  if (buf.length < off + len) return null;
  let payload = buf.subarray(off, off + len);
  if (m) payload = Buffer.from(payload.map((b, i) => b ^ m[i % 4]));
  return { opcode: buf[0] & 0x0f, text: payload.toString(), rest: buf.subarray(off + len) };
}

/** The protected tool: echoes requests as JSON; /sse streams events; /upload counts bytes;
 * /public/download sends 64 MiB;
 * websocket upgrades echo text frames. */
export async function startUpstream() {
  const port = await freePort();
  // Large sessions make large identity headers (X-Forwarded-Groups and X-Auth-Request-Groups).
  const server = http.createServer({ maxHeaderSize: 64 * 1024 }, (req, res) => {
    if (req.url.startsWith('/sse')) {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      let n = 0;
      const timer = setInterval(() => {
        n += 1;
        res.write(`data: event ${n} at ${Date.now()}\n\n`);
        if (n === 3) { clearInterval(timer); res.end(); }
      }, 300);
      req.on('close', () => clearInterval(timer));
      return;
    }
    if (req.url.startsWith('/upload')) {
      let bytes = 0;
      const hash = crypto.createHash('sha256');
      req.on('data', (chunk) => { bytes += chunk.length; hash.update(chunk); });
      req.on('end', () => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ bytes, sha256: hash.digest('hex') }));
      });
      return;
    }
    if (req.url.startsWith('/public/download')) {
      // 64 MiB in 64 KiB chunks, written as fast as the reader takes them.
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(64 << 20) });
      const chunk = Buffer.alloc(64 << 10, 120);
      let left = 1024;
      const pump = () => {
        while (left > 0) {
          left -= 1;
          if (!res.write(chunk)) { res.once('drain', pump); return; }
        }
        res.end();
      };
      res.on('close', () => { left = 0; });
      pump();
      return;
    }
    if (req.url.includes('/slow')) {
      setTimeout(() => { res.writeHead(200); res.end('slow'); }, 3000);
      return;
    }
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json', connection: 'x-drop-me', 'x-drop-me': '1' });
      res.end(JSON.stringify({
        method: req.method,
        url: req.url,
        headers: req.headers,
        body: Buffer.concat(chunks).toString(),
      }));
    });
  });
  const upgraded = new Set();
  server.on('upgrade', (req, socket) => {
    upgraded.add(socket);
    socket.on('close', () => upgraded.delete(socket));
    // http.Server sockets allow half-open connections: close when the proxy closes.
    socket.on('end', () => socket.end());
    socket.write(['HTTP/1.1 101 Switching Protocols', 'Upgrade: websocket', 'Connection: Upgrade',
      `Sec-WebSocket-Accept: ${wsAccept(req.headers['sec-websocket-key'])}`,
      `X-Upstream-User: ${req.headers['x-forwarded-user'] ?? ''}`, '', ''].join('\r\n'));
    let buf = Buffer.alloc(0);
    socket.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      for (let f = wsParse(buf); f; f = wsParse(buf)) {
        buf = f.rest;
        if (f.opcode === 8) { socket.end(); return; }
        socket.write(wsFrame(`echo: ${f.text}`, false));
      }
    });
    socket.on('error', () => {});
  });
  await listen(server, port);
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    close: () => new Promise((resolve) => {
      for (const sock of upgraded) sock.destroy();
      server.closeAllConnections();
      server.close(resolve);
    }),
  };
}

export const COOKIE_SECRET = crypto.randomBytes(32).toString('base64');

/** Seals a session the way keyway-proxy does (AES-256-GCM, AAD bound to purpose and app). */
export function seal(value, { clientId = 'tool', purpose = 'session', secret = COOKIE_SECRET } = {}) {
  const key = Buffer.from(secret, 'base64');
  const iv = crypto.randomBytes(12);
  const cipher = crypto.createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(Buffer.concat([Buffer.from('keyway-proxy/v1\0'), Buffer.from(`${purpose}\0${clientId}`)]));
  const ct = Buffer.concat([cipher.update(JSON.stringify(value)), cipher.final(), cipher.getAuthTag()]);
  return Buffer.concat([iv, ct]).toString('base64url');
}

/** Opens a sealed cookie value (the inverse of `seal`). */
export function unseal(sealed, { clientId = 'tool', purpose = 'session', secret = COOKIE_SECRET } = {}) {
  const raw = Buffer.from(sealed, 'base64url');
  const decipher = crypto.createDecipheriv('aes-256-gcm', Buffer.from(secret, 'base64'), raw.subarray(0, 12));
  decipher.setAAD(Buffer.concat([Buffer.from('keyway-proxy/v1\0'), Buffer.from(`${purpose}\0${clientId}`)]));
  decipher.setAuthTag(raw.subarray(raw.length - 16));
  return JSON.parse(Buffer.concat([decipher.update(raw.subarray(12, raw.length - 16)), decipher.final()]).toString());
}

/** A request sent exactly as written (fetch would normalise the path). */
export function raw(url, path, { method = 'GET', headers = {} } = {}) {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: u.hostname, port: u.port, path, method, headers }, (res) => {
      let body = '';
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** One HTTP/2 request on an open `http2` client session: its status and body. */
export function h2Request(client, headers) {
  return new Promise((resolve, reject) => {
    const req = client.request(headers);
    let body = '';
    let status;
    req.on('response', (h) => { status = h[':status']; });
    req.on('data', (d) => { body += d; });
    req.on('end', () => resolve({ status, body }));
    req.on('error', reject);
    req.end();
  });
}

/** Writes the client Secret's files into a fresh directory. */
export function writeConfig(dir, files) {
  fs.mkdirSync(dir, { recursive: true });
  for (const [name, content] of Object.entries(files)) {
    const p = path.join(dir, name);
    if (content === null) fs.rmSync(p, { force: true });
    else fs.writeFileSync(p, typeof content === 'string' ? content : JSON.stringify(content));
  }
}

/** Starts keyway-proxy; resolves once it is ready (issuer metadata and keys loaded). */
export async function startProxy({ port, upstreamPort, files, env = {}, args = [], waitReady = true }) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'keyway-proxy-'));
  writeConfig(dir, files);
  const proc = spawn(path.join(BIN_DIR, 'keyway-proxy'), args, {
    env: {
      PATH: process.env.PATH,
      KEYWAY_CONFIG_DIR: dir,
      KEYWAY_LISTEN: `127.0.0.1:${port}`,
      KEYWAY_ADMIN_LISTEN: '127.0.0.1:0',
      KEYWAY_UPSTREAM_PORT: String(upstreamPort),
      KEYWAY_CONFIG_POLL_INTERVAL: '1',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs = [];
  let stderr = '';
  proc.stderr.on('data', (d) => { stderr += d; });
  const listening = new Promise((resolve, reject) => {
    readline.createInterface({ input: proc.stdout }).on('line', (line) => {
      let entry;
      try { entry = JSON.parse(line); } catch { entry = { raw: line }; }
      logs.push(entry);
      if (entry.message === 'listening') resolve(entry);
    });
    proc.on('exit', (code) => reject(new Error(`keyway-proxy exited ${code}: ${stderr}`)));
    proc.on('error', reject); // e.g. the binary is missing: fail, don't hang
  });
  const entry = await listening;
  const adminUrl = `http://${entry.admin}`;
  const handle = {
    proc,
    dir,
    logs,
    url: `http://127.0.0.1:${port}`,
    adminUrl,
    get stderr() { return stderr; },
    async stop() {
      try {
        await terminate(proc);
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    },
    async metrics() {
      return (await fetch(`${adminUrl}/metrics`)).text();
    },
  };
  if (waitReady) {
    const deadline = Date.now() + 10_000;
    for (;;) {
      const r = await fetch(`${adminUrl}/readyz`).catch(() => null);
      if (r?.status === 200) break;
      if (Date.now() > deadline) { await handle.stop(); throw new Error('keyway-proxy not ready'); }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }
  return handle;
}

/** A cookie jar shared by every origin on 127.0.0.1 (as browsers ignore ports). */
export class Jar {
  constructor() { this.cookies = new Map(); }
  update(res) {
    for (const sc of res.headers.getSetCookie()) {
      const [pair, ...attrs] = sc.split(';');
      const i = pair.indexOf('=');
      const name = pair.slice(0, i).trim();
      const value = pair.slice(i + 1).trim();
      const expired = attrs.some((a) => /^\s*max-age=0\s*$/i.test(a)) || value === '';
      if (expired) this.cookies.delete(name); else this.cookies.set(name, value);
    }
  }
  header() { return [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; '); }
  get(name) { return this.cookies.get(name); }
  names() { return [...this.cookies.keys()]; }
}

function parseForm(html) {
  const form = html.match(/<form[^>]*>([\s\S]*?)<\/form>/i);
  if (!form) return null;
  const action = form[0].match(/action="([^"]*)"/i)?.[1];
  const fields = {};
  for (const input of form[1].matchAll(/<input[^>]*>/gi)) {
    const name = input[0].match(/name="([^"]*)"/i)?.[1];
    const value = input[0].match(/value="([^"]*)"/i)?.[1] ?? '';
    if (name) fields[name] = value;
  }
  return { action, fields };
}

/** A browser by HTTP: follows redirects and posts the provider's login and consent forms (and
 * its logout confirmation) until a page that is not a form. Returns the final response and the
 * list of URLs visited (and `location`, when a redirect to the `stopAt` prefix ended it). */
export async function browse(jar, url, { login = 'alice', method = 'GET', maxSteps = 20, stopAt } = {}) {
  const visited = [];
  let body;
  let contentType;
  let origin;
  for (let step = 0; step < maxSteps; step += 1) {
    visited.push(`${method} ${url}`);
    const headers = { accept: 'text/html', cookie: jar.header() };
    if (contentType) headers['content-type'] = contentType;
    if (method === 'POST' && origin) headers.origin = origin;
    const res = await fetch(url, { method, body, headers, redirect: 'manual' });
    jar.update(res);
    if (res.status >= 300 && res.status < 400) {
      url = new URL(res.headers.get('location'), url).href;
      // stopAt: return the redirect to this URL prefix instead of following it.
      if (stopAt && url.startsWith(stopAt)) return { res, location: url, visited };
      method = 'GET';
      body = undefined;
      contentType = undefined;
      continue;
    }
    const type = res.headers.get('content-type') ?? '';
    if (res.status === 200 && type.includes('text/html')) {
      const html = await res.text();
      const form = parseForm(html);
      if (!form) return { res, html, visited };
      const fields = { ...form.fields };
      if ('login' in fields || html.includes('name="login"')) { fields.login = login; fields.password = 'any'; }
      if ('xsrf' in fields) fields.logout = 'yes';
      // As browsers do: a form POST carries the origin of the page it came from.
      origin = new URL(url).origin;
      url = new URL(form.action ?? url, url).href;
      method = 'POST';
      body = new URLSearchParams(fields).toString();
      contentType = 'application/x-www-form-urlencoded';
      continue;
    }
    return { res, visited };
  }
  throw new Error(`too many steps: ${visited.join('\n')}`);
}

/** A standard policy for the tests. */
export function policy(resource) {
  return {
    resource,
    scopes: ['openid', 'offline_access', 'email', 'profile', 'groups', 'tool:read', 'tool:write'],
    access: {
      allowedGroups: ['engineering'],
      rules: [
        { path: '/public', public: true },
        { path: '/healthz', public: true },
        { path: '/api', scopes: ['tool:read'] },
        { path: '/api', methods: ['POST', 'PUT', 'DELETE'], scopes: ['tool:read', 'tool:write'] },
        { path: '/admin', groups: ['admins'] },
      ],
    },
  };
}

/** Everything one test file needs: provider, tool, proxy. */
export async function stack({ accessTokenTTL = 300, env = {}, policyFor = policy } = {}) {
  const key = makeKey();
  const port = await freePort();
  const proxyUrl = `http://127.0.0.1:${port}`;
  const resource = proxyUrl;
  const upstream = await startUpstream();
  const op = await startProvider({ proxyUrl, resource, key, accessTokenTTL });
  const files = {
    'client-id': 'tool',
    'client-secret': 'tool-secret\n',
    'issuer-url': `${op.issuer}\n`,
    'cookie-secret': COOKIE_SECRET,
    'policy.json': policyFor(resource),
  };
  const proxy = await startProxy({
    port,
    upstreamPort: upstream.port,
    files,
    env: {
      KEYWAY_POST_LOGOUT_REDIRECT_URL: `${proxyUrl}/public/signed-out`,
      KEYWAY_SCOPES: "openid email profile groups offline_access",
      // oidc-provider issues refresh tokens for offline_access only with prompt=consent.
      KEYWAY_PROMPT: "consent",
      ...env,
    },
  });
  return {
    key,
    op,
    upstream,
    proxy,
    files,
    resource,
    url: proxyUrl,
    token(claims = {}, opts = {}) {
      const now = Math.floor(Date.now() / 1000);
      return signJwt({
        iss: op.issuer,
        sub: 'svc-user',
        aud: resource,
        iat: now,
        exp: now + 300,
        scope: 'tool:read tool:write',
        groups: ['engineering'],
        // A person's token is for this app only from a client it admits: by default, itself.
        client_id: 'tool',
        jti: crypto.randomUUID(),
        ...claims,
      }, { key, ...opts });
    },
    async close() {
      await proxy.stop();
      await op.close();
      await upstream.close();
    },
  };
}
