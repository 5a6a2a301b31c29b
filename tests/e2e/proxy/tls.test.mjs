// keyway-proxy serving HTTPS: HTTP/2 by ALPN, Secure `__Host-` cookies, and a certificate that is
// re-read when its files change (no restart).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http2 from 'node:http2';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { after, before, describe, it } from 'node:test';

import { Jar, browse, h2Request, stack } from './harness.mjs';

function makeCert(dir, name) {
  const key = path.join(dir, `${name}.key`);
  const crt = path.join(dir, `${name}.crt`);
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-keyout', key, '-out', crt, '-days', '1', '-subj', `/CN=${name}`, '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
  return { key: fs.readFileSync(key), crt: fs.readFileSync(crt) };
}

function peerCert(port, ca) {
  return new Promise((resolve, reject) => {
    const sock = tls.connect({ host: '127.0.0.1', port, ca, ALPNProtocols: ['h2', 'http/1.1'] }, () => {
      const info = { cn: sock.getPeerCertificate().subject.CN, alpn: sock.alpnProtocol };
      sock.end();
      resolve(info);
    });
    sock.on('error', reject);
  });
}

const haveOpenssl = (() => {
  try { execFileSync('openssl', ['version'], { stdio: 'ignore' }); return true; } catch { return false; }
})();

describe('TLS', { skip: haveOpenssl ? false : 'the openssl CLI is needed to make test certificates' }, () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'keyway-proxy-tls-'));
  const certFile = path.join(dir, 'tls.crt');
  const keyFile = path.join(dir, 'tls.key');
  let first;
  let second;
  let s;
  before(async () => {
    first = makeCert(dir, 'first');
    second = makeCert(dir, 'second');
    fs.writeFileSync(certFile, first.crt);
    fs.writeFileSync(keyFile, first.key);
    s = await stack({ env: { KEYWAY_TLS_CERT_FILE: certFile, KEYWAY_TLS_KEY_FILE: keyFile } });
  });
  after(async () => {
    await s?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const port = () => Number(new URL(s.url).port);

  it('negotiates HTTP/2 by ALPN and forwards', async () => {
    assert.deepEqual(await peerCert(port(), first.crt), { cn: 'first', alpn: 'h2' });
    const client = http2.connect(`https://127.0.0.1:${port()}`, { ca: first.crt });
    const { status, body } = await h2Request(client, { ':path': '/api/tls', authorization: `Bearer ${s.token()}` });
    client.close();
    assert.equal(status, 200);
    const echo = JSON.parse(body);
    assert.equal(echo.headers['x-forwarded-proto'], 'https');
    assert.equal(echo.headers['x-forwarded-user'], 'svc-user');
  });

  it('sets Secure __Host- cookies', async () => {
    const res = await new Promise((resolve, reject) => {
      https.get(`https://127.0.0.1:${port()}/page`, { ca: first.crt, headers: { accept: 'text/html' } }, resolve).on('error', reject);
    });
    res.resume();
    assert.equal(res.statusCode, 302);
    const cookie = res.headers['set-cookie'][0];
    assert.match(cookie, /^__Host-_keyway_proxy_login_[A-Za-z0-9_-]{12}=[^;]+; Path=\/; HttpOnly; SameSite=Lax; Secure; Max-Age=600$/);
  });

  it('sets the session as a Secure __Host- cookie (HttpOnly, SameSite=Lax, Path=/) after the callback', async () => {
    const get = (url, headers) => new Promise((resolve, reject) => {
      https.get(url, { ca: first.crt, headers }, (res) => {
        let body = '';
        res.on('data', (d) => { body += d; });
        res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body }));
      }).on('error', reject);
    });
    const base = `https://127.0.0.1:${port()}`;
    const start = await get(`${base}/page`, { accept: 'text/html' });
    assert.equal(start.status, 302);
    const login = start.headers['set-cookie'][0].split(';')[0];
    // The provider's login and consent, by HTTP; its redirect back names the proxy's http://
    // external URL (the stack's resource), so it is followed here over https by hand.
    const jar = new Jar();
    const { location } = await browse(jar, start.headers.location, { login: 'alice', stopAt: `${s.url}/oauth2/callback` });
    assert.ok(location, 'the provider redirected to the callback');
    const cb = await get(location.replace(s.url, base), { cookie: login });
    assert.equal(cb.status, 302, cb.body);
    const session = cb.headers['set-cookie'].find((c) => c.startsWith('__Host-_keyway_proxy='));
    assert.match(session, /^__Host-_keyway_proxy=[A-Za-z0-9_-]+; Path=\/; HttpOnly; SameSite=Lax; Secure; Max-Age=43200$/);
    assert.ok(cb.headers['set-cookie'].some((c) => /^__Host-_keyway_proxy_login_[A-Za-z0-9_-]{12}=; Path=\/; HttpOnly; SameSite=Lax; Secure; Max-Age=0$/.test(c)),
      cb.headers['set-cookie'].join('\n'));
    const page = await get(`${base}/page`, { accept: 'text/html', cookie: session.split(';')[0] });
    assert.equal(page.status, 200);
    assert.equal(JSON.parse(page.body).headers['x-forwarded-user'], 'alice');
  });

  it('serves a replaced certificate without a restart', async () => {
    fs.writeFileSync(keyFile, second.key);
    fs.writeFileSync(certFile, second.crt);
    let cn;
    for (let i = 0; i < 40; i += 1) {
      cn = (await peerCert(port(), second.crt).catch(() => ({}))).cn;
      if (cn === 'second') break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.equal(cn, 'second');
  });
});
