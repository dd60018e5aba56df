"""Helpers and fixtures for the gateway's integration tests (test_gateway_*.py).

- procs / module_procs: conftest's Procs (simulators, gateways and replay
  upstreams) for one test or one module, all stopped at teardown.
- parse_gw / gw_stream: a strict reader of the gateway's OpenAI face
  (`id: N\\ndata: ...\\n\\n` events, `data: [DONE]\\n\\n` without an id).

Standard library only. Import from the tests: `from gateway_util import ...`
(fixtures included: importing them into a test module makes pytest see them).
"""

import json
import os
import re

from conftest import (FAST, FIXTURES, IO_TIMEOUT_S, Procs, http, loads_ordered, procs_fixtures,
                      sse_events)
from conftest import abort_count  # noqa: F401 (the gateway tests import it from here)

STREAM_ID = re.compile(r"^[A-Za-z0-9_-]{22}$")

procs, module_procs = procs_fixtures(Procs)


class Pair:
    """A gateway and a simulator to compare it with.

    mode "upstream": the gateway proxies to `sim` (a separate `sluice sim`).
    mode "inproc": the gateway runs the in-process simulator; `sim` is a
    separate `sluice sim` with the same flags, used as the reference."""

    def __init__(self, mode, gw, sim):
        self.mode = mode
        self.gw = gw
        self.sim = sim

    @property
    def metrics_port(self):
        """Where the simulator that serves the gateway's requests shows /metrics."""
        return self.sim.port if self.mode == "upstream" else self.gw.port


def make_pair(procs, mode, *gw_args, sim_args=()):
    sim = procs.sim(*sim_args)
    if mode == "upstream":
        gw = procs.gateway_to(sim, *gw_args)
    else:
        gw = procs.gateway(*(FAST + list(sim_args) + list(gw_args)))
    return Pair(mode, gw, sim)


# --------------------------------------------------------------------------
# The OpenAI face, read strictly.


def parse_gw(body):
    """[(id or None, data)] of every event, and the list of comment blocks.
    Each event must be `id: N` then `data: ...` line(s), or `data: ...` alone."""
    if isinstance(body, bytes):
        body = body.decode("utf-8")
    events, comments = [], []
    blocks = body.split("\n\n")
    assert blocks[-1] == "", f"stream does not end with a blank line: {body[-300:]!r}"
    for block in blocks[:-1]:
        lines = block.split("\n")
        if all(line.startswith(":") for line in lines):
            comments.append(block)
            continue
        eid = None
        if lines[0].startswith("id: "):
            eid = lines[0][4:]
            assert re.fullmatch(r"[1-9][0-9]*", eid), f"bad id line {lines[0]!r}"
            eid = int(eid)
            lines = lines[1:]
        assert lines, f"an id without data: {block!r}"
        for line in lines:
            assert line.startswith("data: "), f"not a `data: ` line: {line!r} in {block!r}"
        # several data lines are one value joined by LF (WHATWG)
        events.append((eid, "\n".join(line[len("data: "):] for line in lines)))
    return events, comments


def finished_datas(body):
    """The data of each event of a stream that ended with [DONE]; asserts the
    ids are 1, 2, 3... without gaps and [DONE] is last and has no id."""
    events, _ = parse_gw(body)
    assert events, "empty stream"
    assert events[-1] == (None, "[DONE]"), f"does not end with `data: [DONE]`: {events[-3:]}"
    ids = [e for e, _ in events[:-1]]
    assert ids == list(range(1, len(ids) + 1)), f"ids not gapless from 1: {ids}"
    datas = [d for _, d in events[:-1]]
    assert "[DONE]" not in datas, "[DONE] before the end"
    assert body.endswith(b"\n\ndata: [DONE]\n\n") or body == b"data: [DONE]\n\n"
    return datas


def assert_stream_head(r):
    assert r.status == 200, r
    assert r.header("Content-Type", "").split(";")[0].strip() == "text/event-stream", r
    assert r.header("Cache-Control") == "no-cache", r
    assert r.header("X-Accel-Buffering") == "no", r
    sid = r.header("X-Stream-Id")
    assert sid is not None and STREAM_ID.match(sid), f"X-Stream-Id {sid!r}"
    te = r.header("Transfer-Encoding", "")
    assert te.lower() == "chunked", f"a stream must be sent chunked: {r}"
    assert r.header("Content-Length") is None, r
    return sid


def gw_stream(port, body, path="/v1/chat/completions", headers=None, timeout=IO_TIMEOUT_S):
    """POSTs a streaming request to the gateway; asserts the head and the end;
    returns (Response, [data of each event before [DONE]])."""
    r = http(port, "POST", path, body, headers, timeout=timeout)
    assert_stream_head(r)
    assert r.complete, f"stream not ended by the last chunk: {r.body[-300:]!r}"
    return r, finished_datas(r.body)


def error_end(datas):
    """For a stream that ended in an error: (chunks before it, error object).
    Exactly one error event, the last one before [DONE]."""
    assert datas, "no events"
    last = loads_ordered(datas[-1])
    assert list(last.keys()) == ["error"], f"last event is not an error: {datas[-1]!r}"
    err = last["error"]
    assert list(err.keys()) == ["message", "type", "param", "code"], err
    assert isinstance(err["message"], str) and err["message"], err
    assert isinstance(err["type"], str) and err["type"], err
    chunks = [loads_ordered(d) for d in datas[:-1]]
    assert all("error" not in ch for ch in chunks), "an error event before the last"
    return chunks, err


_VOLATILE = re.compile(r'^\{"id":"(?:chatcmpl|cmpl)-[0-9a-f]+","object":"([a-z_.]+)",'
                       r'"created":[0-9]+,')


def norm(raw):
    """A chunk's bytes with the volatile top-level id and created values blanked
    (everything else, key order included, kept)."""
    m = _VOLATILE.match(raw)
    assert m, f"chunk does not start with id/object/created: {raw[:160]!r}"
    return '{"id":"X","object":"%s","created":0,' % m.group(1) + raw[m.end():]


def is_usage_chunk(obj):
    return obj.get("choices") == [] and "usage" in obj


def direct_stream(port, body, path="/v1/chat/completions"):
    """A streaming request straight to a simulator: the data of each event
    (vLLM framing), [DONE] removed after checking it is last."""
    r = http(port, "POST", path, body)
    assert r.status == 200, r
    events = sse_events(r.body)
    assert events[-1] == "[DONE]"
    return events[:-1]


def read_events(conn, n):
    """Reads from a RawConn (after the head) until n complete SSE events arrived
    in the chunked body; returns the raw body bytes read so far."""
    got = bytearray()
    while got.count(b"\n\n") < n:
        data, whole = conn.read_chunk()
        assert whole, f"closed after {got!r}"
        assert data, f"the stream ended early: {got!r}"
        got += data
    return bytes(got)


def fixture_path(name):
    return os.path.join(FIXTURES, name)


def read_fixture(name):
    with open(fixture_path(name), "rb") as f:
        return f.read()


# The captures are in the repository: a missing folder is an error, never
# an empty (silently skipped) parametrization.
SSE_FIXTURES = sorted(f for f in os.listdir(FIXTURES) if f.endswith(".sse"))


def fixture_chunk_datas(raw):
    """The data of each chunk event of a fixture file (comments and [DONE] out)."""
    out = []
    for block in raw.decode("utf-8").split("\n\n"):
        if not block.strip():
            continue
        lines = [ln for ln in block.split("\n") if not ln.startswith(":")]
        if not lines:
            continue
        assert len(lines) == 1 and lines[0].startswith("data: "), block
        d = lines[0][len("data: "):]
        if d != "[DONE]":
            out.append(d)
    return out


def read_rest(conn):
    """Reads the rest of a chunked body from a RawConn (after read_events);
    returns (bytes, complete) where complete means the last chunk came."""
    got = bytearray()
    while True:
        data, whole = conn.read_chunk()
        if not whole:
            return bytes(got + (data or b"")), False
        if not data:
            return bytes(got), conn.read_until(b"\r\n") == b"\r\n"
        got += data


def member_spans(raw):
    """[(segment bytes, start, end)] of a JSON object's top-level members: the
    exact bytes between `{`, the top-level commas and `}` (whitespace
    included), with their offsets in raw."""
    i = 0
    n = len(raw)
    while raw[i:i + 1] in (b" ", b"\t", b"\r", b"\n"):
        i += 1
    assert raw[i:i + 1] == b"{", raw[:50]
    spans, depth, start, j = [], 0, i + 1, i + 1
    while j < n:
        c = raw[j:j + 1]
        if c == b'"':
            j += 1
            while raw[j:j + 1] != b'"':
                j += 2 if raw[j:j + 1] == b"\\" else 1
        elif c in (b"{", b"["):
            depth += 1
        elif c in (b"}", b"]"):
            if depth == 0:
                spans.append((raw[start:j], start, j))
                return [sp for sp in spans if sp[0].strip()]
            depth -= 1
        elif c == b"," and depth == 0:
            spans.append((raw[start:j], start, j))
            start = j + 1
        j += 1
    raise AssertionError("unterminated object")


def member_key(seg):
    s = seg.lstrip(b" \t\r\n")
    assert s.startswith(b'"'), seg
    j = 1
    while s[j:j + 1] != b'"':
        j += 2 if s[j:j + 1] == b"\\" else 1
    return json.loads(s[:j + 1])


def member_value(seg):
    s = seg.lstrip(b" \t\r\n")
    # the value is what follows the colon after the key string
    j = 1
    while s[j:j + 1] != b'"':
        j += 2 if s[j:j + 1] == b"\\" else 1
    after = s[j + 1:].lstrip(b" \t\r\n")
    assert after.startswith(b":"), seg
    return after[1:].strip(b" \t\r\n")


def _server_side(server_port, client_sock):
    cport = client_sock.getsockname()[1]
    want_local, want_rem = f":{server_port:04X}", f":{cport:04X}"
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            parts = line.split()
            if parts[1].endswith(want_local) and parts[2].endswith(want_rem):
                return parts
    return None


def server_side_state(server_port, client_sock):
    """The TCP state (hex string from /proc/net/tcp, "01" = ESTABLISHED) of the
    server's end of client_sock's connection, or None when it is gone. Lets a
    test see that the gateway closed a connection without reading from it."""
    parts = _server_side(server_port, client_sock)
    return parts[3] if parts else None


def server_side_send_queue(server_port, client_sock):
    """Bytes queued in the kernel on the server's end of the connection."""
    parts = _server_side(server_port, client_sock)
    return int(parts[4].split(":")[0], 16) if parts else 0
