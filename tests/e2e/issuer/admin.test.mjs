// Operator side of dynamic client registration and configuration checks, against the real
// `keyway-issuer` binary: DCR is off unless `--dcr`; `list-clients` / `delete-client` on the
// store (SQLite and PostgreSQL) show and remove registered clients (a deleted client stops
// working at once); bad arguments and configurations that could make subjects collide exit 64.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';

import { BIN_DIR, RP, STORES, oidc, startIssuer } from './harness.mjs';

const BIN = path.join(BIN_DIR, 'keyway-issuer');
const EXIT_CONFIG = 64;

function run(args) {
  const r = spawnSync(BIN, args, { encoding: 'utf8', timeout: 30_000, env: { ...process.env, RUST_LOG: 'warn' } });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

async function authorizeStatus(iss, clientId) {
  const url = new URL(`${iss.url}/authorize`);
  url.search = new URLSearchParams({
    response_type: 'code',
    client_id: clientId,
    redirect_uri: 'http://127.0.0.1:4000/cb',
    scope: 'openid',
    state: 'st',
    code_challenge: await oidc.calculatePKCECodeChallenge(oidc.randomPKCECodeVerifier()),
    code_challenge_method: 'S256',
  }).toString();
  const res = await fetch(url, { redirect: 'manual' });
  return { status: res.status, html: await res.text() };
}

describe('dynamic client registration is off by default', () => {
  let iss;
  before(async () => { iss = await startIssuer(); });
  after(async () => { await iss?.stop(); });

  it('advertises no registration_endpoint and has no /register', async () => {
    for (const doc of ['openid-configuration', 'oauth-authorization-server']) {
      const md = await (await fetch(`${iss.url}/.well-known/${doc}`)).json();
      assert.equal(md.issuer, iss.url);
      assert.ok(!('registration_endpoint' in md), doc);
    }
    const res = await fetch(`${iss.url}/register`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ client_name: 'Agent', redirect_uris: ['http://127.0.0.1:4000/cb'] }),
    });
    assert.equal(res.status, 404);
    assert.match(await res.text(), /There is nothing at this address/);
  });
});

for (const store of STORES) {
  describe(`keyway-issuer list-clients / delete-client (${store})`, () => {
    let iss;
    before(async () => { iss = await startIssuer({ store, args: ['--dcr'] }); });
    after(async () => { await iss?.stop(); });

    it('lists a registered client without secrets, and deletes it so that it stops working', async () => {
      const md = await (await fetch(`${iss.url}/.well-known/openid-configuration`)).json();
      assert.equal(md.registration_endpoint, `${iss.url}/register`);
      const res = await fetch(md.registration_endpoint, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ client_name: 'CLI test agent', redirect_uris: ['http://127.0.0.1:4000/cb'] }),
      });
      assert.equal(res.status, 201);
      const reg = await res.json();
      assert.match(reg.client_id, /^dcr\./);
      assert.equal(reg.client_secret, undefined);
      assert.equal((await authorizeStatus(iss, reg.client_id)).status, 200);

      const listed = run(['--store', iss.storeUrl, 'list-clients']);
      assert.equal(listed.code, 0, listed.err);
      const lines = listed.out.trim().split('\n').map((l) => JSON.parse(l));
      const mine = lines.find((c) => c.client_id === reg.client_id);
      assert.ok(mine, listed.out);
      assert.equal(mine.client_name, 'CLI test agent');
      assert.deepEqual(mine.redirect_uris, ['http://127.0.0.1:4000/cb']);
      assert.ok(!/secret/i.test(listed.out), listed.out);

      const deleted = run(['--store', iss.storeUrl, 'delete-client', reg.client_id]);
      assert.equal(deleted.code, 0, deleted.err);
      const after = run(['--store', iss.storeUrl, 'list-clients']);
      assert.equal(after.code, 0, after.err);
      assert.ok(!after.out.includes(reg.client_id), after.out);
      // The running issuer reads registered clients from the store: the client is gone.
      const gone = await authorizeStatus(iss, reg.client_id);
      assert.equal(gone.status, 400);
      assert.match(gone.html, /unknown client_id/);
      // Deleting it again says so.
      const again = run(['--store', iss.storeUrl, 'delete-client', reg.client_id]);
      assert.equal(again.code, 1);
      assert.match(again.err, /no registered client/);
    });

    it('exits 64 on bad arguments', () => {
      for (const args of [
        ['--store', iss.storeUrl, 'delete-client'],
        ['--store', iss.storeUrl, 'list-clients', 'extra'],
        ['--store', iss.storeUrl, 'no-such-command'],
        ['--no-such-flag', 'list-clients'],
      ]) {
        const r = run(args);
        assert.equal(r.code, EXIT_CONFIG, `${args.join(' ')}: ${r.err}`);
        assert.match(r.err, /error:/);
      }
    });
  });
}

describe('configurations that would let subjects collide exit 64', () => {
  let dir;
  before(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'keyway-issuer-config-')); });
  after(() => { fs.rmSync(dir, { recursive: true, force: true }); });

  const base = () => ['--issuer-url', 'http://127.0.0.1:1', '--listen', '127.0.0.1:0', '--store', `sqlite://${path.join(dir, 's.db')}`, '--keys-dir', path.join(dir, 'keys')];
  const hash = '$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$7Zrsyr7V7k8Bx6Bt2Q5qJbNwqE5ZqyVTRLbPB0Ce5vA';

  it("refuses a static user whose subject contains ':' (the federated-subject separator)", () => {
    for (const [i, user] of [`{email: a@corp.example, sub: "default:alice"}`, `{email: "x:y@corp.example"}`].entries()) {
      const file = path.join(dir, `users-${i}.yaml`);
      fs.writeFileSync(file, `- ${user.replace('}', `, passwordHash: '${hash}'}`)}\n`);
      const r = run([...base(), '--users-file', file]);
      assert.equal(r.code, EXIT_CONFIG, r.err);
      assert.match(r.err, /user 1: subject .* without `:`/);
    }
  });

  it("refuses an upstream id with ':' or too long", () => {
    for (const [i, id] of ['corp:eu', 'x'.repeat(33)].entries()) {
      const file = path.join(dir, `upstreams-${i}.yaml`);
      fs.writeFileSync(file, `- {id: "${id}", issuer: "${RP}", clientId: keyway, clientSecret: s}\n`);
      const r = run([...base(), '--upstreams-file', file]);
      assert.equal(r.code, EXIT_CONFIG, r.err);
      assert.match(r.err, /letters, digits and - only/);
    }
  });
});
