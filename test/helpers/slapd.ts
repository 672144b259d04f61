// A real OpenLDAP slapd for the LDAP tests, owned by the test that starts it: a generated
// slapd.conf and TLS certificate in a temporary directory, listening on 127.0.0.1 for plain LDAP
// (with StartTLS) and LDAPS, run in the foreground as the current user, with the memberof overlay
// so users carry memberOf. The directory:
//
//   dc=example,dc=org
//   ├── cn=searcher              the search account (bindDN)
//   ├── ou=people
//   │   ├── uid=alice            groups devs, ops
//   │   ├── uid=bob              no group
//   │   ├── uid=carol            employeeType: disabled (for userFilter)
//   │   └── ou=contractors
//   │       └── uid=dave         one level down (for subtreeSearch); group ops
//   └── ou=groups
//       ├── cn=devs
//       └── cn=ops
//
// Every user's password is `<uid>-password`.
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { makeCa, type TestCa } from './certs.js';
import { getFreePort, makeTempDir } from './registry.js';

const run = promisify(execFile);

export const SLAPD = fs.existsSync('/usr/sbin/slapd') ? '/usr/sbin/slapd' : 'slapd';
export const BASE_DN = 'dc=example,dc=org';
export const PEOPLE_DN = `ou=people,${BASE_DN}`;
export const SEARCHER_DN = `cn=searcher,${BASE_DN}`;
export const SEARCHER_PASSWORD = 'searcher-secret-password';
export const groupDn = (name: string): string => `cn=${name},ou=groups,${BASE_DN}`;
export const passwordOf = (uid: string): string => `${uid}-password`;

const ADMIN_DN = `cn=admin,${BASE_DN}`;
const ADMIN_PASSWORD = 'admin-secret-password';

export interface Slapd {
  /** Plain LDAP (and StartTLS) on 127.0.0.1. */
  ldapPort: number;
  ldapsPort: number;
  /** The CA that signed the server's certificate (CN localhost, SANs 127.0.0.1 and localhost). */
  ca: TestCa;
  dir: string;
  /** Stops the server (SIGTERM) and waits for it to exit; the data stays for start(). */
  stop(): Promise<void>;
  /** Starts it again on the same ports, with the same data. */
  start(): Promise<void>;
  /** SIGSTOP: the server keeps its sockets but answers nothing, like a hung directory. */
  pause(): void;
  resume(): void;
}

export async function startSlapd(): Promise<Slapd> {
  const dir = makeTempDir('zot-ts-slapd-');
  const dataDir = path.join(dir, 'data');
  fs.mkdirSync(dataDir);
  const ca = makeCa(path.join(dir, 'tls'), 'ldap-ca');
  const server = ca.issue('ldap-server', { subject: '/CN=localhost', altNames: ['IP:127.0.0.1', 'DNS:localhost'], usage: 'server' });
  const ldapPort = await getFreePort();
  const ldapsPort = await getFreePort();
  const confFile = path.join(dir, 'slapd.conf');
  fs.writeFileSync(confFile, slapdConf(dir, dataDir, server));

  let child: ChildProcess | undefined;
  let output = '';
  const launch = async (): Promise<void> => {
    const started = spawn(SLAPD, ['-f', confFile, '-h', `ldap://127.0.0.1:${ldapPort}/ ldaps://127.0.0.1:${ldapsPort}/`, '-d', '0'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child = started;
    started.stdout?.on('data', (d: Buffer) => (output += d.toString()));
    started.stderr?.on('data', (d: Buffer) => (output += d.toString()));
    await waitForPort(ldapPort, started, () => output);
    await waitForPort(ldapsPort, started, () => output);
  };
  const stop = async (): Promise<void> => {
    const running = child;
    child = undefined;
    if (!running || running.exitCode !== null || running.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => running.once('exit', () => resolve()));
    running.kill('SIGCONT');
    running.kill('SIGTERM');
    const timer = setTimeout(() => running.kill('SIGKILL'), 5_000);
    await exited;
    clearTimeout(timer);
  };
  // A test process that dies still takes its slapd with it.
  process.once('exit', () => child?.kill('SIGKILL'));

  await launch();
  try {
    await run('ldapadd', ['-x', '-H', `ldap://127.0.0.1:${ldapPort}`, '-D', ADMIN_DN, '-w', ADMIN_PASSWORD, '-f', writeData(dir)]);
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    ldapPort,
    ldapsPort,
    ca,
    dir,
    stop,
    start: launch,
    pause: () => child?.kill('SIGSTOP'),
    resume: () => child?.kill('SIGCONT'),
  };
}

function slapdConf(dir: string, dataDir: string, server: { cert: string; key: string }): string {
  return `include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
modulepath /usr/lib/ldap
moduleload back_mdb
moduleload memberof
pidfile ${path.join(dir, 'slapd.pid')}
TLSCertificateFile ${server.cert}
TLSCertificateKeyFile ${server.key}
database mdb
maxsize 16777216
suffix "${BASE_DN}"
rootdn "${ADMIN_DN}"
rootpw ${ADMIN_PASSWORD}
directory ${dataDir}
overlay memberof
access to attrs=userPassword by anonymous auth by self read by * none
access to * by users read by * none
`;
}

function person(uid: string, parent: string, extra: string[] = []): string {
  return [`dn: uid=${uid},${parent}`, 'objectClass: inetOrgPerson', `uid: ${uid}`, `cn: ${uid}`, `sn: ${uid}`, `userPassword: ${passwordOf(uid)}`, ...extra].join('\n');
}

function writeData(dir: string): string {
  const entries = [
    [`dn: ${BASE_DN}`, 'objectClass: dcObject', 'objectClass: organization', 'o: example', 'dc: example'].join('\n'),
    [`dn: ${SEARCHER_DN}`, 'objectClass: person', 'cn: searcher', 'sn: searcher', `userPassword: ${SEARCHER_PASSWORD}`].join('\n'),
    [`dn: ${PEOPLE_DN}`, 'objectClass: organizationalUnit', 'ou: people'].join('\n'),
    [`dn: ou=groups,${BASE_DN}`, 'objectClass: organizationalUnit', 'ou: groups'].join('\n'),
    [`dn: ou=contractors,${PEOPLE_DN}`, 'objectClass: organizationalUnit', 'ou: contractors'].join('\n'),
    person('alice', PEOPLE_DN),
    person('bob', PEOPLE_DN),
    person('carol', PEOPLE_DN, ['employeeType: disabled']),
    person('dave', `ou=contractors,${PEOPLE_DN}`),
    [`dn: ${groupDn('devs')}`, 'objectClass: groupOfNames', 'cn: devs', `member: uid=alice,${PEOPLE_DN}`].join('\n'),
    [`dn: ${groupDn('ops')}`, 'objectClass: groupOfNames', 'cn: ops', `member: uid=alice,${PEOPLE_DN}`, `member: uid=dave,ou=contractors,${PEOPLE_DN}`].join('\n'),
  ];
  const file = path.join(dir, 'data.ldif');
  fs.writeFileSync(file, `${entries.join('\n\n')}\n`);
  return file;
}

async function waitForPort(port: number, child: ChildProcess, output: () => string): Promise<void> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`slapd exited with ${child.exitCode}: ${output()}`);
    const open = await new Promise<boolean>((resolve) => {
      const socket = net.connect({ host: '127.0.0.1', port }, () => {
        socket.destroy();
        resolve(true);
      });
      socket.on('error', () => resolve(false));
    });
    if (open) return;
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`slapd did not listen on ${port} within 15 s: ${output()}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}
