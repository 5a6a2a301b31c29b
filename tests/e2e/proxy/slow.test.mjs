// Slow and idle clients beyond the request head: a stalled request body (HTTP/1.1 and HTTP/2)
// gets 408, a slow but moving upload is not a 504 (the upstream timeout runs from the end of the
// body), idle keep-alive and HTTP/2 connections are closed, and so is a client that stops
// reading a response. Every limit is 2 s here.
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';

import { stack } from './harness.mjs';

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Opens a TCP connection, runs `talk(sock)`, resolves with what came back and when it closed. */
function conversation(port, talk, giveUp = 10_000) {
  const started = Date.now();
  return new Promise((resolve) => {
    let data = '';
    const sock = net.connect(port, '127.0.0.1', () => talk(sock));
    sock.setEncoding('latin1');
    sock.on('data', (d) => { data += d; });
    const done = (how) => resolve({ how, data, ms: Date.now() - started });
    sock.on('close', () => done('closed'));
    sock.on('error', () => {});
    setTimeout(() => { sock.destroy(); done('still open'); }, giveUp);
  });
}

describe('slow clients', () => {
  let s;
  let port;
  before(async () => {
    s = await stack({
      env: {
        KEYWAY_HEADER_READ_TIMEOUT: '2',
        KEYWAY_CLIENT_BODY_TIMEOUT: '2',
        KEYWAY_SEND_TIMEOUT: '2',
        KEYWAY_IDLE_TIMEOUT: '2',
        KEYWAY_UPSTREAM_TIMEOUT: '2',
      },
    });
    port = Number(new URL(s.url).port);
  });
  after(async () => { await s?.close(); });

  it('answers a stalled HTTP/1.1 request body with 408 and closes', async () => {
    const r = await conversation(port, (sock) => {
      sock.write('POST /public/upload HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n0123456789');
    });
    assert.equal(r.how, 'closed');
    assert.ok(r.ms >= 1500 && r.ms < 6000, `closed after ${r.ms} ms`);
    assert.match(r.data, /^HTTP\/1\.1 408 Request Timeout\r\n/);
    assert.match(r.data, /\r\nconnection: close\r\n/i);
    assert.ok(r.data.endsWith('{"error":"request_timeout","error_description":"the request body stalled"}'), r.data);
    assert.match(await s.proxy.metrics(), /keyway_proxy_requests_total\{outcome="bad_request"\} 1\n/);
  });

  it('lets a slow but moving upload through although it takes longer than the upstream timeout', async () => {
    const r = await conversation(port, async (sock) => {
      sock.write('POST /public/upload HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\n');
      for (let i = 0; i < 5; i += 1) {
        await sleep(900);
        sock.write('x');
      }
    });
    assert.equal(r.how, 'closed');
    assert.ok(r.ms >= 4500, `took ${r.ms} ms`);
    assert.match(r.data, /^HTTP\/1\.1 200 OK\r\n/);
    assert.match(r.data, /"body":"xxxxx"/);
  });

  it('still answers 504 when the tool sends no response headers within the upstream timeout', async () => {
    const started = Date.now();
    const res = await fetch(`${s.url}/public/slow`);
    const ms = Date.now() - started;
    assert.equal(res.status, 504);
    assert.deepEqual(await res.json(), { error: 'upstream_timeout', error_description: 'the tool did not answer in time' });
    assert.ok(ms >= 1500 && ms < 2900, `after ${ms} ms`);
  });

  it('closes an idle HTTP/1.1 keep-alive connection', async () => {
    const r = await conversation(port, (sock) => {
      sock.write('GET /public/x HTTP/1.1\r\nHost: x\r\n\r\n');
    });
    assert.equal(r.how, 'closed');
    assert.match(r.data, /^HTTP\/1\.1 200 OK\r\n/);
    assert.ok(r.ms >= 1500 && r.ms < 6000, `closed after ${r.ms} ms`);
  });

  it('closes a connection that sends nothing', async () => {
    const r = await conversation(port, () => {});
    assert.equal(r.how, 'closed');
    assert.equal(r.data, '');
    assert.ok(r.ms >= 1500 && r.ms < 6000, `closed after ${r.ms} ms`);
  });

  it('closes an HTTP/2 connection that stops after the preface', async () => {
    const r = await conversation(port, (sock) => {
      sock.write('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
    });
    assert.equal(r.how, 'closed');
    assert.ok(r.ms >= 1500 && r.ms < 6000, `closed after ${r.ms} ms`);
  });

  it('closes an idle HTTP/2 connection, and answers a stalled HTTP/2 body with 408', async () => {
    const client = http2.connect(s.url);
    const closed = new Promise((resolve) => client.on('close', () => resolve(Date.now())));
    client.on('error', () => {});
    const stalled = await new Promise((resolve, reject) => {
      const req = client.request({ ':method': 'POST', ':path': '/public/upload', 'content-length': '1000' });
      let body = '';
      let status;
      req.on('response', (h) => { status = h[':status']; });
      req.setEncoding('utf8');
      req.on('data', (d) => { body += d; });
      req.on('end', () => resolve({ status, body }));
      req.on('error', reject);
      req.write('0123456789');
    });
    assert.equal(stalled.status, 408);
    assert.deepEqual(JSON.parse(stalled.body), { error: 'request_timeout', error_description: 'the request body stalled' });
    const idleFrom = Date.now();
    const ok = await new Promise((resolve, reject) => {
      const req = client.request({ ':path': '/public/x' });
      req.on('response', (h) => resolve(h[':status']));
      req.on('error', reject);
      req.resume();
    });
    assert.equal(ok, 200);
    const at = await Promise.race([closed, sleep(8000).then(() => null)]);
    assert.ok(at, 'the idle connection was closed');
    assert.ok(at - idleFrom >= 1500 && at - idleFrom < 6000, `closed after ${at - idleFrom} ms`);
  });

  it('closes the connection of a client that stops reading a response', async () => {
    let received = 0;
    const r = await conversation(port, (sock) => {
      sock.write('GET /public/download HTTP/1.1\r\nHost: x\r\n\r\n');
      sock.once('data', (d) => {
        received += d.length;
        sock.pause();
        // Read again only once the proxy had time to give up.
        setTimeout(() => { sock.on('data', (x) => { received += x.length; }); sock.resume(); }, 5000);
      });
    }, 20_000);
    assert.equal(r.how, 'closed');
    assert.ok(r.ms < 15_000, `closed after ${r.ms} ms`);
    assert.ok(received < 64 << 20, `only part of the 64 MiB arrived (${received} bytes)`);
  });
});
