// The command line's contract, through the real CLI: `--help` for every command, `--version`,
// exit codes shared by every command (0 ok, 1 a problem found, 2 a usage error), and what
// `zot verify` prints: the listener, the storage roots with their settings, and the features
// serve would refuse.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { makeTempDir, runZot, testConfig, writeConfig } from '../helpers/registry.js';

const COMMANDS = ['serve', 'verify', 'events', 'replay', 'scrub', 'audit'];

function lines(text: string): string[] {
  return text.split('\n').filter((line) => line.trim() !== '');
}

function writeFile(name: string, text: string): string {
  const file = path.join(makeTempDir(), name);
  fs.writeFileSync(file, text);
  return file;
}

describe('zot --help and --version', () => {
  for (const command of COMMANDS) {
    it(`zot ${command} --help prints that command's usage and exits 0`, async () => {
      for (const flag of ['--help', '-h']) {
        const result = await runZot([command, flag]);
        assert.equal(result.code, 0, result.stderr);
        assert.match(result.stdout, new RegExp(`^usage: zot ${command} <config>`));
        assert.equal(result.stderr, '');
      }
    });
  }

  it('zot --help and zot help <command> print usage and exit 0; the main usage documents the exit codes', async () => {
    const main = await runZot(['--help']);
    assert.equal(main.code, 0);
    assert.match(main.stdout, /^usage: zot <command>/);
    assert.match(main.stdout, /exit codes: 0 ok, 1 a problem found .*\n.*2 a usage error/);
    for (const command of COMMANDS) assert.ok(main.stdout.includes(`  ${command} <config>`), command);
    const one = await runZot(['help', 'replay']);
    assert.equal(one.code, 0);
    assert.match(one.stdout, /^usage: zot replay <config> \[--rehash\] \[--json\]/);
  });

  it('zot --version and zot -v print the version from package.json', async () => {
    const { version } = JSON.parse(fs.readFileSync('package.json', 'utf8')) as { version: string };
    for (const flag of ['--version', '-v']) {
      const result = await runZot([flag]);
      assert.equal(result.code, 0, result.stderr);
      assert.equal(result.stdout, `zot-ts ${version}\n`);
    }
  });
});

describe('exit codes', () => {
  it('2 for a usage error in every command: no configuration file, an unknown option, an extra argument', async () => {
    const config = writeConfig(testConfig());
    for (const command of COMMANDS) {
      const missing = await runZot([command]);
      assert.equal(missing.code, 2, `${command}: ${missing.stderr}`);
      assert.match(missing.stderr, new RegExp(`^zot ${command}: a configuration file is required\\nusage: zot ${command} <config>`));

      const unknown = await runZot([command, config, '--frobnicate']);
      assert.equal(unknown.code, 2, `${command}: ${unknown.stderr}`);
      assert.match(unknown.stderr, /--frobnicate/);

      const extra = await runZot([command, config, config]);
      assert.equal(extra.code, 2, `${command}: ${extra.stderr}`);
      assert.match(extra.stderr, /unexpected argument/);
    }
    const noCommand = await runZot([]);
    assert.equal(noCommand.code, 2);
    assert.match(noCommand.stderr, /^usage: zot <command>/);
    const unknownCommand = await runZot(['frobnicate']);
    assert.equal(unknownCommand.code, 2);
    assert.match(unknownCommand.stderr, /unknown command "frobnicate"/);
  });

  it('1 for a configuration that cannot be used, in every command', async () => {
    const bad = writeFile('bad.json', JSON.stringify({ storage: { rootDirectory: '/tmp/zot', dedup: true } }));
    for (const command of COMMANDS) {
      const result = await runZot([command, bad]);
      assert.equal(result.code, 1, `${command}: ${result.stderr}`);
      assert.match(result.stderr, /storage\.dedup: unknown key, did you mean dedupe\?/, command);
    }
  });
});

describe('zot verify', () => {
  it('prints the listener and every storage root with the settings serve will use, zot\'s defaults filled in', async () => {
    const file = writeFile(
      'roots.yaml',
      [
        'storage:',
        '  rootDirectory: /srv/zot',
        '  gcDelay: 1h30m',
        '  subPaths:',
        '    /team:',
        '      rootDirectory: /srv/team',
        '    /cloud:',
        '      rootDirectory: /srv/cloud',
        '      dedupe: true',
        '      gc: true',
        '      gcInterval: 10m',
        '      storageDriver:',
        '        name: s3',
        '        bucket: registry',
        '        rootdirectory: /zot',
        '        regionendpoint: http://127.0.0.1:9000',
        '',
      ].join('\n'),
    );
    const result = await runZot(['verify', file]);
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(lines(result.stdout), [
      `${file}: valid configuration`,
      '  listen: http://127.0.0.1:8080',
      '  storage: /srv/zot (filesystem, dedupe on, gc on (delay 1h30m, every 1h))',
      '  storage /team: /srv/team (filesystem, dedupe off, gc off)',
      '  storage /cloud: /srv/cloud (s3 bucket registry under /zot at http://127.0.0.1:9000, dedupe on, gc on (delay 1h, every 10m))',
    ]);
  });

  it('prints https for a TLS listener, and accepts lower-case keys and TOML', async () => {
    const file = writeFile(
      'tls.toml',
      ['[http]', 'address = "0.0.0.0"', 'port = 8443', '[http.tls]', `cert = ${JSON.stringify(path.resolve('examples/tls/server.crt'))}`, `key = ${JSON.stringify(path.resolve('examples/tls/server.key'))}`, '[storage]', 'rootdirectory = "/srv/zot"', 'dedupe = false', ''].join('\n'),
    );
    const result = await runZot(['verify', file]);
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(lines(result.stdout).slice(1), ['  listen: https://0.0.0.0:8443', '  storage: /srv/zot (filesystem, dedupe off, gc on (delay 1h, every 1h))']);
  });

  it('exits 1 and names every feature serve would refuse, as serve does', async () => {
    const file = writeFile(
      'refused.json',
      JSON.stringify({
        storage: { rootDirectory: '/srv/zot', remoteCache: true },
        extensions: { search: { enable: true }, metrics: {} },
      }),
    );
    const verify = await runZot(['verify', file]);
    assert.equal(verify.code, 1);
    assert.match(verify.stdout, /valid configuration\n {2}listen: http:\/\/127\.0\.0\.1:8080\n/);
    const refused = [
      "  extensions.search: zot's search and UI extension (GraphQL, CVE scanning) is not supported",
      '  storage.remoteCache: a dedupe cache shared between zot instances is not supported',
    ];
    assert.deepEqual(lines(verify.stderr), ['zot verify: serve would refuse to start: the configuration asks for features this release does not have:', ...refused]);

    const serve = await runZot(['serve', file]);
    assert.equal(serve.code, 1);
    assert.deepEqual(lines(serve.stderr), ['zot: refusing to start: the configuration asks for features this release does not have:', ...refused]);
  });
});
