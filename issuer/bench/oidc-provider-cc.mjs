// npm oidc-provider (a certified OpenID provider) configured to issue the same kind of token as
// keyway's issuer for client_credentials: an ES256 RFC 9068 JWT for a resource. Used only as the
// comparison point of bench/client_credentials.sh. Env: E2E_DIR (folder with node_modules), PORT.
import { generateKeyPairSync } from 'node:crypto';
import { pathToFileURL } from 'node:url';

const { default: Provider } = await import(
  pathToFileURL(`${process.env.E2E_DIR}/node_modules/oidc-provider/lib/index.js`).href
);
const port = Number(process.env.PORT);
const jwk = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' });
const provider = new Provider(`http://127.0.0.1:${port}`, {
  jwks: { keys: [{ ...jwk, use: 'sig', alg: 'ES256', kid: 'bench' }] },
  clients: [{
    client_id: 'svc',
    client_secret: 'svc-secret',
    grant_types: ['client_credentials'],
    redirect_uris: [],
    response_types: [],
    scope: 'tool:read',
    id_token_signed_response_alg: 'ES256',
  }],
  scopes: ['tool:read'],
  features: {
    clientCredentials: { enabled: true },
    devInteractions: { enabled: false },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => 'https://tool.example',
      useGrantedResource: () => true,
      getResourceServerInfo: () => ({
        scope: 'tool:read',
        audience: 'https://tool.example',
        accessTokenFormat: 'jwt',
        jwt: { sign: { alg: 'ES256' } },
      }),
    },
  },
});
provider.listen(port, '127.0.0.1', () => console.log(`oidc-provider listening on ${port}`));
