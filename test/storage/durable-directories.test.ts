// A power cut keeps a blob only if every directory on its path is a durable name in its parent.
// `zot serve` runs under strace while a blob is pushed into a brand-new nested repository, and the
// trace must show, for every directory the registry created, its parent opened and fsynced before
// the next write to the event log's WAL (the append that names the blob).
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { errorCode, makeImage, pushImage, sha256 } from '../helpers/oci.js';
import { openSession, patchChunk, resolveLocation, withDigest } from '../helpers/http.js';
import { makeTempDir, spawnRegistry } from '../helpers/registry.js';
import { spawnTraced, stopTraced, straceUnavailable, tracedPid, type TracedRegistry } from '../helpers/strace.js';

const TRACED = 'mkdir,mkdirat,openat,close,fsync,fdatasync,pwrite64,rename,renameat,renameat2';

/** One finished system call of the trace, in the order they completed. */
interface Call {
  name: string;
  args: string;
  result: number;
  /** Line where it started and where it returned (they differ when another thread interleaved). */
  startedAt: number;
  endedAt: number;
}

/** Parses `strace -f` output, joining `<unfinished ...>` lines with their `<... resumed>` ends. */
function parseTrace(text: string): Call[] {
  const calls: Call[] = [];
  const unfinished = new Map<string, { name: string; args: string; startedAt: number }>();
  text.split('\n').forEach((line, index) => {
    const started = /^(\d+)\s+(\w+)\((.*) <unfinished \.\.\.>$/.exec(line);
    if (started) {
      unfinished.set(started[1] as string, { name: started[2] as string, args: started[3] as string, startedAt: index });
      return;
    }
    const resumed = /^(\d+)\s+<\.\.\. (\w+) resumed>(.*)\)\s+= (-?\d+)/.exec(line);
    if (resumed) {
      const begun = unfinished.get(resumed[1] as string);
      unfinished.delete(resumed[1] as string);
      if (begun) calls.push({ name: begun.name, args: begun.args + (resumed[3] as string), result: Number(resumed[4]), startedAt: begun.startedAt, endedAt: index });
      return;
    }
    const whole = /^(\d+)\s+(\w+)\((.*)\)\s+= (-?\d+)/.exec(line);
    if (whole) calls.push({ name: whole[2] as string, args: whole[3] as string, result: Number(whole[4]), startedAt: index, endedAt: index });
  });
  return calls.sort((a, b) => a.endedAt - b.endedAt);
}

/** The first quoted path of a call's arguments. */
function pathArgument(args: string): string | undefined {
  return /"((?:[^"\\]|\\.)*)"/.exec(args)?.[1];
}

function fdArgument(args: string): number {
  return Number(args.split(',')[0]);
}

/**
 * Which descriptors are open on a given path, as the calls are seen in completion order. A close
 * that started before the open of its number returned closed an earlier file of that number
 * (strace may show it finishing later): it does not close the new one.
 */
class OpenDescriptors {
  private readonly opened = new Map<number, { onPath: boolean; at: number }>();

  see(call: Call, onPath: string): void {
    if (call.name === 'openat' && call.result >= 0) this.opened.set(call.result, { onPath: pathArgument(call.args) === onPath, at: call.endedAt });
    if (call.name === 'close') {
      const fd = fdArgument(call.args);
      if (call.startedAt > (this.opened.get(fd)?.at ?? -1)) this.opened.delete(fd);
    }
  }

  get(fd: number): boolean | undefined {
    return this.opened.get(fd)?.onPath;
  }
}

interface Finding {
  created: string[];
  walWrites: number;
  problems: string[];
}

/**
 * For each directory created under `root`: the parent opened and fsynced (on that descriptor,
 * not closed in between) after the mkdir and before the first WAL write that starts after it.
 * With `byAnswer`, for pushes into several repositories at once (whose events are appended while
 * another's layout is still being synced): before the first answer (201) of a push into the
 * repository the directory belongs to, or into any repository beneath it.
 */
function checkDirectories(calls: Call[], root: string, byAnswer = false): Finding {
  const walFds = new Set<number>();
  const walWrites: Call[] = [];
  for (const call of calls) {
    if (call.name === 'openat' && call.result >= 0 && pathArgument(call.args)?.endsWith('events.db-wal')) walFds.add(call.result);
    if (call.name === 'pwrite64' && walFds.has(fdArgument(call.args))) walWrites.push(call);
  }
  const created: string[] = [];
  const problems: string[] = [];
  calls.forEach((call, index) => {
    if ((call.name !== 'mkdir' && call.name !== 'mkdirat') || call.result !== 0) return;
    const dir = pathArgument(call.args);
    if (!dir || !(dir === root || dir.startsWith(`${root}/`))) return;
    created.push(dir);
    const deadline = byAnswer
      ? firstAnswerBeneath(calls, path.relative(root, dir), call.endedAt)
      : (walWrites.find((write) => write.startedAt > call.endedAt)?.startedAt ?? Number.POSITIVE_INFINITY);
    const parent = path.dirname(dir);
    const open = new OpenDescriptors();
    let synced = false;
    for (const later of calls.slice(index + 1)) {
      if (later.endedAt >= deadline) break;
      open.see(later, parent);
      if ((later.name === 'fsync' || later.name === 'fdatasync') && later.result === 0 && open.get(fdArgument(later.args)) === true) {
        synced = true;
        break;
      }
    }
    if (!synced) problems.push(`${dir} was created but ${parent} was not fsynced before the next write to the event log`);
  });
  return { created, walWrites: walWrites.length, problems };
}

/**
 * Where the first answer (201) to a push into the repository holding `relativeDir` (its path in the
 * root, layout directories dropped), or into one beneath it, starts after `after`.
 */
function firstAnswerBeneath(calls: Call[], relativeDir: string, after: number): number {
  const parts = relativeDir.split(path.sep);
  const layout = parts.findIndex((part) => part === 'blobs' || part === '.uploads');
  const repo = (layout < 0 ? parts : parts.slice(0, layout)).join('/');
  const answer = calls.find(
    (call) => (call.name === 'write' || call.name === 'writev') && call.startedAt > after && call.args.includes('HTTP/1.1 201') && call.args.includes(`/v2/${repo}/`),
  );
  return answer?.startedAt ?? Number.POSITIVE_INFINITY;
}

/** The second quoted path of a call's arguments (a rename's target). */
function secondPathArgument(args: string): string | undefined {
  return [...args.matchAll(/"((?:[^"\\]|\\.)*)"/g)][1]?.[1];
}

/**
 * For each name renamed into place under `root`: an fsync of its directory that started after the
 * rename returned and ended before the registry answered the request (the first answer written
 * to a socket that names the digest, after the rename). Shared fsyncs pass only if they began
 * after every rename they stand for.
 */
function checkRenames(calls: Call[], root: string): { renamed: string[]; problems: string[] } {
  const answers = calls.filter((call) => (call.name === 'write' || call.name === 'writev') && call.args.includes('HTTP/1.1 201'));
  const renamed: string[] = [];
  const problems: string[] = [];
  calls.forEach((call, index) => {
    if (!call.name.startsWith('rename') || call.result !== 0) return;
    const target = secondPathArgument(call.args);
    if (!target?.startsWith(`${root}/`) || target.includes('/.zot-ts/')) return;
    renamed.push(target);
    const hex = path.basename(target);
    const answer = /^[0-9a-f]{64}$/.test(hex) ? answers.find((write) => write.startedAt > call.endedAt && write.args.includes(hex)) : undefined;
    if (/^[0-9a-f]{64}$/.test(hex) && answer === undefined) problems.push(`no answer names ${hex}`);
    const deadline = answer?.startedAt ?? Number.POSITIVE_INFINITY;
    const dir = path.dirname(target);
    const open = new OpenDescriptors();
    let synced = false;
    for (const later of calls.slice(0, index).concat(calls.slice(index + 1))) {
      if (later.endedAt >= deadline) break;
      open.see(later, dir);
      const fsyncOfDir = (later.name === 'fsync' || later.name === 'fdatasync') && later.result === 0 && open.get(fdArgument(later.args)) === true;
      if (fsyncOfDir && later.startedAt > call.endedAt) {
        synced = true;
        break;
      }
    }
    if (!synced) problems.push(`${target} was renamed into place but ${dir} was not fsynced after it and before the answer`);
  });
  return { renamed, problems };
}

/**
 * For each file created in place under `dir` (opened with O_CREAT: a new repository's layout, which
 * no event names): the file fsynced through that descriptor, and `dir` fsynced after the open
 * returned, both before the first answer of a push into the repository (`answerNames`).
 */
function checkCreatedInPlace(calls: Call[], dir: string, answerNames: string): { created: string[]; problems: string[] } {
  const answer = calls.find((call) => (call.name === 'write' || call.name === 'writev') && call.args.includes('HTTP/1.1 201') && call.args.includes(answerNames));
  const deadline = answer?.startedAt ?? Number.POSITIVE_INFINITY;
  const created: string[] = [];
  const problems: string[] = answer === undefined ? [`no answer names ${answerNames}`] : [];
  calls.forEach((call, index) => {
    const file = pathArgument(call.args);
    if (call.name !== 'openat' || call.result < 0 || !call.args.includes('O_CREAT') || file === undefined || path.dirname(file) !== dir) return;
    created.push(file);
    const fd = call.result;
    const open = new OpenDescriptors();
    let fileSynced = false;
    let dirSynced = false;
    for (const later of calls.slice(index + 1)) {
      if (later.endedAt >= deadline) break;
      if (later.name === 'close' && fdArgument(later.args) === fd && !fileSynced) break;
      open.see(later, dir);
      if (later.name !== 'fsync' || later.result !== 0) continue;
      if (fdArgument(later.args) === fd && !fileSynced) fileSynced = true;
      else if (open.get(fdArgument(later.args)) === true && later.startedAt > call.endedAt) dirSynced = true;
    }
    if (!fileSynced) problems.push(`${file} was created in place but not fsynced before the answer`);
    if (!dirSynced) problems.push(`${file} was created in place but ${dir} was not fsynced after it and before the answer`);
  });
  return { created, problems };
}

describe('directories created on the way to a new file', () => {
  it('are fsynced into their parents before the event that names the file', async (t: TestContext) => {
    const traced = await spawnTraced(t, ['-e', `trace=${TRACED}`]);
    if (!traced) return;
    const { registry, traceFile, root } = traced;
    try {
      const data = Buffer.from('the first blob of a new repository');
      const session = await openSession(registry.url, 'a/b/c');
      const patched = await patchChunk(session, data, `0-${data.length - 1}`);
      assert.equal(patched.status, 202);
      const put = await fetch(withDigest(resolveLocation(registry.url, patched), sha256(data)), { method: 'PUT' });
      assert.equal(put.status, 201, await put.text());
      const blob = await fetch(`${registry.url}/v2/a/b/c/blobs/${sha256(data)}`);
      assert.ok(Buffer.from(await blob.arrayBuffer()).equals(data));
    } finally {
      await stopTraced(registry.child);
    }
    const finding = checkDirectories(parseTrace(fs.readFileSync(traceFile, 'utf8')), root);
    for (const dir of ['a', 'a/b', 'a/b/c', 'a/b/c/.uploads', 'a/b/c/blobs', 'a/b/c/blobs/sha256']) {
      assert.ok(finding.created.includes(`${root}/${dir}`), `the trace shows ${dir} created (${finding.created.join(', ')})`);
    }
    assert.ok(finding.walWrites > 0, 'the trace shows the event log written');
    assert.deepEqual(finding.problems, []);
  });

  it('names renamed into new repositories side by side are each fsynced after their rename, before their event', async (t: TestContext) => {
    const traced = await spawnTraced(t, ['-s', '1024', '-e', `trace=${TRACED},write,writev`]);
    if (!traced) return;
    const { registry, traceFile, root } = traced;
    try {
      // Images into new repositories of one namespace at once: their directory fsyncs are shared.
      const answers = await Promise.all(Array.from({ length: 6 }, (_, i) => pushImage(registry.url, `ns/repo${i}`, 'latest')));
      for (const res of answers) assert.equal(res.status, 201, await res.text());
    } finally {
      await stopTraced(registry.child);
    }
    const calls = parseTrace(fs.readFileSync(traceFile, 'utf8'));
    const { renamed, problems } = checkRenames(calls, root);
    for (let i = 0; i < 6; i++) {
      // A new repository's layout is written in place (nothing names it yet); its index.json is
      // written by the index.json writer, through a rename.
      const layout = checkCreatedInPlace(calls, `${root}/ns/repo${i}`, `/v2/ns/repo${i}/`);
      assert.deepEqual(layout.created, [`${root}/ns/repo${i}/oci-layout`], `only oci-layout of repo${i} created in place`);
      assert.deepEqual(layout.problems, []);
      assert.ok(renamed.includes(`${root}/ns/repo${i}/index.json`), `index.json of repo${i} written through a rename`);
      assert.ok(renamed.filter((name) => name.startsWith(`${root}/ns/repo${i}/blobs/sha256/`)).length >= 3, `the blobs and manifest of repo${i} renamed into place`);
    }
    assert.deepEqual(problems, []);
    const created = checkDirectories(calls, root, true);
    for (let i = 0; i < 6; i++) assert.ok(created.created.includes(`${root}/ns/repo${i}/blobs/sha256`), `the trace shows repo${i}'s directories created`);
    assert.deepEqual(created.problems, []);
  });
});

describe('a directory fsync, and a small file written durably', () => {
  it('hand the pool the fsync alone: opens, writes, renames and closes run on the event loop thread', async (t: TestContext) => {
    // Temporary files are the exception: made ahead by the pool (temporary-reserve.test.ts).
    const traced = await spawnTraced(t, ['-y', '-e', 'trace=openat,fsync,rename,write,writev']);
    if (!traced) return;
    const { registry, traceFile, root } = traced;
    let mainThread: number;
    try {
      mainThread = tracedPid(registry.child.pid as number);
      const res = await pushImage(registry.url, 'loop/new', 'latest');
      assert.equal(res.status, 201, await res.text());
    } finally {
      await stopTraced(registry.child);
    }
    const repo = `${root}/loop/new`;
    const directories = new Set([`${root}/loop`, repo, `${repo}/blobs`, `${repo}/blobs/sha256`]);
    const lines = fs.readFileSync(traceFile, 'utf8').split('\n');
    // `PID openat(AT_FDCWD<cwd>, "PATH", O_RDONLY|O_CLOEXEC...`: a directory opened to be synced.
    const opens = lines.flatMap((line) => {
      const m = /^(\d+)\s+openat\([^"]*"([^"]*)", O_RDONLY\|O_CLOEXEC/.exec(line);
      return m && directories.has(m[2] as string) ? [{ thread: Number(m[1]), dir: m[2] as string }] : [];
    });
    const fsyncs = lines.flatMap((line) => {
      const m = /^(\d+)\s+fsync\(\d+<([^>]*)>/.exec(line);
      return m && directories.has(m[2] as string) ? [{ thread: Number(m[1]), dir: m[2] as string }] : [];
    });
    assert.ok(fsyncs.length >= 4, `the new directories synced: ${JSON.stringify(fsyncs)}`);
    assert.equal(opens.length, fsyncs.length, 'one open per directory fsync');
    assert.deepEqual(opens.filter((open) => open.thread !== mainThread), [], 'every open on the event loop thread');
    assert.deepEqual(fsyncs.filter((fsync) => fsync.thread === mainThread), [], 'no fsync on it');

    // Small files: the layout's oci-layout, created in place (nothing names it yet), and index.json,
    // written through a temporary file renamed into the repository. -y prints a descriptor's
    // current path.
    const layoutFiles = [`${repo}/oci-layout`];
    const small = new Set([
      ...layoutFiles,
      ...lines.flatMap((line) => {
        const m = /\brename\("([^"]*)", "([^"]*)"/.exec(line);
        return m && m[2] === `${repo}/index.json` ? [m[1] as string] : [];
      }),
    ]);
    assert.ok(small.size >= 2, `oci-layout and index.json's temporary file: ${[...small].join(', ')}`);
    const smallOpens = lines.flatMap((line) => {
      const m = /^(\d+)\s+openat\([^"]*"([^"]*)", [^)]*O_CREAT/.exec(line);
      return m && small.has(m[2] as string) ? [Number(m[1])] : [];
    });
    const smallFsyncs = lines.flatMap((line) => {
      const m = /^(\d+)\s+fsync\(\d+<([^>]*)>/.exec(line);
      return m && small.has(m[2] as string) ? [Number(m[1])] : [];
    });
    assert.equal(smallOpens.length, small.size, 'each small file opened once');
    assert.equal(smallFsyncs.length, small.size, 'and fsynced once');
    const layoutOpens = lines.flatMap((line) => {
      const m = /^(\d+)\s+openat\([^"]*"([^"]*)", [^)]*O_CREAT/.exec(line);
      return m && layoutFiles.includes(m[2] as string) ? [Number(m[1])] : [];
    });
    assert.equal(layoutOpens.length, layoutFiles.length, 'the layout files created in place');
    assert.ok(layoutOpens.every((thread) => thread === mainThread), 'on the event loop thread');
    assert.ok(smallFsyncs.every((thread) => thread !== mainThread), 'fsynced in the pool');

    // The small bodies (config, layer) written to their temporary files, and every name renamed
    // into the repository (the blobs, the manifest, index.json's rewrite): on the event loop too.
    const bodyWrites = lines.flatMap((line) => {
      const m = /^(\d+)\s+writev?\(\d+<([^>]*)>/.exec(line);
      return m && (m[2] as string).startsWith(`${root}/.zot-ts/tmp/`) ? [Number(m[1])] : [];
    });
    assert.ok(bodyWrites.length >= 2, `the bodies written: ${bodyWrites.length}`);
    const bodyOpens = lines.flatMap((line) => {
      const m = /^(\d+)\s+openat\([^"]*"([^"]*)", [^)]*O_EXCL/.exec(line);
      return m && (m[2] as string).startsWith(`${root}/.zot-ts/tmp/`) ? [Number(m[1])] : [];
    });
    // Made ahead by the pool, or here when none was ready (the first push's first body).
    assert.ok(bodyOpens.length >= 2, `the bodies' temporary files created: ${bodyOpens.length}`);
    assert.deepEqual(bodyWrites.filter((thread) => thread !== mainThread), [], 'body writes on the event loop thread');
    const renames = lines.flatMap((line) => {
      const m = /^(\d+)\s+rename\("[^"]*", "([^"]*)"/.exec(line);
      return m && (m[2] as string).startsWith(`${repo}/`) ? [Number(m[1])] : [];
    });
    assert.ok(renames.length >= 4, `blobs, manifest and index.json renamed into place: ${renames.length}`);
    assert.deepEqual(renames.filter((thread) => thread !== mainThread), [], 'renames on the event loop thread');
  });
});

/**
 * A registry on a root laid out by a first start (so the traced start creates nothing in it), run
 * under strace with `straceOptions`, on one pool thread: strace counts each thread's calls apart,
 * and `when=1` of an injected fault means the first of the process only with one thread making them.
 */
async function traceFaulted(t: TestContext, straceOptions: (root: string) => string[]): Promise<TracedRegistry | undefined> {
  const cannot = straceUnavailable();
  if (cannot) {
    t.skip(cannot);
    return undefined;
  }
  const root = path.join(makeTempDir('zot-ts-undurable-'), 'root');
  const first = await spawnRegistry({ root });
  await first.stop();
  const traceFile = path.join(makeTempDir('zot-ts-strace-'), 'trace.txt');
  const registry = await spawnRegistry(
    { root },
    { runUnder: ['strace', '-f', ...straceOptions(root), '-o', traceFile], env: { ...process.env, UV_THREADPOOL_SIZE: '1' } },
  );
  return { registry, traceFile, root };
}

/**
 * Pushes a blob into `fresh/repo`, which must fail (the injected fault) with an OCI error and leave
 * `fresh` behind, then the whole image, which must succeed; returns the fsyncs of `root` traced.
 */
async function failThenPush(traced: TracedRegistry): Promise<('EIO' | 'ok' | string)[]> {
  const { registry, traceFile, root } = traced;
  const image = makeImage();
  try {
    const failed = await fetch(`${registry.url}/v2/fresh/repo/blobs/uploads/?digest=${sha256(image.config)}`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/octet-stream' },
      body: image.config,
    });
    assert.equal(failed.status, 500, await failed.clone().text());
    assert.equal(typeof (await errorCode(failed)), 'string', 'an OCI error body');
    assert.ok(fs.existsSync(path.join(root, 'fresh')), 'the failed push left `fresh` in the root');
    // The same push again finds `fresh` there, made by the failed one.
    const again = await pushImage(registry.url, 'fresh/repo', 'latest', image);
    assert.equal(again.status, 201, await again.text());
    const pulled = await fetch(`${registry.url}/v2/fresh/repo/blobs/${sha256(image.config)}`);
    assert.ok(Buffer.from(await pulled.arrayBuffer()).equals(image.config));
  } finally {
    await stopTraced(registry.child);
  }
  const lines = fs.readFileSync(traceFile, 'utf8').split('\n');
  const rootFd = new Set<string>();
  return lines
    .filter((line) => {
      // -y names each descriptor's path: fsync(31</tmp/.../root>)
      const m = /\bfsync\((\d+)<([^>]*)>\)/.exec(line);
      if (m?.[2] === root) rootFd.add(m[1] as string);
      return m?.[2] === root;
    })
    .map((line) => (/= -1 EIO .*INJECTED/.test(line) ? 'EIO' : /= 0$/.test(line.trim()) ? 'ok' : line));
}

describe('a directory made by a push that failed before its parent was synced', () => {
  it('has its parent synced by the next push beneath it when the parent fsync failed', async (t: TestContext) => {
    // Only calls on the root itself are traced (-P), and its first fsync fails (EIO).
    const traced = await traceFaulted(t, (root) => ['-y', '-P', root, '-e', 'trace=fsync', '-e', 'inject=fsync:error=EIO:when=1']);
    if (!traced) return;
    const syncs = await failThenPush(traced);
    assert.equal(syncs[0], 'EIO', `the first fsync of the root failed: ${syncs.join(', ')}`);
    // Without the resync the second push made nothing in the root, and nothing synced it again.
    assert.ok(syncs.slice(1).includes('ok'), `the root synced again after the failure: ${syncs.join(', ')}`);
  });

  it('has its parent synced by the next push beneath it when a mkdir beneath it failed', async (t: TestContext) => {
    // `fresh` is made, then `fresh/repo` fails (a full disk): nothing was synced yet. The third
    // mkdir on these paths: the start's of the root (EEXIST), mkdir -p's first try of fresh/repo
    // (ENOENT: `fresh` is made then), its second.
    const traced = await traceFaulted(t, (root) => [
      '-y',
      '-P',
      root,
      '-P',
      `${root}/fresh/repo`,
      '-e',
      'trace=fsync,mkdir,mkdirat',
      '-e',
      'inject=mkdir,mkdirat:error=ENOSPC:when=3',
    ]);
    if (!traced) return;
    const trace = (): string => fs.readFileSync(traced.traceFile, 'utf8');
    const syncs = await failThenPush(traced);
    assert.match(trace(), /mkdir(at)?\([^)]*fresh\/repo.*ENOSPC/, 'the mkdir of fresh/repo failed');
    assert.ok(syncs.includes('ok'), `the root synced after \`fresh\` was made: ${syncs.join(', ')}\n${trace()}`);
  });
});
