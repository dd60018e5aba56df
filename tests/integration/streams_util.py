"""Helpers for the stream-face integration tests (test_streams_*.py).

- Procs / procs / module_procs: conftest's Procs, whose gateways run the
  in-process simulator fast with a 1 s grace (gw_args); all stopped at teardown.
- Events: an incremental reader of GET /v1/streams/{id}/events (chunked SSE
  decoded as it arrives), so a test can drop the connection after any event.
- small wrappers: create, summary, cancel, wait_state, wait_aborts (and
  conftest's abort_count).

Standard library only. Import from the tests: `from streams_util import ...`
(fixtures included: importing them into a test module makes pytest see them).
"""

import socket
import struct

from conftest import FAST, IO_TIMEOUT_S, MODEL, POLL_LIMIT_S
from conftest import Procs as BaseProcs
from conftest import (RawConn, abort_count, http, loads_ordered, poll, procs_fixtures,
                      request_bytes)

ID_CHARS = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
CANCELLED_ERROR = ('{"error":{"message":"stream cancelled","type":"cancelled",'
                   '"param":null,"code":"cancelled"}}')
# Generation stops after n deltas and never resumes (until cancelled).
STALL_FOREVER = {"kind": "stall_after", "n": 3}


def stall_for(n, ms):
    """x_fault: after n deltas, a gap of ms, then generation goes on."""
    return {"kind": "stall_after", "n": n, "ms": ms}


def is_stream_id(s):
    return isinstance(s, str) and len(s) == 22 and set(s) <= ID_CHARS


# The gateway's timing for these tests: in-process simulator, fast, grace 1 s.
def gw_args(*extra, grace=1):
    return FAST + ["--grace-s", str(grace)] + list(extra)


class Procs(BaseProcs):
    """conftest's Procs whose gateways get gw_args (grace: the --grace-s)."""

    def gateway(self, *args, grace=1, env=None):
        return super().gateway(*gw_args(*args, grace=grace), env=env)


procs, module_procs = procs_fixtures(Procs)


# --------------------------------------------------------------------------
# The stream face's JSON routes


def body_for(content="Tell me about sockets.", seed=11, max_tokens=40, **kw):
    b = {"model": MODEL, "messages": [{"role": "user", "content": content}],
         "seed": seed, "max_tokens": max_tokens}
    b.update(kw)
    return b


def create(port, body, headers=None):
    """POST /v1/streams; returns (id, read_token)."""
    r = http(port, "POST", "/v1/streams", body, headers)
    assert r.status == 201, r
    assert r.header("Content-Type", "").startswith("application/json"), r
    j = r.json()
    assert list(j.keys()) == ["id", "read_token"], j
    assert is_stream_id(j["id"]), j
    assert isinstance(j["read_token"], str) and j["read_token"], j
    return j["id"], j["read_token"]


SUMMARY_KEYS = ["id", "state", "model", "created", "upstream", "last_event_id", "text",
                "reasoning", "finish_reason", "usage", "metrics"]


def _token_query(token):
    return f"?token={token}" if token is not None else ""


def _summary_of(r, sid):
    """The stream object of a 200 answer about sid, its keys checked."""
    assert r.status == 200, r
    j = r.json()
    assert list(j.keys()) == SUMMARY_KEYS, j
    assert j["id"] == sid, j
    return j


def summary_response(port, sid, token=None):
    return http(port, "GET", f"/v1/streams/{sid}{_token_query(token)}")


def summary(port, sid, token=None):
    return _summary_of(summary_response(port, sid, token), sid)


def cancel_response(port, sid, token=None):
    return http(port, "POST", f"/v1/streams/{sid}/cancel{_token_query(token)}")


def cancel(port, sid, token=None):
    return _summary_of(cancel_response(port, sid, token), sid)


def wait_state(port, sid, states=("done", "cancelled", "failed"), limit=POLL_LIMIT_S):
    """Polls GET /v1/streams/{id} until its state is one of states; returns it."""
    box = {}

    def check():
        j = summary(port, sid)
        box["j"] = j
        return j["state"] in states and j

    poll(check, limit=limit, what=f"stream {sid} in state {states} (last {box.get('j')})")
    return box["j"]


def wait_aborts(port, at_least, limit=POLL_LIMIT_S):
    box = {}

    def check():
        box["v"] = abort_count(port)
        return box["v"] >= at_least

    poll(check, limit=limit, what=f"abort counter >= {at_least} (last {box.get('v')})")
    return box["v"]


# --------------------------------------------------------------------------
# SSE, read as it arrives


class Event:
    __slots__ = ("id", "event", "data", "raw")

    def __init__(self, id_, event, data, raw):
        self.id = id_  # int or None (no id line)
        self.event = event  # name or None
        self.data = data  # str
        self.raw = raw

    def json(self):
        return loads_ordered(self.data)

    def __repr__(self):
        return f"<Event id={self.id} event={self.event} data={self.data[:120]!r}>"


def parse_block(block):
    """One SSE block (without its blank line) → Event, or None for comments only.
    Strict: only id/event/data lines (one each), `field: value` with one space."""
    id_ = event = data = None
    for line in block.split("\n"):
        if line.startswith(":"):
            continue
        field, sep, value = line.partition(": ")
        assert sep, f"SSE line without ': ' {line!r} in {block!r}"
        if field == "id":
            assert id_ is None, f"two id lines: {block!r}"
            assert value.isdigit() and not value.startswith("0"), f"bad id {value!r}"
            id_ = int(value)
        elif field == "event":
            assert event is None, f"two event lines: {block!r}"
            event = value
        elif field == "data":
            assert data is None, f"two data lines: {block!r}"
            data = value
        else:
            raise AssertionError(f"unexpected SSE field {field!r} in {block!r}")
    if id_ is None and event is None and data is None:
        return None
    assert data is not None, f"SSE event without data: {block!r}"
    return Event(id_, event, data, block)


def events_path(sid, fmt=None, last_event_id=None, token=None):
    q = []
    if fmt is not None:
        q.append(f"format={fmt}")
    if last_event_id is not None:
        q.append(f"last_event_id={last_event_id}")
    if token is not None:
        q.append(f"token={token}")
    return f"/v1/streams/{sid}/events" + ("?" + "&".join(q) if q else "")


class Events:
    """A GET of a stream's events (or, with method/body/path, any request
    answered with SSE, such as the OpenAI face), read event by event.

    After construction, .resp holds the status line and headers; for a status
    other than 200 the body has been read into .resp.body. next() returns the
    next Event, or None at the end of the body (.ended is then True when the
    body ended with the chunked terminator, .eof when the connection closed)."""

    def __init__(self, port, sid, fmt=None, last_event_id=None, query_last=None, token=None,
                 headers=None, rcvbuf=None, timeout=IO_TIMEOUT_S, path=None, method="GET",
                 body=None):
        h = dict(headers or {})
        h.setdefault("Accept", "text/event-stream")
        if last_event_id is not None:
            h["Last-Event-ID"] = str(last_event_id)
        self.conn = RawConn(port, timeout=timeout, rcvbuf=rcvbuf)
        self.path = path or events_path(sid, fmt, query_last, token)
        self.conn.send(request_bytes(method, self.path, body, h))
        self._bytes_pending = b""  # body bytes not yet split into events
        self.raw = bytearray()
        self.ended = False
        self.eof = False
        self._chunk_left = 0
        self.resp = self.conn.read_head()
        assert self.resp is not None, f"GET {self.path}: closed without a response"
        if self.resp.status != 200:
            self._read_other()
            return
        assert self.resp.header("Content-Type", "").startswith("text/event-stream"), self.resp
        assert (self.resp.header("Transfer-Encoding", "") or "").lower() == "chunked", self.resp

    def _read_other(self):
        if self.resp.status in (204, 304):
            self.resp.complete = True
            return
        cl = self.resp.header("Content-Length")
        if cl is not None:
            self.resp.body = self.conn.read_exact(int(cl))
        elif (self.resp.header("Transfer-Encoding", "") or "").lower() == "chunked":
            body = bytearray()
            while True:
                data, whole = self.conn.read_chunk()
                assert whole, f"closed inside the body: {bytes(body)!r}"
                if not data:
                    self.conn.read_until(b"\r\n")
                    break
                body += data
            self.resp.body = bytes(body)
        else:
            self.resp.body = self.conn.read_all()
        self.resp.complete = True

    def _more(self):
        """Reads one chunk of the body into self.pending; False at the end."""
        if self.ended or self.eof:
            return False
        data, whole = self.conn.read_chunk()
        if not whole:  # closed, maybe inside a chunk: its part is dropped
            self.eof = True
            return False
        if not data:
            t = self.conn.read_until(b"\r\n")
            assert t == b"\r\n", f"trailers after the last chunk: {t!r}"
            self.ended = True
            return False
        self.raw += data
        # An event may be split across chunks; UTF-8 too: decode whole events only.
        self._bytes_pending += data
        return True

    def next(self):
        while True:
            bp = self._bytes_pending
            i = bp.find(b"\n\n")
            if i >= 0:
                block = bp[:i].decode("utf-8")
                self._bytes_pending = bp[i + 2:]
                ev = parse_block(block)
                if ev is not None:
                    return ev
                continue
            if not self._more():
                return None

    def rest(self):
        out = []
        while True:
            e = self.next()
            if e is None:
                return out
            out.append(e)

    def leftover(self):
        return self._bytes_pending

    def close(self, reset=False):
        if reset:
            try:
                self.conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                          struct.pack("ii", 1, 0))
            except OSError:
                pass
        self.conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def read_all_events(port, sid, **kw):
    """A whole GET of events: (Events, [Event]); asserts 200 and a framed end."""
    ev = Events(port, sid, **kw)
    assert ev.resp.status == 200, ev.resp
    out = ev.rest()
    assert ev.ended, f"events body not terminated (eof={ev.eof}): {out[-3:]}"
    assert ev.leftover() == b"", f"bytes after the last event: {ev.leftover()!r}"
    ev.close()
    return ev, out


# --------------------------------------------------------------------------
# What a log says


def compact_text(events):
    """(text, reasoning) joined from compact delta/reasoning events."""
    text = "".join(e.json()["text"] for e in events if e.event == "delta")
    reasoning = "".join(e.json()["text"] for e in events if e.event == "reasoning")
    return text, reasoning


def openai_text(events):
    """(content, reasoning) joined from ?format=openai chunks (choice 0)."""
    text, reasoning = [], []
    for e in events:
        if e.data == "[DONE]":
            continue
        j = e.json()
        if "error" in j:
            continue
        for c in j.get("choices", []):
            d = c.get("delta", {})
            if isinstance(d.get("content"), str):
                text.append(d["content"])
            r = d.get("reasoning", d.get("reasoning_content"))
            if isinstance(r, str):
                reasoning.append(r)
    return "".join(text), "".join(reasoning)


def assert_compact_log(events, finish=None):
    """A whole compact log: ids 1..N in order, start first, done last (after a
    metrics event without id), every event named."""
    ids = [e.id for e in events if e.id is not None]
    assert ids == list(range(1, len(ids) + 1)), f"ids not 1..N: {ids}"
    named = [e for e in events]
    assert named[0].event == "start" and named[0].id == 1, named[:2]
    assert named[-1].event == "done", named[-3:]
    for e in events:
        assert e.event in ("start", "delta", "reasoning", "tool_call", "metrics", "done",
                           "error"), e
        if e.event == "metrics":
            assert e.id is None, f"metrics event with an id: {e}"
        else:
            assert e.id is not None, f"{e.event} event without an id: {e}"
        e.json()
    if finish is not None:
        assert named[-1].json()["finish_reason"] == finish, named[-1]
    return ids


def openai_face(port, body, headers=None, **kw):
    """POST /v1/chat/completions (stream) read event by event: an Events whose
    .sid is the X-Stream-Id."""
    ev = Events(port, None, path="/v1/chat/completions", method="POST", body=body,
                headers=headers, **kw)
    ev.sid = ev.resp.header("X-Stream-Id")
    return ev
