"""HTTP/1.1 as upstreams really speak it, through both clients of http://
upstreams (sluice's own and libcurl, --upstream-http): interim 1xx answers,
bodies framed by Content-Length, by chunks with extensions and trailers, or
by the close; kept-alive connections the upstream closed while idle (and,
for libcurl, one closed on a request: its retry); host names with several
addresses; a path prefix in the upstream URL; HEAD; broken framing and
oversized heads."""

import os
import signal
import threading

import pytest

from conftest import assert_openai_error, chat_body, http
from gateway_util import error_end, fixture_chunk_datas, gw_stream, read_fixture
from gateway_util import procs  # noqa: F401 (a fixture)
from replay_upstream import Canned, Close, Raw, Sse

CHAT = "/v1/chat/completions"
CAPTURE = "vllm-0.9.2_qwen3-0.6b_chat-stream_no-reasoning-parser.sse"
# vLLM's (uvicorn's) head of a streaming answer.
VLLM_HEAD = (b"HTTP/1.1 200 OK\r\ndate: Thu, 03 Dec 2026 10:00:00 GMT\r\nserver: uvicorn\r\n"
             b"content-type: text/event-stream; charset=utf-8\r\n"
             b"transfer-encoding: chunked\r\n\r\n")


@pytest.fixture(autouse=True, params=["native", "curl"])
def upstream_http(request, procs):
    procs.gateway_args = ["--upstream-http", request.param]
    return request.param


def chunked(data, sizes=(7, 50, 1, 300), ext=b"", trailer=b""):
    """data in HTTP chunks of the given sizes in turn, then the last chunk."""
    out, i, k = [], 0, 0
    while i < len(data):
        n = sizes[k % len(sizes)]
        k += 1
        piece = data[i:i + n]
        i += n
        out.append(b"%x%s\r\n%s\r\n" % (len(piece), ext, piece))
    out.append(b"0\r\n" + trailer + b"\r\n")
    return b"".join(out)


def capture():
    return read_fixture(CAPTURE)


def assert_capture_streamed(port):
    r, datas = gw_stream(port, chat_body("hi"), CHAT)
    want = fixture_chunk_datas(capture())
    assert len(datas) == len(want), (datas, want)
    return datas


@pytest.mark.parametrize("interim", [b"HTTP/1.1 100 Continue\r\n\r\n",
                                     b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n"
                                     b"HTTP/1.1 100 Continue\r\n\r\n"],
                         ids=["100", "103_then_100"])
@pytest.mark.parametrize("split", [False, True], ids=["one_write", "byte_pieces"])
def test_interim_answers_are_skipped(procs, interim, split):
    whole = interim + VLLM_HEAD + chunked(capture())
    parts = [whole[i:i + 3] for i in range(0, len(whole), 3)] if split else [whole]
    up = procs.replay(lambda req: Raw(parts, delay=0.0002 if split else 0))
    gw = procs.gateway_to(up)
    assert_capture_streamed(gw.port)


def test_chunk_extensions_and_trailers(procs):
    body = chunked(capture(), ext=b";name=value", trailer=b"X-Trailer: yes\r\n")
    up = procs.replay(lambda req: Raw(VLLM_HEAD + body))
    gw = procs.gateway_to(up)
    for _ in range(2):  # and the connection is kept for the next request
        assert_capture_streamed(gw.port)
    assert up.connections == 1


def test_stream_delimited_by_close(procs):
    head = (b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
            b"connection: close\r\n\r\n")
    data = capture()
    parts = [head] + [data[i:i + 40] for i in range(0, len(data), 40)]
    up = procs.replay(lambda req: Raw(parts, delay=0.0005, close=True))
    gw = procs.gateway_to(up)
    for _ in range(2):
        assert_capture_streamed(gw.port)
    assert up.connections == 2  # nothing is kept of a connection the body ended


def test_http10_answer_without_length(procs):
    body = b'{"object":"chat.completion","choices":[]}'
    up = procs.replay(lambda req: Raw([b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n",
                                       body], delay=0.01, close=True))
    gw = procs.gateway_to(up)
    r = http(gw.port, "POST", CHAT, chat_body("hi", stream=False))
    assert r.status == 200 and r.body == body, r


def test_content_length_body_in_pieces(procs):
    body = b'{"object":"chat.completion","choices":[{"index":0}]}' * 50
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % (
        len(body))
    whole = head + body
    up = procs.replay(lambda req: Raw([whole[i:i + 100] for i in range(0, len(whole), 100)],
                                      delay=0.0002))
    gw = procs.gateway_to(up)
    for _ in range(3):
        r = http(gw.port, "POST", CHAT, chat_body("hi", stream=False))
        assert r.status == 200 and r.body == body, r
    assert up.connections == 1


def test_kept_alive_connection_closed_by_upstream_is_retried(procs, upstream_http):
    """libcurl's rule: the upstream answers on a connection, keeps it, and
    then reads the next POST and closes without a byte. libcurl sends the
    POST again on a new connection, unseen by the client: the upstream got
    it twice (a generation may run twice). sluice's own client does not
    (test_upstream_pool.py, the retry rule in upstream/h1.c)."""
    if upstream_http == "native":
        pytest.skip("sluice's own client answers 502 here: test_upstream_pool.py")
    seen = {"n": 0}

    def handler(req):
        seen["n"] += 1
        if seen["n"] == 2:
            return Close()
        return Sse(capture())

    up = procs.replay(handler)
    gw = procs.gateway_to(up)
    assert_capture_streamed(gw.port)
    assert_capture_streamed(gw.port)
    assert len(up.posts(CHAT)) == 3
    assert up.connections == 2


def test_upstream_closing_idle_connection_is_noticed(procs):
    """An upstream that closes its side after each answer (without saying
    so): the next request still gets an answer."""
    up = procs.replay(lambda req: Raw(VLLM_HEAD + chunked(capture()), close=True))
    gw = procs.gateway_to(up)
    for _ in range(3):
        assert_capture_streamed(gw.port)


def test_host_name_url(procs):
    """localhost may resolve to ::1 first, where nothing listens: the next
    address is tried."""
    up = procs.replay(lambda req: Sse(capture()))
    gw = procs.gateway("--upstream", f"http://localhost:{up.port}")
    assert_capture_streamed(gw.port)
    assert up.posts(CHAT)[-1].header("Host") == f"localhost:{up.port}"


def test_unresolvable_host_502(procs):
    gw = procs.gateway("--upstream", "http://no-such-host.invalid:8000")
    assert_openai_error(http(gw.port, "POST", CHAT, chat_body("hi")), 502)


def test_path_prefix(procs):
    up = procs.replay(lambda req: Sse(capture()) if req.path == "/vllm/v1/chat/completions"
                      else Canned(404, b"{}"))
    gw = procs.gateway("--upstream", f"http://127.0.0.1:{up.port}/vllm/")
    assert_capture_streamed(gw.port)
    r = http(gw.port, "GET", "/v1/models?x=1")
    assert r.status == 404
    assert up.requests[-1].target == "/vllm/v1/models?x=1"


def test_head_request_proxied(procs):
    up = procs.replay(lambda req: Raw(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                      b"Content-Length: 1234\r\n\r\n"))
    gw = procs.gateway_to(up)
    for _ in range(2):
        r = http(gw.port, "HEAD", "/v1/models")
        assert r.status == 200 and r.body == b"", r
    assert [q.method for q in up.requests] == ["HEAD", "HEAD"]
    assert up.connections == 1


def test_broken_chunk_framing_mid_stream_is_an_error_ending(procs):
    data = capture()
    cut = data.index(b"data: ", data.index(b"data: ", 1) + 1)
    body = chunked(data[:cut])[:-5] + b"zz\r\nnot a chunk\r\n"
    up = procs.replay(lambda req: Raw(VLLM_HEAD + body))
    gw = procs.gateway_to(up)
    r, datas = gw_stream(gw.port, chat_body("hi"), CHAT)
    chunks, err = error_end(datas)
    assert datas[:-1] == fixture_chunk_datas(data[:cut])


def test_oversized_response_head_502(procs):
    head = b"HTTP/1.1 200 OK\r\n" + b"X-Filler: " + b"a" * 100_000 + b"\r\n\r\n"
    up = procs.replay(lambda req: Raw(head, close=True))
    gw = procs.gateway_to(up)
    assert_openai_error(http(gw.port, "POST", CHAT, chat_body("hi")), 502)


def test_head_split_then_a_large_read(procs):
    """The head comes in two reads and the second carries far more body
    than a head may hold: the head is still read, the body whole."""
    body = b"x" * 300_000
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % (
        len(body))
    up = procs.replay(lambda req: Raw([head[:20], head[20:] + body], delay=0.05))
    gw = procs.gateway_to(up)
    r = http(gw.port, "POST", CHAT, chat_body("hi", stream=False))
    assert r.status == 200 and r.body == body, (r.status, len(r.body))


def test_answer_then_reset_is_passed_on(procs, upstream_http):
    """The upstream answers and resets the connection while sluice is not
    looking (stopped): the answer that arrived before the reset is passed
    on, and the request is not sent again."""
    if upstream_http == "curl":
        pytest.skip("libcurl 7.88 sometimes drops an answer that a reset follows "
                    "(502 'closed mid-answer'): seen here, not sluice's to fix")
    body = b'{"error":{"message":"bad","type":"BadRequestError","code":400}}'
    answer = (b"HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\n"
              b"Content-Length: %d\r\n\r\n" % len(body)) + body
    gw_box = {}

    def handler(req):
        pid = gw_box["gw"].pid
        os.kill(pid, signal.SIGSTOP)
        threading.Timer(0.3, os.kill, (pid, signal.SIGCONT)).start()
        return Raw(answer, reset=True)

    up = procs.replay(handler)
    gw = procs.gateway_to(up)
    gw_box["gw"] = gw
    for stream in (False, True):
        r = http(gw.port, "POST", CHAT, chat_body("hi", stream=stream))
        assert r.status == 400 and r.body == body, r
    assert len(up.posts(CHAT)) == 2
