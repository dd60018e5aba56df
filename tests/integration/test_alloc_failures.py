"""Issue 10, allocation failures: a server whose allocations fail on the
connection path still accepts, closes what it cannot serve, and serves the
connections after it.

The failures are planned with SL_FAIL_ALLOC=SITE:FIRST[-LAST] (core/alloc.h),
which only the test build (SL_ALLOC_FAULTS, the sanitized build ctest runs)
honours. Readiness is one TCP connect, so the plan's allocation 1 at
on_connection is that probe's and the test's connections start at 2.
"""

import pytest

from conftest import RawConn, Sim, assert_openai_error, stopping, Procs

GET_HEALTH = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"


class ConnectReadySim(Sim):
    """A simulator ready when it accepts a TCP connection: one connection,
    one on_connection allocation, before the test's own."""

    def _ready(self):
        import socket
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=2).close()
            return True
        except OSError:
            return False


@pytest.fixture
def faulty_sim():
    procs = Procs()

    def start(plan):
        s = ConnectReadySim(["--ttft-ms", "0", "--itl-ms", "1"], env={"SL_FAIL_ALLOC": plan})
        procs.sims.append(s)
        s.start()
        err = s.stderr_text()
        if "built without SL_ALLOC_FAULTS" in err:
            pytest.skip("this sluice has no allocation-failure hook (not the test build)")
        assert "those allocations will fail" in err, err
        return s

    yield from stopping(procs, start)


def assert_closed_without_answer(c):
    """The server ends the connection (FIN or reset) without one byte."""
    assert c.wait_closed(), "the server neither answered nor closed"
    assert not c.buf, bytes(c.buf[:200])


def assert_served(port):
    with RawConn(port) as c:
        c.send(GET_HEALTH)
        r = c.read_response()
        assert r is not None and r.status == 200, r


def test_connections_whose_state_cannot_be_allocated_are_closed_one_by_one(faulty_sim):
    s = faulty_sim("on_connection:2-4")
    for _ in range(3):
        with RawConn(s.port) as c:
            c.send(GET_HEALTH)
            assert_closed_without_answer(c)
    # The listener still accepts: the next connections are served.
    assert_served(s.port)
    assert_served(s.port)


def test_a_burst_of_failing_connections_is_closed_and_the_next_served(faulty_sim):
    s = faulty_sim("on_connection:2-4")
    # All three are in the accept queue together: refused in one go, or
    # as the spare handle frees up, never left waiting.
    conns = [RawConn(s.port) for _ in range(3)]
    try:
        for c in conns:
            c.send(GET_HEALTH)
        for c in conns:
            assert_closed_without_answer(c)
    finally:
        for c in conns:
            c.close()
    assert_served(s.port)


def test_a_request_whose_exchange_cannot_be_allocated_gets_503(faulty_sim):
    s = faulty_sim("start_exchange:1")
    with RawConn(s.port) as c:
        c.send(GET_HEALTH)
        r = c.read_response()
        assert r is not None, "closed without an answer"
        assert_openai_error(r, 503)
        assert r.header("Connection", "").lower() == "close", r
        assert c.wait_closed()
    assert_served(s.port)
