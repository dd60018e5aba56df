"""The gateway in front of a scripted upstream (replay_upstream.py): real vLLM
captures replayed byte for byte (whole and in 1-3 byte pieces), what the
OpenAI face drops, the request as the upstream sees it (headers, body bytes),
the statuses before the head (502, 504, pass-through), slow clients, and many
streams at once; each through both upstream clients (--upstream-http)."""

import json
import os
import socket
import subprocess

import pytest

from conftest import (FAST, RawConn, assert_openai_error, chat_body, free_port, http,
                      loads_ordered, poll, request_bytes, sluice_bin)
from gateway_util import (SSE_FIXTURES, abort_count, assert_stream_head, error_end,
                          finished_datas, fixture_chunk_datas, gw_stream, is_usage_chunk,
                          member_key, member_spans, member_value, parse_gw, read_fixture,
                          server_side_send_queue, server_side_state)
from gateway_util import procs  # noqa: F401 (a fixture)
from replay_upstream import Canned, Close, Garbage, Hang, Sse

CHAT = "/v1/chat/completions"
CAPTURE = "vllm-0.9.2_qwen3-0.6b_chat-stream_no-reasoning-parser.sse"


@pytest.fixture(autouse=True, params=["native", "curl"])
def upstream_http(request, procs):
    """Every test here runs through both clients of http:// upstreams:
    sluice's own HTTP/1.1 client (the default) and libcurl (what https://
    upstreams use)."""
    procs.gateway_args = ["--upstream-http", request.param]
    return request.param


def stream_or_canned(sse_bytes, nonstream_body=b'{"object":"chat.completion"}', **sse_kw):
    """A handler: POSTs with "stream": true get the SSE, others the canned body."""
    def handler(req):
        if req.method != "POST":
            return Canned(200, b"") if req.path == "/health" else Canned(404, b"{}")
        try:
            streaming = json.loads(req.body).get("stream") is True
        except ValueError:
            streaming = False
        return Sse(sse_bytes, **sse_kw) if streaming else Canned(200, nonstream_body)
    return handler


def ends_cleanly(raw):
    """Whether a fixture ends with a finish_reason and [DONE]."""
    datas = fixture_chunk_datas(raw)
    last = loads_ordered(datas[-1])
    return (b"data: [DONE]" in raw
            and any(c.get("finish_reason") for c in last.get("choices", [])))


# ------------------------------------------------------------ replaying real captures


@pytest.mark.parametrize("pieces", [None, (1, 3)], ids=["whole", "1-3_byte_pieces"])
@pytest.mark.parametrize("name", SSE_FIXTURES)
def test_replayed_capture_keeps_every_event(procs, name, pieces):
    raw = read_fixture(name)
    up = procs.replay(stream_or_canned(raw, pieces=pieces,
                                       delay=0.0005 if pieces else 0.0))
    gw = procs.gateway_to(up)
    r, datas = gw_stream(gw.port, chat_body("hi"), CHAT)
    want = fixture_chunk_datas(raw)
    if ends_cleanly(raw):
        assert datas == want
    else:
        # an excerpt that stops without finish_reason / [DONE]: the same
        # events, then sluice's error event (never a clean-looking end)
        chunks, err = error_end(datas)
        assert datas[:-1] == want
    _, comments = parse_gw(r.body)
    assert not any("elided" in c for c in comments), "the capture's comment reached the client"
    assert b"elided" not in r.body
    assert len(up.posts(CHAT)) == 1


def test_capture_comment_does_not_reach_client(procs):
    raw = read_fixture(CAPTURE)
    assert b"\n: ... (events elided" in raw
    up = procs.replay(stream_or_canned(raw))
    gw = procs.gateway_to(up)
    r, datas = gw_stream(gw.port, chat_body("hi"), CHAT)
    assert b"elided" not in r.body
    assert b"\n:" not in r.body and not r.body.startswith(b":")
    assert len(datas) == 6 and loads_ordered(datas[-1])["choices"][0]["finish_reason"] == "stop"


def test_replay_with_include_usage_has_no_invented_usage(procs):
    """The capture has no usage chunk: sluice shows the events it got and
    invents nothing."""
    raw = read_fixture(CAPTURE)
    up = procs.replay(stream_or_canned(raw))
    gw = procs.gateway_to(up)
    body = chat_body("hi", stream_options={"include_usage": True})
    _, datas = gw_stream(gw.port, body, CHAT)
    assert datas == fixture_chunk_datas(raw)


def test_docs_chunk_example_invalid_json_is_an_error_ending(procs):
    """vLLM's docs example chunk (pretty-printed, trailing comma: not JSON),
    sent as multi-line data: an error ending, no crash."""
    doc = read_fixture("vllm-docs_reasoning-outputs_stream-chunk_example.txt")
    sse = b"".join(b"data: " + line + b"\n" for line in doc.rstrip(b"\n").split(b"\n"))
    sse += b"\ndata: [DONE]\n\n"
    up = procs.replay(stream_or_canned(sse))
    gw = procs.gateway_to(up)
    r = http(gw.port, "POST", CHAT, chat_body("hi"))
    assert r.complete, r
    if r.status == 200:
        assert_stream_head(r)
        error_end(finished_datas(r.body))
    else:
        assert_openai_error(r, r.status)
    assert http(gw.port, "GET", "/health").status == 200


# ------------------------------------------------------------ what the OpenAI face drops


def mixed_stream(crlf_event=True, multiline=False):
    """The capture's chunks with everything a clean OpenAI stream must not
    carry mixed in, and the WHATWG variations a decoder must accept."""
    chunks = fixture_chunk_datas(read_fixture(CAPTURE))
    assert len(chunks) == 6
    c = [x.encode() for x in chunks]
    split_at = c[3].index(b',"choices"') + 1  # JSON may break a line after a comma
    parts = [
        b": upstream-keepalive-marker\n\n",
        b"event: ping\n\n",
        b"data: " + c[0] + b"\n\n",
        b"event: progress\ndata: {\"progress\": 0.25}\n\n",
        b": upstream-keepalive-marker\n\n",
        b"event: ping\n\n",
        b"retry: 3000\n\n",
        b"id: 55\ndata: " + c[1] + b"\n\n",
        b"data: {\"object\":\"vllm.status\",\"running\":1}\n\n",
        (b"data: " + c[2] + b"\r\n\r\n") if crlf_event else (b"data: " + c[2] + b"\n\n"),
        (b"data:" + c[3][:split_at] + b"\ndata:" + c[3][split_at:] + b"\n\n") if multiline
        else (b"data:" + c[3] + b"\n\n"),
        b"event: ping\ndata: {}\n\n",
        b"data: " + c[4] + b"\n\n",
        b": upstream-keepalive-marker\n\n",
        b"data: " + c[5] + b"\n\n",
        b"data: [DONE]\n\n",
    ]
    want = [chunks[0], chunks[1], chunks[2],
            (chunks[3][:split_at] + "\n" + chunks[3][split_at:]) if multiline else chunks[3],
            chunks[4], chunks[5]]
    return b"".join(parts), want


@pytest.mark.parametrize("pieces", [None, (1, 3)], ids=["whole", "1-3_byte_pieces"])
def test_comments_pings_named_and_non_chunk_events_are_dropped(procs, pieces):
    sse, want = mixed_stream()
    up = procs.replay(stream_or_canned(sse, pieces=pieces, delay=0.0005 if pieces else 0.0))
    gw = procs.gateway_to(up)
    r, datas = gw_stream(gw.port, chat_body("hi"), CHAT)
    for marker in (b"upstream-keepalive-marker", b"ping", b"progress", b"retry:",
                   b"id: 55", b"vllm.status", b"event:", b"{}\n"):
        assert marker not in r.body, f"{marker!r} reached the client"
    # the chunks, each one event, in order, byte for byte
    assert datas == want


def test_multi_line_data_is_sent_as_valid_sse(procs):
    """An upstream chunk in two data lines must reach the client as one event
    whose value is that chunk (a client joins data lines with LF)."""
    sse, want = mixed_stream(multiline=True)
    up = procs.replay(stream_or_canned(sse))
    gw = procs.gateway_to(up)
    r, datas = gw_stream(gw.port, chat_body("hi"), CHAT)
    assert loads_ordered(datas[3]) == loads_ordered(want[3])


@pytest.mark.parametrize("sse", [b"", b"data: [DONE]\n\n", b": only a comment\n\n"],
                         ids=["empty", "done_only", "comment_only"])
def test_upstream_stream_without_any_chunk_is_an_error_ending(procs, sse):
    up = procs.replay(stream_or_canned(sse))
    gw = procs.gateway_to(up)
    r, datas = gw_stream(gw.port, chat_body("hi"), CHAT)
    chunks, err = error_end(datas)
    assert chunks == []


def test_upstream_closing_mid_stream_without_terminator_is_an_error_ending(procs):
    raw = read_fixture(CAPTURE)
    cut = raw[:raw.index(b"data: ", 600)]  # a few whole events, then the socket closes
    up = procs.replay(stream_or_canned(cut, end=False))
    gw = procs.gateway_to(up)
    r, datas = gw_stream(gw.port, chat_body("hi"), CHAT)
    chunks, err = error_end(datas)
    assert datas[:-1] == fixture_chunk_datas(cut)


# ------------------------------------------------------------ non-streaming and errors, byte for byte


@pytest.mark.parametrize("name", [
    "vllm-0.9.2_chat-nonstream_no-reasoning-parser.json",
    "vllm-0.9.2_chat-nonstream_tool-call.json",
    "vllm-0.9.2_chat-nonstream_reasoning-parser-qwen3_enable-thinking.json",
])
def test_nonstream_body_byte_for_byte(procs, name):
    body = read_fixture(name)
    up = procs.replay(stream_or_canned(b"", nonstream_body=body))
    gw = procs.gateway_to(up)
    r = http(gw.port, "POST", CHAT, chat_body("hi", stream=False))
    assert r.status == 200, r
    assert r.body == body
    assert r.header("Content-Type") == "application/json"
    assert r.header("X-Stream-Id") is not None


@pytest.mark.parametrize("stream", [True, False])
def test_upstream_400_old_shape_passed_through(procs, stream):
    body = read_fixture("vllm-0.9.2_error-400_tool-choice-auto-not-enabled.json")
    up = procs.replay(lambda req: Canned(400, body))
    gw = procs.gateway_to(up)
    r = http(gw.port, "POST", CHAT, chat_body("hi", stream=stream, tool_choice="auto"))
    assert r.status == 400, r
    assert r.body == body
    assert r.header("Content-Type") == "application/json"


@pytest.mark.parametrize("status", [401, 429, 500, 503])
def test_upstream_error_status_and_body_passed_through(procs, status):
    body = b'{"error":{"message":"nope \\u00e9","type":"X","param":null,"code":%d}}' % status
    up = procs.replay(lambda req: Canned(status, body))
    gw = procs.gateway_to(up)
    for stream in (True, False):
        r = http(gw.port, "POST", CHAT, chat_body("hi", stream=stream))
        assert r.status == status, r
        assert r.body == body


# ------------------------------------------------------------ 502, 504


def test_upstream_not_listening_502(procs):
    port = free_port()  # nothing listens there
    gw = procs.gateway("--upstream", f"http://127.0.0.1:{port}")
    for stream in (True, False):
        r = http(gw.port, "POST", CHAT, chat_body("hi", stream=stream))
        assert_openai_error(r, 502)
    r = http(gw.port, "POST", "/v1/completions", {"model": "m", "prompt": "x", "stream": True})
    assert_openai_error(r, 502)
    assert_openai_error(http(gw.port, "GET", "/v1/models"), 502)


def test_upstream_connect_timeout_504(procs):
    """An upstream whose accept queue is full: SYNs are dropped, connecting
    hangs; --connect-timeout-ms gives a 504."""
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(0)
    uport = ls.getsockname()[1]
    fill = []
    try:
        for _ in range(4):
            s = socket.socket()
            s.setblocking(False)
            try:
                s.connect(("127.0.0.1", uport))
            except BlockingIOError:
                pass
            fill.append(s)
        probe = socket.socket()
        probe.settimeout(1.0)
        try:
            probe.connect(("127.0.0.1", uport))
            pytest.skip("this kernel completes connections past a full accept queue")
        except socket.timeout:
            pass
        finally:
            probe.close()
        gw = procs.gateway("--upstream", f"http://127.0.0.1:{uport}",
                           "--connect-timeout-ms", "300", "--first-byte-timeout-ms", "600000")
        for stream in (True, False):
            assert_openai_error(http(gw.port, "POST", CHAT, chat_body("hi", stream=stream)), 504)
    finally:
        for s in fill:
            s.close()
        ls.close()


@pytest.mark.parametrize("close", [True, False], ids=["then_close", "then_silence"])
def test_garbage_upstream_502(procs, close):
    up = procs.replay(lambda req: Garbage(close=close))
    gw = procs.gateway_to(up)
    for stream in (True, False):
        r = http(gw.port, "POST", CHAT, chat_body("hi", stream=stream))
        assert_openai_error(r, 502)
    assert_openai_error(http(gw.port, "GET", "/v1/models"), 502)


def test_upstream_closing_without_answer_502(procs):
    up = procs.replay(lambda req: Close())
    gw = procs.gateway_to(up)
    assert_openai_error(http(gw.port, "POST", CHAT, chat_body("hi")), 502)


def test_upstream_never_answering_504(procs):
    up = procs.replay(lambda req: Hang())
    gw = procs.gateway_to(up, "--first-byte-timeout-ms", "300")
    for stream in (True, False):
        r = http(gw.port, "POST", CHAT, chat_body("hi", stream=stream))
        assert_openai_error(r, 504)
    assert_openai_error(http(gw.port, "GET", "/v1/models"), 504)


def test_upstream_stalling_after_head_is_cut(procs):
    """Head and two chunks, then silence: --stall-timeout-ms cuts it with an
    error event."""
    raw = read_fixture(CAPTURE)
    first_two = raw[:raw.index(b"data: ", raw.index(b"data: ", 1) + 1)]

    class HeadThenSilence(Sse):
        def send(self, sock, server):
            Sse(first_two, end=False).send(sock, server)
            server.stopping.wait()
            return False

    up = procs.replay(lambda req: HeadThenSilence(b""))
    gw = procs.gateway_to(up, "--stall-timeout-ms", "400")
    r, datas = gw_stream(gw.port, chat_body("hi"), CHAT)
    chunks, err = error_end(datas)
    assert datas[:-1] == fixture_chunk_datas(first_two)


# ------------------------------------------------------------ the request the upstream sees


def raw_request(port, method, path, body, header_lines):
    """Sends exact header lines (duplicates allowed); returns the Response."""
    if isinstance(body, str):
        body = body.encode()
    head = f"{method} {path} HTTP/1.1\r\nHost: sluice.example:8080\r\n"
    head += "".join(f"{line}\r\n" for line in header_lines)
    if body is not None:
        head += f"Content-Length: {len(body)}\r\n"
    with RawConn(port) as c:
        c.send(head.encode() + b"\r\n" + (body or b""))
        return c.read_response()


@pytest.fixture
def recorder(procs):
    raw = read_fixture(CAPTURE)
    up = procs.replay(stream_or_canned(raw))
    return up


@pytest.mark.parametrize("stream", [True, False])
def test_end_to_end_headers_forwarded(procs, recorder, stream):
    gw = procs.gateway_to(recorder)
    lines = [
        "Content-Type: application/json",
        "Authorization: Bearer client-token-123",
        "X-Request-Id: req-7f3a-9c2e",
        "User-Agent: my-sdk/1.2.3",
        "Accept: text/event-stream",
        "OpenAI-Organization: org-xyz",
        "X-Custom: a, b;q=1",
        "X-Multi: one",
        "X-Multi: two",
    ]
    r = raw_request(gw.port, "POST", CHAT, json.dumps(chat_body("hi", stream=stream)), lines)
    assert r.status == 200, r
    req = recorder.posts(CHAT)[-1]
    assert req.header_all("Authorization") == ["Bearer client-token-123"]
    assert req.header_all("X-Request-Id") == ["req-7f3a-9c2e"]
    assert req.header_all("User-Agent") == ["my-sdk/1.2.3"]
    assert req.header_all("Accept") == ["text/event-stream"]
    assert req.header_all("OpenAI-Organization") == ["org-xyz"]
    assert req.header_all("X-Custom") == ["a, b;q=1"]
    assert req.header_all("X-Multi") == ["one", "two"]
    assert req.header_all("Content-Type") == ["application/json"]
    # Host and Content-Length rewritten for the upstream
    assert req.header_all("Host") == [f"127.0.0.1:{recorder.port}"]
    assert req.header_all("Content-Length") == [str(len(req.body))]


def test_hop_by_hop_and_sluice_headers_not_forwarded(procs, recorder):
    gw = procs.gateway_to(recorder)
    lines = [
        "Content-Type: application/json",
        "Connection: keep-alive",
        "Keep-Alive: timeout=5",
        "TE: trailers",
        "Proxy-Authorization: Basic cHJveHk6c2VjcmV0",
        "X-Sluice-Grace: 30",
        "X-Sluice-Other: 1",
        "X-Request-Id: rid-1",
    ]
    r = raw_request(gw.port, "POST", CHAT, json.dumps(chat_body("hi")), lines)
    assert r.status == 200, r
    req = recorder.posts(CHAT)[-1]
    names = {k.lower() for k, _ in req.headers}
    for h in ("keep-alive", "te", "proxy-authorization", "x-sluice-grace", "x-sluice-other"):
        assert h not in names, f"{h} forwarded: {req.headers}"
    assert req.header_all("X-Request-Id") == ["rid-1"]


def test_headers_named_in_connection_not_forwarded(procs, recorder):
    """RFC 9110 7.6.1: a proxy removes the fields the Connection header names."""
    gw = procs.gateway_to(recorder)
    lines = ["Content-Type: application/json", "Connection: keep-alive, X-Hop-Secret",
             "X-Hop-Secret: do-not-forward"]
    r = raw_request(gw.port, "POST", CHAT, json.dumps(chat_body("hi")), lines)
    assert r.status == 200, r
    req = recorder.posts(CHAT)[-1]
    assert req.header("X-Hop-Secret") is None, req.headers


def test_upstream_key_env_replaces_client_authorization(procs, recorder):
    key = "sk-upstream-9b1c7e2f"
    gw = procs.gateway_to(recorder, "--upstream-key-env", "SL_TEST_UPSTREAM_KEY",
                          env={"SL_TEST_UPSTREAM_KEY": key})
    for stream in (True, False):
        r = http(gw.port, "POST", CHAT, chat_body("hi", stream=stream),
                 headers={"Authorization": "Bearer client-token-456"})
        assert r.status == 200, r
        req = recorder.posts(CHAT)[-1]
        assert req.header_all("Authorization") == [f"Bearer {key}"]
        assert b"client-token-456" not in b"".join(
            (k + v).encode("latin-1") for k, v in req.headers)
        assert key.encode() not in r.body
        assert all(key not in v for _, v in r.headers)
    # proxied paths too
    r = http(gw.port, "GET", "/v1/models", headers={"Authorization": "Bearer client-token-456"})
    req = recorder.requests[-1]
    assert req.path == "/v1/models"
    assert req.header_all("Authorization") == [f"Bearer {key}"]
    # a request without Authorization gets the key as well
    http(gw.port, "POST", CHAT, chat_body("hi", stream=False))
    assert recorder.posts(CHAT)[-1].header_all("Authorization") == [f"Bearer {key}"]
    # never in sluice's logs
    assert key not in gw.stderr_text()


def test_upstream_key_env_unset_refuses_to_start():
    port = free_port()
    env = dict(os.environ)
    env.pop("SL_TEST_NO_SUCH_KEY", None)
    p = subprocess.run([sluice_bin(), "--listen", f"127.0.0.1:{port}", "--upstream",
                        "http://127.0.0.1:9", "--upstream-key-env", "SL_TEST_NO_SUCH_KEY"],
                       env=env, capture_output=True, timeout=30)
    assert p.returncode != 0
    assert b"SL_TEST_NO_SUCH_KEY" in p.stderr


def start_error(*args):
    """Runs the gateway with args, which must refuse to start: its stderr."""
    port = free_port()
    p = subprocess.run([sluice_bin(), "--listen", f"127.0.0.1:{port}", *args],
                       capture_output=True, timeout=30)
    assert p.returncode != 0, p
    assert b"serving" not in p.stderr, p.stderr  # refused before listening
    return p.stderr.decode()


def test_several_upstreams_refuse_to_start(procs, recorder):
    """Issue 10: a second --upstream was taken and ignored; until the pool
    (issue 13) it is a start-up error. One --upstream still works."""
    err = start_error("--upstream", "http://127.0.0.1:9", "--upstream", "http://127.0.0.1:10")
    assert err == ("sluice: several --upstream given (2); one upstream is supported until "
                   "the pool lands (issue 13)\n"), err
    gw = procs.gateway_to(recorder)
    r = http(gw.port, "POST", CHAT, chat_body("hi", stream=False))
    assert r.status == 200 and recorder.posts(CHAT), r


def test_bad_upstream_http_refuses_to_start_without_upstream():
    """--upstream-http with a value that is neither native nor curl was
    ignored when no --upstream was given (the simulator serves)."""
    err = start_error("--upstream-http", "carrier-pigeon")
    assert '--upstream-http: "carrier-pigeon" is neither native nor curl' in err, err


# ------------------------------------------------------------ the body the upstream sees

ODD_BODY = (b'{\n  "model" :\t"Qwen/Qwen3-0.6B",\r\n  "messages": [{"role": "user", '
            b'"content": "caf\\u00e9 \\ud83d\\ude00 \\"q\\" \\/ \xc3\xa9\\n\\u2028"}],'
            b'  "temperature": 0.7,\t"top_p": 0.95000000000000001,'
            b' "seed": 12345678901234567890, "logit_bias": {"1000": -1.5e-10, "7": 1E+2},'
            b' "max_tokens": 5,  "user": "u\\u0000x", "n": 1.0,'
            b' "stream": %s}')


def test_nonstream_body_reaches_upstream_byte_for_byte(procs, recorder):
    gw = procs.gateway_to(recorder)
    body = ODD_BODY % b"false"
    r = raw_request(gw.port, "POST", CHAT, body, ["Content-Type: application/json"])
    assert r.status == 200, r
    assert recorder.posts(CHAT)[-1].body == body


def test_proxied_post_body_byte_for_byte(procs):
    body = b'{"model": "m", "input": "x", "big": 12345678901234567890, "f": 0.7 }'
    up = procs.replay(lambda req: Canned(200, b'{"tokens":[1, 2]}'))
    gw = procs.gateway_to(up)
    r = raw_request(gw.port, "POST", "/tokenize?x=1%202", body, ["Content-Type: application/json"])
    assert r.status == 200 and r.body == b'{"tokens":[1, 2]}', r
    req = up.requests[-1]
    assert req.target == "/tokenize?x=1%202"
    assert req.body == body


@pytest.mark.parametrize("stream", [False, True])
def test_large_body_reaches_upstream(procs, recorder, stream):
    gw = procs.gateway_to(recorder)
    body = chat_body("caf\u00e9 " * 40000, stream=stream, temperature=0.7)
    raw = json.dumps(body).encode()
    r = raw_request(gw.port, "POST", CHAT, raw, ["Content-Type: application/json"])
    assert r.status == 200, r
    got = recorder.posts(CHAT)[-1].body
    if stream:
        assert_spliced(raw, got)
    else:
        assert got == raw


@pytest.mark.parametrize("body", [b'{"model": "m", "messages": [', b'[1, 2]', b'',
                                  b'{"model": "m"} trailing'],
                         ids=["truncated", "array", "empty", "trailing"])
def test_invalid_json_body_400(procs, recorder, body):
    gw = procs.gateway_to(recorder)
    r = raw_request(gw.port, "POST", CHAT, body, ["Content-Type: application/json"])
    assert_openai_error(r, 400)
    assert http(gw.port, "GET", "/health").status == 200


def assert_spliced(client_body, upstream_body):
    """upstream_body is client_body with only its stream_options member
    changed, or (when the client sent none) with one member inserted: every
    byte outside that member is unchanged and in place. Returns the client's
    and the upstream's stream_options (parsed)."""
    c, u = client_body, upstream_body
    p = 0
    while p < min(len(c), len(u)) and c[p] == u[p]:
        p += 1
    s = 0
    while s < min(len(c), len(u)) - p and c[len(c) - 1 - s] == u[len(u) - 1 - s]:
        s += 1
    changed = (p, len(c) - s)  # the client's bytes that differ upstream
    spans = [(member_key(seg), a, b) for seg, a, b in member_spans(c)]
    c_so = [(a, b) for k, a, b in spans if k == "stream_options"]
    if c_so:
        a, b = c_so[0]
        assert a <= changed[0] and changed[1] <= b, (
            f"client bytes {changed} changed outside its stream_options member {c_so[0]}:\n"
            f"client:   {c!r}\nupstream: {u!r}")
    else:
        assert changed[0] == changed[1], (
            f"client bytes {changed} changed (only an insertion was expected):\n"
            f"client:   {c!r}\nupstream: {u!r}")
    loads_ordered(u.decode())  # valid JSON, no duplicate keys
    u_so = [seg for seg, _, _ in member_spans(u) if member_key(seg) == "stream_options"]
    assert len(u_so) == 1, f"upstream body has {len(u_so)} stream_options members"
    so = json.loads(member_value(u_so[0]))
    assert so.get("include_usage") is True, so
    client_so = json.loads(member_value(c[c_so[0][0]:c_so[0][1]])) if c_so else None
    return client_so, so


def test_stream_body_reaches_upstream_with_only_stream_options_spliced(procs, recorder):
    gw = procs.gateway_to(recorder)
    body = ODD_BODY % b"true"
    r = raw_request(gw.port, "POST", CHAT, body, ["Content-Type: application/json"])
    assert r.status == 200, r
    client_so, so = assert_spliced(body, recorder.posts(CHAT)[-1].body)
    assert client_so is None
    # the usage sluice asked for is not shown to this client (it did not ask)
    datas = finished_datas(r.body)
    assert not any(is_usage_chunk(loads_ordered(d)) for d in datas)


def stream_options_body(where, so):
    members = [b'"model": "Qwen/Qwen3-0.6B"', b' "stream": true',
               b' "messages": [{"role": "user", "content": "hi"}]', b' "temperature": 0.7']
    pos = {"first": 0, "middle": 2, "last": len(members)}[where]
    members.insert(pos, b" " + so)
    return b"{" + b",".join(members) + b"}"


def upstream_stream_options_bytes(req):
    return member_value([s for s, _, _ in member_spans(req.body)
                         if member_key(s) == "stream_options"][0])


@pytest.mark.parametrize("where", ["first", "middle", "last"])
def test_client_stream_options_members_survive(procs, recorder, where):
    gw = procs.gateway_to(recorder)
    body = stream_options_body(where, b'"stream_options" : {"continuous_usage_stats": false, '
                                      b'"x_extra": [1, "a"], "include_usage": false}')
    r = raw_request(gw.port, "POST", CHAT, body, ["Content-Type: application/json"])
    assert r.status == 200, r
    client_so, up_so = assert_spliced(body, recorder.posts(CHAT)[-1].body)
    assert up_so == {"continuous_usage_stats": False, "x_extra": [1, "a"], "include_usage": True}
    assert list(up_so) == ["continuous_usage_stats", "x_extra", "include_usage"]


def test_client_stream_options_numbers_keep_their_bytes(procs, recorder):
    """No float rewriting by a JSON round trip, inside stream_options too."""
    gw = procs.gateway_to(recorder)
    body = stream_options_body("middle", b'"stream_options": {"x_extra": 0.7}')
    r = raw_request(gw.port, "POST", CHAT, body, ["Content-Type: application/json"])
    assert r.status == 200, r
    so = upstream_stream_options_bytes(recorder.posts(CHAT)[-1])
    assert b"0.7" in so and b"0.69999" not in so, so


def test_stream_body_whitespace_between_members_kept(procs, recorder):
    """'copies every other byte as is': the whitespace around the commas
    between the client's members is part of those bytes."""
    gw = procs.gateway_to(recorder)
    body = (b'{ "model" : "Qwen/Qwen3-0.6B" ,\n "stream" : true ,\n'
            b' "messages" : [ {"role": "user", "content": "hi"} ] ,\n "temperature" : 0.7 }')
    r = raw_request(gw.port, "POST", CHAT, body, ["Content-Type: application/json"])
    assert r.status == 200, r
    assert_spliced(body, recorder.posts(CHAT)[-1].body)


def test_upstream_connection_reused(procs, recorder):
    gw = procs.gateway_to(recorder)
    for i in range(6):
        if i % 2:
            gw_stream(gw.port, chat_body("hi"), CHAT)
        else:
            assert http(gw.port, "POST", CHAT, chat_body("hi", stream=False)).status == 200
    assert len(recorder.posts(CHAT)) == 6
    assert recorder.connections == 1, f"{recorder.connections} upstream connections for 6 requests"


# ------------------------------------------------------------ proxied paths


def test_other_paths_proxied_unchanged(procs):
    models = read_fixture("vllm-0.9.2_v1-models.json")

    def handler(req):
        if req.path == "/v1/models":
            return Canned(200, models, headers=[("X-Upstream", "yes")])
        if req.path == "/health":
            return Canned(200, b"")
        if req.path == "/version":
            return Canned(200, b'{"version":"0.9.2"}')
        return Canned(404, b'{"detail":"Not Found"}')

    up = procs.replay(handler)
    gw = procs.gateway_to(up)
    r = http(gw.port, "GET", "/v1/models")
    assert r.status == 200 and r.body == models, r
    assert r.header("X-Upstream") == "yes"
    assert r.header("Content-Type") == "application/json"
    r = http(gw.port, "GET", "/health")
    assert r.status == 200 and r.body == b""
    r = http(gw.port, "GET", "/version", headers={"X-Request-Id": "v-1"})
    assert r.status == 200 and r.body == b'{"version":"0.9.2"}'
    assert up.requests[-1].header("X-Request-Id") == "v-1"
    r = http(gw.port, "GET", "/no/such/path?q=1")
    assert r.status == 404 and r.body == b'{"detail":"Not Found"}'
    assert up.requests[-1].target == "/no/such/path?q=1"


# ------------------------------------------------------------ slow clients


LONG = 3000


def long_body(seed, n=LONG, usage=True):
    kw = {"stream_options": {"include_usage": True}} if usage else {}
    return chat_body("Write a very long story.", seed=seed, max_tokens=n, ignore_eos=True, **kw)


def test_client_that_stops_reading_does_not_slow_another(procs):
    """One client reads nothing of a huge answer (45000 tokens at once, ~10 MB,
    then the upstream stalls: it stays running); once the kernel's buffers
    for it are full and sluice holds bytes for it, another client's long
    stream still completes, whole, and sluice stays healthy."""
    gw = procs.gateway(*FAST, "--itl-ms", "0", "--max-model-len", "60000",
                       "--client-buffer-bytes", "16384")
    before = abort_count(gw.port)
    body = chat_body("Write a very long story.", seed=61, max_tokens=50000, ignore_eos=True,
                     x_fault={"kind": "stall_after", "n": 45000, "ms": 600000})
    with RawConn(gw.port, rcvbuf=4096) as stalled:
        stalled.send(request_bytes("POST", CHAT, body))
        # ... and from now on this client reads nothing
        poll(lambda: server_side_send_queue(gw.port, stalled.sock) > 1_000_000, limit=60,
             what="the stalled client's kernel buffers to fill")
        for seed in (62, 63):
            r, datas = gw_stream(gw.port, long_body(seed), CHAT, timeout=120)
            # all the tokens, the finish, the usage; ids gapless (checked by gw_stream)
            assert len(datas) == 1 + LONG + 1
            assert loads_ordered(datas[-2])["choices"][0]["finish_reason"] == "length"
            assert loads_ordered(datas[-1])["usage"]["completion_tokens"] == LONG
            assert http(gw.port, "GET", "/health").status == 200
        assert server_side_state(gw.port, stalled.sock) == "01", "the stalled client was dropped"
        assert abort_count(gw.port) == before
    # the stalled client leaves: its upstream request (still running) is cancelled
    poll(lambda: abort_count(gw.port) >= before + 1, what="the stalled client's abort")
    assert http(gw.port, "GET", "/health").status == 200


def test_stalled_client_is_closed_after_send_timeout(procs):
    """A client that reads nothing is closed after --send-timeout-ms without
    progress, and on the OpenAI face that cancels its upstream request. The
    answer (45000 tokens at once, ~10 MB, then a long stall) is far larger
    than what the kernel buffers, so sluice itself ends up holding bytes."""
    gw = procs.gateway(*FAST, "--itl-ms", "0", "--max-model-len", "60000",
                       "--client-buffer-bytes", "16384", "--send-timeout-ms", "500")
    before = abort_count(gw.port)
    body = chat_body("Write a very long story.", seed=64, max_tokens=50000, ignore_eos=True,
                     x_fault={"kind": "stall_after", "n": 45000, "ms": 600000})
    with RawConn(gw.port, rcvbuf=4096) as stalled:
        stalled.send(request_bytes("POST", CHAT, body))
        poll(lambda: server_side_state(gw.port, stalled.sock) is not None, what="accepted")
        # read nothing; watch the gateway's end of the connection
        poll(lambda: server_side_state(gw.port, stalled.sock) != "01", limit=60,
             what="the gateway to close the client that reads nothing")
        poll(lambda: abort_count(gw.port) >= before + 1,
             what="the closed client's upstream request to be cancelled")
        r = stalled.read_response()
        assert r is not None and r.status == 200
        assert not r.complete and b"[DONE]" not in r.body, "a cut stream must not end cleanly"
    assert http(gw.port, "GET", "/health").status == 200


# ------------------------------------------------------------ many streams at once


@pytest.mark.parametrize("mode", ["inproc", "upstream"])
def test_200_concurrent_streams(procs, mode):
    if mode == "inproc":
        gw = procs.gateway(*FAST, "--itl-ms", "2")
    else:
        sim = procs.sim("--itl-ms", "2")
        gw = procs.gateway_to(sim)
    conns = []
    try:
        for i in range(200):
            c = RawConn(gw.port, timeout=120)
            kw = {"stream_options": {"include_usage": True}} if i % 2 else {}
            c.send(request_bytes("POST", CHAT, chat_body("hi", seed=1000 + i, max_tokens=32,
                                                         **kw)))
            conns.append(c)
        sids = set()
        for i, c in enumerate(conns):
            r = c.read_response()
            assert r is not None
            sids.add(assert_stream_head(r))
            assert r.complete, f"stream {i} cut: {r.body[-200:]!r}"
            datas = finished_datas(r.body)
            assert len(datas) == 1 + 32 + (i % 2), f"stream {i}: {len(datas)} events"
            assert loads_ordered(datas[32 if i % 2 else -1])["choices"][0]["finish_reason"] \
                == "length"
        assert len(sids) == 200
    finally:
        for c in conns:
            c.close()
    assert http(gw.port, "GET", "/health").status == 200
