"""Integration-test harness: `sluice sim` as a separate process, raw sockets.

Standard library only (Debian's /usr/bin/python3 with python3-pytest).

- SLUICE_BIN names the binary (ctest sets it); SL_FIXTURES the vLLM captures.
- Every simulator (Sim) and gateway (Gateway) is started on a free port,
  ready when GET /health answers 200 (a gateway: when it accepts a
  connection), and stopped with SIGTERM at teardown; a non-zero exit status
  or a sanitizer report on its stderr fails the test that owned it. Procs
  holds what one test or module started.
- No test asserts a wall-clock figure; waits are polls with generous limits.

Tests import the helpers below with `from conftest import ...` (pytest puts
this directory on sys.path; there is no __init__.py on purpose).
"""

import http.client as httpclient
import json
import os
import re
import signal
import socket
import subprocess
import tempfile
import time

import pytest

from replay_upstream import HeaderLookup, ReplayUpstream

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))

FIXTURES = os.environ.get("SL_FIXTURES", os.path.join(REPO, "tests", "fixtures", "vllm"))
MODEL = "Qwen/Qwen3-0.6B"
# Fast timing for tests that do not care about timing.
FAST = ["--ttft-ms", "0", "--itl-ms", "1", "--jitter-ms", "0"]

SANITIZER_MARKS = (
    "ERROR: AddressSanitizer",
    "ERROR: LeakSanitizer",
    "runtime error:",
    "ERROR: UndefinedBehaviorSanitizer",
)

# Generous limits for polls (the sanitized build is slow; the machine may be busy).
START_LIMIT_S = 20.0
POLL_LIMIT_S = 20.0
IO_TIMEOUT_S = 30.0


def sluice_bin():
    path = os.environ.get("SLUICE_BIN")
    if not path:
        for cand in ("build-test/sluice", "build-it/sluice", "build/sluice"):
            p = os.path.join(REPO, cand)
            if os.access(p, os.X_OK):
                path = p
                break
    if not path or not os.access(path, os.X_OK):
        pytest.fail("set SLUICE_BIN to the sluice binary (ctest does)", pytrace=False)
    return path


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def poll(fn, limit=POLL_LIMIT_S, interval=0.02, what="condition"):
    """Calls fn until it returns a truthy value; returns it. Fails after limit seconds."""
    deadline = time.monotonic() + limit
    last = None
    while True:
        last = fn()
        if last:
            return last
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {limit}s waiting for {what} (last: {last!r})")
        time.sleep(interval)


class Sim:
    """One `sluice sim` process, started on a free port (again on another port
    when the first was taken meanwhile), ready when GET /health answers 200.
    env: variables added to the process's environment."""

    COMMAND = ["sim"]
    WHAT = "sim"
    NOT_READY = "never answered GET /health 200"

    def __init__(self, args, env=None):
        self.args = list(args)
        self.extra_env = dict(env or {})
        self.port = None
        self.proc = None
        self.stderr_path = None
        self._stderr_file = None

    @property
    def pid(self):
        return self.proc.pid

    def start(self):
        env = dict(os.environ)
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
        env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
        env.update(self.extra_env)
        last_err = ""
        for _attempt in range(3):
            self.port = free_port()
            fd, self.stderr_path = tempfile.mkstemp(prefix=f"sluice-{self.WHAT}-",
                                                    suffix=".stderr")
            self._stderr_file = os.fdopen(fd, "w+b")
            cmd = [sluice_bin()] + self.COMMAND + ["--listen", f"127.0.0.1:{self.port}"] + self.args
            self.proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=self._stderr_file, env=env)
            try:
                ready = self._wait_ready()
            except BaseException:
                self.proc.kill()  # never leave a process behind
                self.proc.wait()
                raise
            if ready:
                return self
            last_err = self.stderr_text()
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
                pytest.fail(f"{self.WHAT} {self.NOT_READY} within {START_LIMIT_S}s: "
                            f"{cmd}\n{last_err}", pytrace=False)
            if "in use" not in last_err.lower():
                break
        pytest.fail(f"{self.WHAT} exited at start (status {self.proc.returncode}): "
                    f"{self.args}\n{last_err}", pytrace=False)

    def _wait_ready(self):
        deadline = time.monotonic() + START_LIMIT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            if self._ready():
                return True
            time.sleep(0.02)
        return False

    def _ready(self):
        try:
            c = httpclient.HTTPConnection("127.0.0.1", self.port, timeout=2)
            c.request("GET", "/health")
            r = c.getresponse()
            r.read()
            c.close()
            return r.status == 200
        except OSError:
            return False

    def stderr_text(self):
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def alive(self):
        return self.proc.poll() is None

    def assert_alive(self):
        if not self.alive():
            pytest.fail(f"{self.WHAT} died (status {self.proc.returncode}):\n{self.stderr_text()}",
                        pytrace=False)

    def vmrss_kib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def stop(self):
        """SIGTERM, wait; returns a list of problems (empty when clean)."""
        problems = []
        if self.proc is None:
            return problems
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                problems.append("did not exit within 60 s of SIGTERM")
        else:
            problems.append(f"exited before teardown with status {self.proc.returncode}")
        if self.proc.returncode != 0 and not problems:  # after our SIGTERM
            problems.append(f"exit status {self.proc.returncode} after SIGTERM")
        err = self.stderr_text()
        for mark in SANITIZER_MARKS:
            if mark in err:
                problems.append(f"sanitizer report ({mark!r})")
                break
        if self._stderr_file:
            self._stderr_file.close()
        if problems:
            problems.append("stderr:\n" + err[-20000:])
        else:
            try:
                os.unlink(self.stderr_path)
            except OSError:
                pass
        return problems

    def stop_checked(self):
        """stop(), failing the test on any problem."""
        problems = self.stop()
        if problems:
            pytest.fail(f"{self.WHAT} {self.args}: " + "\n".join(problems), pytrace=False)


class Gateway(Sim):
    """One `sluice` gateway process (the default command, not `sim`). Ready
    when it accepts a TCP connection: its GET /health is proxied upstream,
    which may be down on purpose."""

    COMMAND = []
    WHAT = "gateway"
    NOT_READY = "never listened"

    def _ready(self):
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=2).close()
            return True
        except OSError:
            return False


class Procs:
    """The simulators, gateways and replay upstreams of one test (or module);
    stop_all() stops them all, gateways first, and returns the problems."""

    def __init__(self):
        self.gateways = []
        self.sims = []
        self.upstreams = []
        # added to every gateway this Procs starts; SL_GATEWAY_ARGS adds to
        # every gateway of the run (ctest's deferred-store run: --store-defer)
        self.gateway_args = os.environ.get("SL_GATEWAY_ARGS", "").split()

    def sim(self, *args, fast=True):
        s = Sim((FAST if fast else []) + list(args))
        self.sims.append(s)
        return s.start()

    def gateway(self, *args, env=None):
        g = Gateway(list(args) + self.gateway_args, env=env)
        self.gateways.append(g)
        return g.start()

    def gateway_to(self, upstream, *args, env=None):
        url = upstream if isinstance(upstream, str) else (
            upstream.url if hasattr(upstream, "url") else f"http://127.0.0.1:{upstream.port}")
        return self.gateway("--upstream", url, *args, env=env)

    def replay(self, handler=None):
        u = ReplayUpstream(handler).start()
        self.upstreams.append(u)
        return u

    def stop_all(self):
        problems = []
        for p in self.gateways + self.sims:
            found = p.stop()
            if found:
                problems.append(f"{p.WHAT} {p.args}: " + "\n".join(found))
        for u in self.upstreams:
            u.stop()
            if u.errors:
                problems.append(f"replay upstream errors: {u.errors}")
        self.gateways, self.sims, self.upstreams = [], [], []
        return problems


class SimFactory(Procs):
    """Procs called as a function: starts a simulator."""

    def __call__(self, *args, fast=True):
        return self.sim(*args, fast=fast)


def stopping(procs, value):
    """A fixture's body: yields value, then stops what procs started and fails
    the test on any problem (`yield from stopping(p, p)`)."""
    yield value
    problems = procs.stop_all()
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)


def procs_fixtures(cls):
    """The fixtures (procs, module_procs): a cls (a Procs) for one test and
    one for a module, stopped as stopping() does. A helper module assigns
    them (`procs, module_procs = procs_fixtures(MyProcs)`); a test module
    that imports them makes pytest see them."""

    def body():
        p = cls()
        yield from stopping(p, p)

    return (pytest.fixture(name="procs")(body),
            pytest.fixture(scope="module", name="module_procs")(body))


@pytest.fixture
def sim_factory():
    """Starts simulators with given flags (FAST timing unless fast=False)."""
    f = SimFactory()
    yield from stopping(f, f)


@pytest.fixture(scope="module")
def sim():
    """One fast simulator shared by a module's tests."""
    f = SimFactory()
    yield from stopping(f, f())


@pytest.fixture(scope="module")
def capture_chunks():
    """The real vLLM 0.9.2 capture as a list of (raw json text, parsed object)."""
    path = os.path.join(FIXTURES, "vllm-0.9.2_qwen3-0.6b_chat-stream_no-reasoning-parser.sse")
    with open(path, "rb") as f:
        events = sse_events(f.read())
    assert events[-1] == "[DONE]"
    return [(e, loads_ordered(e)) for e in events[:-1]]


# --------------------------------------------------------------------------
# HTTP/1.1 over a raw socket: the real bytes.


class Response(HeaderLookup):
    def __init__(self):
        self.version = ""
        self.status = 0
        self.reason = ""
        self.headers = []  # [(name, value)] as sent
        self.body = b""
        self.chunks = []  # the data of each chunk, for chunked bodies
        self.chunked = False
        self.complete = False  # the body ended as framed (last chunk / Content-Length)
        self.eof = False  # the connection was closed (or reset) while reading

    def json(self):
        return loads_ordered(self.body.decode("utf-8"))

    def __repr__(self):
        return (f"<Response {self.status} {self.reason} headers={self.headers} "
                f"body={self.body[:300]!r} complete={self.complete}>")


class RawConn:
    """A client connection that sends exact bytes and parses responses itself."""

    def __init__(self, port, timeout=IO_TIMEOUT_S, rcvbuf=None):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.eof = False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def _fill(self):
        if self.eof:
            return False
        try:
            d = self.sock.recv(65536)
        except ConnectionResetError:
            d = b""
        if not d:
            self.eof = True
            return False
        self.buf += d
        return True

    def read_until(self, sep):
        """Bytes up to and including sep, or None at EOF first."""
        start = 0
        while True:
            i = self.buf.find(sep, start)
            if i >= 0:
                out = bytes(self.buf[: i + len(sep)])
                del self.buf[: i + len(sep)]
                return out
            start = max(0, len(self.buf) - len(sep) + 1)
            if not self._fill():
                return None

    def read_exact(self, n):
        while len(self.buf) < n:
            if not self._fill():
                out = bytes(self.buf)
                self.buf.clear()
                return out
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def read_all(self):
        while self._fill():
            pass
        out = bytes(self.buf)
        self.buf.clear()
        return out

    def wait_closed(self, limit=POLL_LIMIT_S):
        """Reads (and discards) until EOF; True when the peer closed within limit."""
        old = self.sock.gettimeout()
        self.sock.settimeout(limit)
        try:
            while self._fill():
                self.buf.clear()
            return True
        except socket.timeout:
            return False
        finally:
            self.sock.settimeout(old)

    def read_chunk(self):
        """The next chunk of a chunked body: (data, whole). whole: the chunk
        came with its CRLF (checked), or it is the last chunk (data b"", its
        trailers left to read). Not whole: the connection closed first, in the
        size line (data None) or in the data (what came of it)."""
        line = self.read_until(b"\r\n")
        if line is None:
            return None, False
        size = int(line[:-2].split(b";")[0], 16)
        if size == 0:
            return b"", True
        data = self.read_exact(size + 2)
        if len(data) < size + 2:
            return data[:size], False
        assert data[-2:] == b"\r\n", f"chunk not followed by CRLF: {data[-10:]!r}"
        return data[:-2], True

    def read_head(self):
        """Status line and headers; None when the connection closed first."""
        raw = self.read_until(b"\r\n\r\n")
        if raw is None:
            return None
        lines = raw[:-4].decode("latin-1").split("\r\n")
        r = Response()
        parts = lines[0].split(" ", 2)
        assert len(parts) >= 2, f"bad status line {lines[0]!r}"
        r.version = parts[0]
        r.status = int(parts[1])
        r.reason = parts[2] if len(parts) > 2 else ""
        for line in lines[1:]:
            k, sep, v = line.partition(":")
            assert sep, f"bad header line {line!r}"
            r.headers.append((k, v.strip()))
        return r

    def read_response(self, head_only=False, allow_interim=False):
        """One response. head_only: a HEAD answer (no body whatever the headers
        say). Interim 1xx answers are returned as such only with allow_interim."""
        while True:
            r = self.read_head()
            if r is None:
                return None
            if 100 <= r.status < 200 and not allow_interim:
                continue
            break
        if head_only or r.status in (100, 101, 204, 304) or 100 <= r.status < 200:
            r.complete = True
            return r
        te = r.header("Transfer-Encoding")
        cl = r.header("Content-Length")
        if te is not None:
            assert te.lower() == "chunked", te
            r.chunked = True
            body = bytearray()
            while True:
                data, whole = self.read_chunk()
                if data is None:
                    break
                if whole and not data:
                    # trailers, then the empty line
                    while True:
                        t = self.read_until(b"\r\n")
                        if t is None or t == b"\r\n":
                            break
                    r.complete = t is not None
                    break
                body += data
                r.chunks.append(data)
                if not whole:
                    break
            r.body = bytes(body)
        elif cl is not None:
            n = int(cl)
            r.body = self.read_exact(n)
            r.complete = len(r.body) == n
        else:
            r.body = self.read_all()
            r.complete = True
        r.eof = self.eof
        return r


def request_bytes(method, path, body=None, headers=None, version="HTTP/1.1"):
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
    elif isinstance(body, str):
        body = body.encode()
    h = [("Host", "127.0.0.1")]
    if body is not None:
        h.append(("Content-Type", "application/json"))
        h.append(("Content-Length", str(len(body))))
    for k, v in (headers or {}).items():
        h.append((k, v))
    out = f"{method} {path} {version}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in h) + "\r\n"
    return out.encode() + (body or b"")


def http(port, method, path, body=None, headers=None, timeout=IO_TIMEOUT_S):
    """One request on a new connection; returns the Response."""
    with RawConn(port, timeout=timeout) as c:
        c.send(request_bytes(method, path, body, headers))
        r = c.read_response(head_only=(method == "HEAD"))
        assert r is not None, f"{method} {path}: connection closed without a response"
        return r


# --------------------------------------------------------------------------
# SSE and JSON


def loads_ordered(text):
    """json.loads that keeps key order and refuses duplicate keys."""

    def hook(pairs):
        d = {}
        for k, v in pairs:
            assert k not in d, f"duplicate key {k!r} in {text[:200]!r}"
            d[k] = v
        return d

    return json.loads(text, object_pairs_hook=hook)


def sse_events(body):
    """The data of each SSE event, exactly as vLLM frames them: each event is
    one `data: <payload>\\n\\n`. Comment lines (`: ...`) are skipped. Fails on
    any other line (no `id:`, no `event:`, nothing else)."""
    if isinstance(body, bytes):
        body = body.decode("utf-8")
    events = []
    blocks = body.split("\n\n")
    assert blocks[-1] == "", f"stream does not end with a blank line: {body[-200:]!r}"
    for block in blocks[:-1]:
        lines = block.split("\n")
        if all(line.startswith(":") for line in lines):
            continue
        assert len(lines) == 1, f"event with more than one line: {block!r}"
        assert lines[0].startswith("data: "), f"line is not `data: `: {lines[0]!r}"
        events.append(lines[0][len("data: "):])
    return events


def sse_events_partial(body):
    """Like sse_events for a stream that may have been cut: complete events only."""
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    blocks = body.split("\n\n")
    out = []
    for block in blocks[:-1]:
        if block.startswith(":"):
            continue
        assert block.startswith("data: ") and "\n" not in block, block
        out.append(block[len("data: "):])
    return out


def chunk_objs(events):
    """Parsed chunk objects of a finished stream (events before [DONE])."""
    assert events and events[-1] == "[DONE]", f"stream does not end with [DONE]: {events[-3:]}"
    assert "[DONE]" not in events[:-1], "[DONE] before the end"
    return [loads_ordered(e) for e in events[:-1]]


def is_role_chunk(ch, index=0):
    return any(c["index"] == index and "role" in c.get("delta", {}) for c in ch.get("choices", []))


def token_deltas(chunks, index=0, kinds=("content", "reasoning")):
    """Text pieces of the content/reasoning deltas of one choice, in order:
    every chunk whose delta carries content or reasoning, except the role
    chunk. As in vLLM, the finish chunk is one of them: it carries the last
    token (its text is "" for the end-of-sequence token, which usage counts)."""
    out = []
    for ch in chunks:
        for c in ch.get("choices", []):
            if c["index"] != index:
                continue
            d = c.get("delta", {})
            if "role" in d:
                continue
            texts = [(k, d[k]) for k in kinds if isinstance(d.get(k), str)]
            if not texts:
                continue
            for k, t in texts:
                out.append((k, t))
    return out


def content_text(chunks, index=0):
    return "".join(t for k, t in token_deltas(chunks, index, ("content",)))


def reasoning_text(chunks, index=0):
    return "".join(t for k, t in token_deltas(chunks, index, ("reasoning",)))


def finish_choice(chunks, index=0):
    """The choice object carrying finish_reason for index (exactly one)."""
    found = [c for ch in chunks for c in ch.get("choices", [])
             if c["index"] == index and c.get("finish_reason") is not None]
    assert len(found) == 1, f"expected one finish chunk for index {index}, got {len(found)}"
    return found[0]


def chat_body(content="Say hello.", stream=True, **kw):
    b = {"model": MODEL, "messages": [{"role": "user", "content": content}], "stream": stream}
    b.update(kw)
    return b


def completion_body(prompt="Once upon a time", stream=True, **kw):
    b = {"model": MODEL, "prompt": prompt, "stream": stream}
    b.update(kw)
    return b


def stream(port, body, path="/v1/chat/completions", headers=None, timeout=IO_TIMEOUT_S):
    """POSTs a streaming request; returns (Response, events). Asserts 200, SSE."""
    r = http(port, "POST", path, body, headers, timeout=timeout)
    assert r.status == 200, r
    assert r.header("Content-Type", "").startswith("text/event-stream"), r
    assert r.chunked, "a stream must be sent chunked"
    assert r.complete, f"stream not terminated by the last chunk: {r.body[-300:]!r}"
    return r, sse_events(r.body)


def stream_chunks(port, body, path="/v1/chat/completions", headers=None):
    r, events = stream(port, body, path, headers)
    return chunk_objs(events)


# --------------------------------------------------------------------------
# Prometheus text


_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+\S+)?$')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text):
    """[(name, {label: value}, float)] of every sample line."""
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        assert m, f"not a Prometheus sample line: {line!r}"
        labels = dict(_LABEL.findall(m.group(3) or ""))
        out.append((m.group(1), labels, float(m.group(4))))
    return out


def metrics(port):
    r = http(port, "GET", "/metrics")
    assert r.status == 200, r
    return parse_metrics(r.body.decode())


def metric_value(samples, name, **labels):
    """Sum of the samples of name whose labels include the given ones; None if none."""
    vals = [v for n, l, v in samples
            if n == name and all(l.get(k) == want for k, want in labels.items())]
    return sum(vals) if vals else None


def abort_count(port):
    """vllm:request_success_total{finished_reason="abort"} at port (a sim, or a
    gateway whose /metrics is the in-process simulator's)."""
    v = metric_value(metrics(port), "vllm:request_success_total", finished_reason="abort")
    assert v is not None, "the simulator's /metrics has no abort counter"
    return v


def assert_openai_error(r, status, param=None, check_param=False):
    """A JSON error body {"error":{"message","type","param","code"}} with code = status."""
    assert r.status == status, r
    assert r.header("Content-Type", "").startswith("application/json"), r
    body = r.json()
    assert list(body.keys()) == ["error"], body
    err = body["error"]
    assert list(err.keys()) == ["message", "type", "param", "code"], err
    assert isinstance(err["message"], str) and err["message"], err
    assert isinstance(err["type"], str) and err["type"], err
    assert err["code"] == status, err
    if check_param:
        assert err["param"] == param, err
    else:
        assert err["param"] is None or isinstance(err["param"], str), err
    return err
