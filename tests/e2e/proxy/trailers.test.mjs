// Trailer fields through the keyway-proxy binary, with its HTTP/1.1 fast path on and off
// (KEYWAY_HTTP1_FAST_PATH): a Node tool sends a chunked body with a trailer it announced; a
// client that sent `TE: trailers` receives it, on a bodiless request (the fast path's loop and
// exchange) and on an upload (hyper's), and the tool is told the client accepts trailers; a
// client that did not send `TE: trailers` gets the body without them (RFC 9110 §6.5, RFC 9112
// §7.1.2).
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';

import { COOKIE_SECRET, freePort, listen, makeKey, policy, startProvider, startProxy } from './harness.mjs';

/** A tool that answers every request with `hello` and the trailer `X-Checksum: c0ffee`. */
async function trailingTool() {
  const port = await freePort();
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(200, {
        'content-type': 'text/plain',
        trailer: 'X-Checksum',
        'x-tool-saw-te': req.headers.te ?? '',
      });
      res.write('hello');
      res.addTrailers({ 'X-Checksum': 'c0ffee' });
      res.end();
    });
  });
  await listen(server, port);
  return { port, close: () => new Promise((resolve) => { server.closeAllConnections(); server.close(resolve); }) };
}

/** Sends `request` as written and returns everything until the proxy closes. */
function exchange(url, request) {
  const { port } = new URL(url);
  return new Promise((resolve, reject) => {
    const sock = net.connect(Number(port), '127.0.0.1', () => sock.write(request));
    let got = '';
    sock.on('data', (d) => { got += d; });
    sock.on('end', () => resolve(got));
    sock.on('error', reject);
    setTimeout(() => { sock.destroy(); reject(new Error(`timeout: ${got}`)); }, 5000);
  });
}

for (const fastPath of ['true', 'false']) {
  describe(`trailers (KEYWAY_HTTP1_FAST_PATH=${fastPath})`, () => {
    let tool;
    let op;
    let proxy;
    before(async () => {
      tool = await trailingTool();
      const port = await freePort();
      const proxyUrl = `http://127.0.0.1:${port}`;
      op = await startProvider({ proxyUrl, resource: proxyUrl, key: makeKey() });
      proxy = await startProxy({
        port,
        upstreamPort: tool.port,
        files: {
          'client-id': 'tool',
          'client-secret': 'tool-secret\n',
          'issuer-url': `${op.issuer}\n`,
          'cookie-secret': COOKIE_SECRET,
          'policy.json': policy(proxyUrl),
        },
        env: { KEYWAY_HTTP1_FAST_PATH: fastPath },
      });
    });
    after(async () => {
      await proxy?.stop();
      await op?.close();
      await tool?.close();
    });

    for (const [what, head] of [
      ['a bodiless request', 'GET /public/t HTTP/1.1\r\n'],
      ['an upload', 'POST /public/t HTTP/1.1\r\nContent-Length: 2\r\n'],
    ]) {
      it(`a client that accepts trailers gets them, for ${what}`, async () => {
        const body = head.startsWith('POST') ? 'hi' : '';
        const got = await exchange(proxy.url,
          `${head}Host: 127.0.0.1\r\nTE: trailers\r\nConnection: close\r\n\r\n${body}`);
        const end = got.indexOf('\r\n\r\n');
        const [headText, rest] = [got.slice(0, end + 2), got.slice(end + 4)];
        assert.match(headText, /^HTTP\/1\.1 200 /);
        assert.match(headText, /\r\ntrailer: X-Checksum\r\n/i);
        assert.match(headText, /\r\ntransfer-encoding: chunked\r\n/i);
        assert.match(headText, /\r\nx-tool-saw-te: trailers\r\n/i, 'the tool learns the client accepts trailers');
        assert.match(rest, /^5\r\nhello\r\n0\r\nx-checksum: c0ffee\r\n\r\n$/i);
      });
    }

    it('a client that did not say it accepts trailers gets none', async () => {
      const got = await exchange(proxy.url, 'GET /public/t HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n');
      const headText = got.slice(0, got.indexOf('\r\n\r\n') + 2);
      assert.match(headText, /\r\nx-tool-saw-te: \r\n/i);
      assert.ok(got.endsWith('\r\n5\r\nhello\r\n0\r\n\r\n'), got);
    });
  });
}
