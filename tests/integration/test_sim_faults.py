"""Fault injection (x_fault body member, X-Fault header, --fault flag) and the
abort counter."""

import json
import subprocess

import pytest

from conftest import (RawConn, assert_openai_error, chat_body, chunk_objs, completion_body,
                      content_text, http, is_role_chunk, loads_ordered, metric_value, metrics,
                      poll, request_bytes, sluice_bin, sse_events_partial, stream,
                      stream_chunks, token_deltas)


def no_finish(chunks):
    return all(c.get("finish_reason") is None for ch in chunks for c in ch.get("choices", []))


def reference_text(port, seed, **kw):
    return content_text(stream_chunks(port, chat_body("Tell me about lakes.", seed=seed, **kw)))


# ------------------------------------------------------------ error_before_first


@pytest.mark.parametrize("stream_flag", [True, False])
@pytest.mark.parametrize("status", [500, 503, 429])
def test_error_before_first(sim, stream_flag, status):
    body = chat_body("hi", stream=stream_flag,
                     x_fault={"kind": "error_before_first", "status": status})
    r = http(sim.port, "POST", "/v1/chat/completions", body)
    assert_openai_error(r, status)
    assert r.complete and not r.chunked


def test_error_before_first_completions(sim):
    body = completion_body(x_fault={"kind": "error_before_first", "status": 502})
    assert_openai_error(http(sim.port, "POST", "/v1/completions", body), 502)


def test_error_before_first_default_status_500(sim):
    body = chat_body("hi", x_fault={"kind": "error_before_first"})
    assert_openai_error(http(sim.port, "POST", "/v1/chat/completions", body), 500)


# ------------------------------------------------------------ drop_after


def assert_dropped_after(r, n):
    assert r.status == 200, r
    assert r.chunked
    assert not r.complete, "the response was ended; a drop must cut the connection"
    assert r.eof
    assert b"[DONE]" not in r.body
    assert r.body == b"" or r.body.endswith(b"\n\n"), "the last delta before the drop is cut"
    events = sse_events_partial(r.body)
    chunks = [loads_ordered(e) for e in events]
    assert len(token_deltas(chunks)) == n, chunks
    assert no_finish(chunks)
    return chunks


@pytest.mark.parametrize("n", [0, 1, 3, 10])
def test_drop_after(sim, n):
    body = chat_body("Tell me about lakes.", seed=101, x_fault={"kind": "drop_after", "n": n})
    with RawConn(sim.port) as c:
        c.send(request_bytes("POST", "/v1/chat/completions", body))
        r = c.read_response()
    chunks = assert_dropped_after(r, n)
    if n > 0:
        assert is_role_chunk(chunks[0])
        # the deltas that did arrive are the answer's first n tokens
        full = reference_text(sim.port, 101)
        assert full.startswith(content_text(chunks))


def test_drop_after_completions(sim):
    body = completion_body(seed=102, x_fault={"kind": "drop_after", "n": 4})
    with RawConn(sim.port) as c:
        c.send(request_bytes("POST", "/v1/completions", body))
        r = c.read_response()
    assert r.status == 200 and not r.complete and r.eof
    chunks = [loads_ordered(e) for e in sse_events_partial(r.body)]
    assert len(chunks) == 4
    assert no_finish(chunks)


def test_drop_after_via_x_fault_header(sim):
    body = chat_body("Tell me about lakes.", seed=103)
    hdr = {"X-Fault": json.dumps({"kind": "drop_after", "n": 2})}
    with RawConn(sim.port) as c:
        c.send(request_bytes("POST", "/v1/chat/completions", body, headers=hdr))
        r = c.read_response()
    assert_dropped_after(r, 2)


def test_x_fault_header_unknown_kind_400(sim):
    hdr = {"X-Fault": '{"kind": "explode"}'}
    r = http(sim.port, "POST", "/v1/chat/completions", chat_body("hi"), headers=hdr)
    assert_openai_error(r, 400)


# ------------------------------------------------------------ stall_after


def test_stall_after(sim):
    full = reference_text(sim.port, 104)
    body = chat_body("Tell me about lakes.", seed=104,
                     x_fault={"kind": "stall_after", "n": 3, "ms": 300})
    r, events = stream(sim.port, body)
    chunks = chunk_objs(events)
    # only order and content, not timing: the whole answer arrives, in order
    assert is_role_chunk(chunks[0])
    assert content_text(chunks) == full
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


# ------------------------------------------------------------ inband_error_after


@pytest.mark.parametrize("n,status", [(2, 500), (0, 503), (5, 400)])
def test_inband_error_after(sim, n, status):
    body = chat_body("Tell me about lakes.", seed=105,
                     x_fault={"kind": "inband_error_after", "n": n, "status": status})
    r, events = stream(sim.port, body)
    assert r.body.endswith(b"data: [DONE]\n\n")
    assert events[-1] == "[DONE]"
    raw = events[-2]
    err = loads_ordered(raw)
    # vLLM writes this event with Python's json.dumps: spaced, ASCII-escaped
    assert raw == json.dumps(err), f"not json.dumps's form: {raw!r}"
    assert raw.startswith('{"error": {"message": ')
    assert list(err.keys()) == ["error"]
    e = err["error"]
    assert list(e.keys()) == ["message", "type", "param", "code"]
    assert isinstance(e["message"], str) and e["message"]
    assert isinstance(e["type"], str) and e["type"]
    assert e["param"] is None
    assert e["code"] == status
    chunks = [loads_ordered(x) for x in events[:-2]]
    assert all("error" not in ch for ch in chunks)
    assert len(token_deltas(chunks)) == n
    assert no_finish(chunks)
    if n:
        assert is_role_chunk(chunks[0])
        assert reference_text(sim.port, 105).startswith(content_text(chunks))


def test_inband_error_default_status(sim):
    body = chat_body("x", seed=1, x_fault={"kind": "inband_error_after", "n": 1})
    r, events = stream(sim.port, body)
    assert loads_ordered(events[-2])["error"]["code"] == 500


# ------------------------------------------------------------ done_without_finish


@pytest.mark.parametrize("n", [1, 5])
def test_done_without_finish(sim, n):
    full = reference_text(sim.port, 106)
    body = chat_body("Tell me about lakes.", seed=106,
                     x_fault={"kind": "done_without_finish", "n": n})
    r, events = stream(sim.port, body)
    assert r.body.endswith(b"\n\ndata: [DONE]\n\n")
    chunks = chunk_objs(events)
    assert no_finish(chunks)
    assert is_role_chunk(chunks[0])
    assert len(token_deltas(chunks)) == n
    assert full.startswith(content_text(chunks))


# ------------------------------------------------------------ bad faults


@pytest.mark.parametrize("fault", [
    {"kind": "explode"},
    {"kind": "drop_after", "n": -1},
    {"kind": "drop_after", "n": "3"},
    {"n": 3},
    "drop_after",
    {"kind": "error_before_first", "status": 200},
])
def test_bad_x_fault_400(sim, fault):
    r = http(sim.port, "POST", "/v1/chat/completions", chat_body("hi", x_fault=fault))
    assert_openai_error(r, 400)


# ------------------------------------------------------------ --fault


def test_fault_flag_applies_to_every_request(sim_factory):
    s = sim_factory("--fault", '{"kind": "error_before_first", "status": 503}')
    for path, body in (("/v1/chat/completions", chat_body("a")),
                       ("/v1/chat/completions", chat_body("b", stream=False)),
                       ("/v1/completions", completion_body())):
        assert_openai_error(http(s.port, "POST", path, body), 503)
    # the other routes are not touched
    assert http(s.port, "GET", "/health").status == 200
    assert http(s.port, "GET", "/v1/models").status == 200


def test_fault_flag_drop(sim_factory):
    s = sim_factory("--fault", '{"kind":"drop_after","n":2}')
    for seed in (1, 2):
        with RawConn(s.port) as c:
            c.send(request_bytes("POST", "/v1/chat/completions", chat_body("hi", seed=seed)))
            r = c.read_response()
        assert_dropped_after(r, 2)


def test_bad_fault_flag_refused_at_start():
    port_args = ["--listen", "127.0.0.1:0"]
    p = subprocess.run([sluice_bin(), "sim", *port_args, "--fault", '{"kind":"explode"}'],
                       capture_output=True, timeout=30)
    assert p.returncode != 0
    assert b"fault" in p.stderr.lower()


# ------------------------------------------------------------ abort counter


def running(m):
    return metric_value(m, "vllm:num_requests_running") or 0


def aborts(m):
    return metric_value(m, "vllm:request_success_total", finished_reason="abort") or 0


def test_abort_counter_after_client_hangs_up(sim_factory):
    s = sim_factory("--ttft-ms", "0", "--itl-ms", "20", "--jitter-ms", "0", fast=False)
    m0 = metrics(s.port)
    assert running(m0) == 0
    body = chat_body("Write a long essay.", seed=107, max_tokens=5000, ignore_eos=True)
    c = RawConn(s.port)
    try:
        c.send(request_bytes("POST", "/v1/chat/completions", body))
        head = c.read_head()
        assert head.status == 200
        got = 0
        while got < 4:  # a few events
            assert c.read_until(b"\n\n") is not None
            got += 1
        assert running(metrics(s.port)) == 1
    finally:
        c.close()
    m = poll(lambda: (lambda m: m if aborts(m) == aborts(m0) + 1 and running(m) == 0 else None)(
        metrics(s.port)), what="abort counted and running back to 0")
    assert metric_value(m, "vllm:request_success_total", finished_reason="stop") == \
        metric_value(m0, "vllm:request_success_total", finished_reason="stop")
    # the server goes on
    assert http(s.port, "GET", "/health").status == 200
    chunks = stream_chunks(s.port, chat_body("hi", seed=1, max_tokens=3, ignore_eos=True))
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"
    assert aborts(metrics(s.port)) == aborts(m0) + 1


def test_normal_end_is_not_an_abort(sim_factory):
    """Closing the socket right after [DONE] (as the openai SDK does) is a
    normal end."""
    s = sim_factory()
    m0 = metrics(s.port)
    for seed in range(3):
        with RawConn(s.port) as c:
            c.send(request_bytes("POST", "/v1/chat/completions", chat_body("hi", seed=seed)))
            c.read_head()
            assert c.read_until(b"data: [DONE]\n\n") is not None
        # closed here, possibly before the chunked terminator was read
    m1 = poll(lambda: (lambda m: m if running(m) == 0 else None)(metrics(s.port)))
    assert aborts(m1) == aborts(m0)
    stop0 = metric_value(m0, "vllm:request_success_total", finished_reason="stop") or 0
    assert metric_value(m1, "vllm:request_success_total", finished_reason="stop") == stop0 + 3


def test_abort_while_waiting(sim_factory):
    """A queued request whose client leaves is counted as aborted and leaves
    the waiting gauge."""
    s = sim_factory("--ttft-ms", "0", "--itl-ms", "20", "--jitter-ms", "0", "--max-num-seqs",
                    "1", fast=False)
    m0 = metrics(s.port)
    long_body = chat_body("essay", seed=1, max_tokens=5000, ignore_eos=True)
    first = RawConn(s.port)
    second = RawConn(s.port)
    try:
        first.send(request_bytes("POST", "/v1/chat/completions", long_body))
        assert first.read_head().status == 200
        second.send(request_bytes("POST", "/v1/chat/completions", dict(long_body, seed=2)))
        poll(lambda: metric_value(metrics(s.port), "vllm:num_requests_waiting") == 1,
             what="the second request to wait")
        second.close()
        poll(lambda: (lambda m: aborts(m) == aborts(m0) + 1
                      and metric_value(m, "vllm:num_requests_waiting") == 0
                      and running(m) == 1)(metrics(s.port)),
             what="the waiting request to be aborted")
    finally:
        first.close()
        second.close()
    poll(lambda: (lambda m: aborts(m) == aborts(m0) + 2 and running(m) == 0)(metrics(s.port)),
         what="both aborted")


def test_abort_counter_non_streaming(sim_factory):
    """A non-streaming client that hangs up before its answer is an abort too
    (vLLM cancels a request whose client disconnected)."""
    s = sim_factory("--ttft-ms", "0", "--itl-ms", "20", "--jitter-ms", "0", fast=False)
    m0 = metrics(s.port)
    body = chat_body("essay", stream=False, seed=9, max_tokens=5000, ignore_eos=True)
    c = RawConn(s.port)
    try:
        c.send(request_bytes("POST", "/v1/chat/completions", body))
        poll(lambda: running(metrics(s.port)) == 1, what="the request to run")
    finally:
        c.close()
    poll(lambda: (lambda m: aborts(m) == aborts(m0) + 1 and running(m) == 0)(metrics(s.port)),
         what="abort counted and running back to 0")
