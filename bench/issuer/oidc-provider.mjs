// npm oidc-provider (a certified OpenID provider) configured to issue what keyway-issuer issues
// for client_credentials: an ES256-signed RFC 9068 JWT access token for a resource, to a client
// authenticating with client_secret_basic. Run as its own process by bench.mjs so that it can be
// pinned to the same core as keyway-issuer.
//
// Env: E2E_DIR (folder with node_modules), PORT, CLIENT_ID, CLIENT_SECRET, RESOURCE, SCOPE.
// Prints "listening" once it accepts connections.
import crypto from 'node:crypto';
import http from 'node:http';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const { E2E_DIR, PORT, CLIENT_ID, CLIENT_SECRET, RESOURCE, SCOPE } = process.env;
const { default: Provider } = await import(
  pathToFileURL(path.join(E2E_DIR, 'node_modules/oidc-provider/lib/index.js')).href
);

const issuer = `http://127.0.0.1:${PORT}`;
const { privateKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
const jwk = { ...privateKey.export({ format: 'jwk' }), kid: 'bench', alg: 'ES256', use: 'sig' };
const provider = new Provider(issuer, {
  clients: [{
    client_id: CLIENT_ID,
    client_secret: CLIENT_SECRET,
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    id_token_signed_response_alg: 'ES256', // the only key is P-256
  }],
  jwks: { keys: [jwk] },
  scopes: [SCOPE],
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => RESOURCE,
      useGrantedResource: () => true,
      getResourceServerInfo: () => ({
        scope: SCOPE,
        audience: RESOURCE,
        accessTokenFormat: 'jwt',
        accessTokenTTL: 600,
        jwt: { sign: { alg: 'ES256' } },
      }),
    },
  },
});
const server = http.createServer({ keepAlive: true }, provider.callback());
server.keepAliveTimeout = 60_000;
server.listen(Number(PORT), '127.0.0.1', () => console.log('listening'));
for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => {
    server.closeAllConnections();
    server.close(() => process.exit(0));
  });
}
