// Fixtures for the keyway-proxy benchmark: an ES256 signing key, a stand-in issuer (discovery
// and JWKS only: all the proxy fetches at start-up), the mounted config files, bearer tokens and
// a sealed session cookie. Usage: node fixtures.mjs DIR ISSUER_PORT RESOURCE
// Writes DIR/config/*, DIR/token.txt, DIR/tokens.txt (10,000 distinct tokens), DIR/cookie.txt,
// DIR/jwks.json, then serves the issuer on 127.0.0.1:ISSUER_PORT until killed.
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';

const [dir, issuerPort, resource] = process.argv.slice(2);
const issuer = `http://127.0.0.1:${issuerPort}`;
const { privateKey, publicKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
const jwks = { keys: [{ ...publicKey.export({ format: 'jwk' }), kid: 'bench', alg: 'ES256', use: 'sig' }] };
const b64u = (b) => Buffer.from(b).toString('base64url');

function token(i) {
  const now = Math.floor(Date.now() / 1000);
  const header = b64u(JSON.stringify({ alg: 'ES256', typ: 'at+jwt', kid: 'bench' }));
  const payload = b64u(JSON.stringify({
    iss: issuer, sub: `user-${i}`, aud: resource, iat: now, exp: now + 7200, client_id: 'bench',
    scope: 'tool:read', email: `user-${i}@example.com`, groups: ['engineering'], jti: crypto.randomUUID(),
  }));
  const sig = crypto.sign('sha256', Buffer.from(`${header}.${payload}`), { key: privateKey, dsaEncoding: 'ieee-p1363' });
  return `${header}.${payload}.${b64u(sig)}`;
}

const cookieSecret = crypto.randomBytes(32);
function seal(value) {
  const iv = crypto.randomBytes(12);
  const cipher = crypto.createCipheriv('aes-256-gcm', cookieSecret, iv);
  cipher.setAAD(Buffer.from('keyway-proxy/v1\0session\0bench'));
  const ct = Buffer.concat([cipher.update(JSON.stringify(value)), cipher.final(), cipher.getAuthTag()]);
  return Buffer.concat([iv, ct]).toString('base64url');
}

const cfg = path.join(dir, 'config');
fs.mkdirSync(cfg, { recursive: true });
fs.writeFileSync(path.join(cfg, 'client-id'), 'bench');
fs.writeFileSync(path.join(cfg, 'client-secret'), 'bench-secret');
fs.writeFileSync(path.join(cfg, 'issuer-url'), issuer);
fs.writeFileSync(path.join(cfg, 'cookie-secret'), cookieSecret.toString('base64'));
fs.writeFileSync(path.join(cfg, 'policy.json'), JSON.stringify({
  resource, scopes: ['tool:read'],
  access: { allowedGroups: ['engineering'], rules: [{ path: '/', scopes: ['tool:read'] }, { path: '/healthz', public: true }] },
}));
fs.writeFileSync(path.join(dir, 'jwks.json'), JSON.stringify(jwks));
fs.writeFileSync(path.join(dir, 'token.txt'), token(0));
fs.writeFileSync(path.join(dir, 'tokens.txt'), `${Array.from({ length: 10_000 }, (_, i) => token(i + 1)).join('\n')}\n`);
const now = Math.floor(Date.now() / 1000);
fs.writeFileSync(path.join(dir, 'cookie.txt'), `_keyway_proxy=${seal({
  sid: 'bench', who: { sub: 'user-0', email: 'user-0@example.com', groups: ['engineering'], scopes: ['tool:read'], exp: now + 7200 },
  exp: now + 7200, end: now + 7200,
})}`);

const metadata = {
  issuer,
  authorization_endpoint: `${issuer}/authorize`,
  token_endpoint: `${issuer}/token`,
  jwks_uri: `${issuer}/jwks`,
  response_types_supported: ['code'],
  subject_types_supported: ['public'],
  id_token_signing_alg_values_supported: ['ES256'],
};
http.createServer((req, res) => {
  const body = req.url === '/.well-known/openid-configuration' ? metadata : req.url === '/jwks' ? jwks : null;
  res.writeHead(body ? 200 : 404, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body ?? { error: 'not found' }));
}).listen(Number(issuerPort), '127.0.0.1', () => console.log('ready'));
