// Codes, refresh tokens and sign-in cookies reach the store only as SHA-256 hashes: after a real
// code flow and a refresh, the raw rows of every table (SQLite file and PostgreSQL schema) hold
// the hashes and never the secrets themselves, in any encoding.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';

import { SECRETS, STORES, codeFlow, oidc, psql, rp, startIssuer } from './harness.mjs';

const WEBAPP = 'default.webapp';

/** Every row of every table, as text (blobs/bytea in hex). */
function dump(iss) {
  if (iss.storeUrl.startsWith('sqlite://')) {
    const file = path.join(iss.dir, 'issuer.db');
    return execFileSync('sqlite3', [file, '.dump'], { encoding: 'utf8' });
  }
  const schema = new URL(iss.storeUrl).searchParams.get('options[search_path]');
  assert.ok(schema, iss.storeUrl);
  const tables = psql(`SELECT table_name FROM information_schema.tables WHERE table_schema = '${schema}'`).trim().split('\n');
  assert.ok(tables.includes('auth_codes') && tables.includes('refresh_tokens'), tables.join());
  return tables.map((t) => `${t}:\n${psql(`SELECT row_to_json(r)::text FROM ${schema}.${t} r`)}`).join('\n');
}

const sha256 = (s) => crypto.createHash('sha256').update(s).digest();

for (const store of STORES) {
  describe(`secrets are stored only as hashes (${store})`, () => {
    let iss;
    before(async () => { iss = await startIssuer({ store }); });
    after(async () => { await iss?.stop(); });

    it('holds the hashes of the code, the refresh tokens and the session cookie, never the values', async () => {
      const webapp = await rp(iss.url, WEBAPP, { secret: SECRETS[WEBAPP] });
      const { tokens, jar, location } = await codeFlow(webapp);
      const code = new URL(location).searchParams.get('code');
      const refreshed = await oidc.refreshTokenGrant(webapp, tokens.refresh_token);
      const session = jar.get('keyway_issuer_session');
      assert.ok(code && tokens.refresh_token && refreshed.refresh_token && session);
      const text = dump(iss).toLowerCase();
      const secrets = { code, refresh: tokens.refresh_token, rotated: refreshed.refresh_token, session };
      for (const [what, value] of Object.entries(secrets)) {
        const forms = [value, Buffer.from(value).toString('hex'), Buffer.from(value).toString('base64')];
        for (const f of forms) assert.ok(!text.includes(f.toLowerCase()), `${what} stored in clear (${f})`);
      }
      // The rows are there, under the SHA-256 of each secret.
      for (const what of ['code', 'refresh', 'rotated']) {
        assert.ok(text.includes(sha256(secrets[what]).toString('hex')), `no hash of the ${what}`);
      }
    });
  });
}
