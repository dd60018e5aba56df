"""Issue 10: a slow reader is held, not dropped. A burst far larger than the
client's bounds (--client-buffer-bytes, --max-write-buffer-bytes) meets a
client whose socket is full: sluice renders only what fits, waits for the
socket to drain and goes on from the next event, on each face (stream face
SSE, OpenAI face, WebSocket). A reader that never reads is still closed
after --send-timeout-ms."""

import json

import pytest

from conftest import MODEL, RawConn, chat_body, poll, request_bytes
from gateway_util import server_side_send_queue, server_side_state
from replay_upstream import Sse
from streams_util import Events, create, procs
from test_ws import WS, check_event_order, delta_text

_ = procs  # the fixture, imported for pytest

# 64 events of this size are ~2 MB: the follower's read batch, rendered at
# once, is far past the write bound below whatever the kernel takes.
PIECE = 30000
PIECES = 200  # ~6 MB in all, more than loopback socket buffers hold
BOUNDS = ["--max-write-buffer-bytes", "65536", "--client-buffer-bytes", "16384"]
# Only the connection's bound set, under the follower's default (256 KiB):
# the follower holds at the smaller of the two.
WRITE_BOUND_ONLY = ["--max-write-buffer-bytes", "65536"]


def piece(i):
    """Content of chunk i: numbered, so a lost or repeated one shows."""
    return f"<{i:05d}>" + "x" * (PIECE - 7)


def burst_sse():
    """An upstream answer of PIECES big content chunks, sent at once."""
    def chunk(delta, finish=None):
        c = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1,
             "model": MODEL,
             "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
        return "data: " + json.dumps(c) + "\n\n"
    out = [chunk({"role": "assistant", "content": ""})]
    out += [chunk({"content": piece(i)}) for i in range(PIECES)]
    out.append(chunk({}, "stop"))
    out.append("data: [DONE]\n\n")
    return "".join(out)


WHOLE = "".join(piece(i) for i in range(PIECES))


def burst_gateway(procs, *extra, bounds=BOUNDS):
    sse = burst_sse()
    up = procs.replay(lambda req: Sse(sse))
    return procs.gateway_to(up, *bounds, *extra)


def wait_done(gw, sid):
    """Waits for stream sid to finish by reading its last events once it
    has them (its summary holds the whole text, more than the write bound
    of a connection takes at once)."""
    def tail():
        ev = Events(gw.port, sid, last_event_id=PIECES + 1)
        got = ev.rest() if ev.resp.status == 200 else None
        ev.close()
        return got

    got = poll(tail, what=f"stream {sid} to have its last delta")
    assert got[-1].event == "done", got


def hold_until_full(gw, sock):
    """The client reads nothing until the kernel's buffers for it are full
    (over 1 MB queued, the same at two looks 0.2 s apart: sluice holds the
    rest, or would have dropped it by then), or until sluice closes it."""
    last = [None]

    def full():
        if server_side_state(gw.port, sock) != "01":
            return True
        q = server_side_send_queue(gw.port, sock)
        settled = q > 1_000_000 and q == last[0]
        last[0] = q
        return settled

    poll(full, interval=0.2, what="the kernel's buffers for the client that reads nothing to fill")


def finished_stream(gw):
    sid, _tok = create(gw.port, chat_body("Burst.", stream=False))
    wait_done(gw, sid)
    return sid


def assert_whole_compact_log(events):
    """Every event once, in order: ids rising (the finish has no compact
    event of its own), the text whole, done last."""
    ids = [e.id for e in events if e.id is not None]
    assert ids == list(range(1, PIECES + 2)) + [PIECES + 3], (len(ids), ids[-3:])
    assert "".join(e.json()["text"] for e in events if e.event == "delta") == WHOLE
    assert events[-1].event == "done" and events[-1].json()["finish_reason"] == "stop"


@pytest.mark.parametrize("bounds", [BOUNDS, WRITE_BOUND_ONLY], ids=["both", "write-only"])
def test_late_reader_of_a_big_log_is_held_not_dropped(procs, bounds):
    """GET .../events from 0 on a finished ~6 MB log, by a client with a 4 KiB
    receive buffer that reads nothing until the kernel's buffers are full,
    then everything: every event once, in order, and the proper end."""
    gw = burst_gateway(procs, bounds=bounds)
    sid = finished_stream(gw)
    ev = Events(gw.port, sid, rcvbuf=4096)
    hold_until_full(gw, ev.conn.sock)
    events = ev.rest()
    ev.close()
    assert ev.ended, f"dropped after {len(ev.raw)} bytes (eof={ev.eof})"
    assert_whole_compact_log(events)


def test_openai_face_burst_to_a_full_socket_is_held(procs):
    """POST /v1/chat/completions whose whole answer lands at once while the
    client reads nothing (past the response head) until the stream is done;
    then it reads everything: each chunk once, in order, ending with [DONE]."""
    gw = burst_gateway(procs)
    ev = Events(gw.port, None, path="/v1/chat/completions", method="POST",
                body=chat_body("Burst."), rcvbuf=4096)
    wait_done(gw, ev.resp.header("X-Stream-Id"))
    events = ev.rest()
    ev.close()
    assert ev.ended, f"dropped after {len(ev.raw)} bytes (eof={ev.eof})"
    assert events[-1].data == "[DONE]", events[-2:]
    ids = [e.id for e in events if e.id is not None]
    assert ids == list(range(1, PIECES + 3)), (len(ids), ids[-3:])
    text = "".join(c["choices"][0]["delta"].get("content") or ""
                   for c in (e.json() for e in events[:-1]) if c.get("choices"))
    assert text == WHOLE


def test_websocket_follower_of_a_big_log_is_held(procs):
    """A WebSocket follow of the finished ~6 MB log, held as above: the
    whole log, each event once, in order."""
    gw = burst_gateway(procs)
    sid = finished_stream(gw)
    with WS(gw.port, rcvbuf=4096) as ws:
        ws.send({"type": "follow", "id": sid})
        hold_until_full(gw, ws.conn.sock)
        events = ws.until_done(sid)
    check_event_order(events)
    assert delta_text(events) == WHOLE


def test_reader_that_never_reads_is_closed_after_send_timeout(procs):
    """Held is not forever: a client that reads nothing of the big log is
    closed once its queued bytes make no progress for --send-timeout-ms."""
    gw = burst_gateway(procs, "--send-timeout-ms", "300")
    sid = finished_stream(gw)
    with RawConn(gw.port, rcvbuf=4096) as stalled:
        stalled.send(request_bytes("GET", f"/v1/streams/{sid}/events"))
        poll(lambda: server_side_state(gw.port, stalled.sock) is not None, what="accepted")
        poll(lambda: server_side_state(gw.port, stalled.sock) != "01",
             what="the gateway to close the client that reads nothing")
        r = stalled.read_response()
        assert r is not None and r.status == 200
        assert not r.complete, "a cut stream must not end cleanly"
