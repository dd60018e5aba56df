"""Issue 10: a client that resets its connection while a token is being
written must not corrupt the store.

The OpenAI face with no grace cancels the stream when its client leaves.
When the client's reset is seen by the write of a token, that cancel runs
from inside the log's notification of the token; it used to tell the
store's end watcher twice, which put the stream on the finished list twice
and freed it while still listed (ASan: heap-use-after-free in the store's
sweep after eviction). Here many clients reset (RST, SO_LINGER 0) after
reading a varying number of events, the streams are evicted after a short
retention, and the gateway must stay whole: no sanitizer report at
teardown, the store's count back to zero, every later request served.
"""

import json
import socket
import struct
import threading

import pytest

from conftest import POLL_LIMIT_S, http, poll, request_bytes
from gateway_util import make_pair, procs  # noqa: F401 (fixture)

ROUNDS = 4
STREAMS_PER_ROUND = 40
# Cut points: events read before the reset (0: right after the head).
CUTS = (0, 1, 2, 3, 4, 5, 7, 9, 12, 16)


def chat_body(seed, tokens=200):
    return json.dumps({"model": "Qwen/Qwen3-0.6B", "stream": True, "seed": seed,
                       "max_tokens": tokens, "ignore_eos": True,
                       "messages": [{"role": "user", "content": "hello"}]})


def reset_after(port, seed, events, extra_bytes):
    """Starts a stream, reads `events` events (and extra_bytes more), then
    resets the connection."""
    s = socket.create_connection(("127.0.0.1", port), timeout=POLL_LIMIT_S)
    try:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.sendall(request_bytes("POST", "/v1/chat/completions", chat_body(seed),
                                {"Content-Type": "application/json"}))
        buf = b""
        want_blocks = events + 1  # the head's blank line, then one per event
        while buf.count(b"\r\n\r\n") + buf.count(b"\n\n") < want_blocks:
            d = s.recv(65536)
            if not d:
                return
            buf += d
        if extra_bytes:
            s.recv(extra_bytes)
    except OSError:
        pass
    finally:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()


def run_rounds(port):
    for r in range(ROUNDS):
        threads = []
        for i in range(STREAMS_PER_ROUND):
            cut = CUTS[(r * STREAMS_PER_ROUND + i) % len(CUTS)]
            t = threading.Thread(target=reset_after, args=(port, 1000 * r + i, cut, i % 3 * 7))
            t.start()
            threads.append(t)
        for t in threads:
            t.join(POLL_LIMIT_S)


@pytest.mark.parametrize("mode", ["inproc", "upstream"])
def test_reset_mid_write_then_evict(procs, mode):  # noqa: F811
    pair = make_pair(procs, mode, "--retention-s", "1", "--grace-s", "30")
    port = pair.gw.port
    run_rounds(port)
    # Every reset stream ends (cancelled) and is evicted a second later; the
    # sweep walks the finished list each 250 ms: let it run a few times.
    ids = []
    for i in range(3):
        r = http(port, "POST", "/v1/streams", chat_body(90000 + i, tokens=4),
                 {"Content-Type": "application/json"})
        assert r.status == 201, r
        ids.append(r.json()["id"])
    poll(lambda: all(http(port, "GET", f"/v1/streams/{i}").status == 410 for i in ids),
         what="the streams made after the resets to be evicted after retention")
    run_rounds(port)
    # The gateway still serves a whole answer.
    r = http(port, "POST", "/v1/chat/completions", chat_body(7, tokens=8),
             {"Content-Type": "application/json"})
    assert r.status == 200 and b"data: [DONE]" in r.body, r
    pair.gw.assert_alive()  # and teardown fails on any sanitizer report
