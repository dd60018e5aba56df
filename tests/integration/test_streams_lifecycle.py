"""A stream's life over real sockets: explicit cancel (reaches the upstream:
the simulator's abort counter moves), the grace while nobody listens,
disconnects on the OpenAI face (X-Sluice-Grace), retention and the store bound
(evicted ids answer 410).

DESIGN.md §2; issue 4. Each test that counts aborts has a gateway of its own
(in-process simulator: GET /metrics on the gateway is the simulator's). Waits
are polls; the only sleeps hold a state for longer than the grace to show that
something does NOT happen."""

import time

import pytest

from conftest import POLL_LIMIT_S, http, poll
from streams_util import (CANCELLED_ERROR, STALL_FOREVER, Events, abort_count, body_for,
                          cancel, cancel_response, create, openai_face, procs,
                          read_all_events, stall_for, summary, summary_response, wait_aborts,
                          wait_state)

_ = procs  # the fixture, imported for pytest


KINDS = ["inproc", "upstream"]


def stack(procs, kind, *args, grace):
    """(gateway, port whose /metrics counts the aborts): the gateway's
    in-process simulator, or a `sluice sim` process behind --upstream (the
    abort then travels over HTTP: the upstream connection is closed)."""
    if kind == "upstream":
        sim = procs.sim()
        gw = procs.gateway("--upstream", f"http://127.0.0.1:{sim.port}", *args, grace=grace)
        return gw, sim.port
    gw = procs.gateway(*args, grace=grace)
    return gw, gw.port


def settle(port):
    """A few round trips, so an abort that would follow an event has had
    every chance to show before we check that it did not."""
    for _ in range(5):
        summary_response(port, "AAAAAAAAAAAAAAAAAAAAAA")
        time.sleep(0.05)


def read_until_ids(ev, n):
    got = []
    while len([e for e in got if e.id is not None]) < n:
        e = ev.next()
        assert e is not None, f"stream ended after {got}"
        got.append(e)
    return got


# --------------------------------------------------------------------------
# Explicit cancel


@pytest.mark.parametrize("kind", KINDS)
def test_cancel_mid_stream_reaches_the_upstream(procs, kind):
    gw, mport = stack(procs, kind, grace=30)
    a0 = abort_count(mport)
    sid, token = create(gw.port, body_for(seed=21, max_tokens=200, x_fault=STALL_FOREVER))
    compact = Events(gw.port, sid)
    oai = Events(gw.port, sid, fmt="openai")
    seen = read_until_ids(compact, 4)  # start + the 3 deltas before the stall
    read_until_ids(oai, 4)
    assert summary(gw.port, sid)["state"] == "running"

    obj = cancel(gw.port, sid)
    assert obj["state"] == "cancelled" and obj["finish_reason"] == "cancelled", obj

    # Both listeners see the end of the log, and their bodies end.
    rest = compact.rest()
    assert compact.ended, rest
    compact.close()
    assert [e.event for e in rest if e.event != "metrics"] == ["done"], rest
    done = rest[-1].json()
    assert done["finish_reason"] == "cancelled", done
    assert list(done.keys()) == ["finish_reason", "usage", "metrics"], done
    assert rest[-1].id == seen[-1].id + 1, (seen[-1], rest)
    orest = oai.rest()
    assert oai.ended, orest
    oai.close()
    assert [e.data for e in orest] == [CANCELLED_ERROR, "[DONE]"], orest
    assert orest[0].id == rest[-1].id and orest[1].id is None, orest

    wait_aborts(mport, a0 + 1)
    s = summary(gw.port, sid)
    assert s["state"] == "cancelled" and s["finish_reason"] == "cancelled", s
    assert s["last_event_id"] == rest[-1].id, s
    assert s["text"] == "".join(e.json()["text"] for e in seen if e.event == "delta"), s

    # Idempotent: same answer, nothing more in the log, no second abort.
    again = cancel(gw.port, sid, token=token)
    assert again == s, (again, s)
    settle(gw.port)
    assert abort_count(mport) == a0 + 1
    assert summary(gw.port, sid) == s

    # The log after the fact: the same ending on both formats; 204 at its end.
    _ev, log = read_all_events(gw.port, sid)
    assert log[-1].event == "done" and log[-1].json()["finish_reason"] == "cancelled", log[-2:]
    _ev, olog = read_all_events(gw.port, sid, fmt="openai", last_event_id=seen[-1].id)
    assert [e.data for e in olog] == [CANCELLED_ERROR, "[DONE]"], olog
    for fmt in (None, "openai"):
        ev = Events(gw.port, sid, fmt=fmt, last_event_id=s["last_event_id"])
        assert ev.resp.status == 204, ev.resp
        ev.close()


def test_cancel_with_nobody_listening(procs):
    gw = procs.gateway(grace=30)
    a0 = abort_count(gw.port)
    sid, _tok = create(gw.port, body_for(seed=22, max_tokens=200, x_fault=STALL_FOREVER))
    poll(lambda: summary(gw.port, sid)["last_event_id"] >= 4, what="the deltas before the stall")
    assert cancel(gw.port, sid)["state"] == "cancelled"
    wait_aborts(gw.port, a0 + 1)
    _ev, log = read_all_events(gw.port, sid)
    assert log[-1].event == "done" and log[-1].json()["finish_reason"] == "cancelled"


def test_cancel_of_a_finished_stream_changes_nothing(procs):
    gw = procs.gateway(grace=30)
    sid, _tok = create(gw.port, body_for(seed=23, max_tokens=8))
    s = wait_state(gw.port, sid)
    assert s["state"] == "done", s
    a0 = abort_count(gw.port)
    for _ in range(2):
        assert cancel(gw.port, sid) == s
    settle(gw.port)
    assert abort_count(gw.port) == a0
    _ev, log = read_all_events(gw.port, sid)
    assert log[-1].event == "done" and log[-1].json()["finish_reason"] == "length"


def test_cancel_of_a_never_issued_id_is_404(procs):
    gw = procs.gateway(grace=30)
    r = cancel_response(gw.port, "AAAAAAAAAAAAAAAAAAAAAA")
    assert r.status == 404, r


# --------------------------------------------------------------------------
# Stream face: the grace while nobody listens (grace_s = 1)


@pytest.mark.parametrize("kind", KINDS)
def test_unwatched_stream_is_cancelled_after_the_grace(procs, kind):
    gw, mport = stack(procs, kind, grace=1)
    a0 = abort_count(mport)
    sid, _tok = create(gw.port, body_for(seed=24, max_tokens=200, x_fault=STALL_FOREVER))
    s = wait_state(gw.port, sid, states=("cancelled", "done", "failed"))
    assert s["state"] == "cancelled" and s["finish_reason"] == "cancelled", s
    wait_aborts(mport, a0 + 1)
    _ev, log = read_all_events(gw.port, sid)
    assert log[-1].event == "done" and log[-1].json()["finish_reason"] == "cancelled"


def test_grace_counts_from_when_the_last_listener_left(procs):
    gw = procs.gateway(grace=1)
    a0 = abort_count(gw.port)
    sid, _tok = create(gw.port, body_for(seed=25, max_tokens=200, x_fault=STALL_FOREVER))
    a = Events(gw.port, sid)
    read_until_ids(a, 4)
    time.sleep(2.5)  # a listener is here: no grace runs, however long
    assert summary(gw.port, sid)["state"] == "running"
    b = Events(gw.port, sid, fmt="openai")
    read_until_ids(b, 4)
    a.close(reset=True)
    time.sleep(1.8)  # b is still here
    assert summary(gw.port, sid)["state"] == "running"
    assert abort_count(gw.port) == a0
    b.close()
    s = wait_state(gw.port, sid, states=("cancelled", "done", "failed"))
    assert s["state"] == "cancelled", s
    wait_aborts(gw.port, a0 + 1)


def test_reconnect_within_the_grace_does_not_cancel(procs):
    """Leave three times for 0.4 s (1.2 s away in all, past grace_s = 1, but
    never 1 s at once) while generation pauses; then read to the natural end."""
    gw = procs.gateway(grace=1)
    a0 = abort_count(gw.port)
    sid, _tok = create(gw.port, body_for(seed=26, max_tokens=20, x_fault=stall_for(3, 3000)))
    ev = Events(gw.port, sid)
    got = read_until_ids(ev, 3)
    for _ in range(3):
        ev.close(reset=True)
        time.sleep(0.4)
        assert summary(gw.port, sid)["state"] == "running"
        ev = Events(gw.port, sid, last_event_id=got[-1].id)
        assert ev.resp.status == 200, ev.resp
        time.sleep(0.2)
    got += ev.rest()
    assert ev.ended
    ev.close()
    ids = [e.id for e in got if e.id is not None]
    assert ids == list(range(1, len(ids) + 1)), ids
    assert got[-1].event == "done" and got[-1].json()["finish_reason"] == "length", got[-2:]
    s = summary(gw.port, sid)
    assert s["state"] == "done", s
    assert abort_count(gw.port) == a0


# --------------------------------------------------------------------------
# OpenAI face: a disconnect cancels at once, unless X-Sluice-Grace


@pytest.mark.parametrize("kind,reset", [("inproc", False), ("inproc", True),
                                        ("upstream", False)],
                         ids=["inproc-fin", "inproc-rst", "upstream-fin"])
def test_openai_face_disconnect_cancels_at_once(procs, kind, reset):
    # grace_s 60: only "at once" can explain a cancel within the poll limit.
    assert POLL_LIMIT_S < 60
    gw, mport = stack(procs, kind, grace=60)
    a0 = abort_count(mport)
    ev = openai_face(gw.port, body_for(seed=27, max_tokens=200, stream=True,
                                       x_fault=STALL_FOREVER))
    assert ev.resp.status == 200 and ev.sid, ev.resp
    got = read_until_ids(ev, 4)  # the role chunk and the 3 deltas before the stall
    ev.close(reset=reset)
    wait_aborts(mport, a0 + 1)
    s = wait_state(gw.port, ev.sid, states=("cancelled", "done", "failed"))
    assert s["state"] == "cancelled", s
    _e, tail = read_all_events(gw.port, ev.sid, fmt="openai", last_event_id=got[-1].id)
    assert [e.data for e in tail] == [CANCELLED_ERROR, "[DONE]"], tail


def test_openai_face_close_after_done_is_not_a_cancel(procs):
    """The openai SDK closes the socket right after [DONE]: a normal end."""
    gw = procs.gateway(grace=60)
    a0 = abort_count(gw.port)
    for i in range(5):
        ev = openai_face(gw.port, body_for(seed=28 + i, max_tokens=10, stream=True))
        while True:
            e = ev.next()
            assert e is not None
            if e.data == "[DONE]":
                break
        ev.close(reset=bool(i % 2))  # before reading the chunked terminator
        s = wait_state(gw.port, ev.sid)
        assert s["state"] == "done" and s["finish_reason"] == "length", s
    settle(gw.port)
    assert abort_count(gw.port) == a0


def test_openai_face_disconnect_with_sluice_grace_does_not_cancel(procs):
    gw = procs.gateway(grace=60)
    a0 = abort_count(gw.port)
    # A pause of 1.5 s after 2 deltas, well inside the 5 s asked for.
    ev = openai_face(gw.port, body_for(seed=29, max_tokens=12, stream=True,
                                       x_fault=stall_for(2, 1500)),
                     headers={"X-Sluice-Grace": "5"})
    assert ev.resp.status == 200 and ev.sid, ev.resp
    got = read_until_ids(ev, 2)
    ev.close(reset=True)
    assert summary(gw.port, ev.sid)["state"] == "running"
    s = wait_state(gw.port, ev.sid)
    assert s["state"] == "done" and s["finish_reason"] == "length", s
    assert abort_count(gw.port) == a0
    _e, tail = read_all_events(gw.port, ev.sid, fmt="openai", last_event_id=got[-1].id)
    assert tail[-1].data == "[DONE]" and CANCELLED_ERROR not in [e.data for e in tail], tail
    assert tail[0].id == got[-1].id + 1


def test_openai_face_sluice_grace_is_capped_by_grace_s(procs):
    gw = procs.gateway(grace=1)
    assert POLL_LIMIT_S < 60
    a0 = abort_count(gw.port)
    ev = openai_face(gw.port, body_for(seed=30, max_tokens=200, stream=True,
                                       x_fault=STALL_FOREVER),
                     headers={"X-Sluice-Grace": "60"})
    assert ev.resp.status == 200 and ev.sid, ev.resp
    read_until_ids(ev, 2)
    ev.close()
    s = wait_state(gw.port, ev.sid, states=("cancelled", "done", "failed"))
    assert s["state"] == "cancelled", s
    wait_aborts(gw.port, a0 + 1)


def test_openai_face_listener_back_within_sluice_grace_keeps_it(procs):
    """Dropped from the face, back on the stream face inside X-Sluice-Grace:
    the stream runs to its end and the listener reads it all."""
    gw = procs.gateway(grace=60)
    a0 = abort_count(gw.port)
    ev = openai_face(gw.port, body_for(seed=31, max_tokens=12, stream=True,
                                       x_fault=stall_for(2, 800)),
                     headers={"X-Sluice-Grace": "10"})
    got = read_until_ids(ev, 2)
    ev.close(reset=True)
    back = Events(gw.port, ev.sid, fmt="openai", last_event_id=got[-1].id)
    got += back.rest()
    assert back.ended
    back.close()
    assert got[-1].data == "[DONE]", got[-2:]
    ids = [e.id for e in got if e.id is not None]
    assert ids == list(range(1, len(ids) + 1)), ids
    assert summary(gw.port, ev.sid)["state"] == "done"
    assert abort_count(gw.port) == a0


# --------------------------------------------------------------------------
# Retention and the store bound: evicted ids answer 410


def gone_everywhere(port, sid):
    r = summary_response(port, sid)
    assert r.status == 410, r
    assert r.json()["error"]["code"] == 410, r
    for kw in ({}, {"fmt": "openai"}, {"last_event_id": 1}, {"fmt": "openai", "query_last": 2}):
        ev = Events(port, sid, **kw)
        assert ev.resp.status == 410, (kw, ev.resp)
        ev.close()
    r = cancel_response(port, sid)
    assert r.status == 410, r


def test_finished_stream_evicted_after_retention_is_410(procs):
    gw = procs.gateway("--retention-s", "1", grace=60)
    running, _t = create(gw.port, body_for(seed=32, max_tokens=200, x_fault=STALL_FOREVER))
    sid, _tok = create(gw.port, body_for(seed=33, max_tokens=8))
    _ev, log = read_all_events(gw.port, sid)
    assert log[-1].event == "done"
    poll(lambda: summary_response(gw.port, sid).status == 410, what="410 after retention")
    gone_everywhere(gw.port, sid)
    # A running stream is not "finished": retention does not touch it.
    assert summary(gw.port, running)["state"] == "running"
    assert http(gw.port, "GET", "/v1/streams/BBBBBBBBBBBBBBBBBBBBBB").status == 404
    # Once it ends, its own retention starts.
    cancel(gw.port, running)
    poll(lambda: summary_response(gw.port, running).status == 410,
         what="410 after retention of the cancelled stream")
    gone_everywhere(gw.port, running)


def test_retention_zero_keeps_nothing_once_finished(procs):
    """retention_s 0: listeners present while it runs get the whole log; once
    finished, the id answers 410 (no resume)."""
    gw = procs.gateway("--retention-s", "0", grace=60)
    sid, _tok = create(gw.port, body_for(seed=34, max_tokens=8, x_fault=stall_for(2, 1000)))
    ev = Events(gw.port, sid)
    assert ev.resp.status == 200, ev.resp
    log = ev.rest()
    assert ev.ended and log[-1].event == "done", log[-2:]
    ev.close()
    ids = [e.id for e in log if e.id is not None]
    assert ids == list(range(1, len(ids) + 1)), ids
    poll(lambda: summary_response(gw.port, sid).status == 410, what="410 with retention 0")
    gone_everywhere(gw.port, sid)


def test_store_bound_evicts_the_oldest_finished_first(procs):
    gw = procs.gateway("--store-max-bytes", "65536", grace=60)
    running, _t = create(gw.port, body_for(seed=40, max_tokens=200, x_fault=STALL_FOREVER))
    sids = []
    for i in range(30):
        sid, _tok = create(gw.port, body_for(seed=100 + i, max_tokens=60))
        wait_state(gw.port, sid)
        sids.append(sid)
    status = [summary_response(gw.port, s).status for s in sids]
    print("store-bound statuses:", status)
    assert set(status) <= {200, 410}, status
    assert status[0] == 410, f"nothing evicted past the store bound: {status}"
    assert status[-1] == 200, status
    first_kept = status.index(200)
    assert status[first_kept:] == [200] * (len(status) - first_kept), (
        f"a newer finished stream went before an older one: {status}")
    gone_everywhere(gw.port, sids[0])
    _ev, log = read_all_events(gw.port, sids[-1])
    assert log[-1].event == "done"
    # The running stream, older than all of them, is still here.
    assert summary(gw.port, running)["state"] == "running"
    cancel(gw.port, running)
