// Streaming through keyway-proxy: websockets (HTTP/1.1 upgrade), server-sent events arriving as
// they are sent, HTTP/2 (cleartext, prior knowledge), a 100 MB upload with bounded proxy memory,
// graceful shutdown, and configuration reload.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';

import { h2Request, stack, wsFrame, wsParse } from './harness.mjs';

function rssKiB(pid, field = 'VmRSS') {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(status.match(new RegExp(`${field}:\\s+(\\d+) kB`))[1]);
}

describe('streaming', () => {
  let s;
  let token;
  before(async () => {
    s = await stack();
    token = s.token();
  });
  after(async () => { await s?.close(); });

  it('websockets pass through after authentication', async () => {
    const port = Number(new URL(s.url).port);
    const { head, frames } = await new Promise((resolve, reject) => {
      const sock = net.connect(port, '127.0.0.1', () => {
        sock.write([
          'GET /ws HTTP/1.1', 'Host: 127.0.0.1', 'Upgrade: websocket', 'Connection: Upgrade',
          'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==', 'Sec-WebSocket-Version: 13',
          `Authorization: Bearer ${token}`, 'X-Forwarded-User: spoofed', '', ''].join('\r\n'));
      });
      let buf = Buffer.alloc(0);
      let headText = null;
      const got = [];
      sock.on('data', (d) => {
        buf = Buffer.concat([buf, d]);
        if (headText === null) {
          const end = buf.indexOf('\r\n\r\n');
          if (end < 0) return;
          headText = buf.subarray(0, end).toString();
          buf = buf.subarray(end + 4);
          sock.write(wsFrame('one', true));
          sock.write(wsFrame('two', true));
        }
        for (let f = wsParse(buf); f; f = wsParse(buf)) {
          buf = f.rest;
          got.push(f.text);
          if (got.length === 2) { sock.end(); resolve({ head: headText, frames: got }); }
        }
      });
      sock.on('error', reject);
      setTimeout(() => reject(new Error(`timeout; head=${headText}`)), 5000);
    });
    assert.match(head, /^HTTP\/1\.1 101 Switching Protocols/);
    assert.match(head, /sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK\+xOo=/i);
    assert.match(head, /x-upstream-user: svc-user/i);
    assert.deepEqual(frames, ['echo: one', 'echo: two']);
  });

  it('websocket upgrades without credentials get 401', async () => {
    const res = await fetch(`${s.url}/ws`, { headers: { upgrade: 'websocket', connection: 'upgrade' } }).catch((e) => e);
    // fetch refuses to send upgrade headers; use http instead.
    assert.ok(res);
    const status = await new Promise((resolve) => {
      http.get(`${s.url}/ws`, { headers: { Upgrade: 'websocket', Connection: 'Upgrade', 'Sec-WebSocket-Key': 'x', 'Sec-WebSocket-Version': '13' } }, (r) => resolve(r.statusCode))
        .on('upgrade', () => resolve(101));
    });
    assert.equal(status, 401);
  });

  it('server-sent events arrive as they are sent', async () => {
    const res = await fetch(`${s.url}/sse`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'text/event-stream');
    const arrivals = [];
    const decoder = new TextDecoder();
    for await (const chunk of res.body) {
      for (const line of decoder.decode(chunk).split('\n').filter((l) => l.startsWith('data:'))) {
        arrivals.push({ at: Date.now(), sent: Number(line.split(' at ')[1]) });
      }
    }
    assert.equal(arrivals.length, 3);
    for (const a of arrivals) assert.ok(a.at - a.sent < 200, `event delayed ${a.at - a.sent} ms`);
    assert.ok(arrivals[2].at - arrivals[0].at >= 400, 'events were not buffered together');
  });

  it('serves HTTP/2 (prior knowledge) and forwards to the tool', async () => {
    const client = http2.connect(s.url);
    const { status, body } = await h2Request(client, { ':path': '/api/h2?x=1', authorization: `Bearer ${token}` });
    client.close();
    assert.equal(status, 200);
    const echo = JSON.parse(body);
    assert.equal(echo.url, '/api/h2?x=1');
    assert.equal(echo.headers['x-forwarded-user'], 'svc-user');
    assert.equal(echo.headers.host, new URL(s.url).host);
  });

  it('refuses an HTTP/2 request whose Host names another authority than :authority (RFC 9113 §8.3.1)', async () => {
    const client = http2.connect(s.url);
    const ask = (headers) => h2Request(client, { ':path': '/api/h2', authorization: `Bearer ${token}`, ...headers });
    // (node sends `host` instead of `:authority` when given one, so both are given here.)
    const authority = new URL(s.url).host;
    const other = await ask({ ':authority': authority, host: 'evil.example' });
    const same = await ask({ ':authority': authority, host: authority.toUpperCase() });
    client.close();
    assert.equal(other.status, 400);
    assert.equal(JSON.parse(other.body).error, 'invalid_request');
    assert.equal(same.status, 200);
  });

  it('streams a 100 MB upload with bounded memory', async () => {
    const pid = s.proxy.proc.pid;
    const before = rssKiB(pid);
    const size = 100 * 1024 * 1024;
    const chunk = Buffer.alloc(1024 * 1024, 7);
    let peak = before;
    const sampler = setInterval(() => { peak = Math.max(peak, rssKiB(pid)); }, 20);
    const result = await new Promise((resolve, reject) => {
      const req = http.request(`${s.url}/upload`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-length': String(size) },
      }, (res) => {
        let body = '';
        res.on('data', (d) => { body += d; });
        res.on('end', () => resolve({ status: res.statusCode, body }));
      });
      req.on('error', reject);
      let sent = 0;
      const pump = () => {
        while (sent < size) {
          sent += chunk.length;
          if (!req.write(chunk)) { req.once('drain', pump); return; }
        }
        req.end();
      };
      pump();
    });
    clearInterval(sampler);
    assert.equal(result.status, 200);
    assert.equal(JSON.parse(result.body).bytes, size);
    const growth = peak - before;
    assert.ok(growth < 16 * 1024, `proxy RSS grew by ${growth} KiB during the upload (from ${before} KiB)`);
  });

  it('reloads the mounted policy without a restart', async () => {
    const policyPath = path.join(s.proxy.dir, 'policy.json');
    const original = fs.readFileSync(policyPath, 'utf8');
    const p = JSON.parse(original);
    p.access.rules.push({ path: '/open', public: true });
    fs.writeFileSync(policyPath, JSON.stringify(p));
    let status;
    for (let i = 0; i < 40; i += 1) {
      status = (await fetch(`${s.url}/open/x`)).status;
      if (status === 200) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.equal(status, 200);
    // A broken change is refused and the previous policy stays.
    fs.writeFileSync(policyPath, '{"access": {"rules": [{"path": "nope"}]}}');
    await new Promise((resolve) => setTimeout(resolve, 1500));
    assert.equal((await fetch(`${s.url}/open/x`)).status, 200);
    assert.match(await s.proxy.metrics(), /keyway_proxy_config_reloads_total\{result="error"\} 1/);
    fs.writeFileSync(policyPath, original);
  });
});

describe('graceful shutdown', () => {
  it('finishes in-flight requests after SIGTERM', async () => {
    const s = await stack();
    try {
      const pending = fetch(`${s.url}/public/slow`);
      await new Promise((resolve) => setTimeout(resolve, 300));
      s.proxy.proc.kill('SIGTERM');
      const res = await pending;
      assert.equal(res.status, 200);
      assert.equal(await res.text(), 'slow');
      const code = await new Promise((resolve) => {
        if (s.proxy.proc.exitCode !== null) resolve(s.proxy.proc.exitCode);
        else s.proxy.proc.on('exit', resolve);
      });
      assert.equal(code, 0);
    } finally {
      await s.close();
    }
  });
});
