// keyway-proxy's configuration contract: bad configuration exits 64 listing every problem, and
// every flag's environment variable is documented in docs/proxy.md (the webhook sets them).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';

import { BIN_DIR, writeConfig } from './harness.mjs';

const bin = path.join(BIN_DIR, 'keyway-proxy');

describe('configuration', () => {
  it('exits 64 and lists every problem of the flags', () => {
    const r = spawnSync(bin, [], {
      env: { PATH: process.env.PATH, KEYWAY_UPSTREAM: 'https://x/y', KEYWAY_UPSTREAM_PORT: '80', KEYWAY_COOKIE_SECURE: 'maybe', KEYWAY_SCOPES: 'email' },
      encoding: 'utf8',
    });
    assert.equal(r.status, 64);
    assert.match(r.stderr, /--upstream \(KEYWAY_UPSTREAM\) and --upstream-port \(KEYWAY_UPSTREAM_PORT\) are exclusive/);
    assert.match(r.stderr, /--cookie-secure \(KEYWAY_COOKIE_SECURE\): "maybe"/);
    assert.match(r.stderr, /--scopes \(KEYWAY_SCOPES\) must include openid/);
  });

  it('exits 64 and lists every problem of the mounted files', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'keyway-proxy-bad-'));
    writeConfig(dir, { 'issuer-url': 'ftp://issuer', 'cookie-secret': 'short', 'policy.json': '{"access": {"rules": [{"path": "x", "methods": ["get"]}]}}' });
    const r = spawnSync(bin, ['--upstream-port', '9', '--admin-listen', 'off', '--listen', '127.0.0.1:0'], {
      env: { PATH: process.env.PATH, KEYWAY_CONFIG_DIR: dir },
      encoding: 'utf8',
    });
    fs.rmSync(dir, { recursive: true, force: true });
    assert.equal(r.status, 64, r.stderr);
    for (const needle of ['client-id: missing', 'issuer-url: "ftp://issuer" must be an https URL', 'cookie-secret: must be exactly 32 bytes',
      'access.rules[0]: path "x" must start with /', 'access.rules[0]: method "get"', 'no resource']) {
      assert.ok(r.stderr.includes(needle), `${needle} in\n${r.stderr}`);
    }
  });

  it('exits 64 on an unknown flag', () => {
    const r = spawnSync(bin, ['--no-such-flag'], { encoding: 'utf8' });
    assert.equal(r.status, 64);
  });

  it('documents every flag and environment variable in docs/proxy.md', () => {
    const help = spawnSync(bin, ['--help'], { encoding: 'utf8' });
    assert.equal(help.status, 0);
    const docs = fs.readFileSync(path.resolve(import.meta.dirname, '../../../docs/proxy.md'), 'utf8');
    const envs = [...help.stdout.matchAll(/\[env: (KEYWAY_[A-Z0-9_]+)/g)].map((m) => m[1]);
    const flags = [...help.stdout.matchAll(/^\s+(--[a-z0-9-]+)/gm)].map((m) => m[1]).filter((f) => !['--help', '--version'].includes(f));
    assert.ok(envs.length >= 30, `only ${envs.length} env vars in --help`);
    assert.equal(envs.length, flags.length);
    for (const name of [...envs, ...flags]) assert.ok(docs.includes(`\`${name}\``), `${name} missing from docs/proxy.md`);
  });
});
