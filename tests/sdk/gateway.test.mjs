// The official `openai` npm SDK through the sluice gateway (node --test tests/sdk/).
// Two gateways: one on the in-process simulator, one in front of a separate
// `sluice sim` (--upstream); every answer is compared with the same request
// sent straight to a `sluice sim` (same seed, same text).
// SLUICE_BIN names the binary (ctest sets it).
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { FAST, MODEL, sleep, startSluice } from './util.mjs';

const sdk = (base) => new OpenAI({ baseURL: `${base}/v1`, apiKey: 'x', maxRetries: 0, timeout: 30000 });
const messages = (content) => [{ role: 'user', content }];

// An object without the volatile id/created (everything else compared).
function stable(o) {
  const { id, created, ...rest } = o;
  return rest;
}

async function collect(stream) {
  const chunks = [];
  for await (const c of stream) chunks.push(c);
  return chunks;
}

async function abortCount(base) {
  const text = await (await fetch(`${base}/metrics`)).text();
  let sum = 0;
  let seen = false;
  for (const line of text.split('\n')) {
    if (line.startsWith('vllm:request_success_total{') && line.includes('finished_reason="abort"')) {
      sum += Number(line.trim().split(/\s+/).pop());
      seen = true;
    }
  }
  assert.ok(seen, 'no abort counter on /metrics');
  return sum;
}

async function pollUntil(fn, what, limitMs = 20000) {
  const deadline = Date.now() + limitMs;
  for (;;) {
    if (await fn()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

let ref; // a `sluice sim`: the reference, and the upstream of the second gateway
const gateways = {};

before(async () => {
  ref = await startSluice(FAST, { sim: true });
  gateways.inproc = await startSluice(FAST);
  gateways.upstream = await startSluice(['--upstream', ref.base]);
});

after(async () => {
  const errors = [];
  for (const g of [gateways.inproc, gateways.upstream, ref]) {
    if (!g) continue;
    try { await g.stop(); } catch (e) { errors.push(e); }
  }
  if (errors.length) throw errors[0];
});

for (const mode of ['inproc', 'upstream']) {
  describe(`through the gateway (${mode})`, () => {
    let client;
    let direct;
    let gw;
    before(() => {
      gw = gateways[mode];
      client = sdk(gw.base);
      direct = sdk(ref.base);
    });
    // Where the simulator that serves this gateway counts aborts.
    const metricsBase = () => (mode === 'inproc' ? gw.base : ref.base);

    test('chat streaming: the same chunks as straight from the simulator', async () => {
      const req = { model: MODEL, messages: messages('Hello there!'), stream: true, seed: 7, max_tokens: 40 };
      const got = await collect(await client.chat.completions.create(req));
      const want = await collect(await direct.chat.completions.create(req));
      assert.deepEqual(got.map(stable), want.map(stable));
      assert.equal(new Set(got.map((c) => c.id)).size, 1);
      assert.deepEqual(got[0].choices[0].delta, { role: 'assistant', content: '' });
      const text = got.map((c) => c.choices[0]?.delta?.content ?? '').join('');
      assert.ok(text.length > 0);
      assert.equal(got[got.length - 1].choices[0].finish_reason, 'length');
      assert.ok(got.every((c) => !c.usage), 'usage shown without include_usage');
    });

    test('chat non-streaming: the same answer as straight from the simulator', async () => {
      const req = { model: MODEL, messages: messages('Hi'), seed: 3, max_tokens: 12, ignore_eos: true };
      const got = await client.chat.completions.create(req);
      const want = await direct.chat.completions.create(req);
      assert.deepEqual(stable(got), stable(want));
      assert.equal(got.object, 'chat.completion');
      assert.equal(got.usage.completion_tokens, 12);
    });

    test('chat streaming with include_usage: the usage chunk, last, same numbers', async () => {
      const req = {
        model: MODEL, messages: messages('Count things'), stream: true, seed: 9,
        max_tokens: 20, ignore_eos: true, stream_options: { include_usage: true },
      };
      const got = await collect(await client.chat.completions.create(req));
      const want = await collect(await direct.chat.completions.create(req));
      assert.deepEqual(got.map(stable), want.map(stable));
      const last = got[got.length - 1];
      assert.deepEqual(last.choices, []);
      assert.equal(last.usage.completion_tokens, 20);
      assert.equal(last.usage.total_tokens, last.usage.prompt_tokens + 20);
    });

    test('completions streaming and not', async () => {
      const req = { model: MODEL, prompt: 'Once upon a time', seed: 11, max_tokens: 15, ignore_eos: true };
      const got = await collect(await client.completions.create({ ...req, stream: true }));
      const want = await collect(await direct.completions.create({ ...req, stream: true }));
      assert.deepEqual(got.map(stable), want.map(stable));
      const text = got.map((c) => c.choices[0]?.text ?? '').join('');
      assert.ok(text.length > 0);
      const whole = await client.completions.create(req);
      assert.equal(whole.choices[0].text, text);
      assert.deepEqual(stable(whole), stable(await direct.completions.create(req)));
    });

    test('completions streaming with include_usage', async () => {
      const req = {
        model: MODEL, prompt: 'The lake', seed: 12, max_tokens: 10, ignore_eos: true,
        stream: true, stream_options: { include_usage: true },
      };
      const got = await collect(await client.completions.create(req));
      const last = got[got.length - 1];
      assert.deepEqual(last.choices, []);
      assert.equal(last.usage.completion_tokens, 10);
    });

    test('the wire: id lines 1..N, X-Stream-Id, [DONE] without id', async () => {
      const r = await fetch(`${gw.base}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ model: MODEL, messages: messages('x'), stream: true, seed: 1, max_tokens: 5 }),
      });
      assert.equal(r.status, 200);
      assert.match(r.headers.get('x-stream-id'), /^[A-Za-z0-9_-]{22}$/);
      const events = (await r.text()).split('\n\n');
      assert.equal(events.pop(), '');
      assert.equal(events.pop(), 'data: [DONE]');
      events.forEach((e, i) => assert.ok(e.startsWith(`id: ${i + 1}\ndata: {`), e));
    });

    test('an in-band error is thrown by the SDK with the upstream message', async () => {
      const req = {
        model: MODEL, messages: messages('Tell me about lakes.'), stream: true, seed: 5,
        x_fault: { kind: 'inband_error_after', n: 2, status: 500 },
      };
      // the message the simulator itself sends
      let wantMsg;
      await assert.rejects(collect(await direct.chat.completions.create(req)), (e) => {
        wantMsg = e.message;
        return true;
      });
      const got = [];
      await assert.rejects(
        async () => { for await (const c of await client.chat.completions.create(req)) got.push(c); },
        (err) => {
          assert.ok(err instanceof OpenAI.APIError, `not an APIError: ${err}`);
          assert.equal(err.message, wantMsg);
          return true;
        },
      );
      assert.equal(got.length, 3); // the role chunk and two deltas
    });

    for (const fault of [
      { kind: 'drop_after', n: 3 },
      { kind: 'done_without_finish', n: 3 },
    ]) {
      test(`${fault.kind}: sluice's error event is thrown by the SDK`, async () => {
        const req = {
          model: MODEL, messages: messages('Tell me about lakes.'), stream: true, seed: 6,
          max_tokens: 40, x_fault: fault,
        };
        const got = [];
        await assert.rejects(
          async () => { for await (const c of await client.chat.completions.create(req)) got.push(c); },
          (err) => {
            assert.ok(err instanceof OpenAI.APIError, `not an APIError: ${err}`);
            assert.ok(err.message.length > 0);
            return true;
          },
        );
        assert.equal(got.length, 4); // role chunk and three deltas
        assert.ok(got.every((c) => c.choices[0].finish_reason === null));
        // what came is the start of the real answer
        const full = await collect(await direct.chat.completions.create({ ...req, x_fault: undefined }));
        assert.deepEqual(got.map(stable), full.slice(0, 4).map(stable));
      });
    }

    test('error before the first token: the upstream status as an APIError', async () => {
      for (const stream of [true, false]) {
        await assert.rejects(
          client.chat.completions.create({
            model: MODEL, messages: messages('x'), stream,
            x_fault: { kind: 'error_before_first', status: 503 },
          }),
          (err) => {
            assert.ok(err instanceof OpenAI.APIError, `not an APIError: ${err}`);
            assert.equal(err.status, 503);
            return true;
          },
        );
      }
    });

    test('wrong model: NotFoundError', async () => {
      await assert.rejects(
        client.chat.completions.create({ model: 'no-such-model', messages: messages('x'), stream: true }),
        (err) => err instanceof OpenAI.NotFoundError,
      );
    });

    test('models.list is proxied', async () => {
      const ids = [];
      for await (const m of client.models.list()) ids.push(m.id);
      assert.deepEqual(ids, [MODEL]);
    });

    test('aborting the SDK stream cancels the upstream request', async () => {
      const before = await abortCount(metricsBase());
      const stream = await client.chat.completions.create({
        model: MODEL, messages: messages('Write a very long story.'), stream: true, seed: 8,
        max_tokens: 6000, ignore_eos: true,
      });
      let n = 0;
      for await (const c of stream) {
        assert.ok(c.choices);
        if (++n === 3) break; // the SDK aborts the request
      }
      await pollUntil(async () => (await abortCount(metricsBase())) >= before + 1,
        'the abort counter to move');
      assert.equal(await abortCount(metricsBase()), before + 1);
    });
  });
}
