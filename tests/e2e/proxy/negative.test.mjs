// The negative suite: every case asserts status and body. Spoofed identity headers, forged and
// misused tokens, tampered and foreign cookies, broken callbacks, open-redirect attempts, path
// tricks against public paths, oversized headers and slow clients.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';

import { Jar, browse, makeKey, raw, seal, signJwt, stack } from './harness.mjs';

const json = (r) => JSON.parse(r.body);

function session(overrides = {}) {
  const now = Math.floor(Date.now() / 1000);
  return {
    sid: 'sid-1',
    who: { sub: 'mallory', groups: ['engineering'], scopes: ['tool:read'], exp: now + 300 },
    exp: now + 300,
    end: now + 3600,
    ...overrides,
  };
}

const INVALID_TOKEN = { error: 'invalid_token', error_description: 'the access token is invalid or expired' };
const UNAUTHENTICATED = { error: 'unauthenticated', error_description: 'authentication required' };
const BAD_PATH = { error: 'invalid_request', error_description: 'malformed request path' };

describe('negative suite', () => {
  let s;
  before(async () => { s = await stack({ env: { KEYWAY_HEADER_READ_TIMEOUT: '2' } }); });
  after(async () => { await s?.close(); });

  const bearer = (token, path = '/api/items', extra = {}) => raw(s.url, path, { headers: { authorization: `Bearer ${token}`, ...extra } });

  async function assertInvalid(token) {
    const r = await bearer(token);
    assert.equal(r.status, 401);
    assert.deepEqual(json(r), INVALID_TOKEN);
    assert.match(r.headers['www-authenticate'], /^Bearer resource_metadata=".*", scope="tool:read", error="invalid_token"/);
  }

  // A positive control, so that the cases below cannot pass by accident.
  it('control: a well-formed token passes', async () => {
    const r = await bearer(s.token());
    assert.equal(r.status, 200);
    assert.equal(json(r).headers['x-forwarded-user'], 'svc-user');
    // Hop-by-hop headers of the tool's response (and those its Connection header names) are dropped.
    assert.equal(r.headers['x-drop-me'], undefined);
  });

  describe('spoofed identity headers', () => {
    it('are replaced on authenticated requests', async () => {
      const r = await bearer(s.token(), '/api/items', {
        'x-forwarded-user': 'admin', 'x-forwarded-email': 'admin@example.com', 'x-forwarded-groups': 'admins',
        'x-auth-request-user': 'admin', 'x-auth-request-groups': 'admins', 'x-forwarded-access-token': 'forged',
      });
      assert.equal(r.status, 200);
      const h = json(r).headers;
      assert.equal(h['x-forwarded-user'], 'svc-user');
      assert.equal(h['x-auth-request-user'], 'svc-user');
      assert.equal(h['x-forwarded-groups'], 'engineering');
      assert.equal(h['x-forwarded-email'], undefined);
      assert.equal(h['x-forwarded-access-token'], undefined);
    });
    it('are removed on public paths', async () => {
      const r = await raw(s.url, '/public/page', { headers: { 'x-forwarded-user': 'admin', 'x-auth-request-email': 'a@b', 'x-forwarded-for': '6.6.6.6', forwarded: 'for=6.6.6.6' } });
      assert.equal(r.status, 200);
      const h = json(r).headers;
      assert.equal(h['x-forwarded-user'], undefined);
      assert.equal(h['x-auth-request-email'], undefined);
      assert.equal(h.forwarded, undefined);
      assert.equal(h['x-forwarded-for'], '127.0.0.1');
    });
    it('do not authenticate anyone', async () => {
      const r = await raw(s.url, '/api/items', { headers: { 'x-forwarded-user': 'admin', 'x-auth-request-user': 'admin' } });
      assert.equal(r.status, 401);
      assert.deepEqual(json(r), UNAUTHENTICATED);
    });
  });

  describe('forged and misused tokens', () => {
    it('alg none', async () => assertInvalid(signJwt({ iss: s.op.issuer, sub: 'x', aud: s.resource, exp: 9999999999, scope: 'tool:read' }, { alg: 'none', kid: 'k1' })));
    it('HS256 signed with the public key', async () => {
      const pem = s.key.publicKey.export({ type: 'spki', format: 'pem' });
      const now = Math.floor(Date.now() / 1000);
      await assertInvalid(signJwt({ iss: s.op.issuer, sub: 'x', aud: s.resource, exp: now + 300, scope: 'tool:read', groups: ['engineering'] }, { alg: 'HS256', kid: 'k1', secret: pem }));
    });
    it('HS256 signed with the JWK modulus', async () => {
      await assertInvalid(s.token({}, { alg: 'HS256', kid: 'k1', secret: Buffer.from(s.key.jwk.n, 'base64url') }));
    });
    it('unknown kid', async () => assertInvalid(s.token({}, { key: makeKey('k2') })));
    it('known kid, another key', async () => {
      const other = makeKey('k1');
      await assertInvalid(s.token({}, { key: other }));
    });
    it('expired beyond the leeway', async () => {
      const now = Math.floor(Date.now() / 1000);
      await assertInvalid(s.token({ iat: now - 600, exp: now - 120 }));
    });
    it('not yet valid', async () => assertInvalid(s.token({ nbf: Math.floor(Date.now() / 1000) + 600 })));
    it('wrong audience', async () => assertInvalid(s.token({ aud: 'https://other.example.com' })));
    it('wrong issuer', async () => assertInvalid(s.token({ iss: `${s.op.issuer}/` })));
    it('ID token used as an access token', async () => assertInvalid(s.token({ aud: 'tool', nonce: 'n' }, { typ: 'JWT' })));
    it('ID token with the resource audience but typ JWT', async () => assertInvalid(s.token({}, { typ: 'JWT' })));
    it('no exp', async () => assertInvalid(s.token({ exp: undefined })));
    it('tampered payload', async () => {
      const [h, , sig] = s.token().split('.');
      const forged = Buffer.from(JSON.stringify({ iss: s.op.issuer, sub: 'admin', aud: s.resource, exp: 9999999999, scope: 'tool:read', groups: ['admins', 'engineering'] })).toString('base64url');
      await assertInvalid(`${h}.${forged}.${sig}`);
    });
    it('not a JWT', async () => assertInvalid('abc.def'));
    it('malformed Authorization header', async () => {
      const r = await raw(s.url, '/api/items', { headers: { authorization: 'Bearer a b' } });
      assert.equal(r.status, 400);
      assert.deepEqual(json(r), { error: 'invalid_request', error_description: 'malformed Authorization header' });
    });
    it('a cached token with characters added is still a malformed header', async () => {
      const tok = s.token();
      assert.equal((await bearer(tok, '/api/items')).status, 200);
      for (const bad of [`${tok} x`, `${tok}%`, `${tok},`, `  ${tok}"`]) {
        const r = await raw(s.url, '/api/items', { headers: { authorization: `Bearer ${bad}` } });
        assert.equal(r.status, 400, bad.slice(-3));
        assert.deepEqual(json(r), { error: 'invalid_request', error_description: 'malformed Authorization header' });
      }
      assert.equal((await bearer(tok, '/api/items')).status, 200);
    });
    it('missing scope gives 403 insufficient_scope naming the scope', async () => {
      const r = await raw(s.url, '/api/items', { method: 'DELETE', headers: { authorization: `Bearer ${s.token({ scope: 'tool:read' })}` } });
      assert.equal(r.status, 403);
      assert.deepEqual(json(r), { error: 'insufficient_scope', error_description: 'the access token lacks a required scope' });
      assert.match(r.headers['www-authenticate'], /scope="tool:read tool:write", error="insufficient_scope"/);
    });
    it('missing group gives 403', async () => {
      const r = await bearer(s.token(), '/admin/x');
      assert.equal(r.status, 403);
      assert.deepEqual(json(r), { error: 'access_denied', error_description: 'you may not access this resource' });
    });
    it('a person outside the allowed groups gives 403', async () => {
      const r = await bearer(s.token({ groups: ['sales'] }), '/');
      assert.equal(r.status, 403);
      assert.deepEqual(json(r), { error: 'access_denied', error_description: 'you may not access this resource' });
    });
  });

  describe('cookies', () => {
    const api = (cookie) => raw(s.url, '/api/items', { headers: { cookie } });
    it('control: a correctly sealed session passes', async () => {
      const r = await api(`_keyway_proxy=${seal(session())}`);
      assert.equal(r.status, 200);
      assert.equal(json(r).headers['x-forwarded-user'], 'mallory');
    });
    it('tampered cookie', async () => {
      const sealed = Buffer.from(seal(session()), 'base64url');
      sealed[20] ^= 1;
      const r = await api(`_keyway_proxy=${sealed.toString('base64url')}`);
      assert.equal(r.status, 401);
      assert.deepEqual(json(r), UNAUTHENTICATED);
      assert.equal(r.headers['www-authenticate'], `Bearer resource_metadata="${s.url}/.well-known/oauth-protected-resource", scope="tool:read"`);
      assert.ok(r.headers['set-cookie'].some((c) => c.startsWith('_keyway_proxy=;') && c.includes('Max-Age=0')));
    });
    it('cookie from another app with the same secret', async () => {
      const r = await api(`_keyway_proxy=${seal(session(), { clientId: 'other-app' })}`);
      assert.equal(r.status, 401);
      assert.deepEqual(json(r), UNAUTHENTICATED);
    });
    it('cookie sealed with another secret', async () => {
      const r = await api(`_keyway_proxy=${seal(session(), { secret: crypto.randomBytes(32).toString('base64') })}`);
      assert.equal(r.status, 401);
      assert.deepEqual(json(r), UNAUTHENTICATED);
    });
    it('login-state cookie used as a session', async () => {
      const r = await api(`_keyway_proxy=${seal(session(), { purpose: 'login' })}`);
      assert.equal(r.status, 401);
      assert.deepEqual(json(r), UNAUTHENTICATED);
    });
    it('session past its end', async () => {
      const now = Math.floor(Date.now() / 1000);
      const r = await api(`_keyway_proxy=${seal(session({ end: now - 1 }))}`);
      assert.equal(r.status, 401);
      assert.deepEqual(json(r), UNAUTHENTICATED);
    });
  });

  describe('callback', () => {
    async function started() {
      const jar = new Jar();
      const r = await fetch(`${s.url}/oauth2/start?rd=/x`, { redirect: 'manual' });
      jar.update(r);
      return { jar, authz: new URL(r.headers.get('location')) };
    }
    const callback = (jar, query) => raw(s.url, `/oauth2/callback?${query}`, { headers: { cookie: jar.header() } });
    const iss = () => `iss=${encodeURIComponent(s.op.issuer)}`;
    it('without login state', async () => {
      const r = await callback(new Jar(), `code=abc&state=xyz&${iss()}`);
      assert.equal(r.status, 400);
      assert.deepEqual(json(r), { error: 'invalid_request', error_description: 'sign-in state missing or expired; start again' });
    });
    it('without state', async () => {
      const { jar } = await started();
      const r = await callback(jar, `code=abc&${iss()}`);
      assert.equal(r.status, 400);
      assert.deepEqual(json(r), { error: 'invalid_request', error_description: 'state missing' });
    });
    it('with a wrong state', async () => {
      const { jar } = await started();
      const r = await callback(jar, `code=abc&state=wrong&${iss()}`);
      assert.equal(r.status, 400);
      assert.deepEqual(json(r), { error: 'invalid_request', error_description: 'state mismatch' });
    });
    it('with a wrong iss (mix-up)', async () => {
      const { jar, authz } = await started();
      const r = await callback(jar, `code=abc&state=${authz.searchParams.get('state')}&iss=${encodeURIComponent('https://evil.example')}`);
      assert.equal(r.status, 400);
      assert.deepEqual(json(r), { error: 'invalid_request', error_description: 'iss mismatch' });
    });
    it('without iss from an issuer that promises it', async () => {
      const { jar, authz } = await started();
      const r = await callback(jar, `code=abc&state=${authz.searchParams.get('state')}`);
      assert.equal(r.status, 400);
      assert.deepEqual(json(r), { error: 'invalid_request', error_description: 'iss missing' });
    });
    it('with a forged code', async () => {
      const { jar, authz } = await started();
      const r = await callback(jar, `code=forged&state=${authz.searchParams.get('state')}&${iss()}`);
      assert.equal(r.status, 502);
      assert.deepEqual(json(r), { error: 'login_failed', error_description: 'the code exchange failed' });
    });
    it('replayed after success', async () => {
      const jar = new Jar();
      const { visited } = await browse(jar, `${s.url}/replay`, { login: 'alice' });
      const cb = visited.find((v) => v.includes('/oauth2/callback'));
      const r = await raw(s.url, new URL(cb.slice(4)).pathname + new URL(cb.slice(4)).search, { headers: { cookie: jar.header() } });
      assert.equal(r.status, 400);
      assert.deepEqual(json(r), { error: 'invalid_request', error_description: 'sign-in state missing or expired; start again' });
    });
  });

  describe('open redirects', () => {
    for (const rd of ['//evil.example', '/\\evil.example', 'https:evil.example', 'https://evil.example/', '/%2f%2fevil.example', '%2F%2Fevil.example', '/%5Cevil.example', 'javascript:alert(1)']) {
      it(`rd=${rd} returns to the proxy's own root`, async () => {
        const jar = new Jar();
        const { res, visited } = await browse(jar, `${s.url}/oauth2/start?rd=${encodeURIComponent(rd)}`, { login: 'alice' });
        assert.equal(res.status, 200, visited.join('\n'));
        assert.equal(visited.at(-1), `GET ${s.url}/`);
        assert.equal(JSON.parse(await res.text()).url, '/');
      });
    }
    it('a //host request path stays on the proxy', async () => {
      const r = await raw(s.url, '//evil.example/x', { headers: { accept: 'text/html' } });
      assert.equal(r.status, 302);
      assert.equal(r.body, '');
      assert.ok(r.headers.location.startsWith(`${s.op.issuer}/auth?`));
      const jar = new Jar();
      for (const c of r.headers['set-cookie']) jar.cookies.set(c.split('=')[0], c.split(';')[0].split('=').slice(1).join('='));
      const { res, visited } = await browse(jar, r.headers.location, { login: 'alice' });
      assert.equal(visited.at(-1), `GET ${s.url}/evil.example/x`);
      assert.equal(JSON.parse(await res.text()).url, '/evil.example/x');
    });
  });

  describe('path tricks against public paths', () => {
    for (const p of ['/public/../api/items', '/public/%2e%2e/api/items', '/public/%2E%2E/api/items', '/public/.%2e/api/items',
      '/public//../api/items', '/PUBLIC/x', '/public;x/../api/items', '/Public/x', '/publicx']) {
      it(`${p} needs authentication`, async () => {
        const r = await raw(s.url, p);
        assert.equal(r.status, 401);
        assert.deepEqual(json(r), UNAUTHENTICATED);
      });
    }
    for (const p of ['/..;/api/items', '/public/..;/api', '/public%2f..%2fapi', '/public/%2e%2e%2fapi', '/public\\..\\api', '/public/x%00', '/public/..%5capi', '/public/%zz']) {
      it(`${p} is refused`, async () => {
        const r = await raw(s.url, p);
        assert.equal(r.status, 400);
        assert.deepEqual(json(r), BAD_PATH);
      });
    }
    it('the tool receives the normalised path', async () => {
      const r = await raw(s.url, '//public/a/./b/../c;v=1?q=%2e');
      assert.equal(r.status, 200);
      assert.equal(json(r).url, '/public/a/c;v=1?q=%2e');
    });
  });

  describe('protocol abuse', () => {
    it('oversized headers get 431', async () => {
      const r = await raw(s.url, '/public/x', { headers: { 'x-big': 'a'.repeat(40_000) } });
      assert.equal(r.status, 431);
      assert.equal(r.body, '');
    });
    it('Content-Length with Transfer-Encoding: the tool sees one framing and the connection closes', async () => {
      const reply = await new Promise((resolve) => {
        const sock = net.connect(Number(new URL(s.url).port), '127.0.0.1', () => {
          sock.write('POST /public/x HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /api/items HTTP/1.1\r\nHost: x\r\n\r\n');
        });
        let data = '';
        sock.on('data', (d) => { data += d; });
        sock.on('close', () => resolve(data));
        sock.on('error', () => resolve(data));
        setTimeout(() => { sock.destroy(); resolve(data); }, 3000);
      });
      assert.match(reply, /^HTTP\/1\.1 200 OK\r\n/);
      assert.match(reply, /\r\nconnection: close\r\n/);
      assert.doesNotMatch(reply, /content-length":/);
      assert.equal(reply.match(/HTTP\/1\.1 /g).length, 1, 'the smuggled request was not served');
    });
    it('slow clients are cut off', async () => {
      const startedAt = Date.now();
      const reply = await new Promise((resolve) => {
        const sock = net.connect(Number(new URL(s.url).port), '127.0.0.1', () => {
          sock.write('GET /public/x HTTP/1.1\r\nHost: x\r\nX-Slow: ');
        });
        let data = '';
        sock.on('data', (d) => { data += d; });
        sock.on('close', () => resolve(data));
        sock.on('error', () => resolve(data));
        setTimeout(() => { sock.destroy(); resolve('still open'); }, 8000);
      });
      const elapsed = Date.now() - startedAt;
      assert.notEqual(reply, 'still open');
      assert.ok(elapsed >= 1500 && elapsed < 6000, `closed after ${elapsed} ms`);
      assert.doesNotMatch(reply, /200 OK/);
    });
  });
});
