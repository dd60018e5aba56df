"""The pool of sluice's own HTTP/1.1 upstream client (--upstream-http
native), bounded in time (issue 10): idle kept-alive connections are closed
after --upstream-idle-timeout-ms, and a request is sent again on a fresh
connection only when the upstream cannot have started a generation for it.

The upstream here is a raw-socket fake that counts generations (POSTs it
read in full) and connections, and does what each test scripts. These are
h1-only: libcurl keeps its own rules (it sends a POST again on a reused
connection that died before answering, test_upstream_http.py)."""

import os
import signal
import socket
import struct
import threading
import time

import pytest

from conftest import RawConn, assert_openai_error, chat_body, http, poll, request_bytes
from gateway_util import procs  # noqa: F401 (a fixture)

CHAT = "/v1/chat/completions"
ANSWER = b'{"object":"chat.completion","choices":[]}'
MODELS = b'{"object":"list","data":[]}'


def answer(body):
    return (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body)) + body


class GenUpstream:
    """Counts connections, generations (POSTs read in full) and closes seen
    from sluice's side. plan(conn, nth, method) says what to do with the
    nth request (from 0) of connection conn (from 0): "answer", "close"
    (after reading it, without a byte), "reset" (likewise, with a TCP
    reset) or "head_reset" (part of a response head, then a reset)."""

    def __init__(self, plan=lambda conn, nth, method: "answer"):
        self.plan = plan
        self.errors = []
        self.connections = 0
        self.generations = []  # (conn, path) of each POST read in full
        self.gets = []  # (conn, path)
        self.peer_closed = []  # conns sluice closed between requests
        self._lock = threading.Lock()
        self._socks = {}  # conn -> socket
        self._idle = set()  # conns waiting for their next request
        self._closed_here = set()  # conns close_idle closed
        self._stopping = threading.Event()
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(64)
        self.lsock.settimeout(0.05)
        self.port = self.lsock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    def _accept(self):
        while not self._stopping.is_set():
            try:
                s, _ = self.lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            s.settimeout(None)
            with self._lock:
                conn = self.connections
                self.connections += 1
                self._socks[conn] = s
            t = threading.Thread(target=self._serve, args=(conn, s), daemon=True)
            self._threads.append(t)
            t.start()

    def _serve(self, conn, s):
        buf = bytearray()
        nth = 0
        try:
            while True:
                with self._lock:
                    self._idle.add(conn)
                try:
                    head = self._read(s, buf, lambda: buf.find(b"\r\n\r\n"))
                finally:
                    with self._lock:
                        self._idle.discard(conn)
                if head is None:
                    with self._lock:
                        if not self._stopping.is_set() and buf == b"" and \
                                conn not in self._closed_here:
                            self.peer_closed.append(conn)
                    return
                end = head + 4
                lines = bytes(buf[:end]).decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                length = 0
                for line in lines[1:]:
                    k, _, v = line.partition(":")
                    if k.strip().lower() == "content-length":
                        length = int(v)
                if self._read(s, buf, lambda: 0 if len(buf) >= end + length else -1) is None:
                    return  # the request never came whole: no generation
                del buf[:end + length]
                with self._lock:
                    (self.generations if method == "POST" else self.gets).append((conn, path))
                what = self.plan(conn, nth, method)
                nth += 1
                if what == "answer":
                    s.sendall(answer(ANSWER if method == "POST" else MODELS))
                    continue
                if what == "head_reset":
                    s.sendall(b"HTTP/1.1 200 OK\r\nContent-Ty")
                    time.sleep(0.05)  # the bytes leave before the reset
                if what in ("reset", "head_reset"):
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                return  # "close" too
        except OSError:
            return
        except Exception as e:  # a bug in the fake: make it visible
            self.errors.append(repr(e))
        finally:
            s.close()

    @staticmethod
    def _read(s, buf, found):
        """Reads into buf until found() >= 0; its value, or None at EOF."""
        while True:
            i = found()
            if i >= 0:
                return i
            d = s.recv(65536)
            if not d:
                return None
            buf += d

    def close_idle(self, reset=False):
        """Closes every connection waiting for a request, as a server whose
        keep-alive timeout ran out does (reset: the FIN of the shutdown, then
        a reset when its thread closes it); returns sluice's ports of them."""
        with self._lock:
            socks = [self._socks[c] for c in self._idle]
            self._closed_here |= self._idle
        ports = []
        for s in socks:
            try:
                port = s.getpeername()[1]
                if reset:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                continue  # closed meanwhile by its thread
            ports.append(port)
        return ports

    def stop(self):
        self._stopping.set()
        self.lsock.close()
        with self._lock:
            socks = list(self._socks.values())
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for t in self._threads:
            t.join(timeout=5)


@pytest.fixture
def gen_upstream(procs):
    made = []

    def make(plan=lambda conn, nth, method: "answer"):
        up = GenUpstream(plan)
        procs.upstreams.append(up)  # stopped, and its errors reported, at teardown
        made.append(up)
        return up

    return make


def gateway(procs, up, *args):
    return procs.gateway_to(up, "--upstream-http", "native", *args)


def tcp_state(local_port, remote_port):
    """The TCP state of 127.0.0.1:local_port's connection to remote_port
    ("08" = CLOSE_WAIT: the peer closed, this end has not), or None."""
    want_local, want_rem = f":{local_port:04X}", f":{remote_port:04X}"
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            parts = line.split()
            if parts[1].endswith(want_local) and parts[2].endswith(want_rem):
                return parts[3]
    return None


def proc_state(pid):
    """The state letter of process pid ("T": stopped)."""
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0]


def post(conn):
    conn.send(request_bytes("POST", CHAT, chat_body("hi", stream=False)))
    r = conn.read_response()
    assert r is not None, "the gateway closed the connection without a response"
    return r


# --------------------------------------------------------------------------
# The idle timeout


def test_idle_connection_closed_after_idle_timeout(procs, gen_upstream):
    """A connection kept after an answer is reused while it is fresh, and
    closed by sluice once it has been idle for the timeout (long enough
    that a loaded machine still reuses it between the first requests)."""
    up = gen_upstream()
    gw = gateway(procs, up, "--upstream-idle-timeout-ms", "1000")
    with RawConn(gw.port) as c:
        for _ in range(3):
            r = post(c)
            assert r.status == 200 and r.body == ANSWER, r
        answered = time.monotonic()
        assert up.connections == 1  # reused while fresh
        poll(lambda: up.peer_closed, limit=10, what="sluice to close the idle connection")
        assert time.monotonic() - answered >= 0.9, "closed before the idle timeout"
        assert up.peer_closed == [0]
        r = post(c)
        assert r.status == 200 and r.body == ANSWER, r
    assert up.connections == 2
    assert len(up.generations) == 4


# --------------------------------------------------------------------------
# The retry rule: one generation per request the client sent


@pytest.mark.parametrize("reset", [False, True], ids=["fin", "rst"])
def test_stale_kept_alive_connection_is_not_written_to(procs, gen_upstream, reset):
    """The upstream closes a kept-alive connection while sluice is not
    looking (stopped), and a request is waiting for sluice when it goes on:
    the request goes on a fresh connection, once. Which sluice sees first
    varies, the close or the request; rounds make both orders come up."""
    rounds = 8
    up = gen_upstream()
    gw = gateway(procs, up)
    with RawConn(gw.port) as c:
        assert post(c).status == 200
        for _ in range(rounds):
            os.kill(gw.pid, signal.SIGSTOP)
            try:
                poll(lambda: proc_state(gw.pid) == "T", what="the gateway to stop")
                c.send(request_bytes("POST", CHAT, chat_body("hi", stream=False)))
                ports = poll(lambda: up.close_idle(reset=reset), what="an idle connection")
                assert len(ports) == 1
                if not reset:  # sluice's end has the close queued, unread
                    poll(lambda: tcp_state(ports[0], up.port) == "08", what="CLOSE_WAIT")
            finally:
                os.kill(gw.pid, signal.SIGCONT)
            r = c.read_response()
            assert r is not None and r.status == 200 and r.body == ANSWER, r
    assert up.generations == [(n, CHAT) for n in range(rounds + 1)]


def test_fresh_connection_closed_after_the_request_is_an_error(procs, gen_upstream):
    """The upstream reads the whole request on a new connection and closes
    without a byte: it may have started the generation, so the client gets
    the error and the upstream saw the request once."""
    up = gen_upstream(lambda conn, nth, method: "close")
    gw = gateway(procs, up)
    assert_openai_error(http(gw.port, "POST", CHAT, chat_body("hi", stream=False)), 502)
    assert up.generations == [(0, CHAT)]
    assert up.connections == 1


@pytest.mark.parametrize("reused", [False, True], ids=["fresh", "reused"])
def test_part_of_a_head_then_reset_is_an_error(procs, gen_upstream, reused):
    up = gen_upstream(lambda conn, nth, method: "head_reset" if nth == int(reused) else "answer")
    gw = gateway(procs, up)
    with RawConn(gw.port) as c:
        if reused:
            assert post(c).status == 200
        assert_openai_error(post(c), 502)
    assert up.generations == [(0, CHAT)] * (1 + int(reused))


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("how", ["close", "reset"])
def test_reused_connection_that_read_the_post_is_not_retried(procs, gen_upstream, stream, how):
    """The upstream reads a POST in full on a kept-alive connection and
    closes it without answering (it crashed, or was restarting): the
    generation may be running, so sending the POST again could run it
    twice. The client gets the error; the next request works."""
    up = gen_upstream(lambda conn, nth, method: how if (conn, nth) == (0, 1) else "answer")
    gw = gateway(procs, up)
    with RawConn(gw.port) as c:
        assert post(c).status == 200
        c.send(request_bytes("POST", CHAT, chat_body("hi", stream=stream)))
        assert_openai_error(c.read_response(), 502)
    assert up.generations == [(0, CHAT), (0, CHAT)]
    r = http(gw.port, "POST", CHAT, chat_body("hi", stream=False))
    assert r.status == 200 and r.body == ANSWER, r
    assert up.generations == [(0, CHAT), (0, CHAT), (1, CHAT)]


def test_reused_connection_that_read_a_get_is_retried(procs, gen_upstream):
    """A GET starts nothing: sent again on a fresh connection, unseen."""
    up = gen_upstream(lambda conn, nth, method: "close" if (conn, nth) == (0, 1) else "answer")
    gw = gateway(procs, up)
    with RawConn(gw.port) as c:
        for _ in range(2):
            c.send(request_bytes("GET", "/v1/models"))
            r = c.read_response()
            assert r is not None and r.status == 200 and r.body == MODELS, r
    assert up.gets == [(0, "/v1/models"), (0, "/v1/models"), (1, "/v1/models")]
