// The WebSocket face (GET /v1/ws) with the npm `ws` client: create, follow
// and cancel against the gateway's in-process simulator (node --test tests/sdk/).
// SLUICE_BIN names the binary (ctest sets it).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { FAST, MODEL, startSluice, streamObject } from './util.mjs';

// A socket whose messages are read in order with next().
async function connect(url) {
  const ws = new WebSocket(url);
  const queue = [];
  const waiting = [];
  let closed = null;
  ws.on('message', (data, isBinary) => {
    assert.equal(isBinary, false, 'sluice sends text frames');
    const m = JSON.parse(data.toString('utf8'));
    if (waiting.length) waiting.shift().resolve(m);
    else queue.push(m);
  });
  ws.on('close', (code) => {
    closed = code;
    while (waiting.length) waiting.shift().reject(new Error(`socket closed (${code})`));
  });
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  return {
    ws,
    send: (obj) => ws.send(JSON.stringify(obj)),
    next() {
      if (queue.length) return Promise.resolve(queue.shift());
      if (closed !== null) return Promise.reject(new Error(`socket closed (${closed})`));
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('no message within 30 s')), 30000);
        waiting.push({
          resolve: (m) => { clearTimeout(timer); resolve(m); },
          reject: (e) => { clearTimeout(timer); reject(e); },
        });
      });
    },
    async untilDone(id) {
      const events = [];
      for (;;) {
        const m = await this.next();
        assert.equal(m.type, 'event', JSON.stringify(m));
        assert.equal(m.id, id);
        events.push(m);
        if (m.event === 'done') return events;
      }
    },
    close() {
      ws.close(1000);
      return new Promise((resolve) => {
        if (closed !== null) resolve(closed);
        else ws.once('close', resolve);
      });
    },
  };
}

const body = (content, extra = {}) => ({
  model: MODEL, messages: [{ role: 'user', content }], ...extra,
});
const deltaText = (events) => events.filter((m) => m.event === 'delta').map((m) => m.data.text).join('');

let gw;

before(async () => {
  gw = await startSluice([...FAST, '--grace-s', '1']);
  gw.url = `ws://127.0.0.1:${gw.port}/v1/ws`;
});

after(async () => {
  if (gw) await gw.stop();
});

test('create: created, then the stream\'s events up to done', async () => {
  const c = await connect(gw.url);
  c.send({ type: 'create', body: body('Hello there!', { seed: 7, max_tokens: 30 }), ref: 'a' });
  const created = await c.next();
  assert.equal(created.type, 'created');
  assert.match(created.id, /^[A-Za-z0-9_-]{22}$/);
  assert.match(created.read_token, /^[A-Za-z0-9_-]{22}$/);
  assert.equal(created.ref, 'a');
  const events = await c.untilDone(created.id);
  assert.equal(events[0].event, 'start');
  assert.equal(events[0].data.model, MODEL);
  assert.equal(events.at(-2).event, 'metrics');
  const done = events.at(-1);
  assert.equal(done.data.finish_reason, 'length');
  assert.equal(done.data.usage.completion_tokens, 30);
  const obj = await streamObject(gw.base, created.id);
  assert.equal(obj.state, 'done');
  assert.equal(deltaText(events), obj.text);
  assert.equal(done.seq, obj.last_event_id);
  assert.equal(await c.close(), 1000);
});

test('follow: another socket replays after N, then live', async () => {
  const a = await connect(gw.url);
  const b = await connect(gw.url);
  a.send({ type: 'create', body: body('Tell a story.', { max_tokens: 200, ignore_eos: true }) });
  const created = await a.next();
  assert.equal(created.type, 'created');
  const first = await a.next();
  assert.equal(first.event, 'start');
  // While it runs, from the start: the same messages as the creator's.
  b.send({ type: 'follow', id: created.id, after: 0, token: created.read_token });
  const live = await b.untilDone(created.id);
  const mine = [first, ...(await a.untilDone(created.id))];
  assert.deepEqual(live, mine);
  // After it ended, from N: events N+1 ... done.
  const n = 5;
  b.send({ type: 'follow', id: created.id, after: n });
  const rest = await b.untilDone(created.id);
  assert.deepEqual(rest, mine.filter((m) => m.seq > n));
  await a.close();
  await b.close();
});

test('cancel: the stream ends with done cancelled', async () => {
  const c = await connect(gw.url);
  c.send({ type: 'create', body: body('Tell a long story.', { max_tokens: 4000, ignore_eos: true }) });
  const created = await c.next();
  assert.equal(created.type, 'created');
  let deltas = 0;
  while (deltas < 3) {
    const m = await c.next();
    assert.notEqual(m.event, 'done');
    if (m.event === 'delta') deltas++;
  }
  c.send({ type: 'cancel', id: created.id });
  const events = await c.untilDone(created.id);
  assert.deepEqual(events.at(-1).data, { finish_reason: 'cancelled', usage: null, metrics: null });
  const obj = await streamObject(gw.base, created.id);
  assert.equal(obj.state, 'cancelled');
  await c.close();
});

test('errors: a bad message answers error and the socket goes on', async () => {
  const c = await connect(gw.url);
  c.send({ type: 'nonsense', ref: 1 });
  const e1 = await c.next();
  assert.deepEqual(Object.keys(e1), ['type', 'id', 'message', 'code', 'ref']);
  assert.equal(e1.type, 'error');
  assert.equal(e1.code, 400);
  assert.equal(e1.ref, 1);
  c.send({ type: 'cancel', id: 'x'.repeat(22) });
  const e2 = await c.next();
  assert.equal(e2.code, 404);
  assert.equal(e2.id, 'x'.repeat(22));
  // ws answers pings itself; sluice answers the client's.
  const pong = new Promise((resolve) => c.ws.once('pong', (d) => resolve(d.toString())));
  c.ws.ping('hi');
  assert.equal(await pong, 'hi');
  await c.close();
});

test('a binary frame closes with 1003', async () => {
  const c = await connect(gw.url);
  const code = new Promise((resolve) => c.ws.once('close', resolve));
  c.ws.send(Buffer.from([1, 2, 3]));
  assert.equal(await code, 1003);
});
