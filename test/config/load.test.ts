// loadConfigFile: JSON, YAML and TOML files, the format chosen by extension or by trying each,
// and read or syntax errors reported as a ConfigError that names the file.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import { ConfigError, loadConfigFile } from '../../src/config/load.js';

let dir = '';
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'zot-config-test-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

function write(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

/** The problems of the ConfigError that loading `path` throws. */
function problemsLoading(path: string): string[] {
  try {
    loadConfigFile(path);
  } catch (error) {
    assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${String(error)}`);
    assert.ok(error.message.includes(path), 'the message names the file');
    for (const problem of error.problems) assert.ok(error.message.includes(problem), 'the message lists every problem');
    return error.problems;
  }
  assert.fail(`${path} loaded without an error`);
}

const yamlConfig = ['http:', '  address: 127.0.0.1', '  port: 5000', 'storage:', '  rootDirectory: /tmp/zot', ''].join('\n');
const tomlConfig = [
  '# zot reads TOML too (viper); keys match without regard to case.',
  'distspecversion = "1.1.0"',
  '[http]',
  'address = "127.0.0.1"',
  'port = 5000',
  '[storage]',
  'rootdirectory = "/tmp/zot"',
  'gcDelay = "2h"',
  '[storage.subPaths."/a"]',
  'rootDirectory = "/tmp/zot-a"',
  'dedupe = false',
  '',
].join('\n');
const jsonConfig = JSON.stringify({ http: { address: '127.0.0.1', port: '5000' }, storage: { rootDirectory: '/tmp/zot' } });

describe('loadConfigFile', () => {
  it('loads YAML by its .yaml and .yml extensions', () => {
    for (const name of ['config.yaml', 'config.yml']) {
      const config = loadConfigFile(write(name, yamlConfig));
      assert.equal(config.http.port, '5000');
      assert.equal(config.storage.rootDirectory, '/tmp/zot');
    }
  });

  it('loads JSON by its .json extension', () => {
    assert.equal(loadConfigFile(write('config.json', jsonConfig)).http.address, '127.0.0.1');
  });

  it('loads TOML by its .toml extension, tables and quoted keys included', () => {
    const config = loadConfigFile(write('config.toml', tomlConfig));
    assert.equal(config.distSpecVersion, '1.1.0');
    assert.equal(config.http.port, '5000');
    assert.equal(config.storage.rootDirectory, '/tmp/zot');
    assert.equal(config.storage.gcDelay, '2h');
    assert.deepEqual(config.storage.subPaths, { '/a': { rootDirectory: '/tmp/zot-a', dedupe: false } });
  });

  it('tries JSON, TOML and YAML for other extensions and none', () => {
    assert.equal(loadConfigFile(write('config', jsonConfig)).http.port, '5000');
    assert.equal(loadConfigFile(write('config.conf', yamlConfig)).http.port, '5000');
    assert.equal(loadConfigFile(write('zot-config', tomlConfig)).storage.subPaths?.['/a']?.rootDirectory, '/tmp/zot-a');
    assert.equal(loadConfigFile(write('config.cfg', tomlConfig)).http.port, '5000');
  });

  it('reports a TOML syntax error with the file name, line and column', () => {
    const path = write('broken.toml', '[http]\naddress = 127.0.0.1\n');
    assert.deepEqual(problemsLoading(path), [`${path}: invalid TOML: illegal character in numeric literal at line 2, column 16`]);
  });

  it('reports the TOML error for a TOML-looking file of unknown type', () => {
    const path = write('broken-toml', '[http]\nport = 5000\n[http]\naddress = "x"\n');
    assert.match(problemsLoading(path)[0] ?? '', /: invalid TOML: .* at line 3, column \d+$/);
  });

  it('keeps relative paths as written', () => {
    const path = write('relative.json', JSON.stringify({ http: { address: '', port: '0' }, storage: { rootDirectory: './data/zot' } }));
    assert.equal(loadConfigFile(path).storage.rootDirectory, './data/zot');
  });

  it('reports a YAML syntax error with the file name and position', () => {
    const path = write('broken.yaml', 'http:\n  address: [127.0.0.1\nstorage: {}\n');
    const problems = problemsLoading(path);
    assert.equal(problems.length, 1);
    assert.match(problems[0] ?? '', /^.*broken\.yaml: invalid YAML: .+ at line \d+, column \d+$/);
    assert.ok(problems[0]?.startsWith(`${path}: invalid YAML: `));
  });

  it('reports a duplicated YAML key', () => {
    const path = write('duplicate.yml', `${yamlConfig}storage:\n  rootDirectory: /tmp/other\n`);
    assert.deepEqual(problemsLoading(path), [`${path}: invalid YAML: duplicated mapping key at line 6, column 1`]);
  });

  it('reports a JSON syntax error with the file name, line and column', () => {
    const path = write('broken.json', '{\n  "http": {\n    "port": "5000",\n  }\n}\n');
    const problems = problemsLoading(path);
    assert.equal(problems.length, 1);
    assert.ok(problems[0]?.startsWith(`${path}: invalid JSON: `), problems[0]);
    assert.match(problems[0] ?? '', /at line 4, column 3$/);
  });

  it('reports the JSON error for a JSON-looking file of unknown type', () => {
    const path = write('broken-config', '{ "http": { "port": 5000 ');
    assert.match(problemsLoading(path)[0] ?? '', /: invalid JSON: /);
  });

  it('reports an empty file', () => {
    const path = write('empty.yaml', '\n');
    assert.deepEqual(problemsLoading(path), [`${path}: the file is empty`]);
  });

  it('reports a file that holds no settings, as zot does', () => {
    for (const [name, text] of [['comments.yaml', '# nothing set yet\n'], ['empty-object.json', '{}\n'], ['comments.toml', '# nothing\n']] as const) {
      const path = write(name, text);
      assert.deepEqual(problemsLoading(path), [`${path}: the file holds no settings`], name);
    }
  });

  it('reports a file that cannot be read', () => {
    const path = join(dir, 'missing.json');
    assert.match(problemsLoading(path)[0] ?? '', /missing\.json: cannot be read \(ENOENT/);
  });

  it('reports every validation problem of a file at once', () => {
    const path = write(
      'invalid.yaml',
      [
        'http:',
        '  address: 127.0.0.1',
        '  port: [5000]',
        'storage:',
        '  rootDirectory: /tmp/zot',
        '  gcDelay: 1day',
        '  subPaths:',
        '    /a:',
        '      rootDirectory: /tmp/zot',
        'log:',
        '  level: loud',
        '  colour: true',
        '',
      ].join('\n'),
    );
    assert.deepEqual(problemsLoading(path), [
      'http.port: must be a string or integer',
      'log.colour: unknown key',
      'log.level: must be one of debug, info, warn, error',
      'storage.gcDelay: must be a duration such as 1h, 30m or 10s',
      'storage.subPaths./a.rootDirectory: must differ from storage.rootDirectory',
    ]);
  });
});
