// The official `openai` npm SDK against `sluice sim` (node --test tests/sdk/).
// SLUICE_BIN names the binary (ctest sets it).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import OpenAI from 'openai';
import { FAST, MODEL, startSluice } from './util.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));

let sim;
let client;

before(async () => {
  sim = await startSluice(FAST, { sim: true });
  // No retries: a retried error would hide what the server answered.
  client = new OpenAI({ baseURL: `${sim.base}/v1`, apiKey: 'x', maxRetries: 0, timeout: 30000 });
});

after(async () => {
  if (sim) await sim.stop();
});

const messages = (content) => [{ role: 'user', content }];

test('chat streaming: role first, content deltas, finish_reason stop', async () => {
  const stream = await client.chat.completions.create({
    model: MODEL, messages: messages('Hello there!'), stream: true, seed: 7,
  });
  const chunks = [];
  for await (const chunk of stream) chunks.push(chunk);
  assert.ok(chunks.length >= 3);
  assert.equal(chunks[0].object, 'chat.completion.chunk');
  assert.deepEqual(chunks[0].choices[0].delta, { role: 'assistant', content: '' });
  const ids = new Set(chunks.map((c) => c.id));
  assert.equal(ids.size, 1);
  assert.match([...ids][0], /^chatcmpl-/);
  const text = chunks.map((c) => c.choices[0]?.delta?.content ?? '').join('');
  assert.ok(text.length > 0);
  const last = chunks[chunks.length - 1];
  assert.equal(last.choices[0].finish_reason, 'stop');
  assert.equal(chunks.filter((c) => c.choices[0]?.finish_reason).length, 1);

  // The same seed without streaming gives the same text.
  const whole = await client.chat.completions.create({
    model: MODEL, messages: messages('Hello there!'), seed: 7,
  });
  assert.equal(whole.choices[0].message.content, text);
});

test('chat non-streaming', async () => {
  const r = await client.chat.completions.create({
    model: MODEL, messages: messages('Hi'), seed: 3, max_tokens: 12, ignore_eos: true,
  });
  assert.equal(r.object, 'chat.completion');
  assert.equal(r.model, MODEL);
  assert.equal(r.choices.length, 1);
  assert.equal(r.choices[0].message.role, 'assistant');
  assert.equal(typeof r.choices[0].message.content, 'string');
  assert.ok(r.choices[0].message.content.length > 0);
  assert.equal(r.choices[0].finish_reason, 'length');
  assert.equal(r.usage.completion_tokens, 12);
  assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + 12);
});

test('chat streaming with include_usage: a usage chunk with no choices', async () => {
  const stream = await client.chat.completions.create({
    model: MODEL, messages: messages('Count things'), stream: true, seed: 9,
    max_tokens: 20, ignore_eos: true, stream_options: { include_usage: true },
  });
  const chunks = [];
  for await (const chunk of stream) chunks.push(chunk);
  const last = chunks[chunks.length - 1];
  assert.deepEqual(last.choices, []);
  assert.equal(last.usage.completion_tokens, 20);
  assert.ok(last.usage.prompt_tokens > 0);
  assert.equal(last.usage.total_tokens, last.usage.prompt_tokens + 20);
  assert.ok(chunks.slice(0, -1).every((c) => c.usage === undefined || c.usage === null));
  assert.equal(chunks[chunks.length - 2].choices[0].finish_reason, 'length');
});

test('completions streaming and not', async () => {
  const stream = await client.completions.create({
    model: MODEL, prompt: 'Once upon a time', stream: true, seed: 11,
    max_tokens: 15, ignore_eos: true,
  });
  const chunks = [];
  for await (const chunk of stream) chunks.push(chunk);
  assert.ok(chunks.every((c) => c.object === 'text_completion'));
  assert.match(chunks[0].id, /^cmpl-/);
  const text = chunks.map((c) => c.choices[0].text).join('');
  assert.ok(text.length > 0);
  assert.equal(chunks[chunks.length - 1].choices[0].finish_reason, 'length');

  const whole = await client.completions.create({
    model: MODEL, prompt: 'Once upon a time', seed: 11, max_tokens: 15, ignore_eos: true,
  });
  assert.equal(whole.object, 'text_completion');
  assert.equal(whole.choices[0].text, text);
  assert.equal(whole.choices[0].finish_reason, 'length');
  assert.equal(whole.usage.completion_tokens, 15);
});

test('models.list names the served model', async () => {
  const ids = [];
  for await (const m of client.models.list()) ids.push(m.id);
  assert.deepEqual(ids, [MODEL]);
});

test('an in-band error event is raised by the SDK with its message', async () => {
  const fault = { kind: 'inband_error_after', n: 2, status: 500 };
  const body = {
    model: MODEL, messages: messages('Tell me about lakes.'), stream: true, seed: 5, x_fault: fault,
  };
  // What the wire says, read without the SDK.
  const raw = await (await fetch(`${sim.base}/v1/chat/completions`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body),
  })).text();
  const errLine = raw.split('\n\n').find((e) => e.startsWith('data: {"error"'));
  assert.ok(errLine, `no error event in ${raw}`);
  const wire = JSON.parse(errLine.slice('data: '.length)).error;
  assert.equal(wire.code, 500);
  assert.ok(wire.message.length > 0);

  const stream = await client.chat.completions.create(body);
  const got = [];
  await assert.rejects(
    async () => { for await (const chunk of stream) got.push(chunk); },
    (err) => {
      assert.ok(err instanceof OpenAI.APIError, `not an APIError: ${err}`);
      assert.equal(err.message, wire.message);
      assert.equal(err.code, 500);
      assert.equal(err.type, wire.type);
      return true;
    },
  );
  // the role chunk and the two deltas came first
  assert.equal(got.length, 3);
  assert.equal(got[0].choices[0].delta.role, 'assistant');
  assert.equal(got.filter((c) => !('role' in c.choices[0].delta)).length, 2);
});

test('an error before the first token is an APIError with the status', async () => {
  await assert.rejects(
    client.chat.completions.create({
      model: MODEL, messages: messages('hi'), stream: true,
      x_fault: { kind: 'error_before_first', status: 503 },
    }),
    (err) => {
      assert.ok(err instanceof OpenAI.APIError);
      assert.equal(err.status, 503);
      assert.equal(err.code, 503);
      assert.ok(err.message.startsWith('503 '));
      return true;
    },
  );
});

test('a wrong model is a NotFoundError with param "model"', async () => {
  await assert.rejects(
    client.chat.completions.create({ model: 'no/such-model', messages: messages('hi') }),
    (err) => {
      assert.ok(err instanceof OpenAI.NotFoundError, `${err}`);
      assert.equal(err.status, 404);
      assert.equal(err.param, 'model');
      return true;
    },
  );
});

test('done_without_finish: the SDK ends the stream normally at [DONE]', async () => {
  const stream = await client.chat.completions.create({
    model: MODEL, messages: messages('hi'), stream: true, seed: 1,
    x_fault: { kind: 'done_without_finish', n: 4 },
  });
  const chunks = [];
  for await (const chunk of stream) chunks.push(chunk);
  assert.ok(chunks.every((c) => c.choices[0].finish_reason === null));
  assert.equal(chunks[0].choices[0].delta.role, 'assistant');
  assert.equal(chunks.length, 1 + 4); // the role chunk and four deltas
});

// The package under test is pinned; say which one ran.
test('the pinned openai package is the one installed', () => {
  const pkg = JSON.parse(readFileSync(path.join(HERE, 'package.json'), 'utf8'));
  const installedPath = path.join(HERE, 'node_modules', 'openai', 'package.json');
  const installed = JSON.parse(readFileSync(installedPath, 'utf8'));
  assert.equal(installed.version, pkg.devDependencies.openai);
});
