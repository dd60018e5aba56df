"""The WebSocket face (GET /v1/ws) over real sockets, with a minimal RFC 6455
client written here (handshake, masked frames, and frames no real client
would send). The gateway runs the in-process simulator; DESIGN.md section 2.

Messages: client create/follow/cancel; server created/event/error. Bad frames
close with 1002 (protocol), 1003 (binary), 1007 (bad UTF-8), 1009 (too big).
"""

import base64
import hashlib
import json
import os
import struct

import pytest

from conftest import (FAST, FIXTURES, IO_TIMEOUT_S, MODEL, Gateway, RawConn, abort_count,
                      content_text, http, loads_ordered, poll, request_bytes, sse_events)
from replay_upstream import Canned, ReplayUpstream, Sse

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
GW_ARGS = FAST + ["--grace-s", "1"]


# --------------------------------------------------------------------------
# The gateway process


def start_gateway(args):
    return Gateway(args).start()


@pytest.fixture(scope="module")
def gw():
    g = start_gateway(GW_ARGS)
    yield g
    g.stop_checked()


# --------------------------------------------------------------------------
# A minimal WebSocket client


class Closed(Exception):
    def __init__(self, code, reason=b""):
        super().__init__(f"closed with {code} {reason!r}")
        self.code = code
        self.reason = reason


def accept_for(key):
    return base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()


def frame(opcode, payload=b"", fin=True, mask=True, rsv=0):
    """One client frame: masked (as RFC 6455 requires) unless mask=False."""
    if isinstance(payload, str):
        payload = payload.encode()
    b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
    n = len(payload)
    mbit = 0x80 if mask else 0
    if n < 126:
        head = struct.pack("!BB", b0, mbit | n)
    elif n < 65536:
        head = struct.pack("!BBH", b0, mbit | 126, n)
    else:
        head = struct.pack("!BBQ", b0, mbit | 127, n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(c ^ key[i % 4] for i, c in enumerate(payload))


def handshake_bytes(path="/v1/ws", key=None, version="13", extra=None, method="GET"):
    h = {"Host": "127.0.0.1", "Upgrade": "websocket", "Connection": "Upgrade",
         "Sec-WebSocket-Key": key, "Sec-WebSocket-Version": version}
    h.update(extra or {})
    lines = "".join(f"{k}: {v}\r\n" for k, v in h.items() if v is not None)
    return f"{method} {path} HTTP/1.1\r\n{lines}\r\n".encode()


class WS:
    """A client socket after a successful handshake."""

    def __init__(self, port, timeout=IO_TIMEOUT_S, rcvbuf=None, headers=None):
        self.key = base64.b64encode(os.urandom(16)).decode()
        self.conn = RawConn(port, timeout=timeout, rcvbuf=rcvbuf)
        self.conn.send(handshake_bytes(key=self.key, extra=headers))
        r = self.conn.read_head()
        assert r is not None, "closed during the handshake"
        self.head = r
        assert r.status == 101, r
        assert r.header("Upgrade", "").lower() == "websocket", r
        assert "upgrade" in r.header("Connection", "").lower(), r
        assert r.header("Sec-WebSocket-Accept") == accept_for(self.key), r

    def close(self):
        self.conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send_raw(self, data):
        self.conn.send(data)

    def send(self, obj):
        text = obj if isinstance(obj, str) else json.dumps(obj)
        self.conn.send(frame(0x1, text.encode()))

    def recv_frame(self):
        """(fin, opcode, payload) of the next server frame."""
        h = self.conn.read_exact(2)
        if len(h) < 2:
            raise EOFError("the server closed the connection")
        fin, opcode, n = h[0] >> 7, h[0] & 0x0F, h[1] & 0x7F
        assert h[0] & 0x70 == 0, f"reserved bits set in {h!r}"
        assert h[1] & 0x80 == 0, "a server frame must not be masked"
        if n == 126:
            n = struct.unpack("!H", self.conn.read_exact(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", self.conn.read_exact(8))[0]
        payload = self.conn.read_exact(n)
        assert len(payload) == n, "cut inside a frame"
        return fin, opcode, payload

    def recv(self):
        """The next JSON message (pings skipped, pongs refused); Closed at a close."""
        while True:
            fin, opcode, payload = self.recv_frame()
            if opcode == 0x9:
                continue
            if opcode == 0x8:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
                raise Closed(code, payload[2:])
            assert fin == 1, "sluice sends each message in one frame"
            assert opcode == 0x1, f"expected a text frame, got opcode {opcode}"
            return loads_ordered(payload.decode("utf-8"))

    def recv_type(self, *types):
        m = self.recv()
        assert m["type"] in types, m
        return m

    def close_code(self):
        """Reads until the server's close frame; its status code."""
        while True:
            try:
                self.recv()
            except Closed as c:
                return c.code

    def until_done(self, sid):
        """Event messages of stream sid up to and including its done."""
        out = []
        while True:
            m = self.recv()
            assert m["type"] == "event", m
            assert m["id"] == sid, m
            out.append(m)
            if m["event"] == "done":
                return out


def body(content="Say hello.", **kw):
    b = {"model": MODEL, "messages": [{"role": "user", "content": content}]}
    b.update(kw)
    return b


def long_body(**kw):
    kw.setdefault("max_tokens", 4000)
    return body("Tell a long story.", ignore_eos=True, **kw)


def create(ws, b, ref=None):
    msg = {"type": "create", "body": b}
    if ref is not None:
        msg["ref"] = ref
    ws.send(msg)
    m = ws.recv_type("created")
    assert set(m) == ({"type", "id", "read_token"} | ({"ref"} if ref is not None else set()))
    assert len(m["id"]) == 22 and len(m["read_token"]) == 22, m
    if ref is not None:
        assert m["ref"] == ref
    return m


def stream_object(port, sid):
    r = http(port, "GET", f"/v1/streams/{sid}")
    assert r.status == 200, r
    return r.json()


def check_event_order(events):
    """start first, done last, seq strictly rising (metrics shares done's)."""
    assert events[0]["event"] == "start", events[0]
    assert events[-1]["event"] == "done", events[-1]
    seqs = [m["seq"] for m in events if m["event"] != "metrics"]
    assert seqs == sorted(set(seqs)), f"seq not rising: {seqs}"
    for i, m in enumerate(events):
        assert list(m) == ["type", "id", "seq", "event", "data"], m
        if m["event"] == "metrics":
            assert events[i + 1]["event"] == "done" and events[i + 1]["seq"] == m["seq"]


def delta_text(events):
    return "".join(m["data"]["text"] for m in events if m["event"] == "delta")


# --------------------------------------------------------------------------
# The handshake


def test_handshake_accept_and_first_message(gw):
    with WS(gw.port) as ws:
        ws.send({"type": "follow", "id": "A" * 22})
        m = ws.recv_type("error")
        assert m == {"type": "error", "id": "A" * 22, "message": "no such stream", "code": 404}


def test_handshake_rfc_example_key(gw):
    with RawConn(gw.port) as c:
        c.send(handshake_bytes(key="dGhlIHNhbXBsZSBub25jZQ=="))
        r = c.read_head()
        assert r.status == 101, r
        assert r.header("Sec-WebSocket-Accept") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


@pytest.mark.parametrize("case", [
    dict(key=None, status=400),
    dict(key="short==", status=400),
    dict(key="not base64 at all here!!", status=400),
    dict(extra={"Upgrade": None}, status=400),
    dict(extra={"Upgrade": "h2c"}, status=400),
    dict(extra={"Connection": "keep-alive"}, status=400),
    dict(version=None, status=400),
    dict(version="8", status=426),
    dict(method="POST", status=405),
], ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()))
def test_bad_handshake(gw, case):
    key = case.get("key", base64.b64encode(os.urandom(16)).decode())
    with RawConn(gw.port) as c:
        c.send(handshake_bytes(key=key, version=case.get("version", "13"),
                               extra=case.get("extra"), method=case.get("method", "GET")))
        r = c.read_response()
        assert r is not None
        assert r.status == case["status"], r
        assert r.header("Sec-WebSocket-Accept") is None
        err = r.json()["error"]
        assert err["code"] == case["status"] and err["message"], err
        if case["status"] == 426:
            assert r.header("Sec-WebSocket-Version") == "13", r
        if case["status"] == 405:
            assert r.header("Allow") == "GET", r


def test_connection_header_lists_upgrade(gw):
    key = base64.b64encode(os.urandom(16)).decode()
    with RawConn(gw.port) as c:
        c.send(handshake_bytes(key=key, extra={"Connection": "keep-alive, Upgrade",
                                               "Upgrade": "WebSocket"}))
        r = c.read_head()
        assert r.status == 101, r
        assert r.header("Sec-WebSocket-Accept") == accept_for(key)


# --------------------------------------------------------------------------
# create, follow, cancel


def test_create_streams_events_of_the_log(gw):
    with WS(gw.port) as ws:
        created = create(ws, body(max_tokens=40, seed=3), ref="first")
        sid = created["id"]
        events = ws.until_done(sid)
        check_event_order(events)
        start = events[0]["data"]
        assert start["id"] == sid and start["model"] == MODEL, start
        done = events[-1]["data"]
        assert done["finish_reason"] == "length", done
        assert done["usage"]["completion_tokens"] == 40, done
        assert [m["event"] for m in events[-2:]] == ["metrics", "done"]
        obj = stream_object(gw.port, sid)
        assert obj["state"] == "done", obj
        assert delta_text(events) == obj["text"] and obj["text"], (delta_text(events), obj)
        assert obj["last_event_id"] == events[-1]["seq"], obj
        # The socket stays open for more after the stream ended.
        ws.send({"type": "cancel", "id": sid})  # a finished stream: nothing to do
        created2 = create(ws, body(max_tokens=5))
        assert created2["id"] != sid
        assert ws.until_done(created2["id"])[-1]["event"] == "done"


def test_body_keeps_client_stream_options(gw):
    # stream:false and the client's own stream_options are overridden only
    # where sluice must; the body's other members reach the upstream.
    with WS(gw.port) as ws:
        created = create(ws, body(max_tokens=7, stream=False, temperature=0.5,
                                  stream_options={"include_usage": False}))
        events = ws.until_done(created["id"])
        assert events[-1]["data"]["usage"]["completion_tokens"] == 7


def test_follow_after_n_replays_the_rest(gw):
    with WS(gw.port) as a:
        sid = create(a, body(max_tokens=30, seed=5))["id"]
        full = a.until_done(sid)
    last = full[-1]["seq"]
    with WS(gw.port) as b:
        for after in (0, 1, 7, last - 1):
            b.send({"type": "follow", "id": sid, "after": after})
            got = b.until_done(sid)
            assert got == [m for m in full if m["seq"] > after], after
        # At the last event there is nothing more: no message comes, and
        # the socket answers the next one.
        b.send({"type": "follow", "id": sid, "after": last})
        b.send({"type": "follow", "id": sid, "after": last + 1, "ref": 9})
        m = b.recv_type("error")
        assert m["code"] == 400 and m["ref"] == 9 and m["id"] == sid, m


def test_follow_live_from_another_socket(gw):
    with WS(gw.port) as a, WS(gw.port) as b:
        created = create(a, long_body(max_tokens=300))
        sid = created["id"]
        first = a.recv()
        assert first["event"] == "start", first
        b.send({"type": "follow", "id": sid, "token": created["read_token"]})
        got_b = b.until_done(sid)
        got_a = [first] + a.until_done(sid)
        assert got_a == got_b
        check_event_order(got_a)


def test_follow_errors(gw):
    with WS(gw.port) as a:
        sid = create(a, body(max_tokens=3))["id"]
        a.until_done(sid)
        a.send({"type": "follow", "id": sid, "token": "B" * 22})
        assert a.recv_type("error")["code"] == 403
        a.send({"type": "follow", "id": "short"})
        assert a.recv_type("error")["code"] == 404
        a.send({"type": "cancel", "id": "C" * 22, "ref": {"k": [1]}})
        m = a.recv_type("error")
        assert m["code"] == 404 and m["ref"] == {"k": [1]} and m["id"] == "C" * 22, m
        a.send({"type": "follow"})
        assert a.recv_type("error")["code"] == 400


def test_cancel_mid_stream_reaches_the_upstream(gw):
    before = abort_count(gw.port)
    with WS(gw.port) as ws:
        sid = create(ws, long_body())["id"]
        deltas = 0
        while deltas < 5:
            m = ws.recv()
            assert m["type"] == "event" and m["event"] != "done", m
            deltas += m["event"] == "delta"
        ws.send({"type": "cancel", "id": sid})
        rest = ws.until_done(sid)
        done = rest[-1]["data"]
        assert done == {"finish_reason": "cancelled", "usage": None, "metrics": None}, done
        obj = stream_object(gw.port, sid)
        assert obj["state"] == "cancelled" and obj["finish_reason"] == "cancelled", obj
        poll(lambda: abort_count(gw.port) >= before + 1, what="the simulator's abort counter")
        # Cancel again: the stream is over, nothing is sent; the socket goes on.
        ws.send({"type": "cancel", "id": sid})
        ws.send({"type": "bogus"})
        assert ws.recv_type("error")["code"] == 400


def test_cancel_from_another_socket(gw):
    with WS(gw.port) as a, WS(gw.port) as b:
        sid = create(a, long_body())["id"]
        assert a.recv()["event"] == "start"
        b.send({"type": "cancel", "id": sid})
        events = a.until_done(sid)
        assert events[-1]["data"]["finish_reason"] == "cancelled"


def test_several_streams_on_one_socket(gw):
    with WS(gw.port) as ws:
        ids = []
        for i in range(3):
            ws.send({"type": "create", "body": body(max_tokens=20 + i), "ref": i})
        texts, done = {}, set()
        while len(done) < 3:
            m = ws.recv()
            if m["type"] == "created":
                ids.append(m["id"])
                texts[m["id"]] = []
                continue
            assert m["type"] == "event", m
            if m["event"] == "delta":
                texts[m["id"]].append(m["data"]["text"])
            elif m["event"] == "done":
                done.add(m["id"])
        for sid in ids:
            assert "".join(texts[sid]) == stream_object(gw.port, sid)["text"]


def test_disconnect_is_not_cancel(gw):
    # A short stream outlives its socket (grace 1 s): it finishes.
    with WS(gw.port) as ws:
        sid = create(ws, body(max_tokens=100, ignore_eos=True))["id"]
        assert ws.recv()["event"] == "start"
    obj = poll(lambda: (o := stream_object(gw.port, sid))["state"] != "running" and o,
               what="the stream to end")
    assert obj["state"] == "done", obj
    assert obj["finish_reason"] == "length", obj


def test_disconnect_past_grace_cancels(gw):
    before = abort_count(gw.port)
    with WS(gw.port) as ws:
        sid = create(ws, long_body(max_tokens=8000))["id"]
        assert ws.recv()["event"] == "start"
    obj = poll(lambda: (o := stream_object(gw.port, sid))["state"] != "running" and o,
               what="the grace to cancel the stream")
    assert obj["state"] == "cancelled", obj
    poll(lambda: abort_count(gw.port) >= before + 1, what="the simulator's abort counter")


def test_following_holds_an_openai_face_stream(gw):
    # An OpenAI-face stream has no grace: it is cancelled when its last
    # listener leaves. A WebSocket follower is a listener like any.
    before = abort_count(gw.port)
    clients, ids = [], []
    with WS(gw.port) as ws:
        for _ in range(2):
            c = RawConn(gw.port)
            clients.append(c)
            c.send(request_bytes("POST", "/v1/chat/completions",
                                 dict(long_body(max_tokens=8000), stream=True)))
            head = c.read_head()
            assert head.status == 200, head
            ids.append(head.header("X-Stream-Id"))
            ws.send({"type": "follow", "id": ids[-1]})
            while (m := ws.recv())["id"] != ids[-1]:
                assert m["type"] == "event" and m["event"] != "done", m
            assert m["event"] == "start", m
        for c in clients:
            c.close()  # the OpenAI client leaves; the socket still listens
        seen = set()
        while len(seen) < 2:  # both streams go on
            m = ws.recv()
            assert m["type"] == "event" and m["event"] != "done", m
            seen.add(m["id"])
        assert all(stream_object(gw.port, i)["state"] == "running" for i in ids)
    # The socket left too: nobody listens, both are cancelled at once.
    for i in ids:
        poll(lambda: stream_object(gw.port, i)["state"] == "cancelled", what="a cancel")
    poll(lambda: abort_count(gw.port) >= before + 2, what="two upstream aborts")


def test_upstream_error_is_an_error_message(gw):
    with WS(gw.port) as ws:
        ws.send({"type": "create", "body": body(max_tokens=-1), "ref": "bad"})
        m = ws.recv_type("error")
        assert m["code"] == 400 and m["ref"] == "bad" and m["id"] is None, m
        assert "max_tokens" in m["message"], m
        ws.send({"type": "create", "body": {"messages": "no"}})
        assert ws.recv_type("error")["code"] == 400


# --------------------------------------------------------------------------
# Against a recording upstream: the body and the headers it gets


def test_upstream_gets_the_body_as_written_and_the_authorization():
    path = os.path.join(FIXTURES, "vllm-0.9.2_qwen3-0.6b_chat-stream_no-reasoning-parser.sse")
    with open(path, "rb") as f:
        sse = f.read()
    with open(os.path.join(FIXTURES, "vllm-0.9.2_error-400_tool-choice-auto-not-enabled.json"),
              "rb") as f:
        err400 = f.read()

    def handler(req):
        if req.method == "POST" and b"tool_choice" in req.body:
            return Canned(400, err400)
        if req.method == "POST":
            return Sse(sse, pieces=(1, 40))
        return Canned(404, b'{"detail":"Not Found"}')

    up = ReplayUpstream(handler).start()
    g = start_gateway(["--upstream", up.url])
    try:
        raw = ('{ "model": "Qwen/Qwen3-0.6B",  "temperature": 0.1000, "top_p": 1e-7,\n'
               ' "messages": [ {"role": "user", "content": "Hi \\u00e9"} ] }')
        with WS(g.port, headers={"Authorization": "Bearer sk-ws"}) as ws:
            ws.send('{"type":"create","body":%s}' % raw)
            sid = ws.recv_type("created")["id"]
            events = ws.until_done(sid)
            chunks = [json.loads(e) for e in sse_events(sse)[:-1]]
            assert delta_text(events) == content_text(chunks)
            assert events[-1]["data"]["finish_reason"] == "stop"
            ws.send({"type": "create", "body": body(tool_choice="auto"), "ref": 4})
            m = ws.recv_type("error")
            assert m == {"type": "error", "id": None, "message": json.loads(err400)["message"],
                         "code": 400, "ref": 4}, m
        posts = up.posts("/v1/chat/completions")
        assert len(posts) == 2, posts
        got = posts[0].body
        # Every member as the client wrote it, floats and spaces included;
        # stream and stream_options spliced in.
        assert b'"temperature": 0.1000, "top_p": 1e-7,\n "messages": [ {"role": "user", ' \
               b'"content": "Hi \\u00e9"} ]' in got, got
        want = json.loads(raw)
        want.update(stream=True, stream_options={"include_usage": True})
        assert json.loads(got) == want, got
        assert posts[0].header("Authorization") == "Bearer sk-ws"
        assert posts[0].header("Content-Type") == "application/json"
    finally:
        g.stop_checked()
        up.stop()


# --------------------------------------------------------------------------
# Bad messages and frames


@pytest.mark.parametrize("text", [
    "not json", "[1]", "{}", '{"type":"bogus"}', '{"type":"create"}', '{"type":"create","body":1}',
    '{"type":"follow","id":"x","after":-1}', '{"type":"cancel"}',
    '{"type":"' + "\u20ac" * 30 + '"}',  # quoted in the error, cut inside a character
    "{\"x\": \"\u20ac\u20ac\u20ac\u20ac\" x",  # jansson quotes the token near the error
])
def test_bad_message_keeps_the_socket(gw, text):
    with WS(gw.port) as ws:
        ws.send(text)
        m = ws.recv_type("error")
        assert m["code"] in (400, 404) and m["message"], m
        assert list(m) == ["type", "id", "message", "code"], m
        sid = create(ws, body(max_tokens=2))["id"]
        assert ws.until_done(sid)[-1]["event"] == "done"


def test_ping_pong(gw):
    with WS(gw.port) as ws:
        ws.send_raw(frame(0x9, b"are you there"))
        fin, opcode, payload = ws.recv_frame()
        assert (fin, opcode, payload) == (1, 0xA, b"are you there")
        # An unsolicited pong is ignored.
        ws.send_raw(frame(0xA, b"x"))
        ws.send({"type": "bogus"})
        assert ws.recv_type("error")["code"] == 400


def test_fragmented_message(gw):
    with WS(gw.port) as ws:
        text = json.dumps({"type": "follow", "id": "D" * 22}).encode()
        ws.send_raw(frame(0x1, text[:5], fin=False))
        ws.send_raw(frame(0x9, b"p"))  # a control frame between fragments
        ws.send_raw(frame(0x0, text[5:9], fin=False) + frame(0x0, text[9:]))
        assert ws.recv_frame() == (1, 0xA, b"p")
        assert ws.recv_type("error")["code"] == 404


def test_split_at_every_byte(gw):
    with WS(gw.port) as ws:
        data = frame(0x1, json.dumps({"type": "cancel", "id": "E" * 22}).encode())
        for i in range(len(data)):
            ws.send_raw(data[i:i + 1])  # TCP_NODELAY: one segment each
        assert ws.recv_type("error")["code"] == 404


@pytest.mark.parametrize("data,code", [
    (frame(0x1, b'{"type":"bogus"}', mask=False), 1002),
    (frame(0x1, b'{"type":"bogus"}', rsv=4), 1002),
    (frame(0x1, b'{"type":"bogus"}', rsv=1), 1002),
    (frame(0x3, b"x"), 1002),  # a reserved opcode
    (frame(0x0, b"x"), 1002),  # a continuation with nothing to continue
    (frame(0x9, b"x" * 126), 1002),  # a control frame over 125 bytes
    (frame(0x9, b"x", fin=False), 1002),  # a fragmented control frame
    (frame(0x8, b"\x03"), 1002),  # a close payload of one byte
    (frame(0x8, b"\x03\xe7"), 1002),  # close code 999
    (frame(0x1, b'{"type":"\xff"}'), 1007),
    (frame(0x1, b"\xe2\x82", fin=False) + frame(0x0, b"x"), 1007),
    (frame(0x2, b"\x00\x01"), 1003),
], ids=["unmasked", "rsv1", "rsv3", "opcode3", "continuation", "ping126", "ping-fragment",
        "close-1-byte", "close-999", "utf8", "utf8-split", "binary"])
def test_bad_frame_closes_with_code(gw, data, code):
    with WS(gw.port) as ws:
        ws.send_raw(data)
        assert ws.close_code() == code
        assert ws.conn.wait_closed(), "the server did not close the connection"


def test_client_close_is_echoed(gw):
    with WS(gw.port) as ws:
        sid = create(ws, long_body())["id"]
        ws.send_raw(frame(0x8, struct.pack("!H", 1000) + b"bye"))
        assert ws.close_code() == 1000
        assert ws.conn.wait_closed()
    # The stream goes on under the store's grace, then ends.
    poll(lambda: stream_object(gw.port, sid)["state"] != "running", what="the stream to end")


def test_message_too_big_closes_1009():
    g = start_gateway(GW_ARGS + ["--max-body-bytes", "2048"])
    try:
        with WS(g.port) as ws:
            sid = create(ws, body(max_tokens=2))["id"]
            ws.until_done(sid)
            ws.send({"type": "create", "body": body("x" * 4096)})
            assert ws.close_code() == 1009
            assert ws.conn.wait_closed()
    finally:
        g.stop_checked()


def test_slow_reader_pauses_and_resumes():
    # A socket that reads nothing while its stream runs: the follower waits
    # at its bound (not the connection's write bound, which would close it)
    # and goes on as the client reads. Some 6 MB of events, more than the
    # kernel's socket buffers take, so the follower does wait.
    tokens = 60000
    g = start_gateway(GW_ARGS + ["--itl-ms", "0", "--max-model-len", str(2 * tokens),
                                 "--client-buffer-bytes", "4096",
                                 "--max-write-buffer-bytes", "262144"])
    try:
        with WS(g.port, rcvbuf=4096) as ws:
            sid = create(ws, long_body(max_tokens=tokens))["id"]
            poll(lambda: stream_object(g.port, sid)["state"] == "done",
                 what="the stream to finish while its reader sleeps")
            events = ws.until_done(sid)
            check_event_order(events)
            with WS(g.port) as again:  # nothing lost: the same as a replay
                again.send({"type": "follow", "id": sid})
                assert again.until_done(sid) == events
            obj = stream_object(g.port, sid)
            assert delta_text(events) == obj["text"]
            assert events[-1]["data"]["usage"]["completion_tokens"] == tokens
    finally:
        g.stop_checked()


def test_shutdown_with_open_sockets_is_clean():
    g = start_gateway(GW_ARGS)
    socks = []
    try:
        a = WS(g.port)
        socks.append(a)
        sid = create(a, long_body())["id"]
        assert a.recv()["event"] == "start"
        b = WS(g.port)
        socks.append(b)
        b.send({"type": "follow", "id": sid})
        assert b.recv()["event"] == "start"
        b.send({"type": "create", "body": long_body()})  # one more, maybe not opened yet
        socks.append(WS(g.port))  # idle
    finally:
        g.stop_checked()  # SIGTERM with sockets streaming: exit 0, no sanitizer report
        for ws in socks:
            ws.close()
