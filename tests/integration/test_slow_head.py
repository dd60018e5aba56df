"""Issue 10, "heads parse once": request heads that arrive in many small
writes, close to and over the header bound, answered as if sent at once.

The work bound itself (bytes read over all reads under 4 times the head)
is asserted by tests/unit/test_parser.c, where it can be counted; here the
server's side of it: the scan kept per connection, reset for every head.
"""

from conftest import RawConn, assert_openai_error

LIMIT = 65536
PIECE = 1024


def slow_head(size, path=b"/health", end=b"\r\n\r\n"):
    """A GET head of exactly size bytes (its end included): padding fields."""
    head = b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n"
    i = 0
    while size - len(head) - len(end) > 1100:
        head += b"X-Pad-%03d: " % i + b"p" * 985 + b"\r\n"
        i += 1
    head += b"X-Last: " + b"q" * (size - len(head) - len(end) - len(b"X-Last: ")) + end
    assert len(head) == size
    return head


def send_in_pieces(c, data, piece=PIECE):
    for i in range(0, len(data), piece):
        c.send(data[i:i + piece])


def test_slow_head_under_the_bound_answered_then_next_request_too(sim_factory):
    s = sim_factory("--max-header-bytes", str(LIMIT))
    with RawConn(s.port) as c:
        # 60 KiB, in 1 KiB writes; the head's end split across two writes.
        head = slow_head(60 * 1024)
        send_in_pieces(c, head[:-3])
        c.send(head[-3:])
        r = c.read_response()
        assert r is not None and r.status == 200, r
        # The same connection: the next head is scanned from its own start,
        # this time with bare LF line ends and a pipelined request behind it.
        head2 = slow_head(30 * 1024, end=b"\n\n").replace(b"\r\n", b"\n")
        send_in_pieces(c, head2 + b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n", 777)
        for _ in range(2):
            r = c.read_response()
            assert r is not None and r.status == 200, r


def test_slow_head_over_the_bound_is_431(sim_factory):
    s = sim_factory("--max-header-bytes", str(LIMIT))
    with RawConn(s.port) as c:
        # One byte over, slowly: refused when the bound is passed, before
        # the head's end arrives.
        head = slow_head(LIMIT + PIECE)
        send_in_pieces(c, head[:LIMIT + 1])
        r = c.read_response()
        assert r is not None, "closed without the 431 answer"
        assert_openai_error(r, 431)
        assert c.wait_closed()


def test_slow_malformed_head_refused_before_its_end(sim_factory):
    s = sim_factory("--max-header-bytes", str(LIMIT))
    with RawConn(s.port) as c:
        # A control byte in a field of a head that never ends: found once the
        # buffer has doubled past it, without the head's end or the bound.
        c.send(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Bad: a\x01b")
        send_in_pieces(c, b"X" * 8 * PIECE)
        r = c.read_response()
        assert r is not None, "closed without the 400 answer"
        assert_openai_error(r, 400)
