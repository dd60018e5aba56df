"""The HTTP/1.1 server core, driven with exact bytes over raw sockets."""

import json
import random
import socket
import struct
import threading
import time

import pytest

from conftest import (MODEL, POLL_LIMIT_S, RawConn, assert_openai_error, chat_body, http,
                      metric_value, metrics, poll, request_bytes)

GET_HEALTH = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"


def small_chat(**kw):
    kw.setdefault("seed", 1)
    return chat_body("hi", stream=False, max_tokens=4, **kw)


def assert_closed(c, limit=POLL_LIMIT_S):
    assert c.wait_closed(limit), "the server did not close the connection"


# ---------------------------------------------------------------- basics


def test_keep_alive_two_requests_one_connection(sim):
    with RawConn(sim.port) as c:
        c.send(GET_HEALTH)
        r1 = c.read_response()
        assert r1.status == 200, r1
        assert r1.header("Connection", "keep-alive").lower() != "close"
        c.send(request_bytes("GET", "/v1/models"))
        r2 = c.read_response()
        assert r2.status == 200, r2
        assert r2.json()["object"] == "list"


def test_http10_closes_without_keep_alive(sim):
    with RawConn(sim.port) as c:
        c.send(b"GET /health HTTP/1.0\r\n\r\n")
        r = c.read_response()
        assert r.status == 200, r
        assert_closed(c)


def test_http10_stream_is_not_chunked(sim):
    """An HTTP/1.0 client does not know chunked framing (RFC 9112 6.1: a server
    MUST NOT send Transfer-Encoding to it): the stream is close-delimited."""
    body = json.dumps(chat_body("hi", seed=1, max_tokens=5, ignore_eos=True)).encode()
    with RawConn(sim.port) as c:
        c.send(b"POST /v1/chat/completions HTTP/1.0\r\nContent-Type: application/json\r\n"
               b"Content-Length: %d\r\n\r\n" % len(body) + body)
        r = c.read_head()
        assert r.status == 200, r
        assert r.header("Transfer-Encoding") is None, r
        assert r.header("Connection", "").lower() == "close", r
        rest = c.read_all()
        assert rest.startswith(b"data: {"), rest[:100]
        assert rest.endswith(b"data: [DONE]\n\n"), rest[-100:]


def test_connection_close_is_honoured(sim):
    with RawConn(sim.port) as c:
        c.send(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        r = c.read_response()
        assert r.status == 200, r
        assert r.header("Connection", "").lower() == "close", r
        assert_closed(c)


def test_pipelined_requests_answered_in_order(sim):
    with RawConn(sim.port) as c:
        c.send(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
               b"GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n"
               b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n")
        r1, r2, r3 = c.read_response(), c.read_response(), c.read_response()
        assert (r1.status, r2.status, r3.status) == (200, 200, 404), (r1, r2, r3)
        assert r2.json()["data"][0]["id"] == MODEL
        assert_openai_error(r3, 404)
        # the connection is still usable afterwards
        c.send(GET_HEALTH)
        assert c.read_response().status == 200


def test_pipelined_post_after_slow_stream_kept_in_order(sim):
    """A streamed answer followed by a pipelined GET: the GET is answered after
    the whole stream."""
    body = json.dumps(chat_body("hi", max_tokens=8, ignore_eos=True, seed=3)).encode()
    with RawConn(sim.port) as c:
        c.send(request_bytes("POST", "/v1/chat/completions", body) + GET_HEALTH)
        r1 = c.read_response()
        assert r1.status == 200 and r1.complete, r1
        assert r1.body.endswith(b"data: [DONE]\n\n")
        r2 = c.read_response()
        assert r2.status == 200, r2


def test_many_pipelined_requests_in_one_write(sim):
    """More pipelined requests than the server reads ahead: all answered, in order."""
    n = 2000
    reqs = []
    for i in range(n):
        path = ["/health", "/nope", "/v1/models"][i % 3]
        reqs.append(f"GET {path}?i={i} HTTP/1.1\r\nHost: x\r\nX-I: {i}\r\n\r\n".encode())
    with RawConn(sim.port) as c:
        c.send(b"".join(reqs))
        statuses = [c.read_response().status for _ in range(n)]
        assert statuses == [[200, 404, 200][i % 3] for i in range(n)]
        c.send(GET_HEALTH)
        assert c.read_response().status == 200


def test_pipelined_posts_with_bodies(sim):
    a = request_bytes("POST", "/v1/chat/completions", small_chat(seed=1))
    b_body = json.dumps(chat_body("hi", stream=False, max_tokens=6, seed=2)).encode()
    b = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
         + b"%x\r\n%s\r\n0\r\n\r\n" % (len(b_body), b_body))
    with RawConn(sim.port) as c:
        c.send(a + b + GET_HEALTH + a)
        r1, r2, r3, r4 = (c.read_response() for _ in range(4))
        assert [r.status for r in (r1, r2, r3, r4)] == [200, 200, 200, 200]
        assert r1.json()["choices"] == r4.json()["choices"]
        assert r1.json()["usage"]["completion_tokens"] == 4
        assert r2.json()["usage"]["completion_tokens"] == 6
        assert r1.json()["id"] != r4.json()["id"]


def test_absolute_form_target(sim):
    with RawConn(sim.port) as c:
        c.send(b"GET http://127.0.0.1/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert c.read_response().status == 200


def test_large_body_with_expect_100_continue(sim_factory):
    """A 3 MB body (under the 4 MiB default) is taken whole."""
    s = sim_factory("--max-model-len", "10000000")
    body = json.dumps(chat_body("word " * 600_000, stream=False, seed=4, max_tokens=3)).encode()
    assert 2_900_000 < len(body) < 4 * 1024 * 1024
    with RawConn(s.port) as c:
        c.send(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n"
               b"Expect: 100-continue\r\n\r\n" % len(body))
        assert c.read_response(allow_interim=True).status == 100
        c.send(body)
        r = c.read_response()
        assert r.status == 200, r
        assert r.json()["usage"]["prompt_tokens"] > 100_000


def test_http10_expect_gets_no_100(sim):
    """Expect: 100-continue means nothing from an HTTP/1.0 client: no interim answer."""
    body = json.dumps(small_chat()).encode()
    with RawConn(sim.port) as c:
        c.send(b"POST /v1/chat/completions HTTP/1.0\r\nContent-Length: %d\r\n"
               b"Expect: 100-continue\r\n\r\n" % len(body))
        c.send(body)
        r = c.read_response(allow_interim=True)
        assert r.status == 200, r


@pytest.mark.parametrize("path", ["/health", "/v1/models"])
def test_head_has_headers_and_no_body(sim, path):
    get = http(sim.port, "GET", path)
    assert get.status == 200
    with RawConn(sim.port) as c:
        c.send(f"HEAD {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        r = c.read_response(head_only=True)
        assert r.status == 200, r
        assert r.header("Content-Length") is not None, r
        if path == "/v1/models":
            # same length as GET's body (GET's "created" may tick over a second
            # boundary, which does not change its digit count)
            assert int(r.header("Content-Length")) == len(get.body)
        assert r.header("Content-Type") == get.header("Content-Type")
        # No body followed: the next bytes on the connection are the next answer.
        c.send(GET_HEALTH)
        head = c.read_exact(12)
        assert head == b"HTTP/1.1 200", head


def test_content_length_post(sim):
    r = http(sim.port, "POST", "/v1/chat/completions", small_chat())
    assert r.status == 200, r
    assert r.json()["object"] == "chat.completion"


def test_chunked_post_body_split_across_sends(sim):
    body = json.dumps(small_chat()).encode()
    # the body in three chunks of uneven sizes, with a chunk extension
    parts = [body[:7], body[7:40], body[40:]]
    wire = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts[:2])
    wire += b"%x;ext=1\r\n%s\r\n0\r\n\r\n" % (len(parts[2]), parts[2])
    head = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
    with RawConn(sim.port) as c:
        c.send(head)
        # cut inside size lines, data and CRLFs
        cuts = [0, 1, 3, 10, 11, 30, 52, len(wire) - 3, len(wire) - 1, len(wire)]
        for a, b in zip(cuts, cuts[1:]):
            if b > a:
                c.send(wire[a:b])
                time.sleep(0.01)  # not synchronisation: makes separate segments likely
        r = c.read_response()
        assert r.status == 200, r
        assert r.json()["object"] == "chat.completion"
        # keep-alive still works after a chunked body
        c.send(GET_HEALTH)
        assert c.read_response().status == 200


def test_chunked_post_with_trailer(sim):
    body = json.dumps(small_chat()).encode()
    wire = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            + b"%x\r\n%s\r\n0\r\nX-Trailer: yes\r\n\r\n" % (len(body), body))
    with RawConn(sim.port) as c:
        c.send(wire)
        r = c.read_response()
        assert r.status == 200, r


def test_expect_100_continue(sim):
    body = json.dumps(small_chat()).encode()
    head = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\nExpect: 100-continue\r\n\r\n" % len(body))
    with RawConn(sim.port) as c:
        c.send(head)
        interim = c.read_response(allow_interim=True)
        assert interim is not None, "closed instead of 100 Continue"
        assert (interim.version, interim.status) == ("HTTP/1.1", 100), interim
        assert interim.reason == "Continue"
        c.send(body)
        r = c.read_response()
        assert r.status == 200, r
        assert r.json()["object"] == "chat.completion"


def test_expect_100_continue_with_chunked_body(sim):
    body = json.dumps(small_chat()).encode()
    head = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
            b"Expect: 100-continue\r\n\r\n")
    with RawConn(sim.port) as c:
        c.send(head)
        interim = c.read_response(allow_interim=True)
        assert interim.status == 100, interim
        c.send(b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))
        r = c.read_response()
        assert r.status == 200, r


def test_expect_100_continue_over_body_limit_gets_413_without_100(sim_factory):
    s = sim_factory("--max-body-bytes", "1024")
    head = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n"
            b"Expect: 100-continue\r\n\r\n")
    with RawConn(s.port) as c:
        c.send(head)
        r = c.read_response(allow_interim=True)
        assert r.status == 413, r
        assert_openai_error(r, 413)


# ---------------------------------------------------------------- errors


def assert_error_and_close(c, status):
    r = c.read_response()
    assert r is not None, f"closed without the {status} answer"
    err = assert_openai_error(r, status)
    assert r.header("Connection", "").lower() == "close", r
    assert_closed(c)
    return err


@pytest.mark.parametrize("line", [
    b"GARBAGE\r\n\r\n",
    b"GET\r\n\r\n",
    b"GET /health\r\n\r\n",
    b"GET  /health HTTP/1.1\r\n\r\n",
    b"GET /health HTTP/1.1 extra\r\n\r\n",
    b"GET /health HTTX/1.1\r\n\r\n",
    b"G(T /health HTTP/1.1\r\n\r\n",
    b"GET /he\x01alth HTTP/1.1\r\n\r\n",
])
def test_malformed_request_line_400(sim, line):
    with RawConn(sim.port) as c:
        c.send(line)
        assert_error_and_close(c, 400)
    assert http(sim.port, "GET", "/health").status == 200


@pytest.mark.parametrize("hdr", [
    b"NoColonHere\r\n",
    b"Bad Name: x\r\n",
    b"Host : x\r\n",
    b": novalue\r\n",
    b"X-Folded: a\r\n  b\r\n",
    b"X-Ctl: a\x00b\r\n",
])
def test_bad_header_400(sim, hdr):
    with RawConn(sim.port) as c:
        c.send(b"GET /health HTTP/1.1\r\nHost: x\r\n" + hdr + b"\r\n")
        assert_error_and_close(c, 400)


def test_header_bytes_over_limit_431(sim_factory):
    s = sim_factory("--max-header-bytes", "1024")
    # under the bound: fine
    with RawConn(s.port) as c:
        c.send(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 500 + b"\r\n\r\n")
        assert c.read_response().status == 200
    with RawConn(s.port) as c:
        c.send(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 2000 + b"\r\n\r\n")
        assert_error_and_close(c, 431)
    # a head that never ends but passes the bound is refused without waiting for the end
    with RawConn(s.port) as c:
        c.send(b"GET /health HTTP/1.1\r\nHost: x\r\n" + b"X-A: b\r\n" * 200)
        assert_error_and_close(c, 431)


def test_too_many_headers_431(sim_factory):
    s = sim_factory("--max-headers", "10")
    with RawConn(s.port) as c:
        c.send(b"GET /health HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(8))
               + b"\r\n")
        assert c.read_response().status == 200
    with RawConn(s.port) as c:
        c.send(b"GET /health HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(20))
               + b"\r\n")
        assert_error_and_close(c, 431)


def test_url_over_limit_414(sim_factory):
    s = sim_factory("--max-url-bytes", "64")
    with RawConn(s.port) as c:
        c.send(b"GET /health?" + b"q" * 40 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        assert c.read_response().status == 200
    with RawConn(s.port) as c:
        c.send(b"GET /health?" + b"q" * 200 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        assert_error_and_close(c, 414)


def test_body_over_limit_content_length_413(sim_factory):
    s = sim_factory("--max-body-bytes", "1024")
    with RawConn(s.port) as c:
        # the answer comes from the head alone; the body is never sent
        c.send(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 2000\r\n\r\n")
        assert_error_and_close(c, 413)
    with RawConn(s.port) as c:
        c.send(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 2000\r\n\r\n"
               + b"x" * 2000)
        r = c.read_response()
        assert_openai_error(r, 413)


def test_body_over_limit_chunked_413(sim_factory):
    s = sim_factory("--max-body-bytes", "1024")
    head = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n")
    # 4 x 512 bytes in one write (a reset after a partial read could eat the answer)
    with RawConn(s.port) as c:
        c.send(head + (b"200\r\n" + b"x" * 0x200 + b"\r\n") * 4 + b"0\r\n\r\n")
        assert_error_and_close(c, 413)
    # the same, arriving piece by piece
    with RawConn(s.port) as c:
        c.send(head)
        try:
            for _ in range(4):
                c.send(b"200\r\n" + b"x" * 0x200 + b"\r\n")
        except OSError:
            pass  # closed once the bound was passed
        r = c.read_response()
        if r is not None:  # None: a reset ate the answer after the close
            assert_openai_error(r, 413)
    assert http(s.port, "GET", "/health").status == 200


def test_http2_request_line_505(sim):
    with RawConn(sim.port) as c:
        c.send(b"GET /health HTTP/2.0\r\nHost: x\r\n\r\n")
        assert_error_and_close(c, 505)


def test_transfer_encoding_gzip_501(sim):
    with RawConn(sim.port) as c:
        c.send(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n")
        assert_error_and_close(c, 501)


def test_content_length_and_transfer_encoding_400(sim):
    with RawConn(sim.port) as c:
        c.send(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
               b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
        assert_error_and_close(c, 400)


@pytest.mark.parametrize("cl,status", [
    (b"abc", (400,)),
    (b"-1", (400,)),
    (b"+5", (400,)),
    (b"1, 2", (400,)),
    (b"99999999999999999999999", (400, 413)),  # overflows int64: malformed or too big
])
def test_bad_content_length(sim, cl, status):
    with RawConn(sim.port) as c:
        c.send(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: " + cl
               + b"\r\n\r\n")
        r = c.read_response()
        assert r is not None
        assert r.status in status, r
        assert_openai_error(r, r.status)
        assert r.header("Connection", "").lower() == "close"


def test_conflicting_content_lengths_400(sim):
    with RawConn(sim.port) as c:
        c.send(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
               b"Content-Length: 6\r\n\r\nhello!")
        assert_error_and_close(c, 400)


def test_bad_chunk_size_400(sim):
    with RawConn(sim.port) as c:
        c.send(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
               b"Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n")
        assert_error_and_close(c, 400)


def test_unknown_path_404_json(sim):
    r = http(sim.port, "GET", "/nope")
    assert_openai_error(r, 404)
    r = http(sim.port, "POST", "/v1/nope", {"a": 1})
    assert_openai_error(r, 404)


def test_wrong_method_405_json(sim):
    r = http(sim.port, "GET", "/v1/chat/completions")
    assert_openai_error(r, 405)
    r = http(sim.port, "DELETE", "/v1/models")
    assert_openai_error(r, 405)


def test_malformed_json_body_400(sim):
    for raw in [b"{not json", b"", b"[1,2]", b"\"a string\"", b"{\"messages\": 5}"]:
        r = http(sim.port, "POST", "/v1/chat/completions", raw,
                 headers={"Content-Type": "application/json"} if raw else None)
        assert_openai_error(r, 400)
    r = http(sim.port, "POST", "/v1/completions", b"{\"prompt\": ")
    assert_openai_error(r, 400)


def test_error_keeps_connection_for_4xx_from_router(sim):
    """A 404 from the router is a complete answer: keep-alive goes on."""
    with RawConn(sim.port) as c:
        c.send(b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n")
        assert c.read_response().status == 404
        c.send(GET_HEALTH)
        assert c.read_response().status == 200


# ---------------------------------------------------------------- slow clients


def test_slow_header_timeout_while_others_served(sim_factory):
    s = sim_factory("--header-timeout-ms", "300")
    slow = RawConn(s.port)
    slow.send(b"GET /health HTTP/1.1\r\nHo")  # half a header, then nothing
    try:
        served = []
        closed = threading.Event()
        result = {}

        def watch():
            r = slow.read_response()  # 408 answer or None (closed)
            result["r"] = r
            slow.wait_closed()
            closed.set()

        t = threading.Thread(target=watch, daemon=True)
        t.start()
        # another connection is served normally while the slow one stalls
        with RawConn(s.port) as c:
            for _ in range(5):
                c.send(GET_HEALTH)
                served.append(c.read_response().status)
        assert served == [200] * 5
        assert closed.wait(POLL_LIMIT_S), "the stalled connection was never closed"
        r = result.get("r")
        if r is not None:
            assert_openai_error(r, 408)
    finally:
        slow.close()
    assert http(s.port, "GET", "/health").status == 200


def test_slow_body_timeout(sim_factory):
    s = sim_factory("--body-timeout-ms", "300")
    with RawConn(s.port) as c:
        c.send(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n"
               b"\r\n{\"a\"")
        r = c.read_response()
        if r is not None:
            assert r.status == 408, r
        assert_closed(c)


def test_header_trickle_is_cut_by_header_timeout(sim_factory):
    """A slowloris client that keeps sending header bytes is still cut: the
    header timeout bounds the whole head, not the gap between bytes."""
    s = sim_factory("--header-timeout-ms", "300")
    with RawConn(s.port) as c:
        c.send(b"GET /health HTTP/1.1\r\n")
        deadline = time.monotonic() + POLL_LIMIT_S
        closed = False
        i = 0
        while time.monotonic() < deadline:
            try:
                c.send(b"X-%d: v\r\n" % i)
            except OSError:
                closed = True
                break
            i += 1
            c.sock.settimeout(0.05)  # the pace of the trickle; also a poll for the close
            try:
                d = c.sock.recv(65536)
                if not d:
                    closed = True
                    break
                c.buf += d
                if b"\r\n\r\n" in c.buf:
                    closed = True  # an answer (408) came
                    break
            except socket.timeout:
                pass
            except ConnectionResetError:
                closed = True
                break
        assert closed, "a trickling header was never cut off"
        if c.buf:
            assert c.buf.startswith(b"HTTP/1.1 408 "), bytes(c.buf[:200])


def test_slow_but_steady_body_is_not_cut(sim_factory):
    """The body timeout is about progress: a body that keeps coming is fine."""
    s = sim_factory("--body-timeout-ms", "2000")
    body = json.dumps(small_chat()).encode()
    with RawConn(s.port) as c:
        c.send(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
               % len(body))
        step = len(body) // 12 + 1
        for i in range(0, len(body), step):
            c.send(body[i:i + step])
            time.sleep(0.2)  # pacing (12 x 0.2 s > the 2 s timeout), not synchronisation
        r = c.read_response()
        assert r.status == 200, r


def test_idle_keep_alive_closed(sim_factory):
    s = sim_factory("--idle-timeout-ms", "300")
    with RawConn(s.port) as c:
        c.send(GET_HEALTH)
        assert c.read_response().status == 200
        # nothing more is sent: the server closes the idle connection
        assert_closed(c)


def test_client_that_stops_reading_is_closed_with_bounded_memory(sim_factory):
    s = sim_factory("--max-write-buffer-bytes", "65536", "--max-model-len", "10000000",
                    "--itl-ms", "0", "--ttft-ms", "0", "--jitter-ms", "0", fast=False)
    base_rss = s.vmrss_kib()
    before = metrics(s.port)
    aborts0 = metric_value(before, "vllm:request_success_total", finished_reason="abort") or 0
    body = json.dumps(chat_body("write a long essay", max_tokens=5_000_000, ignore_eos=True,
                                seed=5))
    c = RawConn(s.port, rcvbuf=4096)
    try:
        c.send(request_bytes("POST", "/v1/chat/completions", body))
        # The client reads nothing. Others are served, and memory stays bounded.
        peak = [base_rss]

        def aborted():
            peak[0] = max(peak[0], s.vmrss_kib())
            assert http(s.port, "GET", "/health").status == 200
            m = metrics(s.port)
            a = metric_value(m, "vllm:request_success_total", finished_reason="abort") or 0
            return a >= aborts0 + 1 and metric_value(m, "vllm:num_requests_running") == 0

        poll(aborted, interval=0.05, what="the non-reading client to be cut off (abort counted)")
        peak[0] = max(peak[0], s.vmrss_kib())
        assert peak[0] - base_rss < 256 * 1024, f"RSS grew from {base_rss} to {peak[0]} KiB"
        # What the client can still read ends without the response's end.
        data = c.read_all()
        assert data.startswith(b"HTTP/1.1 200"), data[:100]
        assert not data.endswith(b"0\r\n\r\n")
        assert b"data: [DONE]" not in data
    finally:
        c.close()
    s.assert_alive()
    assert http(s.port, "GET", "/health").status == 200


# ---------------------------------------------------------------- garbage


def test_garbage_never_crashes(sim):
    rng = random.Random(1234)
    payloads = [
        bytes(rng.getrandbits(8) for _ in range(4096)),
        # the start of a TLS ClientHello
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"
        + bytes(rng.getrandbits(8) for _ in range(500)),
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        b"\r\n" * 50,
        b"\x00" * 10000,
        b"GET / HTTP/1.1\r\n" + b"\xff" * 3000 + b"\r\n\r\n",
        b"POST /v1/chat/completions HTTP/1.1\r\nContent-Length: 10\r\n\r\n\xff\xfe\x00\x01garbage",
        b"POST /v1/chat/completions HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"ffffffffffffffffffff\r\n",
        b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n" + bytes(rng.getrandbits(8) for _ in range(2000)),
    ]
    for _ in range(20):
        n = rng.randrange(1, 3000)
        payloads.append(bytes(rng.getrandbits(8) for _ in range(n)))
    for p in payloads:
        with RawConn(sim.port, timeout=10) as c:
            try:
                c.send(p)
                c.sock.shutdown(socket.SHUT_WR)
                c.wait_closed(POLL_LIMIT_S)
            except OSError:
                pass  # a reset is a fine answer to garbage
        sim.assert_alive()
    # random-length garbage on many connections at once, some closed abruptly
    conns = []
    for i in range(50):
        c = RawConn(sim.port, timeout=10)
        try:
            c.send(bytes(rng.getrandbits(8) for _ in range(rng.randrange(1, 500))))
        except OSError:
            pass
        conns.append(c)
    for i, c in enumerate(conns):
        if i % 2:
            # linger 0: the close is a reset
            c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        c.close()
    sim.assert_alive()
    r = http(sim.port, "GET", "/health")
    assert r.status == 200


def test_send_timeout_closes_a_client_that_reads_nothing(sim_factory):
    """Under the write bound, a client that reads nothing for send_timeout_ms
    is closed all the same."""
    s = sim_factory("--send-timeout-ms", "300", "--max-write-buffer-bytes", "1073741824",
                    "--max-model-len", "10000000", "--itl-ms", "1", "--ttft-ms", "0",
                    "--jitter-ms", "0", fast=False)
    aborts0 = metric_value(metrics(s.port), "vllm:request_success_total",
                           finished_reason="abort") or 0
    # 32 choices: the socket buffers fill fast, then nothing moves
    body = json.dumps(chat_body("long essay", max_tokens=5_000_000, ignore_eos=True, seed=6,
                                n=32))
    c = RawConn(s.port, rcvbuf=4096)
    try:
        c.send(request_bytes("POST", "/v1/chat/completions", body))

        def aborted():
            m = metrics(s.port)
            a = metric_value(m, "vllm:request_success_total", finished_reason="abort") or 0
            return a == aborts0 + 1 and metric_value(m, "vllm:num_requests_running") == 0

        poll(aborted, interval=0.05, what="the non-reading client to be closed by send timeout")
        data = c.read_all()
        assert b"data: [DONE]" not in data
    finally:
        c.close()
    assert http(s.port, "GET", "/health").status == 200


def test_http11_without_host_is_400(sim):
    """RFC 9112 3.2: an HTTP/1.1 request without exactly one Host gets a 400
    (h11, in front of vLLM, does the same); HTTP/1.0 needs none."""
    for head in (b"GET /health HTTP/1.1\r\n\r\n",
                 b"GET /health HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"):
        with RawConn(sim.port) as c:
            c.send(head)
            assert_error_and_close(c, 400)
    with RawConn(sim.port) as c:
        c.send(b"GET /health HTTP/1.0\r\n\r\n")
        assert c.read_response().status == 200
