"""The gateway's OpenAI face against the simulator, both as a separate
upstream process (`--upstream http://...` to `sluice sim`) and as the
in-process backend: what a client gets through sluice is what it would get
straight from the simulator (same request, same seed), with gapless `id:`
lines, the SSE head, X-Stream-Id, and the usage chunk only when asked for."""

import pytest

from conftest import (RawConn, chat_body, completion_body, content_text, http, loads_ordered,
                      poll, request_bytes)
from gateway_util import (STREAM_ID, abort_count, assert_stream_head, direct_stream,
                          finished_datas, gw_stream, is_usage_chunk, make_pair, norm,
                          read_events, read_rest)
from gateway_util import module_procs  # noqa: F401 (a fixture)

MODES = ["upstream", "inproc"]
ROUTES = {
    "chat": ("/v1/chat/completions", chat_body),
    "completions": ("/v1/completions", completion_body),
}


@pytest.fixture(scope="module", params=MODES)
def pair(request, module_procs):
    return make_pair(module_procs, request.param)


@pytest.fixture(scope="module", params=MODES)
def slow_pair(request, module_procs):
    """Time to first token far beyond any test's patience."""
    return make_pair(module_procs, request.param, sim_args=("--ttft-ms", "600000"))


@pytest.fixture(scope="module", params=MODES)
def reasoning_pair(request, module_procs):
    return make_pair(module_procs, request.param, sim_args=("--reasoning-parser",))


def body_for(route, stream, seed, **kw):
    path, make = ROUTES[route]
    prompt = "Tell me about rivers and their deltas." if route == "chat" else "The river"
    return path, make(prompt, stream=stream, seed=seed, max_tokens=24, **kw)


def assert_same_as_direct(pair, path, body, client_usage, direct_body=None):
    """Streams body through the gateway and the same body straight to the
    reference simulator; compares every event byte for byte (id/created
    blanked). Returns the gateway's parsed chunks."""
    r, datas = gw_stream(pair.gw.port, body, path)
    direct = direct_stream(pair.sim.port, direct_body if direct_body is not None else body, path)
    got = [norm(d) for d in datas]
    want = [norm(d) for d in direct]
    assert got == want
    chunks = [loads_ordered(d) for d in datas]
    usage = [c for c in chunks if "usage" in c and c["usage"] is not None]
    if client_usage:
        assert is_usage_chunk(chunks[-1]), chunks[-1]
        assert usage == [chunks[-1]], "exactly one usage chunk, the last"
    else:
        assert usage == [], "usage shown to a client that did not ask for it"
    return r, chunks


# ------------------------------------------------------------ streaming


@pytest.mark.parametrize("route", list(ROUTES))
@pytest.mark.parametrize("usage", [False, True], ids=["no_usage", "usage"])
def test_stream_same_as_direct(pair, route, usage):
    kw = {"stream_options": {"include_usage": True}} if usage else {}
    path, body = body_for(route, True, seed=11, **kw)
    r, chunks = assert_same_as_direct(pair, path, body, usage)
    assert STREAM_ID.match(r.header("X-Stream-Id"))
    text = content_text(chunks) if route == "chat" else "".join(
        c["text"] for ch in chunks for c in ch.get("choices", []))
    assert text, "the answer has text"
    finishes = [c["finish_reason"] for ch in chunks for c in ch["choices"]
                if c.get("finish_reason") is not None]
    assert finishes == ["length"]


@pytest.mark.parametrize("route", list(ROUTES))
def test_stream_usage_numbers_same_as_direct(pair, route):
    path, body = body_for(route, True, seed=12, stream_options={"include_usage": True})
    _, datas = gw_stream(pair.gw.port, body, path)
    direct = direct_stream(pair.sim.port, body, path)
    got, want = loads_ordered(datas[-1]), loads_ordered(direct[-1])
    assert got["usage"] == want["usage"]
    assert got["usage"]["completion_tokens"] == 24


def test_stream_include_usage_false_hides_usage(pair):
    path, body = body_for("chat", True, seed=13, stream_options={"include_usage": False})
    assert_same_as_direct(pair, path, body, client_usage=False)


def test_stream_without_usage_is_direct_stream_minus_usage_chunk(pair):
    """sluice always asks upstream for usage; a client that did not ask gets
    exactly the other events, with the ids still gapless."""
    path, body = body_for("chat", True, seed=14)
    _, plain = gw_stream(pair.gw.port, body, path)
    path, body_u = body_for("chat", True, seed=14, stream_options={"include_usage": True})
    _, with_usage = gw_stream(pair.gw.port, body_u, path)
    assert [norm(d) for d in plain] == [norm(d) for d in with_usage[:-1]]
    assert is_usage_chunk(loads_ordered(with_usage[-1]))


def test_stream_n2_same_as_direct(pair):
    path, body = body_for("chat", True, seed=15, n=2, stream_options={"include_usage": True})
    _, chunks = assert_same_as_direct(pair, path, body, client_usage=True)
    assert {c["index"] for ch in chunks for c in ch["choices"]} == {0, 1}


def test_stream_reasoning_parser_same_as_direct(reasoning_pair):
    path, body = body_for("chat", True, seed=16)
    _, chunks = assert_same_as_direct(reasoning_pair, path, body, client_usage=False)
    assert any("reasoning" in c.get("delta", {}) or "reasoning_content" in c.get("delta", {})
               for ch in chunks for c in ch["choices"]), "the sim sent no reasoning deltas"


def test_stream_head_and_framing(pair):
    path, body = body_for("chat", True, seed=17)
    r = http(pair.gw.port, "POST", path, body)
    assert_stream_head(r)
    assert r.complete
    # every event is exactly `id: N\ndata: ...\n\n`; [DONE] has no id; nothing else
    text = r.body.decode()
    assert text.startswith("id: 1\ndata: {")
    assert text.endswith("\n\ndata: [DONE]\n\n")
    assert "event:" not in text and "retry:" not in text
    assert r.body.count(b"data: [DONE]") == 1
    finished_datas(r.body)


def test_stream_ids_are_distinct(pair):
    path, body = body_for("chat", True, seed=18)
    ids = {gw_stream(pair.gw.port, body, path)[0].header("X-Stream-Id") for _ in range(5)}
    assert len(ids) == 5


def test_two_streams_on_one_keep_alive_connection(pair):
    path, body = body_for("chat", True, seed=19)
    with RawConn(pair.gw.port) as c:
        for _ in range(2):
            c.send(request_bytes("POST", path, body))
            r = c.read_response()
            assert_stream_head(r)
            assert r.complete
            datas = finished_datas(r.body)
            assert len(datas) > 3


# ------------------------------------------------------------ non-streaming


@pytest.mark.parametrize("route", list(ROUTES))
def test_nonstream_same_as_direct(pair, route):
    path, body = body_for(route, False, seed=21)
    r = http(pair.gw.port, "POST", path, body)
    d = http(pair.sim.port, "POST", path, body)
    assert r.status == d.status == 200, (r, d)
    assert r.header("Content-Type") == d.header("Content-Type"), (r, d)
    sid = r.header("X-Stream-Id")
    assert sid is not None and STREAM_ID.match(sid), r
    assert norm(r.body.decode()) == norm(d.body.decode())
    assert not r.body.startswith(b"id:") and b"data:" not in r.body


def test_nonstream_stream_false_goes_upstream_as_false(pair):
    """stream:false is not turned into a stream: the answer is one JSON object."""
    path, body = body_for("chat", False, seed=22, n=2)
    r = http(pair.gw.port, "POST", path, body)
    assert r.status == 200
    obj = r.json()
    assert obj["object"] == "chat.completion"
    assert [c["index"] for c in obj["choices"]] == [0, 1]
    assert obj["usage"]["completion_tokens"] == 48


# ------------------------------------------------------------ stream_options as vLLM reads them


def test_stream_options_empty_object_means_include_usage(pair):
    """vLLM's StreamOptions.include_usage defaults to true: a client sending
    `"stream_options": {}` gets the usage chunk from vLLM (and the sim).
    Through sluice it must get the same stream."""
    path, body = body_for("chat", True, seed=23, stream_options={})
    assert_same_as_direct(pair, path, body, client_usage=True)


def test_stream_options_continuous_usage_without_include_usage(pair):
    """continuous_usage_stats only counts when include_usage is true (vLLM and
    the sim): with include_usage false no chunk carries usage. sluice asks
    upstream for include_usage, so it must not hand the client per-chunk usage
    it did not ask for."""
    path, body = body_for("chat", True, seed=24,
                          stream_options={"include_usage": False, "continuous_usage_stats": True})
    assert_same_as_direct(pair, path, body, client_usage=False)


def test_stream_options_continuous_usage_with_include_usage(pair):
    path, body = body_for("chat", True, seed=25,
                          stream_options={"include_usage": True, "continuous_usage_stats": True})
    r, datas = gw_stream(pair.gw.port, body, path)
    direct = direct_stream(pair.sim.port, body, path)
    assert [norm(d) for d in datas] == [norm(d) for d in direct]


def test_stream_options_not_an_object_is_upstreams_400(pair):
    """vLLM refuses `"stream_options": "yes"` with a 400; sluice must not
    turn the request into a valid one (it only adds include_usage)."""
    path, body = body_for("chat", True, seed=26, stream_options="yes")
    d = http(pair.sim.port, "POST", path, body)
    assert d.status == 400, d
    r = http(pair.gw.port, "POST", path, body)
    assert r.status == 400, r
    assert r.body == d.body


# ------------------------------------------------------------ head before the first token


def test_head_is_sent_before_the_first_token(slow_pair):
    """The simulator waits 10 minutes for its first token: the head must come
    anyway (the gateway never waits for a token), then a disconnect cancels."""
    path, body = body_for("chat", True, seed=27)
    before = abort_count(slow_pair.metrics_port)
    with RawConn(slow_pair.gw.port) as c:
        c.send(request_bytes("POST", path, body))
        r = c.read_head()
        assert r is not None
        assert_stream_head(r)
    poll(lambda: abort_count(slow_pair.metrics_port) >= before + 1,
         what="the upstream request aborted after a disconnect before the first token")
    assert abort_count(slow_pair.metrics_port) == before + 1


# ------------------------------------------------------------ cancel on disconnect


@pytest.mark.parametrize("route", list(ROUTES))
def test_disconnect_aborts_upstream(pair, route):
    path, make = ROUTES[route]
    body = make("Write a very long story.", seed=31, max_tokens=6000, ignore_eos=True)
    before = abort_count(pair.metrics_port)
    with RawConn(pair.gw.port) as c:
        c.send(request_bytes("POST", path, body))
        r = c.read_head()
        assert_stream_head(r)
        got = read_events(c, 3)
        assert got.startswith(b"id: 1\ndata: {")
    poll(lambda: abort_count(pair.metrics_port) >= before + 1,
         what="the simulator's abort counter to move")
    assert abort_count(pair.metrics_port) == before + 1
    # and the gateway goes on serving
    path2, body2 = body_for("chat", True, seed=32)
    gw_stream(pair.gw.port, body2, path2)


def test_disconnect_of_one_stream_does_not_touch_another(pair):
    path, make = ROUTES["chat"]
    long_body = make("Write a very long story.", seed=33, max_tokens=6000, ignore_eos=True)
    short_body = make("Tell me about rivers.", seed=34, max_tokens=300, ignore_eos=True)
    before = abort_count(pair.metrics_port)
    with RawConn(pair.gw.port) as b:
        with RawConn(pair.gw.port) as a:
            a.send(request_bytes("POST", path, long_body))
            assert_stream_head(a.read_head())
            read_events(a, 2)
            b.send(request_bytes("POST", path, short_body))
            assert_stream_head(b.read_head())
            head = read_events(b, 2)
        # a left while b streams
        poll(lambda: abort_count(pair.metrics_port) >= before + 1, what="a's abort")
        rest, complete = read_rest(b)
    datas = finished_datas(head + rest)
    assert complete
    assert len(datas) == 1 + 300  # role chunk, 300 tokens (the last one carries finish)
    assert abort_count(pair.metrics_port) == before + 1
