"""A tiny test upstream for the gateway tests (standard library only).

A threaded HTTP/1.1 server on raw sockets. It records every request it gets
(method, target, headers as sent, raw body bytes) and answers each one with
what the test asked for:

- Sse(data, pieces=(lo, hi), delay=s): a 200 text/event-stream, chunked, whose
  body is `data` byte for byte (optionally cut into pieces of lo..hi bytes,
  each sent as its own HTTP chunk and TCP segment, `delay` seconds apart);
- Canned(status, body, content_type): a fixed answer with Content-Length;
- Garbage(bytes, close=True): bytes that are not HTTP, then (optionally) close;
- Hang(): read the request and never answer (until the server stops);
- Close(): read the request and close the connection without a byte;
- Raw(parts, delay=s, close=False, reset=False): the bytes of each part as
  they are (a whole response, framing and all), `delay` seconds apart, then
  keep the connection (or close it; reset: with a TCP reset).

`handler(request) -> action` decides; the default answers GET /health with
200 and everything else with 404. Connections are kept alive between
requests (the gateway's libcurl reuses them).

Run standalone for manual poking: python3 replay_upstream.py FILE.sse [PORT]
"""

import random
import socket
import struct
import sys
import threading
import time


class HeaderLookup:
    """Case-insensitive lookups in self.headers, [(name, value)] as sent (for
    requests here and responses in conftest)."""

    def header(self, name, default=None):
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return default

    def header_all(self, name):
        name = name.lower()
        return [v for k, v in self.headers if k.lower() == name]


class Request(HeaderLookup):
    def __init__(self, method, target, version, headers, body):
        self.method = method
        self.target = target
        self.path = target.split("?", 1)[0]
        self.version = version
        self.headers = headers  # [(name, value)] as sent
        self.body = body  # raw bytes

    def __repr__(self):
        return f"<Request {self.method} {self.target} {self.headers} body={self.body[:200]!r}>"


class Sse:
    def __init__(self, data, pieces=None, delay=0.0, seed=1, end=True, headers=()):
        self.data = data if isinstance(data, bytes) else data.encode()
        self.pieces = pieces
        self.delay = delay
        self.seed = seed
        self.end = end  # send the chunked terminator (else: close after the data)
        self.headers = list(headers)

    def send(self, sock, server):
        head = ("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                "Cache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n"
                + "".join(f"{k}: {v}\r\n" for k, v in self.headers) + "\r\n")
        sock.sendall(head.encode())
        rnd = random.Random(self.seed)
        i = 0
        while i < len(self.data):
            n = len(self.data) - i if self.pieces is None else rnd.randint(*self.pieces)
            piece = self.data[i:i + n]
            i += n
            sock.sendall(b"%x\r\n" % len(piece) + piece + b"\r\n")
            if self.delay:
                time.sleep(self.delay)
        if self.end:
            sock.sendall(b"0\r\n\r\n")
            return True
        return False


class Canned:
    def __init__(self, status, body, content_type="application/json", reason=None, headers=()):
        self.status = status
        self.body = body if isinstance(body, bytes) else body.encode()
        self.content_type = content_type
        self.reason = reason or {200: "OK", 400: "Bad Request", 401: "Unauthorized",
                                 404: "Not Found", 429: "Too Many Requests",
                                 500: "Internal Server Error", 503: "Service Unavailable"
                                 }.get(status, "Status")
        self.headers = list(headers)

    def send(self, sock, server):
        head = (f"HTTP/1.1 {self.status} {self.reason}\r\n"
                f"Content-Type: {self.content_type}\r\nContent-Length: {len(self.body)}\r\n"
                + "".join(f"{k}: {v}\r\n" for k, v in self.headers) + "\r\n")
        sock.sendall(head.encode() + self.body)
        return True


class Garbage:
    def __init__(self, data=b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n\x00\x01\x02 not http\r\n\r\n",
                 close=True):
        self.data = data
        self.close = close

    def send(self, sock, server):
        sock.sendall(self.data)
        if not self.close:
            server.stopping.wait()
        return False


class Hang:
    def send(self, sock, server):
        server.stopping.wait()
        return False


class Close:
    def send(self, sock, server):
        return False


class Raw:
    def __init__(self, parts, delay=0.0, close=False, reset=False):
        self.parts = [parts] if isinstance(parts, bytes) else list(parts)
        self.delay = delay
        self.close = close or reset
        self.reset = reset

    def send(self, sock, server):
        for i, part in enumerate(self.parts):
            if i and self.delay:
                time.sleep(self.delay)
            sock.sendall(part)
        if self.reset:  # close with RST: linger on, zero seconds
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        return not self.close


def default_handler(req):
    if req.method == "GET" and req.path == "/health":
        return Canned(200, b"")
    return Canned(404, b'{"detail":"Not Found"}')


class ReplayUpstream:
    def __init__(self, handler=None):
        self.handler = handler or default_handler
        self.requests = []
        self.errors = []
        self.connections = 0
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._socks = []
        self._threads = []
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(256)
        self.port = self.lsock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._acceptor = threading.Thread(target=self._accept_loop, daemon=True)

    def start(self):
        self._acceptor.start()
        return self

    def posts(self, path=None):
        with self._lock:
            return [r for r in self.requests
                    if r.method == "POST" and (path is None or r.path == path)]

    def stop(self):
        self.stopping.set()
        try:
            self.lsock.close()
        except OSError:
            pass
        with self._lock:
            socks = list(self._socks)
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                s.close()
            except OSError:
                pass
        self._acceptor.join(timeout=5)
        for t in list(self._threads):
            t.join(timeout=5)

    # ------------------------------------------------------------------

    def _accept_loop(self):
        self.lsock.settimeout(0.05)  # a blocked accept() is not woken by close()
        while not self.stopping.is_set():
            try:
                s, _ = self.lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            s.settimeout(None)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._socks.append(s)
                self.connections += 1
            t = threading.Thread(target=self._serve, args=(s,), daemon=True)
            self._threads.append(t)
            t.start()

    def _serve(self, s):
        buf = bytearray()
        try:
            while not self.stopping.is_set():
                req = self._read_request(s, buf)
                if req is None:
                    return
                with self._lock:
                    self.requests.append(req)
                action = self.handler(req)
                if not action.send(s, self):
                    return
        except OSError:
            return
        except Exception as e:  # a bug in the test upstream: make it visible
            self.errors.append(repr(e))
        finally:
            try:
                s.close()
            except OSError:
                pass

    @staticmethod
    def _recv(s, buf):
        d = s.recv(65536)
        if not d:
            return False
        buf += d
        return True

    def _read_until(self, s, buf, sep):
        while True:
            i = buf.find(sep)
            if i >= 0:
                out = bytes(buf[:i + len(sep)])
                del buf[:i + len(sep)]
                return out
            if not self._recv(s, buf):
                return None

    def _read_exact(self, s, buf, n):
        while len(buf) < n:
            if not self._recv(s, buf):
                return None
        out = bytes(buf[:n])
        del buf[:n]
        return out

    def _read_request(self, s, buf):
        head = self._read_until(s, buf, b"\r\n\r\n")
        if head is None:
            return None
        lines = head[:-4].decode("latin-1").split("\r\n")
        method, target, version = lines[0].split(" ", 2)
        headers = []
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers.append((k, v.strip()))
        hmap = {k.lower(): v for k, v in headers}
        if hmap.get("expect", "").lower() == "100-continue":
            s.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        body = b""
        if "chunked" in hmap.get("transfer-encoding", "").lower():
            parts = []
            while True:
                line = self._read_until(s, buf, b"\r\n")
                if line is None:
                    return None
                size = int(line[:-2].split(b";")[0], 16)
                if size == 0:
                    while True:
                        t = self._read_until(s, buf, b"\r\n")
                        if t is None or t == b"\r\n":
                            break
                    break
                data = self._read_exact(s, buf, size + 2)
                if data is None:
                    return None
                parts.append(data[:-2])
            body = b"".join(parts)
        elif "content-length" in hmap:
            body = self._read_exact(s, buf, int(hmap["content-length"]))
            if body is None:
                return None
        return Request(method, target, version, headers, body)


if __name__ == "__main__":
    data = open(sys.argv[1], "rb").read()
    up = ReplayUpstream(lambda req: Sse(data) if req.method == "POST" else default_handler(req))
    if len(sys.argv) > 2:
        up.lsock.close()
        up.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        up.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        up.lsock.bind(("127.0.0.1", int(sys.argv[2])))
        up.lsock.listen(64)
        up.port = int(sys.argv[2])
    up.start()
    print(f"replaying {sys.argv[1]} on 127.0.0.1:{up.port}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        up.stop()
