// keyway-proxy in front of real Python tool servers (issue 13, items 7–10): a rule must hold
// however the tool reads the request. hypercorn honours `Upgrade: h2c` and its app routes without
// regard to case (as Express and ASP.NET do); Flask runs the POST view for `post` and the GET
// view for HEAD; wsgiref reads `X_Forwarded_User` as HTTP_X_FORWARDED_USER. Each tool prints what
// ran, so every case asserts what the tool did, not only what the proxy answered. The servers
// come from the venv that tests/setup.sh makes (.venv: hypercorn, flask).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http2 from 'node:http2';
import net from 'node:net';
import path from 'node:path';
import readline from 'node:readline';
import { after, before, describe, it } from 'node:test';

import {
  COOKIE_SECRET, freePort, h2Request, makeKey, raw, signJwt, startProvider, startProxy, terminate,
} from './harness.mjs';

const PYTHON = path.resolve(import.meta.dirname, '../../../.venv/bin/python');
const TOOLS = path.join(import.meta.dirname, 'tools');

/** Starts a tool server (tools/NAME.py) and resolves once it accepts connections. */
async function startTool(name) {
  assert.ok(fs.existsSync(PYTHON), `${PYTHON} is missing: run bash tests/setup.sh`);
  const port = await freePort();
  const proc = spawn(PYTHON, [path.join(TOOLS, `${name}.py`), String(port)], { stdio: ['ignore', 'pipe', 'pipe'] });
  const lines = [];
  let stderr = '';
  readline.createInterface({ input: proc.stdout }).on('line', (line) => {
    try { lines.push(JSON.parse(line)); } catch { /* not a request line */ }
  });
  proc.stderr.on('data', (d) => { stderr += d; });
  const deadline = Date.now() + 15_000;
  for (;;) {
    const up = await new Promise((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => { s.destroy(); resolve(true); });
      s.on('error', () => resolve(false));
    });
    if (up) break;
    if (proc.exitCode !== null || Date.now() > deadline) throw new Error(`${name} did not start: ${stderr}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return {
    port,
    lines,
    stop: () => terminate(proc),
  };
}

/** An open tool with a protected area, protected writes and protected reports. */
function policyFor(resource) {
  return {
    resource,
    scopes: ['openid', 'tool:read', 'tool:write'],
    access: {
      rules: [
        { path: '/', public: true },
        { path: '/admin', groups: ['admins'] },
        { path: '/api', methods: ['POST', 'PUT', 'PATCH', 'DELETE'], scopes: ['tool:write'] },
        { path: '/reports', methods: ['GET'], groups: ['admins'] },
      ],
    },
  };
}

/** Sends raw bytes on a new connection; resolves with everything the peer sent until it closed
 * (or until `until(text)` holds). */
function exchange(port, text, { until } = {}) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1', () => sock.write(text));
    let got = Buffer.alloc(0);
    const done = () => { sock.destroy(); resolve(got.toString('latin1')); };
    sock.on('data', (d) => {
      got = Buffer.concat([got, d]);
      if (until?.(got.toString('latin1'))) done();
    });
    sock.on('end', done);
    sock.on('error', reject);
    sock.setTimeout(5000, () => reject(new Error(`no answer to ${text.split('\r\n')[0]}`)));
  });
}

const statusOf = (response) => Number(response.slice(9, 12));

/** An HTTP/2 frame. */
function frame(type, flags, stream, payload = Buffer.alloc(0)) {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(stream, 5);
  return Buffer.concat([head, payload]);
}

/** HPACK for GET `path` (indexed :method GET and :scheme http, literal :path and :authority). */
function getHeaders(path) {
  const literal = (index, value) => Buffer.concat([Buffer.from([index, value.length]), Buffer.from(value)]);
  return Buffer.concat([Buffer.from([0x82, 0x86]), literal(0x04, path), literal(0x01, 'a')]);
}

/** The DATA of each stream in a run of HTTP/2 frames (incomplete frames ignored). */
function streamData(buf) {
  const data = {};
  for (let at = 0; at + 9 <= buf.length;) {
    const len = buf.readUIntBE(at, 3);
    if (at + 9 + len > buf.length) break;
    const stream = buf.readUInt32BE(at + 5) & 0x7fffffff;
    if (buf[at + 3] === 0) data[stream] = (data[stream] ?? '') + buf.subarray(at + 9, at + 9 + len).toString();
    at += 9 + len;
  }
  return data;
}

describe('keyway-proxy in front of Python tool servers', () => {
  const key = makeKey();
  let op;
  const stacks = {};

  before(async () => {
    const placeholder = `http://127.0.0.1:${await freePort()}`;
    op = await startProvider({ proxyUrl: placeholder, resource: placeholder, key });
    for (const name of ['asgi_tool', 'flask_tool', 'wsgi_tool']) {
      const tool = await startTool(name);
      const port = await freePort();
      const url = `http://127.0.0.1:${port}`;
      const proxy = await startProxy({
        port,
        upstreamPort: tool.port,
        files: {
          'client-id': 'tool',
          'client-secret': 'tool-secret',
          'issuer-url': op.issuer,
          'cookie-secret': COOKIE_SECRET,
          'policy.json': policyFor(url),
        },
      });
      stacks[name] = { tool, proxy, port, url };
    }
  });

  after(async () => {
    for (const { tool, proxy } of Object.values(stacks)) {
      await proxy.stop();
      await tool.stop();
    }
    await op?.close();
  });

  /** A bearer token for the proxy of `name`. */
  function token(name, claims = {}) {
    const now = Math.floor(Date.now() / 1000);
    return signJwt({
      iss: op.issuer, aud: stacks[name].url, sub: 'bob', iat: now, exp: now + 300,
      client_id: 'tool', scope: 'tool:read', groups: ['engineering'], ...claims,
    }, { key });
  }

  /** One request over HTTP/2 (prior knowledge) to the proxy of `name`. */
  async function viaH2(name, headers) {
    const client = http2.connect(stacks[name].url);
    try {
      return await h2Request(client, headers);
    } finally {
      client.close();
    }
  }

  describe('item 7: only websocket upgrades (hypercorn)', () => {
    it('control: a websocket upgrade is spliced, and hypercorn echoes over it', async () => {
      const { port } = stacks.asgi_tool;
      const request = ['GET /ws HTTP/1.1', 'Host: a', 'Connection: Upgrade', 'Upgrade: websocket',
        'Sec-WebSocket-Version: 13', 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==', '', ''].join('\r\n');
      const masked = Buffer.from([0x81, 0x82, 1, 2, 3, 4, 'h'.charCodeAt(0) ^ 1, 'i'.charCodeAt(0) ^ 2]);
      const got = await new Promise((resolve, reject) => {
        const sock = net.connect(port, '127.0.0.1', () => sock.write(request));
        let buf = '';
        sock.on('data', (d) => {
          buf += d.toString('latin1');
          if (buf.includes('\r\n\r\n') && !buf.includes('echo')) {
            if (!buf.startsWith('HTTP/1.1 101')) { sock.destroy(); resolve(buf); return; }
            if (!sock.sent) { sock.sent = true; sock.write(masked); }
          }
          if (buf.includes('echo: hi')) { sock.destroy(); resolve(buf); }
        });
        sock.on('error', reject);
        sock.setTimeout(5000, () => reject(new Error(`no echo: ${buf}`)));
      });
      assert.match(got, /^HTTP\/1\.1 101 /);
      assert.match(got, /\r\nsec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK\+xOo=\r\n/i);
      assert.match(got, /echo: hi/);
    });

    it('Upgrade: h2c on a public path opens no tunnel to a protected path', async () => {
      const { port, tool } = stacks.asgi_tool;
      const upgrade = ['GET /open HTTP/1.1', 'Host: a', 'Connection: Upgrade, HTTP2-Settings', 'Upgrade: h2c',
        'HTTP2-Settings: AAMAAABkAAQAAP__', '', ''].join('\r\n');
      const { first, tunnelled, second } = await new Promise((resolve, reject) => {
        const sock = net.connect(port, '127.0.0.1', () => sock.write(upgrade));
        let buf = Buffer.alloc(0);
        let state = { first: null, tunnelled: null, second: null };
        let rest = 0;
        sock.on('data', (d) => {
          buf = Buffer.concat([buf, d]);
          const text = buf.toString('latin1');
          if (state.first === null) {
            const end = text.indexOf('\r\n\r\n');
            if (end < 0) return;
            state.first = text.slice(0, end);
            rest = end + 4;
            if (state.first.startsWith('HTTP/1.1 101')) {
              // What hypercorn expects now: the HTTP/2 preface, then a request for the protected
              // /admin on stream 3 (stream 1 is the upgraded request).
              sock.write(Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), frame(4, 0, 0),
                frame(1, 0x5, 3, getHeaders('/admin'))]));
              setTimeout(() => { state.tunnelled = streamData(buf.subarray(rest)); sock.destroy(); resolve(state); }, 1500);
            } else {
              // Still HTTP/1.1 with the proxy: the next request is the proxy's to decide.
              const length = Number(/\r\ncontent-length: (\d+)/i.exec(state.first)?.[1] ?? 0);
              rest += length;
              sock.write('GET /admin HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n');
            }
            return;
          }
          if (state.tunnelled === null && buf.length > rest) state.second = buf.subarray(rest).toString('latin1');
        });
        sock.on('end', () => resolve(state));
        sock.on('error', reject);
        sock.setTimeout(5000, () => reject(new Error('no answer')));
      });
      assert.equal(tunnelled, null, `an HTTP/2 tunnel to hypercorn carried: ${JSON.stringify(tunnelled)}`);
      assert.doesNotMatch(first, /^HTTP\/1\.1 101/, 'the proxy switched protocols for h2c');
      assert.match(first, /^HTTP\/1\.1 200 /);
      assert.equal(statusOf(second), 401, second);
      // hypercorn served /open over HTTP/1.1, saw no upgrade, and never saw /admin.
      const open = tool.lines.find((l) => l.path === '/open');
      assert.equal(open.http_version, '1.1');
      assert.equal(open.headers.upgrade, undefined);
      assert.equal(open.headers['http2-settings'], undefined);
      assert.deepEqual(tool.lines.filter((l) => l.path.toLowerCase().startsWith('/admin')), []);
    });
  });

  describe('item 10: case and encoding variants of a restricted path (hypercorn routes without case)', () => {
    const variants = ['/ADMIN', '/Admin/x', '/%41dmin', '/aDmIn;v=1', '/adm%C4%B1n'];

    it('reach the tool only with the rule\'s protection, over HTTP/1.1 and HTTP/2', async () => {
      const { url, tool } = stacks.asgi_tool;
      const engineer = token('asgi_tool');
      for (const p of variants) {
        const anonymous = await raw(url, p);
        assert.equal(anonymous.status, 401, `${p}: ${anonymous.body}`);
        const h2 = await viaH2('asgi_tool', { ':path': p });
        assert.equal(h2.status, 401, `HTTP/2 ${p}: ${h2.body}`);
        const notAdmin = await raw(url, p, { headers: { authorization: `Bearer ${engineer}` } });
        assert.equal(notAdmin.status, 403, `${p}: ${notAdmin.body}`);
        assert.equal(JSON.parse(notAdmin.body).error, 'access_denied');
      }
      assert.deepEqual(tool.lines.filter((l) => l.path.toLowerCase().startsWith('/adm')), []);
      // An escape of an escape is refused: a tool that decodes twice would see /admin.
      const twice = await raw(url, '/%2541dmin');
      assert.equal(twice.status, 400);
      assert.equal(JSON.parse(twice.body).error_description, 'malformed request path');
    });

    it('control: an admin reaches the admin area in any case', async () => {
      const { url } = stacks.asgi_tool;
      const admin = token('asgi_tool', { sub: 'root', groups: ['admins'] });
      const r = await raw(url, '/ADMIN', { headers: { authorization: `Bearer ${admin}` } });
      assert.equal(r.status, 200);
      assert.equal(r.body, 'admin area: /ADMIN');
      // A public page stays public; its case variants are public by the root rule only.
      assert.equal((await raw(url, '/Open')).body, 'page: /Open');
    });
  });

  describe('item 8: methods as Flask matches them', () => {
    /** A raw HTTP/1.1 request with `method` exactly as written (Node's client upper-cases). */
    async function send(method, target, { body = '', headers = [] } = {}) {
      const lines = [`${method} ${target} HTTP/1.1`, 'Host: a', 'Connection: close', ...headers];
      if (body) lines.push(`Content-Length: ${body.length}`);
      return exchange(stacks.flask_tool.port, `${lines.join('\r\n')}\r\n\r\n${body}`);
    }
    const ran = (view) => stacks.flask_tool.tool.lines.filter((l) => l.view === view);

    it('post to a POST-restricted path does not run the POST view', async () => {
      const reader = token('flask_tool');
      for (const [method, body] of [['post', ''], ['post', 'name=x'], ['Post', 'name=x'], ['pOST', '']]) {
        for (const auth of [[], [`Authorization: Bearer ${reader}`]]) {
          const r = await send(method, '/api/items', { body, headers: auth });
          assert.equal(statusOf(r), 400, `${method} ${auth.length ? 'with a token' : ''}: ${r}`);
          assert.match(r, /"error":"invalid_request"/);
        }
      }
      const h2 = await viaH2('flask_tool', { ':method': 'post', ':path': '/api/items' });
      assert.equal(h2.status, 400, h2.body);
      assert.deepEqual(ran('create item'), []);
      // Upper case: the rule applies (no token 401, a reader 403), then a writer runs the view.
      assert.equal(statusOf(await send('POST', '/api/items', { body: 'name=x' })), 401);
      assert.equal(statusOf(await send('POST', '/api/items', { body: 'name=x', headers: [`Authorization: Bearer ${reader}`] })), 403);
      assert.deepEqual(ran('create item'), []);
      const writer = token('flask_tool', { scope: 'tool:read tool:write' });
      assert.equal(statusOf(await send('POST', '/api/items', { body: 'name=x', headers: [`Authorization: Bearer ${writer}`] })), 201);
      assert.deepEqual(ran('create item').map((l) => l.method), ['POST']);
    });

    it('a GET rule covers HEAD, which Flask answers with the GET view', async () => {
      const engineer = token('flask_tool');
      assert.equal(statusOf(await send('HEAD', '/reports/q1')), 401);
      assert.equal(statusOf(await send('HEAD', '/reports/q1', { headers: [`Authorization: Bearer ${engineer}`] })), 403);
      const h2 = await viaH2('flask_tool', { ':method': 'HEAD', ':path': '/reports/q1' });
      assert.equal(h2.status, 401);
      assert.deepEqual(ran('report'), []);
      const admin = token('flask_tool', { sub: 'root', groups: ['admins'] });
      assert.equal(statusOf(await send('HEAD', '/reports/q1', { headers: [`Authorization: Bearer ${admin}`] })), 200);
      assert.deepEqual(ran('report').map((l) => l.method), ['HEAD']);
    });
  });

  describe('item 9: identity field spellings (wsgiref, CGI names)', () => {
    const spoofs = { X_Forwarded_User: 'admin', 'X-Forwarded_Email': 'admin@example.com', x_auth_request_user: 'admin', 'X.Forwarded.Groups': 'admins' };
    const identity = (env) => Object.fromEntries(Object.entries(env)
      .filter(([k]) => /^HTTP_X_(FORWARDED_(USER|EMAIL|GROUPS)|AUTH_REQUEST)/.test(k)));

    it('no client spelling reaches HTTP_X_FORWARDED_USER, on a public path', async () => {
      const { url } = stacks.wsgi_tool;
      const bodiless = await raw(url, '/page', { headers: spoofs });
      const withBody = await new Promise((resolve, reject) => {
        fetch(`${url}/page`, { method: 'PUT', headers: spoofs, body: 'x' }).then(async (r) => resolve({ status: r.status, body: await r.text() }), reject);
      });
      const h2 = await viaH2('wsgi_tool', { ':path': '/page', ...Object.fromEntries(Object.entries(spoofs).map(([k, v]) => [k.toLowerCase(), v])) });
      for (const [how, r] of [['HTTP/1.1', bodiless], ['HTTP/1.1 with a body', withBody], ['HTTP/2', h2]]) {
        assert.equal(r.status, 200, `${how}: ${r.body}`);
        assert.deepEqual(identity(JSON.parse(r.body).environ), {}, how);
      }
    });

    it('with a token, the tool reads only the proxy\'s identity', async () => {
      const { url } = stacks.wsgi_tool;
      const admin = token('wsgi_tool', { sub: 'root', groups: ['admins'] });
      const r = await raw(url, '/admin/whoami', { headers: { ...spoofs, authorization: `Bearer ${admin}` } });
      assert.equal(r.status, 200);
      // (wsgiref would join a client's copy with a comma: `root,admin`.)
      assert.deepEqual(identity(JSON.parse(r.body).environ), {
        HTTP_X_FORWARDED_USER: 'root',
        HTTP_X_FORWARDED_GROUPS: 'admins',
        HTTP_X_AUTH_REQUEST_USER: 'root',
        HTTP_X_AUTH_REQUEST_GROUPS: 'admins',
      });
    });
  });
});
