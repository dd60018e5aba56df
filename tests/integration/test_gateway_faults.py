"""Every simulator fault through the gateway (separate upstream and in-process):
before the head, the upstream's own status and body; after the head, one
OpenAI error event, then `data: [DONE]` and the end of the body -- never a
clean-looking end, never a hang."""

import json

import pytest

from conftest import chat_body, completion_body, http, loads_ordered, poll
from gateway_util import abort_count, direct_stream, error_end, gw_stream, make_pair, norm
from gateway_util import module_procs  # noqa: F401 (a fixture)

MODES = ["upstream", "inproc"]
STALL_TIMEOUT_MS = 1500


@pytest.fixture(scope="module", params=MODES)
def pair(request, module_procs):
    return make_pair(module_procs, request.param, "--stall-timeout-ms", str(STALL_TIMEOUT_MS))


ROUTES = {
    "chat": ("/v1/chat/completions", lambda **kw: chat_body("Tell me about lakes.", **kw)),
    "completions": ("/v1/completions", lambda **kw: completion_body("The lake", **kw)),
}


def text_of(chunks):
    out = []
    for ch in chunks:
        for c in ch.get("choices", []):
            d = c.get("delta")
            if d is not None:
                if isinstance(d.get("content"), str):
                    out.append(d["content"])
            elif isinstance(c.get("text"), str):
                out.append(c["text"])
    return "".join(out)


def no_finish(chunks):
    return all(c.get("finish_reason") is None for ch in chunks for c in ch.get("choices", []))


def full_text(pair, route, seed):
    path, make = ROUTES[route]
    return text_of([loads_ordered(d) for d in
                    direct_stream(pair.sim.port, make(seed=seed, max_tokens=40), path)])


def faulted(route, seed, fault, **kw):
    path, make = ROUTES[route]
    return path, make(seed=seed, max_tokens=40, x_fault=fault, **kw)


def assert_cut_with_error(pair, route, seed, fault, n):
    """The stream ends in exactly one error event and [DONE]; what came before
    is the start of the real answer, with no finish_reason."""
    path, body = faulted(route, seed, fault)
    r, datas = gw_stream(pair.gw.port, body, path)
    chunks, err = error_end(datas)
    assert no_finish(chunks), chunks
    assert full_text(pair, route, seed).startswith(text_of(chunks))
    # the events before the error are the upstream's own chunks, unchanged
    direct = direct_stream(pair.sim.port, ROUTES[route][1](seed=seed, max_tokens=40), path)
    assert [norm(d) for d in datas[:-1]] == [norm(d) for d in direct[:len(datas) - 1]]
    return chunks, err


# ------------------------------------------------------------ after the head


@pytest.mark.parametrize("route", list(ROUTES))
@pytest.mark.parametrize("n", [0, 1, 3])
def test_drop_after_ends_with_error_event(pair, route, n):
    chunks, err = assert_cut_with_error(pair, route, 41, {"kind": "drop_after", "n": n}, n)
    tokens = [c for c in chunks if not (c["choices"] and "role" in c["choices"][0].get("delta", {}))]
    assert len(tokens) == n


@pytest.mark.parametrize("route", list(ROUTES))
def test_stall_past_timeout_ends_with_error_event(pair, route):
    fault = {"kind": "stall_after", "n": 2, "ms": 8000}
    chunks, err = assert_cut_with_error(pair, route, 42, fault, 2)
    assert len(chunks) >= 2


def test_stall_past_timeout_closes_the_upstream_request(pair):
    """Once sluice gives up on a stalled answer it closes the upstream request
    (else a stalled vLLM request would hold its GPU slot for minutes)."""
    before = abort_count(pair.metrics_port)
    path, body = faulted("chat", 43, {"kind": "stall_after", "n": 1, "ms": 8000})
    _, datas = gw_stream(pair.gw.port, body, path)
    error_end(datas)
    poll(lambda: abort_count(pair.metrics_port) >= before + 1,
         what="the stalled upstream request to be aborted")


def test_stall_shorter_than_timeout_is_not_cut(pair):
    path, body = faulted("chat", 44, {"kind": "stall_after", "n": 2, "ms": 200})
    _, datas = gw_stream(pair.gw.port, body, path)
    chunks = [loads_ordered(d) for d in datas]
    assert all("error" not in c for c in chunks)
    assert text_of(chunks) == full_text(pair, "chat", 44)
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"


@pytest.mark.parametrize("route", list(ROUTES))
@pytest.mark.parametrize("n,status", [(2, 500), (0, 503)])
def test_inband_error_passed_through(pair, route, n, status):
    fault = {"kind": "inband_error_after", "n": n, "status": status}
    path, body = faulted(route, 45, fault)
    r, datas = gw_stream(pair.gw.port, body, path)
    chunks, err = error_end(datas)
    assert err["code"] == status
    # the upstream's error event, byte for byte (vLLM writes it with json.dumps)
    direct = direct_stream(pair.sim.port, body, path)
    assert datas[-1] == direct[-1]
    assert [norm(d) for d in datas[:-1]] == [norm(d) for d in direct[:-1]]
    assert no_finish(chunks)


@pytest.mark.parametrize("route", list(ROUTES))
@pytest.mark.parametrize("n", [1, 5])
def test_done_without_finish_ends_with_error_event(pair, route, n):
    chunks, err = assert_cut_with_error(pair, route, 46,
                                        {"kind": "done_without_finish", "n": n}, n)
    assert chunks, "the deltas before the end came through"


def test_fault_in_x_fault_header_is_forwarded(pair):
    """X-Fault is an end-to-end header: it reaches the simulator."""
    path, make = ROUTES["chat"]
    body = make(seed=47, max_tokens=40)
    r, datas = gw_stream(pair.gw.port, body, path,
                         headers={"X-Fault": json.dumps({"kind": "drop_after", "n": 2})})
    chunks, err = error_end(datas)
    assert no_finish(chunks)


def test_error_event_is_not_shown_after_a_normal_end(pair):
    path, make = ROUTES["chat"]
    _, datas = gw_stream(pair.gw.port, make(seed=48, max_tokens=10), path)
    assert all("error" not in loads_ordered(d) for d in datas)


# ------------------------------------------------------------ before the head


@pytest.mark.parametrize("route", list(ROUTES))
@pytest.mark.parametrize("stream", [True, False])
@pytest.mark.parametrize("status", [500, 503, 429])
def test_error_before_first_is_upstreams_status_and_body(pair, route, stream, status):
    path, make = ROUTES[route]
    body = make(seed=49, stream=stream, x_fault={"kind": "error_before_first", "status": status})
    r = http(pair.gw.port, "POST", path, body)
    d = http(pair.sim.port, "POST", path, body)
    assert d.status == status
    assert r.status == status, r
    assert r.body == d.body
    assert r.header("Content-Type") == d.header("Content-Type")
    assert not r.chunked or r.complete


@pytest.mark.parametrize("stream", [True, False])
def test_wrong_model_404_passed_through(pair, stream):
    body = chat_body("hi", stream=stream, model="no-such-model")
    r = http(pair.gw.port, "POST", "/v1/chat/completions", body)
    d = http(pair.sim.port, "POST", "/v1/chat/completions", body)
    assert d.status == 404
    assert r.status == 404, r
    assert r.body == d.body
    assert r.header("Content-Type") == d.header("Content-Type")


@pytest.mark.parametrize("route", list(ROUTES))
@pytest.mark.parametrize("stream", [True, False])
def test_validation_400_passed_through(pair, route, stream):
    path, make = ROUTES[route]
    body = make(stream=stream, max_tokens=-1)
    r = http(pair.gw.port, "POST", path, body)
    d = http(pair.sim.port, "POST", path, body)
    assert d.status == 400
    assert r.status == 400, r
    assert r.body == d.body


def test_gateway_still_healthy_after_faults(pair):
    assert http(pair.gw.port, "GET", "/health").status == 200
    path, make = ROUTES["chat"]
    gw_stream(pair.gw.port, make(seed=50, max_tokens=5), path)
