"""`sluice sim` speaks vLLM's wire format: compared with a real vLLM 0.9.2 capture."""

import json
import os
import re

import pytest

from conftest import (FIXTURES, MODEL, assert_openai_error, chat_body, chunk_objs,
                      completion_body, content_text, finish_choice, http, is_role_chunk,
                      loads_ordered, metric_value, metrics, reasoning_text, stream,
                      stream_chunks, token_deltas)

CHAT_ID = re.compile(r"^chatcmpl-[0-9a-f]{32}$")
CMPL_ID = re.compile(r"^cmpl-[0-9a-f]{32}$")


def compact(obj):
    """How vLLM (pydantic's model_dump_json) writes a chunk."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def assert_same_key_order(got, want, path="$"):
    """Every object in got has the keys of the corresponding object in want,
    in the same order; recursively (lists element by element)."""
    if isinstance(want, dict):
        assert isinstance(got, dict), f"{path}: {got!r} is not an object"
        assert list(got.keys()) == list(want.keys()), \
            f"{path}: keys {list(got.keys())} != capture's {list(want.keys())}"
        for k in want:
            assert_same_key_order(got[k], want[k], f"{path}.{k}")
    elif isinstance(want, list) and want and isinstance(got, list):
        for i, g in enumerate(got):
            assert_same_key_order(g, want[min(i, len(want) - 1)], f"{path}[{i}]")


def load_fixture_json(name):
    with open(os.path.join(FIXTURES, name), encoding="utf-8") as f:
        return loads_ordered(f.read())


# ------------------------------------------------------------ chunk structure


def test_capture_is_compact_json(capture_chunks):
    """The premise of the byte comparison: vLLM writes compact JSON."""
    for raw, obj in capture_chunks:
        assert compact(obj) == raw


def test_stream_matches_vllm_capture(sim, capture_chunks):
    r, events = stream(sim.port, chat_body("Hello, InstructKR!", seed=7))
    assert r.header("Content-Type").split(";")[0] == "text/event-stream"
    # framing: every event exactly `data: <json>\n\n`, no id:/event: lines, [DONE] last
    assert b"\nid:" not in b"\n" + r.body and b"event:" not in r.body
    assert r.body.startswith(b"data: {")
    assert r.body.endswith(b"\n\ndata: [DONE]\n\n")
    chunks = chunk_objs(events)
    assert len(chunks) >= 3
    cap_role, cap_content, cap_finish = (capture_chunks[0][1], capture_chunks[1][1],
                                         capture_chunks[-1][1])
    ids = {c["id"] for c in chunks}
    assert len(ids) == 1 and CHAT_ID.match(ids.pop())
    assert len({c["created"] for c in chunks}) == 1
    for raw, ch in zip(events, chunks):
        assert compact(ch) == raw, "chunk JSON is not written as vLLM writes it"
        assert ch["object"] == "chat.completion.chunk"
        assert ch["model"] == MODEL
        assert isinstance(ch["created"], int)
        assert len(ch["choices"]) == 1 and ch["choices"][0]["index"] == 0
        assert ch["choices"][0]["logprobs"] is None
    # role chunk first, exactly as vLLM's
    role = chunks[0]
    assert role["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert role["choices"][0]["finish_reason"] is None
    assert_same_key_order(role, cap_role)
    # content deltas
    middle = chunks[1:-1]
    assert middle, "no content deltas"
    for ch in middle:
        c = ch["choices"][0]
        assert list(c["delta"].keys()) == ["content"], c
        assert c["finish_reason"] is None
        assert_same_key_order(ch, cap_content)
    # finish chunk
    fin = chunks[-1]
    assert fin["choices"][0]["finish_reason"] == "stop"
    assert fin["choices"][0]["stop_reason"] is None
    assert_same_key_order(fin, cap_finish)
    # no usage anywhere unless asked
    assert all("usage" not in ch for ch in chunks)
    # Qwen3 without a reasoning parser thinks inside content
    text = content_text(chunks)
    assert text.startswith("<think>") and "</think>" in text


def test_stream_is_one_chunk_per_event_on_the_wire(sim):
    """Each SSE event goes out as its own HTTP chunk (no batching by the sim)."""
    r, events = stream(sim.port, chat_body("hi", seed=8, max_tokens=10, ignore_eos=True))
    framed = [c for c in r.chunks if c]
    joined = b"".join(framed)
    assert joined == r.body
    # every HTTP chunk holds whole events
    for c in framed:
        assert c.endswith(b"\n\n"), c


# ------------------------------------------------------------ usage


def test_include_usage(sim):
    body = chat_body("Tell me something.", seed=21, stream_options={"include_usage": True})
    r, events = stream(sim.port, body)
    chunks = chunk_objs(events)
    last = chunks[-1]
    assert list(last.keys()) == ["id", "object", "created", "model", "choices", "usage"]
    assert last["choices"] == []
    u = last["usage"]
    assert list(u.keys()) == ["prompt_tokens", "total_tokens", "completion_tokens"]
    assert all(isinstance(v, int) for v in u.values())
    assert u["prompt_tokens"] > 0
    assert u["total_tokens"] == u["prompt_tokens"] + u["completion_tokens"]
    assert u["completion_tokens"] == len(token_deltas(chunks[:-1]))
    # only the last chunk carries usage; the finish chunk comes right before it
    assert all("usage" not in ch for ch in chunks[:-1])
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert last["id"] == chunks[0]["id"]


def test_include_usage_with_ignore_eos_counts_exactly(sim):
    body = chat_body("hi", seed=22, max_tokens=13, ignore_eos=True,
                     stream_options={"include_usage": True})
    chunks = stream_chunks(sim.port, body)
    assert chunks[-1]["usage"]["completion_tokens"] == 13
    assert len(token_deltas(chunks[:-1])) == 13


def test_continuous_usage_stats(sim):
    body = chat_body("Tell me something.", seed=23,
                     stream_options={"include_usage": True, "continuous_usage_stats": True})
    chunks = stream_chunks(sim.port, body)
    final = chunks[-1]
    assert final["choices"] == []
    prompt = final["usage"]["prompt_tokens"]
    count = 0
    for ch in chunks[:-1]:
        assert "usage" in ch, f"chunk without usage: {ch}"
        assert list(ch.keys())[-1] == "usage"
        u = ch["usage"]
        count += len(token_deltas([ch]))
        assert u["prompt_tokens"] == prompt
        assert u["completion_tokens"] == count, (ch, count)
        assert u["total_tokens"] == prompt + count
    assert chunks[0]["usage"]["completion_tokens"] == 0
    assert final["usage"]["completion_tokens"] == count


def test_usage_in_stream_equals_non_stream(sim):
    body = chat_body("Explain the weather.", seed=24, stream_options={"include_usage": True})
    chunks = stream_chunks(sim.port, body)
    body.pop("stream_options")
    body["stream"] = False
    r = http(sim.port, "POST", "/v1/chat/completions", body)
    assert r.status == 200
    assert r.json()["usage"]["completion_tokens"] == chunks[-1]["usage"]["completion_tokens"]
    assert r.json()["usage"]["prompt_tokens"] == chunks[-1]["usage"]["prompt_tokens"]


# ------------------------------------------------------------ length and stop


def test_max_tokens_gives_length(sim):
    chunks = stream_chunks(sim.port, chat_body("Tell me a long story.", seed=31, max_tokens=5))
    assert finish_choice(chunks)["finish_reason"] == "length"
    assert finish_choice(chunks)["stop_reason"] is None
    assert len(token_deltas(chunks)) <= 5


@pytest.mark.parametrize("max_tokens", [1, 17, 300])
def test_ignore_eos_gives_exactly_max_tokens_deltas(sim, max_tokens):
    chunks = stream_chunks(sim.port, chat_body("hi", seed=32, max_tokens=max_tokens,
                                               ignore_eos=True))
    assert len(token_deltas(chunks)) == max_tokens
    assert finish_choice(chunks)["finish_reason"] == "length"
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"


def test_max_tokens_non_stream_length(sim):
    r = http(sim.port, "POST", "/v1/chat/completions",
             chat_body("hi", stream=False, seed=33, max_tokens=9, ignore_eos=True))
    body = r.json()
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"]["completion_tokens"] == 9


def _pick_stop(text):
    """A word from the middle of text that does not occur in its first tenth."""
    words = re.findall(r"[A-Za-z]{4,}", text)
    assert len(words) > 10, text
    for w in words[len(words) // 2:] + words[:len(words) // 2]:
        i = text.index(w)
        if i > len(text) // 10:
            return w
    pytest.fail(f"no usable stop word in {text!r}")


def test_stop_string(sim):
    base = chat_body("Tell me about rivers.", seed=41)
    full = content_text(stream_chunks(sim.port, base))
    stop = _pick_stop(full)
    expected = full[:full.index(stop)]
    chunks = stream_chunks(sim.port, dict(base, stop=[stop]))
    assert content_text(chunks) == expected
    fin = finish_choice(chunks)
    assert fin["finish_reason"] == "stop"
    assert fin["stop_reason"] == stop
    # a plain string works too, and non-streaming agrees
    r = http(sim.port, "POST", "/v1/chat/completions", dict(base, stop=stop, stream=False))
    ch = r.json()["choices"][0]
    assert ch["message"]["content"] == expected
    assert (ch["finish_reason"], ch["stop_reason"]) == ("stop", stop)


def test_stop_string_not_in_text_changes_nothing(sim):
    base = chat_body("Tell me about rivers.", seed=42)
    full = content_text(stream_chunks(sim.port, base))
    chunks = stream_chunks(sim.port, dict(base, stop=["\u00a7\u00a7never\u00a7\u00a7"]))
    assert content_text(chunks) == full
    assert finish_choice(chunks)["stop_reason"] is None


# ------------------------------------------------------------ n


def test_n_2(sim):
    body = chat_body("Give me an idea.", seed=51, n=2, stream_options={"include_usage": True})
    chunks = stream_chunks(sim.port, body)
    seen = set()
    for ch in chunks[:-1]:
        assert len(ch["choices"]) == 1
        seen.add(ch["choices"][0]["index"])
    assert seen == {0, 1}
    for i in (0, 1):
        mine = [ch for ch in chunks[:-1] if ch["choices"][0]["index"] == i]
        assert mine[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
        assert sum(is_role_chunk(ch, i) for ch in chunks) == 1
        assert finish_choice(chunks, i)["finish_reason"] == "stop"
        assert mine[-1]["choices"][0]["finish_reason"] == "stop"
    t0, t1 = content_text(chunks, 0), content_text(chunks, 1)
    assert t0 and t1 and t0 != t1
    total = len(token_deltas(chunks, 0)) + len(token_deltas(chunks, 1))
    assert chunks[-1]["usage"]["completion_tokens"] == total


def test_n_2_non_stream(sim):
    r = http(sim.port, "POST", "/v1/chat/completions", chat_body("idea", stream=False, seed=52,
                                                                 n=2))
    b = r.json()
    assert [c["index"] for c in b["choices"]] == [0, 1]
    assert b["choices"][0]["message"]["content"] != b["choices"][1]["message"]["content"]


# ------------------------------------------------------------ determinism


def test_seed_determinism(sim):
    a = content_text(stream_chunks(sim.port, chat_body("Tell me a fact.", seed=61)))
    b = content_text(stream_chunks(sim.port, chat_body("Tell me a fact.", seed=61)))
    c = content_text(stream_chunks(sim.port, chat_body("Tell me a fact.", seed=62)))
    assert a and a == b
    assert a != c


def test_same_body_without_seed_same_text(sim):
    body = chat_body("What is the capital of France?")
    a = content_text(stream_chunks(sim.port, body))
    b = content_text(stream_chunks(sim.port, body))
    assert a and a == b
    other = content_text(stream_chunks(sim.port, chat_body("What is the capital of Spain?")))
    assert other != a


def test_stream_and_non_stream_same_seed_same_text(sim):
    s = content_text(stream_chunks(sim.port, chat_body("Tell me a fact.", seed=63)))
    r = http(sim.port, "POST", "/v1/chat/completions",
             chat_body("Tell me a fact.", stream=False, seed=63))
    assert r.json()["choices"][0]["message"]["content"] == s


# ------------------------------------------------------------ non-streaming bodies


def test_non_stream_chat_body(sim):
    cap = load_fixture_json("vllm-0.9.2_chat-nonstream_no-reasoning-parser.json")
    r = http(sim.port, "POST", "/v1/chat/completions", chat_body("Hello", stream=False, seed=71))
    assert r.status == 200
    assert r.header("Content-Type").split(";")[0] == "application/json"
    assert r.header("Transfer-Encoding") is None and r.header("Content-Length")
    b = r.json()
    assert compact(b) == r.body.decode(), "body is not compact JSON"
    assert list(b.keys()) == list(cap.keys())
    assert b["object"] == "chat.completion" and CHAT_ID.match(b["id"])
    assert b["model"] == MODEL
    assert list(b["choices"][0].keys()) == list(cap["choices"][0].keys())
    msg = b["choices"][0]["message"]
    assert msg["role"] == "assistant"
    assert isinstance(msg["content"], str) and msg["content"].startswith("<think>")
    assert msg["tool_calls"] == []
    assert b["choices"][0]["finish_reason"] == "stop"
    assert b["choices"][0]["stop_reason"] is None
    assert list(b["usage"].keys()) == list(cap["usage"].keys())
    u = b["usage"]
    assert u["total_tokens"] == u["prompt_tokens"] + u["completion_tokens"]
    assert u["completion_tokens"] > 0


def test_non_stream_completions_body(sim):
    r = http(sim.port, "POST", "/v1/completions",
             completion_body(stream=False, seed=72, max_tokens=12, ignore_eos=True))
    assert r.status == 200
    b = r.json()
    assert compact(b) == r.body.decode()
    assert b["object"] == "text_completion" and CMPL_ID.match(b["id"])
    assert b["model"] == MODEL
    c = b["choices"][0]
    assert c["index"] == 0 and isinstance(c["text"], str) and c["text"]
    assert c["finish_reason"] == "length"
    assert list(c.keys())[:4] == ["index", "text", "logprobs", "finish_reason"]
    u = b["usage"]
    assert u["completion_tokens"] == 12
    assert u["total_tokens"] == u["prompt_tokens"] + 12


def test_completions_stream(sim):
    r, events = stream(sim.port, completion_body(seed=73, max_tokens=20, ignore_eos=True,
                                                 stream_options={"include_usage": True}),
                       path="/v1/completions")
    chunks = chunk_objs(events)
    for raw, ch in zip(events, chunks):
        assert compact(ch) == raw
    ids = {ch["id"] for ch in chunks}
    assert len(ids) == 1 and CMPL_ID.match(ids.pop())
    body_chunks, usage = chunks[:-1], chunks[-1]
    assert usage["choices"] == [] and usage["usage"]["completion_tokens"] == 20
    texts = []
    for ch in body_chunks:
        assert ch["object"] == "text_completion"
        assert list(ch["choices"][0].keys())[:4] == ["index", "text", "logprobs", "finish_reason"]
        assert "delta" not in ch["choices"][0]
        texts.append(ch["choices"][0]["text"])
    fins = [ch["choices"][0]["finish_reason"] for ch in body_chunks]
    assert fins[-1] == "length" and all(f is None for f in fins[:-1])
    assert body_chunks[-1]["choices"][0]["stop_reason"] is None
    # one token per chunk; the finish chunk counts when it carries text
    ntok = len(texts) - 1 + (1 if texts[-1] else 0)
    assert ntok == 20, texts
    text = "".join(texts)
    assert text
    # the same text as the non-streamed answer with the same seed
    r2 = http(sim.port, "POST", "/v1/completions",
              completion_body(stream=False, seed=73, max_tokens=20, ignore_eos=True))
    assert r2.json()["choices"][0]["text"] == text


def test_max_completion_tokens(sim):
    """The newer OpenAI name for max_tokens (what current SDKs send)."""
    chunks = stream_chunks(sim.port, chat_body("hi", seed=74, max_completion_tokens=7,
                                               ignore_eos=True))
    assert len(token_deltas(chunks)) == 7
    assert finish_choice(chunks)["finish_reason"] == "length"


def test_completions_batch_prompt(sim):
    """A list of prompts gets one choice per prompt, as vLLM does."""
    r = http(sim.port, "POST", "/v1/completions",
             completion_body(prompt=["The river", "The mountain"], stream=False, seed=75,
                             max_tokens=4, ignore_eos=True))
    assert r.status == 200, r
    b = r.json()
    assert [c["index"] for c in b["choices"]] == [0, 1], b
    assert b["usage"]["completion_tokens"] == 8


# ------------------------------------------------------------ reasoning and markdown


def test_reasoning_parser(sim_factory):
    s = sim_factory("--reasoning-parser")
    chunks = stream_chunks(s.port, chat_body("Why is the sky blue?", seed=81))
    reasoning = reasoning_text(chunks)
    content = content_text(chunks)
    assert reasoning, "no delta.reasoning chunks"
    assert content, "no content after reasoning"
    for t in ("<think>", "</think>"):
        assert t not in content and t not in reasoning
    # reasoning comes first, then content
    kinds = [k for k, t in token_deltas(chunks) if t]
    assert kinds.index("content") > kinds.index("reasoning")
    assert "reasoning" not in kinds[kinds.index("content"):]
    # non-streaming: reasoning in the message, not in content
    r = http(s.port, "POST", "/v1/chat/completions",
             chat_body("Why is the sky blue?", stream=False, seed=81))
    msg = r.json()["choices"][0]["message"]
    assert "<think>" not in msg["content"]
    assert (msg.get("reasoning") or msg.get("reasoning_content")) == reasoning
    assert msg["content"] == content


def test_no_reasoning_parser_think_in_content(sim):
    chunks = stream_chunks(sim.port, chat_body("Why is the sky blue?", seed=81))
    assert reasoning_text(chunks) == ""
    content = content_text(chunks)
    assert content.startswith("<think>")
    assert "</think>" in content
    pieces = [t for k, t in token_deltas(chunks)]
    assert "<think>" in pieces and "</think>" in pieces, "the think tags are tokens of their own"


def test_markdown_answer(sim):
    chunks = stream_chunks(sim.port, chat_body(
        "Answer in markdown with a table and code, please.", seed=91))
    text = content_text(chunks)
    answer = text.split("</think>", 1)[-1]
    lines = answer.split("\n")
    assert any(line.startswith("|") and line.rstrip().endswith("|") for line in lines), answer
    assert any(re.fullmatch(r"\|[\s:|-]+\|", line.strip()) for line in lines), "no table rule"
    fences = [line for line in lines if line.startswith("```")]
    assert len(fences) >= 2 and len(fences) % 2 == 0, answer


# ------------------------------------------------------------ model, routes, metrics


def test_wrong_model_404(sim):
    for stream_flag in (False, True):
        body = chat_body("hi", stream=stream_flag)
        body["model"] = "no/such-model"
        r = http(sim.port, "POST", "/v1/chat/completions", body)
        err = assert_openai_error(r, 404, param="model", check_param=True)
        assert "no/such-model" in err["message"]
        assert err["type"] == "NotFoundError"
    body = completion_body(stream=False)
    body["model"] = "other"
    assert_openai_error(http(sim.port, "POST", "/v1/completions", body), 404, "model", True)


def test_model_may_be_omitted(sim):
    body = chat_body("hi", stream=False, seed=1, max_tokens=3)
    del body["model"]
    r = http(sim.port, "POST", "/v1/chat/completions", body)
    assert r.status == 200, r
    assert r.json()["model"] == MODEL


def test_models_list(sim):
    cap = load_fixture_json("vllm-0.9.2_v1-models.json")
    r = http(sim.port, "GET", "/v1/models")
    assert r.status == 200
    b = r.json()
    assert b["object"] == "list"
    assert [m["id"] for m in b["data"]] == [MODEL]
    m = b["data"][0]
    assert (m["object"], m["owned_by"], m["root"], m["parent"]) == ("model", "vllm", MODEL, None)
    assert m["max_model_len"] == 8192
    assert_same_key_order(b, cap)


def test_model_flag(sim_factory):
    s = sim_factory("--model", "acme/tiny-1b")
    r = http(s.port, "GET", "/v1/models")
    assert [m["id"] for m in r.json()["data"]] == ["acme/tiny-1b"]
    body = chat_body("hi", stream=False, seed=2, max_tokens=3)
    body["model"] = "acme/tiny-1b"
    r = http(s.port, "POST", "/v1/chat/completions", body)
    assert r.status == 200 and r.json()["model"] == "acme/tiny-1b"
    body["model"] = MODEL
    assert_openai_error(http(s.port, "POST", "/v1/chat/completions", body), 404, "model", True)


def test_health(sim):
    r = http(sim.port, "GET", "/health")
    assert r.status == 200
    assert r.body == b""


def test_metrics(sim_factory):
    s = sim_factory()
    r = http(s.port, "GET", "/metrics")
    assert r.status == 200
    assert r.header("Content-Type").startswith("text/plain")
    text = r.body.decode()
    m0 = metrics(s.port)
    for name in ("vllm:num_requests_running", "vllm:num_requests_waiting",
                 "vllm:kv_cache_usage_perc"):
        assert f"# TYPE {name} gauge" in text
        assert metric_value(m0, name) == 0, name
    assert "# TYPE vllm:request_success_total counter" in text
    for reason in ("stop", "length", "abort"):  # every series exists from the start, at 0
        assert metric_value(m0, "vllm:request_success_total", finished_reason=reason) == 0
    assert "# TYPE vllm:time_to_first_token_seconds histogram" in text
    itl = [n for n in ("vllm:inter_token_latency_seconds", "vllm:time_per_output_token_seconds")
           if f"# TYPE {n} histogram" in text]
    assert itl, "no inter-token latency histogram"
    for n in ("vllm:time_to_first_token_seconds", itl[0]):
        for suffix in ("_bucket", "_sum", "_count"):
            assert metric_value(m0, n + suffix) is not None, n + suffix
    assert all(l.get("model_name") == MODEL for n, l, v in m0 if n.startswith("vllm:num_requests"))

    def success(m, reason):
        return metric_value(m, "vllm:request_success_total", finished_reason=reason) or 0

    stream_chunks(s.port, chat_body("hi", seed=3))  # ends with stop
    stream_chunks(s.port, chat_body("hi", seed=3, max_tokens=2, ignore_eos=True))  # length
    m1 = metrics(s.port)
    assert success(m1, "stop") == success(m0, "stop") + 1
    assert success(m1, "length") == success(m0, "length") + 1
    assert success(m1, "abort") == success(m0, "abort")
    ttft = "vllm:time_to_first_token_seconds_count"
    assert metric_value(m1, ttft) == metric_value(m0, ttft) + 2
    assert metric_value(m1, itl[0] + "_count") > metric_value(m0, itl[0] + "_count")
    assert metric_value(m1, "vllm:num_requests_running") == 0
    # buckets are cumulative and end with +Inf = count
    buckets = [(l["le"], v) for n, l, v in m1 if n == ttft.replace("_count", "_bucket")]
    assert buckets[-1][0] == "+Inf" and buckets[-1][1] == metric_value(m1, ttft)
    vals = [v for _, v in buckets]
    assert vals == sorted(vals)


# ------------------------------------------------------------ validation as vLLM does it


@pytest.mark.parametrize("extra", [
    {"messages": None},
    {"messages": "hi"},
    {"messages": [{"content": "hi"}]},
    {"max_tokens": 0},
    {"max_tokens": "5"},
    {"max_tokens": 100000},  # past max_model_len (8192)
    {"n": 0},
    {"seed": "x"},
    {"stream": "yes"},
    {"stop": 5},
    {"stream": False, "stream_options": {"include_usage": True}},
])
def test_invalid_chat_request_400(sim, extra):
    body = dict(chat_body("hi", max_tokens=3), **extra)
    if body["messages"] is None:
        del body["messages"]
    assert_openai_error(http(sim.port, "POST", "/v1/chat/completions", body), 400)


@pytest.mark.parametrize("extra", [
    {"temperature": -1},
    {"top_p": 0},
    {"top_p": 1.5},
    {"presence_penalty": 5},
    {"frequency_penalty": -3},
])
def test_sampling_params_out_of_range_400(sim, extra):
    """vLLM's SamplingParams refuses these with a 400 ("temperature must be
    non-negative, got -1.0.", "top_p must be in (0, 1], got 0.0.",
    "presence_penalty must be in [-2, 2], got 5.0.")."""
    body = dict(chat_body("hi", stream=False, max_tokens=3), **extra)
    err = assert_openai_error(http(sim.port, "POST", "/v1/chat/completions", body), 400)
    assert list(extra)[0] in err["message"]


def test_invalid_completions_request_400(sim):
    for body in ({"model": MODEL, "max_tokens": 3}, completion_body(max_tokens=0),
                 completion_body(prompt=5)):
        assert_openai_error(http(sim.port, "POST", "/v1/completions", body), 400)
