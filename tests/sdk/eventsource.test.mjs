// The npm `eventsource` package (4.1.1, WHATWG EventSource over fetch) against
// sluice's stream face: it resumes by itself across dropped connections.
//
// A tiny TCP proxy (node:net) sits between EventSource and the gateway and
// cuts the first connections in the middle of an event, after K events. The
// client reconnects on its own (after its default 3 s retry; sluice sends no
// `retry:`) with Last-Event-ID, gets events K+1... from the log, and when the
// stream is over its reconnect is answered 204, which closes it for good
// (readyState CLOSED, an error event with code 204, no more connections).
//
// SLUICE_BIN names the binary (ctest sets it). node --test tests/sdk/
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { EventSource } from 'eventsource';
import { FAST, MODEL, startSluice, streamObject } from './util.mjs';

const LIMIT_MS = 60000; // generous: the sanitized build on a busy machine

// A TCP proxy to the gateway. Connection i (0-based) is cut after cuts[i]
// events of its response body (counted as blank lines, "\n\n"), a few bytes
// into the next event; later connections pass through. Every request head is
// kept, to see the Last-Event-ID that EventSource sent (a request may reuse a
// connection that ended its previous response cleanly).
async function startCuttingProxy(target, cuts) {
  const requests = [];
  let conns = 0;
  const server = net.createServer((client) => {
    const i = conns++;
    const up = net.connect(target, '127.0.0.1');
    const cutAfter = cuts[i];
    let seen = Buffer.alloc(0);
    let bodyAt = -1;
    let blanks = 0;
    let cut = false;
    let pending = '';
    client.on('data', (d) => {
      // Request heads (EventSource sends GETs without a body), in order.
      pending += d.toString('latin1');
      for (let k = pending.indexOf('\r\n\r\n'); k >= 0; k = pending.indexOf('\r\n\r\n')) {
        requests.push({ conn: i, head: pending.slice(0, k + 4) });
        pending = pending.slice(k + 4);
      }
      up.write(d);
    });
    up.on('data', (d) => {
      if (cut) return;
      if (cutAfter === undefined) {
        client.write(d);
        return;
      }
      const from = seen.length;
      seen = Buffer.concat([seen, d]);
      if (bodyAt < 0) {
        const h = seen.indexOf('\r\n\r\n');
        if (h < 0) { client.write(d); return; }
        bodyAt = h + 4;
      }
      let pos = Math.max(bodyAt, from - 1);
      for (;;) {
        const j = seen.indexOf('\n\n', pos);
        if (j < 0) break;
        blanks += 1;
        pos = j + 2;
        if (blanks === cutAfter) {
          // Forward up to a few bytes into the next event, then drop both ends.
          const end = Math.min(seen.length, j + 2 + 9);
          client.write(seen.subarray(from, Math.max(from, end)));
          cut = true;
          client.end();
          client.destroy();
          up.destroy();
          return;
        }
      }
      client.write(d);
    });
    const close = () => { client.destroy(); up.destroy(); };
    client.on('error', close);
    up.on('error', close);
    client.on('close', close);
    up.on('close', () => client.end());
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: server.address().port,
    requests,
    connections: () => conns,
    lastEventIds: () => requests.map(({ head }) => {
      const m = /\r\nlast-event-id: *([^\r]*)\r\n/i.exec(head);
      return m ? m[1] : null;
    }),
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

async function createStream(base, body) {
  const r = await fetch(`${base}/v1/streams`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  assert.equal(r.status, 201);
  const j = await r.json();
  assert.match(j.id, /^[A-Za-z0-9_-]{22}$/);
  return j;
}

// Follows url with EventSource until it is closed by a 204. Returns what it
// received: events [{type, id, data}] and the errors it reported.
function follow(url, types) {
  return new Promise((resolve, reject) => {
    const es = new EventSource(url);
    const events = [];
    const errors = [];
    const timer = setTimeout(() => {
      es.close();
      reject(new Error(`EventSource not closed within ${LIMIT_MS} ms; got ${events.length} `
        + `events, errors ${JSON.stringify(errors)}`));
    }, LIMIT_MS);
    const onEvent = (e) => events.push({ type: e.type, id: e.lastEventId, data: e.data });
    for (const t of types) es.addEventListener(t, onEvent);
    es.addEventListener('error', (e) => {
      const seen = events.filter((x) => x.id !== '');
      errors.push({
        code: e.code, message: e.message, readyState: es.readyState,
        lastId: seen.length ? seen.at(-1).id : null,
      });
      if (e.code === 204) {
        clearTimeout(timer);
        // Closed for good: give it a moment to (not) reconnect.
        setTimeout(() => resolve({ es, events, errors }), 300);
      } else if (es.readyState === EventSource.CLOSED) {
        clearTimeout(timer);
        reject(new Error(`EventSource closed by an error: ${JSON.stringify(errors)}`));
      }
    });
  });
}

function assertIdsOneToN(ids, n) {
  const nums = ids.map(Number);
  assert.equal(new Set(nums).size, nums.length, `an event came twice: ${nums}`);
  assert.deepEqual(nums, Array.from({ length: n }, (_, k) => k + 1));
}

let gw;

before(async () => {
  // A long grace, since EventSource stays away 3 s between connections.
  gw = await startSluice([...FAST, '--grace-s', '30', '--reasoning-parser']);
});

after(async () => {
  if (gw) await gw.stop();
});

describe('npm eventsource resumes by itself', { concurrency: 2 }, () => {
  test('compact events: cut twice mid-stream, resumed, then 204 closes it', async () => {
    // A 4 s pause after 8 deltas: the first reconnect (3 s later) finds the
    // stream still running, so it gets a replay and then the live tail.
    const body = {
      model: MODEL, messages: [{ role: 'user', content: 'Tell me about EventSource.' }],
      seed: 41, max_tokens: 40, x_fault: { kind: 'stall_after', n: 8, ms: 4000 },
    };
    const created = await createStream(gw.base, body);
    const proxy = await startCuttingProxy(gw.port, [4, 3]);
    try {
      const url = `http://127.0.0.1:${proxy.port}/v1/streams/${created.id}/events`
        + `?token=${created.read_token}`;
      const { es, events, errors } = await follow(
        url, ['start', 'delta', 'reasoning', 'tool_call', 'metrics', 'done']);
      assert.equal(es.readyState, EventSource.CLOSED);

      const obj = await streamObject(gw.base, created.id);
      assert.equal(obj.state, 'done');
      const withId = events.filter((e) => e.type !== 'metrics');
      assertIdsOneToN(withId.map((e) => e.id), obj.last_event_id);
      assert.equal(withId[0].type, 'start');
      assert.equal(withId.at(-1).type, 'done');
      assert.equal(JSON.parse(withId.at(-1).data).finish_reason, 'length');
      const join = (t) => events.filter((e) => e.type === t)
        .map((e) => JSON.parse(e.data).text).join('');
      assert.equal(join('delta'), obj.text);
      assert.equal(join('reasoning'), obj.reasoning);
      assert.ok(obj.text.length > 0 && obj.reasoning.length > 0);

      // Requests: cut, cut, the one that ended with done, the 204.
      assert.equal(proxy.requests.length, 4, JSON.stringify(proxy.requests));
      assert.ok(proxy.connections() >= 3);
      // Each reconnect sent the id of the last whole event it had got; the
      // cuts came mid-stream (events 1..4, then 3 more).
      const sent = proxy.lastEventIds();
      assert.deepEqual(sent, [null, ...errors.slice(0, 3).map((e) => e.lastId)],
        JSON.stringify({ sent, errors }));
      assert.deepEqual(sent.slice(1), ['4', '7', String(obj.last_event_id)]);
      // It said why it stopped: 204, after two drops and the end of the body.
      assert.equal(errors.at(-1).code, 204);
      assert.equal(errors.length, 4, JSON.stringify(errors));
    } finally {
      await proxy.close();
    }
  });

  test('?format=openai: cut mid-stream, resumed, then 204 after [DONE]', async () => {
    const body = {
      model: MODEL, messages: [{ role: 'user', content: 'Tell me about SSE.' }],
      seed: 42, max_tokens: 30, x_fault: { kind: 'stall_after', n: 5, ms: 4000 },
    };
    const created = await createStream(gw.base, body);
    const proxy = await startCuttingProxy(gw.port, [3]);
    try {
      const url = `http://127.0.0.1:${proxy.port}/v1/streams/${created.id}/events`
        + `?format=openai&token=${created.read_token}`;
      const { es, events, errors } = await follow(url, ['message']);
      assert.equal(es.readyState, EventSource.CLOSED);

      const obj = await streamObject(gw.base, created.id);
      assert.equal(obj.state, 'done');
      assert.equal(events.at(-1).data, '[DONE]');
      assert.equal(events.filter((e) => e.data === '[DONE]').length, 1);
      const chunks = events.slice(0, -1);
      assertIdsOneToN(chunks.map((e) => e.id), obj.last_event_id);
      let text = '';
      let reasoning = '';
      for (const e of chunks) {
        const c = JSON.parse(e.data);
        assert.equal(c.object, 'chat.completion.chunk');
        const d = c.choices[0]?.delta ?? {};
        text += d.content ?? '';
        reasoning += d.reasoning ?? d.reasoning_content ?? '';
      }
      assert.equal(text, obj.text);
      assert.equal(reasoning, obj.reasoning);

      assert.equal(proxy.requests.length, 3, JSON.stringify(proxy.requests));
      assert.ok(proxy.connections() >= 2);
      const sent = proxy.lastEventIds();
      assert.deepEqual(sent, [null, ...errors.slice(0, 2).map((e) => e.lastId)],
        JSON.stringify({ sent, errors }));
      assert.deepEqual(sent, [null, '3', String(obj.last_event_id)]);
      assert.equal(errors.at(-1).code, 204);
      assert.equal(errors.length, 3, JSON.stringify(errors));
    } finally {
      await proxy.close();
    }
  });
});
