// extensions.events through real receivers: an HTTP sink written in the tests and Debian's
// nats-server with a subscriber receive zot's CloudEvents for every push, tag and delete, in the
// order they happened (HTTP in binary mode, NATS in structured mode, as zot's sdk-go sends
// them). A sink that is stopped and started again receives every event it missed, in order,
// once: the actor retries what failed and its checkpoint moves only past what was delivered.
// The NATS sink flushes once per batch of events, not once per event, and publishes a batch's
// events at its flush, together.
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fetchAs, writeHtpasswd } from '../helpers/auth.js';
import { eventually } from '../helpers/http.js';
import { HttpEventSink, NatsRelay, NatsServer, NatsSubscriber, type ReceivedEvent } from '../helpers/event-sinks.js';
import { makeImage, pushImage, pushManifest, sha256, OCI_MANIFEST } from '../helpers/oci.js';
import { makeTempDir, startTestRegistry, type TestRegistry } from '../helpers/registry.js';
import type { CloudEvent } from '../../src/actors/cloudevents/cloud-event.js';
import { NatsSink } from '../../src/actors/cloudevents/nats-sink.js';

const SUBJECT = 'zot.events';
const WAIT_MS = 60_000;

/** What a test asserts about a received event: its type and what it names. */
function summary(event: ReceivedEvent): string {
  const data = event.data;
  return [event.type.replace(/^zotregistry\./, ''), data.name, data.reference].filter((part) => part !== undefined).join(' ');
}

async function received(what: string, events: ReceivedEvent[], count: number): Promise<void> {
  await eventually(async () => events.length >= count, `${count} events at ${what} (has ${events.length})`, WAIT_MS);
}

function assertNoDuplicates(events: ReceivedEvent[]): void {
  const ids = events.map((event) => event.id);
  assert.equal(new Set(ids).size, ids.length, `no event twice: ${ids.join(',')}`);
}

const cleanups: (() => Promise<void>)[] = [];
after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});

/** A nats-server and a subscriber of SUBJECT, both stopped after the tests. */
async function natsWithSubscriber(): Promise<{ nats: NatsServer; subscriber: NatsSubscriber }> {
  const nats = await NatsServer.start();
  cleanups.push(() => nats.stop());
  const subscriber = await NatsSubscriber.start(nats.url, SUBJECT);
  cleanups.push(() => subscriber.stop());
  return { nats, subscriber };
}

describe('extensions.events', () => {
  let httpSink: HttpEventSink;
  let nats: NatsServer;
  let subscriber: NatsSubscriber;
  let registry: TestRegistry;

  before(async () => {
    httpSink = await HttpEventSink.start();
    cleanups.push(() => httpSink.stop());
    nats = await NatsServer.start();
    cleanups.push(() => nats.stop());
    subscriber = await NatsSubscriber.start(nats.url, SUBJECT);
    cleanups.push(() => subscriber.stop());
    registry = await startTestRegistry({
      extensions: {
        events: {
          enable: true,
          sinks: [
            { type: 'http', address: httpSink.url, channel: 'ci', headers: { 'X-Sink-Test': 'yes' }, credentials: { token: 'secret' } },
            { type: 'nats', address: nats.url, channel: SUBJECT, timeout: '10s' },
          ],
        },
      },
    });
    cleanups.push(() => registry.stop());
  });

  it('delivers every push, tag and delete to both sinks, in order, as zot types them', async () => {
    const { url } = registry;
    const image = makeImage();
    assert.equal((await pushImage(url, 'events/app', 'v1', image)).status, 201);
    assert.equal((await pushManifest(url, 'events/app', 'v2', image.manifestBytes)).status, 201);
    const byDigest = makeImage();
    assert.equal((await pushImage(url, 'events/app', byDigest.digest, byDigest)).status, 201);
    assert.equal((await fetch(`${url}/v2/events/app/manifests/v2`, { method: 'DELETE' })).status, 202);
    assert.equal((await fetch(`${url}/v2/events/app/manifests/${image.digest}`, { method: 'DELETE' })).status, 202);

    const expected = [
      'repository.created events/app',
      'image.updated events/app v1',
      'image.updated events/app v2',
      `image.updated events/app ${byDigest.digest}`,
      'image.deleted events/app v2',
      // One event for a delete by digest, as in zot, though it removed tag v1 as well.
      `image.deleted events/app ${image.digest}`,
    ];
    await received('the HTTP sink', httpSink.received, expected.length);
    await received('the NATS subscriber', subscriber.received, expected.length);
    assert.deepEqual(httpSink.received.map(summary), expected);
    assert.deepEqual(subscriber.received.map(summary), expected);
    assertNoDuplicates(httpSink.received);
    assert.deepEqual(
      subscriber.received.map((event) => event.id),
      httpSink.received.map((event) => event.id),
      'both sinks get the same events, with the same ids',
    );

    const updated = httpSink.received[1]!;
    assert.deepEqual(
      { ...updated.data, request: undefined },
      {
        name: 'events/app',
        reference: 'v1',
        digest: image.digest,
        mediaType: OCI_MANIFEST,
        manifest: image.manifestBytes,
        actor: { name: 'anonymous' },
        request: undefined,
      },
    );
    assert.deepEqual(updated.data.request, { addr: '127.0.0.1', method: 'PUT', useragent: '' });
    assert.deepEqual(httpSink.received[5]!.data.request, { addr: '127.0.0.1', method: 'DELETE', useragent: '' });
    assert.equal(httpSink.received[5]!.data.mediaType, OCI_MANIFEST, 'a deleted manifest keeps its media type');
  });

  it('sends HTTP events in binary mode and NATS events in structured mode', () => {
    const headers = httpSink.requests[1]!;
    assert.equal(headers['ce-specversion'], '1.0');
    assert.equal(headers['ce-source'], 'zotregistry.dev');
    assert.equal(headers['ce-type'], 'zotregistry.image.updated');
    assert.equal(headers['ce-channel'], 'ci', 'channel is an extension attribute, as in zot');
    assert.equal(headers['content-type'], 'application/json');
    assert.equal(headers['x-sink-test'], 'yes', 'configured headers are sent');
    assert.equal(headers['authorization'], 'Bearer secret', 'a token is sent as Bearer authorization');
    assert.ok(!Number.isNaN(Date.parse(String(headers['ce-time']))), 'ce-time is a time');

    const structured = subscriber.received[1]!;
    assert.equal(structured.specversion, '1.0');
    assert.equal(structured.type, 'zotregistry.image.updated');
    assert.equal(structured.source, 'zotregistry.dev');
    assert.equal(structured.datacontenttype, 'application/json');
    assert.equal(structured.time, String(headers['ce-time']));
  });
});

describe('a sink that was down', () => {
  it('HTTP: receives every event it missed once it is back, in order, each once', async () => {
    const sink = await HttpEventSink.start();
    cleanups.push(() => sink.stop());
    const registry = await startTestRegistry({
      extensions: { events: { sinks: [{ type: 'http', address: sink.url }], source: 'https://registry.test', typePrefix: 'test.registry' } },
    });
    cleanups.push(() => registry.stop());
    const { url } = registry;
    assert.equal((await pushImage(url, 'down/http', 'before')).status, 201);
    await received('the sink before it stops', sink.received, 2);

    await sink.stop();
    const missed = makeImage();
    assert.equal((await pushImage(url, 'down/http', 'during', missed)).status, 201);
    assert.equal((await pushImage(url, 'down/other', 'during')).status, 201);
    assert.equal((await fetch(`${url}/v2/down/http/manifests/before`, { method: 'DELETE' })).status, 202);
    await sink.listen();

    await received('the sink after it is back', sink.received, 6);
    // Delivery is in order: once a later push arrived, nothing before it can come again.
    assert.equal((await pushImage(url, 'down/other', 'marker')).status, 201);
    await received('the sink, up to the marker', sink.received, 7);
    assert.equal(summary(sink.received[6]!), 'test.registry.image.updated down/other marker');
    sink.received.pop();
    assert.deepEqual(sink.received.map((event) => `${event.type} ${String(event.data.name)} ${String(event.data.reference ?? '')}`.trim()), [
      'test.registry.repository.created down/http',
      'test.registry.image.updated down/http before',
      'test.registry.image.updated down/http during',
      'test.registry.repository.created down/other',
      'test.registry.image.updated down/other during',
      'test.registry.image.deleted down/http before',
    ]);
    assert.ok(sink.received.every((event) => event.source === 'https://registry.test'), 'source is the configured one');
    assertNoDuplicates(sink.received);
    const ids = sink.received.map((event) => Number.parseInt(event.id, 10));
    assert.deepEqual([...ids].sort((a, b) => a - b), ids, 'ids follow the log');
  });

  it('NATS: a subscriber of the restarted server receives every event it missed, in order, each once', async () => {
    const users = { reader: 'reader-secret', zot: 'zot-secret' };
    const nats = await NatsServer.start(users);
    cleanups.push(() => nats.stop());
    let subscriber = await NatsSubscriber.start(nats.url, SUBJECT, { user: 'reader', pass: users.reader });
    cleanups.push(() => subscriber.stop());
    const registry = await startTestRegistry({
      extensions: {
        events: { sinks: [{ type: 'nats', address: nats.url, channel: SUBJECT, credentials: { username: 'zot', password: users.zot } }] },
      },
    });
    cleanups.push(() => registry.stop());
    const { url } = registry;
    assert.equal((await pushImage(url, 'down/nats', 'before')).status, 201);
    await received('the subscriber before the server stops', subscriber.received, 2);
    const before = subscriber.received.map(summary);
    await subscriber.stop();

    await nats.stop();
    assert.equal((await pushImage(url, 'down/nats', 'during')).status, 201);
    assert.equal((await fetch(`${url}/v2/down/nats/manifests/before`, { method: 'DELETE' })).status, 202);

    // The server comes back refusing the registry's user, so that the subscriber is in place
    // before the registry can publish; then the registry's user is let in (a reload, SIGHUP).
    nats.writeConfig({ reader: users.reader });
    await nats.run();
    subscriber = await NatsSubscriber.start(nats.url, SUBJECT, { user: 'reader', pass: users.reader });
    cleanups.push(() => subscriber.stop());
    nats.writeConfig(users);
    nats.reload();

    await received('the subscriber after the server is back', subscriber.received, 2);
    // Delivery is in order: once a later push arrived, nothing before it can come again.
    assert.equal((await pushImage(url, 'down/nats', 'marker')).status, 201);
    await received('the subscriber, up to the marker', subscriber.received, 3);
    assert.equal(summary(subscriber.received.pop()!), 'image.updated down/nats marker');
    assert.deepEqual(before, ['repository.created down/nats', 'image.updated down/nats before']);
    assert.deepEqual(subscriber.received.map(summary), ['image.updated down/nats during', 'image.deleted down/nats before']);
    assertNoDuplicates(subscriber.received);
  });
});

describe('a NATS sink with events waiting', () => {
  it('publishes them with one flush per batch, not per event, each once and in order', async () => {
    const { nats, subscriber } = await natsWithSubscriber();
    const relay = await NatsRelay.start(nats.port);
    cleanups.push(() => relay.cut());
    const registry = await startTestRegistry({ extensions: { events: { sinks: [{ type: 'nats', address: relay.url, channel: SUBJECT, timeout: '10s' }] } } });
    cleanups.push(() => registry.stop());
    const { url } = registry;
    assert.equal((await pushImage(url, 'waiting/r0', 'v1')).status, 201);
    await received('the subscriber', subscriber.received, 2);

    // The way to the server is cut: the events of these pushes wait behind the first that failed.
    await relay.cut();
    const repos = Array.from({ length: 30 }, (_, i) => `waiting/r${i + 1}`);
    for (let i = 0; i < repos.length; i += 6) {
      const statuses = await Promise.all(repos.slice(i, i + 6).map(async (repo) => (await pushImage(url, repo, 'v1')).status));
      assert.deepEqual(statuses, statuses.map(() => 201));
    }
    const pingsBefore = relay.pings;
    await relay.open();

    await received('the subscriber after the way is open', subscriber.received, 2 + repos.length * 2);
    const flushes = relay.pings - pingsBefore;
    assert.ok(flushes <= 10, `${flushes} flushes (and connection handshakes) for ${repos.length * 2} events`);
    assert.equal((await pushImage(url, 'waiting/marker', 'v1')).status, 201);
    await received('the subscriber, up to the marker', subscriber.received, 4 + repos.length * 2);
    const events = subscriber.received.slice(0, 2 + repos.length * 2);
    assertNoDuplicates(events);
    const ids = events.map((event) => Number.parseInt(event.id, 10));
    assert.deepEqual([...ids].sort((a, b) => a - b), ids, 'in log order');
    const summaries = events.map(summary);
    for (const repo of ['waiting/r0', ...repos]) {
      assert.deepEqual(
        summaries.filter((line) => line.includes(`${repo} `) || line.endsWith(repo)),
        [`repository.created ${repo}`, `image.updated ${repo} v1`],
        `${repo}: created once, then its image`,
      );
    }
  });
});

describe('a NATS sink', () => {
  it('publishes the events sent since the last flush at the flush, together, in order, each once', async () => {
    const { nats, subscriber } = await natsWithSubscriber();
    const sink = new NatsSink({ type: 'nats', address: nats.url, channel: SUBJECT }, 10_000);
    cleanups.push(() => sink.close());
    const event = (id: number): CloudEvent => ({
      specversion: '1.0',
      id: String(id),
      source: 'test',
      type: 'zotregistry.image.updated',
      time: new Date().toISOString(),
      datacontenttype: 'application/json',
      data: { name: `held/r${id}` },
    });
    for (let id = 1; id <= 3; id++) await sink.send(event(id));
    // Anything published would be at the server well within this wait.
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal(subscriber.received.length, 0, 'nothing is published before the flush');
    await sink.flush();
    await received('the subscriber after the flush', subscriber.received, 3);
    await sink.send(event(4));
    await sink.flush();
    await received('the subscriber after the second flush', subscriber.received, 4);
    await sink.flush();
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.deepEqual(
      subscriber.received.map((message) => message.id),
      ['1', '2', '3', '4'],
      'in order, each once: a flush publishes nothing twice',
    );
  });
});

describe('the actor of an event', () => {
  it('is the user who logged in (htpasswd), in every event of the push', async () => {
    const sink = await HttpEventSink.start();
    cleanups.push(() => sink.stop());
    const htpasswd = writeHtpasswd(path.join(makeTempDir(), 'htpasswd'), { alice: 'alice-password' });
    const registry = await startTestRegistry({
      http: { auth: { htpasswd: { path: htpasswd } } },
      extensions: { events: { sinks: [{ type: 'http', address: sink.url }] } },
    });
    cleanups.push(() => registry.stop());
    const as = (url: string, init: RequestInit) => fetchAs('alice', 'alice-password', url, init);
    const image = makeImage();
    for (const blob of [image.config, ...image.layers]) {
      const res = await as(`${registry.url}/v2/authored/app/blobs/uploads/?digest=${sha256(blob)}`, { method: 'POST', body: blob });
      assert.equal(res.status, 201, await res.text());
    }
    const pushed = await as(`${registry.url}/v2/authored/app/manifests/v1`, { method: 'PUT', headers: { 'Content-Type': OCI_MANIFEST }, body: image.manifestBytes });
    assert.equal(pushed.status, 201, await pushed.text());

    await received('the sink', sink.received, 2);
    assert.deepEqual(sink.received.map(summary), ['repository.created authored/app', 'image.updated authored/app v1']);
    assert.deepEqual(
      sink.received.map((event) => event.data.actor),
      [{ name: 'alice' }, { name: 'alice' }],
    );
  });
});
