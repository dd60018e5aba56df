"""The stream face over real sockets: POST /v1/streams, GET .../events (compact
and ?format=openai), GET /v1/streams/{id}, tokens, unknown ids, several
listeners, a slow listener, and OpenAI-face streams seen through the stream face.

DESIGN.md §2; issue 4. Gateway = `sluice` with its in-process simulator."""

import base64
import threading
import time

import pytest

from conftest import RawConn, http, loads_ordered, request_bytes
from streams_util import (STALL_FOREVER, Events, assert_compact_log, body_for, cancel,
                          cancel_response, compact_text, create, is_stream_id,
                          module_procs, openai_text, read_all_events, stall_for, summary,
                          summary_response, wait_state)

_ = module_procs  # the fixture, imported for pytest


@pytest.fixture(scope="module")
def gw(module_procs):
    return module_procs.gateway(grace=30)


def test_create_then_read_compact_log(gw):
    sid, token = create(gw.port, body_for(seed=5, max_tokens=24))
    assert is_stream_id(token) or len(token) >= 16
    ev, events = read_all_events(gw.port, sid)
    assert ev.resp.header("X-Stream-Id") == sid, ev.resp
    assert ev.resp.header("Cache-Control") == "no-cache", ev.resp
    ids = assert_compact_log(events, finish="length")

    start = events[0].json()
    assert list(start.keys()) == ["id", "model", "created"], start
    assert start["id"] == sid and start["model"] == "Qwen/Qwen3-0.6B", start
    assert isinstance(start["created"], int), start

    # metrics (no id) comes right before done.
    assert events[-2].event == "metrics" and events[-2].id is None, events[-3:]
    m = events[-2].json()
    assert list(m.keys()) == ["ttft_ms", "tokens", "tokens_per_s"], m
    done = events[-1].json()
    assert list(done.keys()) == ["finish_reason", "usage", "metrics"], done
    assert done["usage"]["completion_tokens"] == 24, done
    assert done["metrics"] == m, (done, m)
    for e in events:
        if e.event in ("delta", "reasoning"):
            assert list(e.json().keys()) == ["text"], e

    s = summary(gw.port, sid)
    text, reasoning = compact_text(events)
    assert text, events
    assert s["state"] == "done", s
    assert s["last_event_id"] == ids[-1], (s, ids)
    assert (s["text"], s["reasoning"]) == (text, reasoning), s
    assert s["finish_reason"] == "length", s
    assert s["usage"] == done["usage"], (s, done)
    assert s["metrics"] == done["metrics"], (s, done)
    assert s["model"] == start["model"], (s, start)
    assert s["upstream"], s


def test_summary_created_is_the_start_events_created(gw):
    """GET /v1/streams/{id} and the start event describe the same stream: the
    same model and the same created (the summary's own code says both come
    from the start event's chunk). Streams are made at a dozen points spread
    over a second, so a clock that is off by a fraction of a second shows."""
    bad = []
    for i in range(12):
        sid, _tok = create(gw.port, body_for(seed=i, max_tokens=2))
        _ev, events = read_all_events(gw.port, sid)
        start = events[0].json()
        s = summary(gw.port, sid)
        assert s["model"] == start["model"], (s, start)
        if s["created"] != start["created"]:
            bad.append((sid, s["created"], start["created"]))
        time.sleep(0.09)
    assert not bad, ("GET /v1/streams/{id} created != its start event's created "
                     f"(id, summary, start): {bad}")


def test_openai_format_is_the_same_log_with_the_same_ids(gw):
    sid, _tok = create(gw.port, body_for(seed=6, max_tokens=30))
    _e1, compact = read_all_events(gw.port, sid)
    e2, chunks = read_all_events(gw.port, sid, fmt="openai")
    assert e2.resp.header("X-Stream-Id") == sid, e2.resp
    # Every chunk but [DONE] carries an id; [DONE] is last and has none.
    assert chunks[-1].data == "[DONE]" and chunks[-1].id is None, chunks[-2:]
    assert chunks[-1].event is None
    assert all(c.event is None for c in chunks), [c for c in chunks if c.event][:2]
    oids = [c.id for c in chunks[:-1]]
    cids = [e.id for e in compact if e.id is not None]
    assert oids == cids, (oids, cids)
    for c in chunks[:-1]:
        j = c.json()
        assert j["object"] == "chat.completion.chunk", j
    assert openai_text(chunks) == compact_text(compact)
    # Event by event: the delta at id N is the content at id N.
    by_id = {c.id: c.json() for c in chunks[:-1]}
    for e in compact:
        if e.event == "delta":
            ch = by_id[e.id]["choices"]
            assert len(ch) == 1 and ch[0]["delta"].get("content") == e.json()["text"], (e, ch)
    # The finish reason and usage agree.
    done = compact[-1].json()
    fin = [c["finish_reason"] for j in by_id.values() for c in j["choices"]
           if c.get("finish_reason")]
    assert fin == [done["finish_reason"]], (fin, done)
    usage = [j["usage"] for j in by_id.values() if j.get("usage")]
    assert usage and usage[-1] == done["usage"], (usage, done)


def test_the_same_seeded_body_gives_the_same_text(gw):
    b = body_for(seed=9, max_tokens=20)
    texts = set()
    for _ in range(3):
        sid, _tok = create(gw.port, b)
        _ev, events = read_all_events(gw.port, sid)
        texts.add(compact_text(events))
    assert len(texts) == 1, texts


def test_ids_are_22_url_safe_chars_and_distinct(gw):
    ids, tokens = set(), set()
    for i in range(20):
        sid, tok = create(gw.port, body_for(seed=i, max_tokens=1))
        ids.add(sid)
        tokens.add(tok)
    assert len(ids) == 20 and len(tokens) == 20
    assert not (ids & tokens), "a read token equals a stream id"
    for sid in ids:
        # 128 bits, canonical unpadded base64url: 16 bytes that encode back the same.
        raw = base64.urlsafe_b64decode(sid + "==")
        assert len(raw) == 16, sid
        assert base64.urlsafe_b64encode(raw).decode().rstrip("=") == sid, sid
    for sid in ids:
        wait_state(gw.port, sid)


def test_create_rejects_a_bad_body(gw):
    r = http(gw.port, "POST", "/v1/streams", "{not json")
    assert r.status == 400, r
    err = r.json()["error"]
    assert err["code"] == 400, err


@pytest.mark.parametrize("sid", ["AAAAAAAAAAAAAAAAAAAAAA", "short", "A" * 23,
                                 "AAAAAAAAAAAAAAAAAAAA%2F"])
def test_never_issued_id_is_404(gw, sid):
    for method, path in (("GET", f"/v1/streams/{sid}"),
                         ("GET", f"/v1/streams/{sid}/events"),
                         ("GET", f"/v1/streams/{sid}/events?format=openai"),
                         ("POST", f"/v1/streams/{sid}/cancel")):
        r = http(gw.port, method, path, headers={"Last-Event-ID": "1"}
                 if path.endswith("events") else None)
        assert r.status == 404, (method, path, r)
        assert r.header("Content-Type", "").startswith("application/json"), r
        assert r.json()["error"]["code"] == 404, r


def _bad_tokens(token):
    return ("x" + token[1:] if token[0] != "x" else "y" + token[1:], "", "nope")


def test_read_token_must_match_on_events(gw):
    sid, token = create(gw.port, body_for(seed=2, max_tokens=6))
    _other, other_token = create(gw.port, body_for(seed=3, max_tokens=1))
    wait_state(gw.port, sid)
    for t in _bad_tokens(token) + (other_token,):
        for kw in ({}, {"fmt": "openai", "last_event_id": 2}):
            ev = Events(gw.port, sid, token=t, **kw)
            assert ev.resp.status == 403, (t, kw, ev.resp)
            assert ev.resp.json()["error"]["code"] == 403, ev.resp
            ev.close()
    # The right token, and no token at all (client keys come later), work.
    _ev, events = read_all_events(gw.port, sid, token=token)
    assert events[-1].event == "done"
    _ev, chunks = read_all_events(gw.port, sid, token=token, fmt="openai", query_last=2)
    assert chunks[0].id == 3 and chunks[-1].data == "[DONE]", chunks[:1]
    _ev, events = read_all_events(gw.port, sid)
    assert events[-1].event == "done"
    wait_state(gw.port, _other)


def test_read_token_must_match_on_the_stream_object(gw):
    """GET /v1/streams/{id}?token=<wrong> must be 403 like the events (it
    holds the same text)."""
    sid, token = create(gw.port, body_for(seed=2, max_tokens=6))
    wait_state(gw.port, sid)
    for t in _bad_tokens(token):
        r = summary_response(gw.port, sid, token=t)
        assert r.status == 403, (f"GET /v1/streams/{sid}?token={t} answered {r.status} "
                                 f"(read_token is {token}): {r.body[:120]!r}")
        assert r.json()["error"]["code"] == 403, r
    assert summary(gw.port, sid, token=token)["state"] == "done"
    assert summary(gw.port, sid)["state"] == "done"


def test_read_token_must_match_on_cancel(gw):
    """POST /v1/streams/{id}/cancel?token=<wrong> must be 403 and must not
    cancel the stream."""
    sid, token = create(gw.port, body_for(seed=2, max_tokens=50, x_fault=STALL_FOREVER))
    try:
        for t in _bad_tokens(token):
            r = cancel_response(gw.port, sid, token=t)
            assert r.status == 403, (f"POST /v1/streams/{sid}/cancel?token={t} answered "
                                     f"{r.status} (read_token is {token}): {r.body[:160]!r}")
            assert summary(gw.port, sid)["state"] == "running"
        assert cancel(gw.port, sid, token=token)["state"] == "cancelled"
    finally:
        cancel(gw.port, sid)


def test_two_listeners_both_get_every_event(gw):
    # A pause after 4 deltas: both listeners are following live by then.
    sid, _tok = create(gw.port, body_for(seed=4, max_tokens=30,
                                         x_fault=stall_for(4, 400)))
    a = Events(gw.port, sid)
    b = Events(gw.port, sid, fmt="openai")
    c = Events(gw.port, sid)
    got = {}

    def run(name, ev):
        got[name] = ev.rest()
        got[name + ".ended"] = ev.ended

    ts = [threading.Thread(target=run, args=(n, e)) for n, e in (("a", a), ("b", b), ("c", c))]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    for e in (a, b, c):
        e.close()
    assert got["a.ended"] and got["b.ended"] and got["c.ended"], got
    assert_compact_log(got["a"], finish="length")
    assert [(e.id, e.event, e.data) for e in got["a"]] == \
        [(e.id, e.event, e.data) for e in got["c"]]
    assert [e.id for e in got["b"][:-1]] == [e.id for e in got["a"] if e.id is not None]
    _ev, replay = read_all_events(gw.port, sid)
    assert [(e.id, e.event, e.data) for e in replay] == \
        [(e.id, e.event, e.data) for e in got["a"]]
    assert openai_text(got["b"]) == compact_text(got["a"]) == \
        (summary(gw.port, sid)["text"], summary(gw.port, sid)["reasoning"])


def test_slow_listener_does_not_hold_back_another(gw):
    """A listener that reads nothing (tiny receive buffer) while the stream
    produces far more than its socket holds (n=8 x 2500 tokens: ~5 MB of
    OpenAI chunks, past what Linux lets queue in a loopback socket, ~2 MB
    measured); a second listener of the same stream still reads the whole log
    to done, and the stream finishes."""
    sid, _tok = create(gw.port, body_for(seed=8, max_tokens=2500, n=8, ignore_eos=True,
                                         x_fault=stall_for(2, 300)))
    slow = Events(gw.port, sid, fmt="openai", rcvbuf=2048)  # reads nothing from now on
    fast = Events(gw.port, sid)
    events = fast.rest()
    assert fast.ended, events[-2:]
    fast.close()
    assert_compact_log(events, finish="length")
    s = wait_state(gw.port, sid)
    assert s["state"] == "done", s
    assert s["last_event_id"] == events[-1].id
    # The slow one was held to its own bound: whatever it got is a gapless
    # prefix of the log (or all of it); a resume from there gives the rest.
    got = slow.rest()
    slow.close()
    ids = [e.id for e in got if e.id is not None]
    assert ids == list(range(1, len(ids) + 1)), ids[:5]
    if not (got and got[-1].data == "[DONE]"):
        last = ids[-1] if ids else None
        ev = Events(gw.port, sid, fmt="openai", last_event_id=last)
        rest = ev.rest()
        ev.close()
        assert rest[-1].data == "[DONE]", rest[-2:]
        ids += [e.id for e in rest if e.id is not None]
    assert ids == list(range(1, events[-1].id + 1)), (len(ids), events[-1].id)


def test_n_greater_than_one_events_carry_choice(gw):
    """Issue 4: with n > 1 each event carries "choice"."""
    sid, _tok = create(gw.port, body_for(seed=12, max_tokens=5, n=2))
    _ev, events = read_all_events(gw.port, sid)
    choices = set()
    for e in events:
        if e.event in ("delta", "reasoning", "tool_call"):
            j = e.json()
            assert "choice" in j, f"n=2 but a {e.event} event has no \"choice\": {e.raw!r}"
            choices.add(j["choice"])
    assert choices == {0, 1}, choices
    # Per choice, the text is the OpenAI face's text for the same request.
    r = http(gw.port, "POST", "/v1/chat/completions",
             body_for(seed=12, max_tokens=5, n=2, stream=False))
    assert r.status == 200, r
    want = {c["index"]: c["message"]["content"] for c in r.json()["choices"]}
    for ch in (0, 1):
        got = "".join(e.json()["text"] for e in events
                      if e.event == "delta" and e.json().get("choice") == ch)
        assert got == want[ch], (ch, got, want)


# --------------------------------------------------------------------------
# OpenAI-face streams through the stream face


def openai_face_stream(port, body, headers=None):
    r = http(port, "POST", "/v1/chat/completions", body, headers)
    assert r.status == 200, r
    sid = r.header("X-Stream-Id")
    assert is_stream_id(sid), r
    return r, sid


def test_openai_face_stream_has_an_id_and_a_summary(gw):
    r, sid = openai_face_stream(gw.port, body_for(seed=13, max_tokens=12, stream=True))
    assert r.complete
    s = wait_state(gw.port, sid)
    assert s["state"] == "done" and s["finish_reason"] == "length", s
    # The text the face sent is the stream's text.
    chunks = []
    for block in r.body.decode().split("\n\n")[:-1]:
        data = [l for l in block.split("\n") if l.startswith("data: ")]
        if data and data[0] != "data: [DONE]":
            chunks.append(loads_ordered(data[0][6:]))
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks
                   if c["choices"])
    assert s["text"] == text, (s, text)
    _ev, events = read_all_events(gw.port, sid)
    assert compact_text(events)[0] == text


def test_openai_face_replay_is_what_the_face_sent(gw):
    """GET .../events?format=openai of an OpenAI-face stream gives the client
    what the face gave it: same ids, same chunks, then [DONE] (an SDK user who
    resumes must not see chunks the uninterrupted answer never had)."""
    for body in (body_for(seed=14, max_tokens=6, stream=True),
                 body_for(seed=14, max_tokens=6, stream=True,
                          stream_options={"include_usage": True})):
        r, sid = openai_face_stream(gw.port, body)
        wait_state(gw.port, sid)
        ev, chunks = read_all_events(gw.port, sid, fmt="openai")
        assert ev.resp.status == 200
        assert r.body == bytes(ev.raw), (
            f"stream_options={body.get('stream_options')}: live face body\n"
            f"{r.body.decode()}\n!= ?format=openai replay\n{bytes(ev.raw).decode()}")


def test_openai_face_stream_can_be_cancelled_through_the_stream_face(gw):
    c = RawConn(gw.port)
    c.send(request_bytes("POST", "/v1/chat/completions",
                         body_for(seed=15, max_tokens=50, stream=True,
                                  x_fault=STALL_FOREVER)))
    head = c.read_head()
    assert head.status == 200, head
    sid = head.header("X-Stream-Id")
    assert is_stream_id(sid), head
    obj = cancel(gw.port, sid)
    assert obj["state"] == "cancelled", obj
    # The face's client gets the error object then [DONE], then the body ends.
    head.chunked = True
    body = bytearray()
    while True:
        line = c.read_until(b"\r\n")
        assert line is not None, bytes(body)
        n = int(line[:-2], 16)
        if n == 0:
            assert c.read_until(b"\r\n") == b"\r\n"
            break
        body += c.read_exact(n + 2)[:-2]
    c.close()
    blocks = bytes(body).decode().split("\n\n")
    assert blocks[-1] == "", blocks[-2:]
    assert blocks[-2] == "data: [DONE]", blocks[-3:]
    err = blocks[-3].split("\n")
    assert err[-1] == ('data: {"error":{"message":"stream cancelled","type":"cancelled",'
                       '"param":null,"code":"cancelled"}}'), blocks[-3]


@pytest.mark.parametrize("fault", [{"kind": "inband_error_after", "n": 2},
                                   {"kind": "drop_after", "n": 2}],
                         ids=["inband_error", "upstream_drop"])
def test_a_failed_stream_ends_with_an_error_event(gw, fault):
    sid, _tok = create(gw.port, body_for(seed=16, max_tokens=20, x_fault=fault))
    s = wait_state(gw.port, sid)
    assert s["state"] == "failed", s
    _ev, events = read_all_events(gw.port, sid)
    ids = [e.id for e in events if e.id is not None]
    assert ids == list(range(1, len(ids) + 1)), ids
    assert events[0].event == "start"
    assert events[-1].event == "error" and events[-1].id == s["last_event_id"], events[-2:]
    err = events[-1].json()
    assert list(err.keys()) == ["message", "type", "code"], err
    assert isinstance(err["message"], str) and err["message"], err
    assert [e.event for e in events].count("done") == 0, events
    assert s["text"] == compact_text(events)[0], s
    _ev, chunks = read_all_events(gw.port, sid, fmt="openai", last_event_id=ids[-2])
    assert [c.id for c in chunks] == [ids[-1], None], chunks
    assert "error" in chunks[0].json() and chunks[1].data == "[DONE]", chunks
    # Resume at its end: 204, as for a stream that finished well.
    for fmt in (None, "openai"):
        ev = Events(gw.port, sid, fmt=fmt, last_event_id=ids[-1])
        assert ev.resp.status == 204, ev.resp
        ev.close()
