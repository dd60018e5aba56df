// util.mjs - what every node test of sluice shares: finding the binary,
// starting `sluice` or `sluice sim` on a free port until it is ready, and
// stopping it with a check that it exited cleanly with no sanitizer report.
// Not a test itself (node --test runs only *.test.mjs). SLUICE_BIN names the
// binary (ctest sets it).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const MODEL = 'Qwen/Qwen3-0.6B';
// The simulator with no waits: first token at once, 1 ms a token.
export const FAST = ['--ttft-ms', '0', '--itl-ms', '1', '--jitter-ms', '0'];

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(HERE, '..', '..');
const SANITIZER_MARKS = ['ERROR: AddressSanitizer', 'ERROR: LeakSanitizer', 'runtime error:'];
const START_LIMIT_MS = 20000;

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export function sluiceBin() {
  if (process.env.SLUICE_BIN) return process.env.SLUICE_BIN;
  for (const d of ['build-test', 'build-it', 'build']) {
    const p = path.join(REPO, d, 'sluice');
    if (existsSync(p)) return p;
  }
  throw new Error('set SLUICE_BIN to the sluice binary');
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function canConnect(port) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

async function healthy(port) {
  try {
    const r = await fetch(`http://127.0.0.1:${port}/health`);
    await r.arrayBuffer();
    return r.status === 200;
  } catch {
    return false; /* not up yet */
  }
}

// Starts `sluice sim` (sim: true; ready when GET /health answers 200) or the
// gateway (ready when it accepts a connection: its /health is the
// upstream's) with args, on a free port. Returns {port, base, stop()};
// stop() sends SIGTERM and asserts exit status 0 and no sanitizer report.
export async function startSluice(args, { sim = false } = {}) {
  const what = sim ? 'sim' : 'gateway';
  const port = await freePort();
  const argv = ['--listen', `127.0.0.1:${port}`, ...args];
  const proc = spawn(sluiceBin(), sim ? ['sim', ...argv] : argv, {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  proc.stderr.on('data', (d) => { stderr += d.toString(); });
  const exited = new Promise((resolve) => {
    proc.on('exit', (code, signal) => resolve({ code, signal }));
  });
  const deadline = Date.now() + START_LIMIT_MS;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`${what} exited at start: ${stderr}`);
    if (await (sim ? healthy(port) : canConnect(port))) break;
    if (Date.now() > deadline) {
      proc.kill('SIGKILL');
      throw new Error(`${what} never ${sim ? 'answered /health' : 'listened'}: ${stderr}`);
    }
    await sleep(20);
  }
  return {
    port,
    base: `http://127.0.0.1:${port}`,
    async stop() {
      if (proc.exitCode === null) proc.kill('SIGTERM');
      const { code, signal } = await exited;
      assert.equal(signal, null, `${what} killed by ${signal}: ${stderr}`);
      assert.equal(code, 0, `${what} exit status ${code}: ${stderr}`);
      for (const m of SANITIZER_MARKS) {
        assert.ok(!stderr.includes(m), `sanitizer report: ${stderr}`);
      }
    },
  };
}

// GET /v1/streams/{id}: asserts 200 and returns the stream object.
export async function streamObject(base, id) {
  const r = await fetch(`${base}/v1/streams/${id}`);
  assert.equal(r.status, 200);
  return r.json();
}
