#!/usr/bin/python3
"""run.py - `make bench`: what sluice costs, side by side with talking to the
simulator directly, nginx, HAProxy and the Portkey gateway.

Owns: starting the upstream simulator and each gateway (pinned, on
127.0.0.1 only, under a temporary directory), warming up, driving
bench/loadgen, reading CPU and memory from /proc, the cancel-latency and
retention measurements, the micro-benchmark under callgrind, the targets
and the results (bench/results/<UTC time>.json, latest.md, itl.svg; a full
run also puts the table in bench/README.md). Does not own: the load (the
load generator measures every request), the gateways themselves.

Standard library only (Debian 12's /usr/bin/python3). `--quick` is for
development: 5 s measurements, one round, no 8,000-stream scenario.
bench/README.md says what every figure means.
"""

import argparse
import datetime
import http.client
import json
import math
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
RESULTS = os.path.join(BENCH, "results")
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024

ANSWER_TOKENS = 128
# The gateway alone on one core; the upstream, the load generator and this
# script on the other (the same for every path).
GATEWAY_CPU = 0
LOAD_CPU = 1
# Every request asks for a long answer ("long essay": the simulator's long
# kind, over 1,000 tokens) cut at max_tokens. ignore_eos makes the
# simulator send exactly max_tokens; Portkey drops ignore_eos, and the long
# kind still gives exactly max_tokens there.
PROMPT = "Write a long essay about streaming."
# Streams of the warm-up run before each measurement.
WARM_STREAMS = 20
PATHS = ["direct", "sluice", "nginx", "haproxy", "portkey"]
PATH_LABEL = {"direct": "direct", "sluice": "sluice", "nginx": "nginx", "haproxy": "HAProxy",
              "portkey": "Portkey"}
PATH_COLOR = {"direct": "#555555", "sluice": "#1f77b4", "nginx": "#2ca02c", "haproxy": "#ff7f0e",
              "portkey": "#9467bd"}


def now():
    return time.monotonic()


def fmt_s(s):
    s = max(0, int(s))
    return "%d:%02d" % (s // 60, s % 60)


# ---- progress -------------------------------------------------------------

class Progress:
    """One line on stderr, rewritten each second on a terminal (a line per
    step otherwise): elapsed, estimated time left, the step and its phase."""

    def __init__(self):
        self.t0 = now()
        self.tty = sys.stderr.isatty()
        self.left = 0.0
        self.step = ""
        self.phase = ""
        self.phase_t0 = now()
        self.phase_len = 0.0
        self.lock = threading.Lock()
        self.stop = threading.Event()
        if self.tty:
            threading.Thread(target=self._tick, daemon=True).start()

    def _line(self):
        el = now() - self.t0
        ph = self.phase
        if self.phase_len > 0:
            ph += " %d/%ds" % (min(now() - self.phase_t0, self.phase_len), self.phase_len)
        return "bench [%s elapsed, ~%s left] %s%s" % (fmt_s(el), fmt_s(self.left), self.step,
                                                     (" · " + ph) if ph else "")

    def _tick(self):
        while not self.stop.wait(1.0):
            with self.lock:
                sys.stderr.write("\r\033[K" + self._line())
                sys.stderr.flush()

    def set(self, step=None, phase="", length=0.0, left=None):
        with self.lock:
            if step is not None:
                self.step = step
            if left is not None:
                self.left = left
            self.phase, self.phase_t0, self.phase_len = phase, now(), length
            if self.tty:
                sys.stderr.write("\r\033[K" + self._line())
            elif step is not None:
                sys.stderr.write(self._line() + "\n")
            sys.stderr.flush()

    def say(self, msg):
        with self.lock:
            sys.stderr.write(("\r\033[K" if self.tty else "") + msg + "\n")
            if self.tty:
                sys.stderr.write(self._line())
            sys.stderr.flush()

    def done(self):
        self.stop.set()
        with self.lock:
            if self.tty:
                sys.stderr.write("\r\033[K")
            sys.stderr.flush()


# ---- /proc ----------------------------------------------------------------

def proc_ticks(pid):
    """utime + stime of a process (all its threads), in clock ticks; as
    bench/cpu.sh reads them. 0 when it is gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            s = f.read()
    except OSError:
        return 0
    fields = s[s.rindex(")") + 2:].split()
    return int(fields[11]) + int(fields[12])


def proc_rss_kb(pid):
    try:
        with open("/proc/%d/statm" % pid) as f:
            return int(f.read().split()[1]) * PAGE_KB
    except OSError:
        return 0


def descendants(root):
    """root and every process under it."""
    children = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                s = f.read()
        except OSError:
            continue
        ppid = int(s[s.rindex(")") + 2:].split()[1])
        children.setdefault(ppid, []).append(int(d))
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def cpu_busy_ticks():
    """Busy ticks (all but idle and iowait) per line of /proc/stat: "cpu",
    "cpu0", "cpu1", ..."""
    out = {}
    with open("/proc/stat") as f:
        for line in f:
            if not line.startswith("cpu"):
                break
            name, *v = line.split()
            v = [int(x) for x in v]
            out[name] = sum(v[:8]) - v[3] - v[4]  # user..steal less idle, iowait
    return out


def machine():
    model = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        nproc = subprocess.run(["nproc", "--all"], capture_output=True, text=True).stdout.strip()
    except OSError:
        nproc = str(os.cpu_count())
    return {"nproc": int(nproc or 0), "cpu_model": model, "kernel": os.uname().release,
            "python": sys.version.split()[0]}


def versions(portkey_entry):
    def first_line(cmd):
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
            return (r.stdout + r.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return "missing"
    v = {"nginx": first_line(["nginx", "-v"]).replace("nginx version: nginx/", ""),
         "haproxy": re.sub(r"^HAProxy version (\S+).*", r"\1", first_line(["haproxy", "-v"])),
         "node": first_line(["node", "--version"]),
         "valgrind": first_line(["valgrind", "--version"])}
    try:
        with open(os.path.join(BENCH, "node_modules/@portkey-ai/gateway/package.json")) as f:
            v["portkey"] = json.load(f).get("version", "?")
    except OSError:
        v["portkey"] = "missing"
    rev = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                         capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--", "src"],
                           capture_output=True, text=True).stdout.strip()
    v["sluice"] = (rev or "?") + ("+dirty src" if dirty else "")
    return v


# ---- processes ------------------------------------------------------------

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, timeout=15.0):
    end = now() + timeout
    while now() < end:
        if proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


class Proc:
    """A process this script started (in its own session), with its log."""

    def __init__(self, name, argv, tmp, cpu=None, env=None, cwd=None):
        self.name = name
        self.log = os.path.join(tmp, "%s.log" % name)
        if cpu is not None:
            argv = ["taskset", "-c", str(cpu)] + argv  # taskset execs: same pid
        with open(self.log, "ab") as log:
            self.p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                      start_new_session=True, env=env, cwd=cwd)
        self.pid = self.p.pid

    def pids(self):
        return descendants(self.pid) if self.p.poll() is None else []

    def ticks(self):
        return sum(proc_ticks(p) for p in self.pids())

    def rss_kb(self):
        return sum(proc_rss_kb(p) for p in self.pids())

    def poll(self):
        return self.p.poll()

    def log_tail(self, n=5):
        try:
            with open(self.log, errors="replace") as f:
                return " | ".join(f.read().strip().splitlines()[-n:])
        except OSError:
            return ""

    def stop(self):
        if self.p.poll() is None:
            try:
                self.p.send_signal(signal.SIGTERM)
                self.p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        # Whatever is left of the session this script made for it.
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass


class Bench:
    def __init__(self, args):
        self.args = args
        self.quick = args.quick
        self.tmp = tempfile.mkdtemp(prefix="sluice-bench-")
        self.sluice = os.path.join(ROOT, args.build, "sluice")
        self.loadgen = os.path.join(BENCH, "loadgen")
        self.micro = os.path.join(BENCH, "micro")
        self.procs = []
        self.sim = None
        self.sim_port = None
        self.sim_itl = None
        self.progress = Progress()
        self.notes = []
        self.hard_nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        self.portkey_entry = self._portkey_entry()
        self.pin = len(os.sched_getaffinity(0)) >= 2 and (os.cpu_count() or 1) >= 2
        self.bodies = {}

    # -- setup --

    def _portkey_entry(self):
        d = os.path.join(BENCH, "node_modules/@portkey-ai/gateway")
        try:
            with open(os.path.join(d, "package.json")) as f:
                pkg = json.load(f)
            b = pkg.get("bin")
            rel = b if isinstance(b, str) else (list(b.values())[0] if b else None)
            rel = rel or pkg.get("main") or "build/start-server.js"
        except (OSError, ValueError):
            rel = "build/start-server.js"
        return os.path.join(d, rel)

    def body(self, max_tokens):
        if max_tokens not in self.bodies:
            path = os.path.join(self.tmp, "body-%d.json" % max_tokens)
            with open(path, "w") as f:
                json.dump({"model": "Qwen/Qwen3-0.6B",
                           "messages": [{"role": "user", "content": PROMPT}],
                           "stream": True, "max_tokens": max_tokens, "ignore_eos": True}, f)
            self.bodies[max_tokens] = path
        return self.bodies[max_tokens]

    def cpu(self, which):
        return which if self.pin else None

    def note(self, msg):
        self.notes.append(msg)
        self.progress.say("bench: " + msg)

    # -- the upstream --

    def start_sim(self, itl_ms, extra=()):
        if self.sim and self.sim_itl == itl_ms and self.sim.poll() is None and not extra:
            return
        self.stop_sim()
        port = free_port()
        argv = [self.sluice, "sim", "--listen", "127.0.0.1:%d" % port, "--ttft-ms", "0",
                "--itl-ms", str(itl_ms), "--jitter-ms", "0", "--max-num-seqs", "1000000",
                "--itl-load-pct", "0"] + list(extra)
        self.sim = Proc("sim-itl%d" % itl_ms, argv, self.tmp, cpu=self.cpu(LOAD_CPU))
        if not wait_port(port, self.sim):
            raise RuntimeError("the simulator did not start: " + self.sim.log_tail())
        self.sim_port, self.sim_itl = port, itl_ms

    def stop_sim(self):
        if self.sim:
            self.sim.stop()
        self.sim = None

    def sim_metrics(self, conn):
        conn.request("GET", "/metrics")
        r = conn.getresponse()
        return r.read().decode("utf-8", "replace")

    # -- gateways --

    def start_gateway(self, path, retention=0, upstream_port=None):
        """Starts a fresh gateway in front of the simulator; returns (Proc,
        url base) or (None, simulator url) for direct."""
        up = upstream_port or self.sim_port
        if path == "direct":
            return None, "http://127.0.0.1:%d" % up
        port = free_port()
        gw_cpu = self.cpu(GATEWAY_CPU)
        env = None
        cwd = None
        if path == "sluice":
            argv = [self.sluice, "--listen", "127.0.0.1:%d" % port,
                    "--upstream", "http://127.0.0.1:%d" % up]
            if retention is not None:
                argv += ["--retention-s", str(retention)]
        elif path == "nginx":
            d = tempfile.mkdtemp(prefix="nginx-", dir=self.tmp)
            conf = fill("nginx.conf.in", {
                "DIR": d, "PORT": port, "UPSTREAM_PORT": up, "NOFILE": self.hard_nofile,
                "WORKER_CONNECTIONS": max(1024, self.hard_nofile - 100),
                "UPSTREAM_KEEPALIVE": 10000})
            cf = os.path.join(d, "nginx.conf")
            with open(cf, "w") as f:
                f.write(conf)
            argv = ["nginx", "-p", d + "/", "-e", os.path.join(d, "error.log"), "-c", cf,
                    "-g", "daemon off;"]
        elif path == "haproxy":
            conf = fill("haproxy.cfg.in", {"PORT": port, "UPSTREAM_PORT": up,
                                           "MAXCONN": max(1000, (self.hard_nofile - 200) // 2)})
            cf = os.path.join(self.tmp, "haproxy-%d.cfg" % port)
            with open(cf, "w") as f:
                f.write(conf)
            argv = ["haproxy", "-db", "-f", cf]
        elif path == "portkey":
            if not os.path.exists(self.portkey_entry):
                raise RuntimeError("Portkey is not installed (bash bench/install.sh)")
            argv = ["node", "--import", "file://" + os.path.join(BENCH, "portkey-loopback.mjs"),
                    self.portkey_entry, "--port=%d" % port, "--headless"]
            env = dict(os.environ, BENCH_LISTEN_HOST="127.0.0.1")
            cwd = self.tmp
        else:
            raise ValueError(path)
        gw = Proc("%s-%d" % (path, port), argv, self.tmp, cpu=gw_cpu, env=env, cwd=cwd)
        if not wait_port(port, gw, timeout=30):
            gw.stop()
            raise RuntimeError("%s did not start: %s" % (path, gw.log_tail()))
        if path == "portkey":
            self.check_loopback_only(gw, port)
        return gw, "http://127.0.0.1:%d" % port

    def check_loopback_only(self, gw, port):
        """Portkey binds every interface unless told: check that it does not."""
        try:
            out = subprocess.run(["ss", "-Hltn", "sport = :%d" % port], capture_output=True,
                                 text=True, timeout=5).stdout
        except (OSError, subprocess.TimeoutExpired):
            return
        for line in out.splitlines():
            local = line.split()[3] if len(line.split()) > 3 else ""
            if local and not local.startswith("127.0.0.1:"):
                gw.stop()
                raise RuntimeError("Portkey listens on %s, not 127.0.0.1 only" % local)

    def headers(self, path):
        if path != "portkey":
            return []
        return ["x-portkey-provider: openai",
                "x-portkey-custom-host: http://127.0.0.1:%d/v1" % self.sim_port,
                "Authorization: Bearer sk-bench"]

    # -- the load generator --

    def loadgen_argv(self, url, path, streams, duration, ramp, drain, max_tokens, out,
                     samples=None, extra=()):
        argv = [self.loadgen, "--url", url + "/v1/chat/completions",
                "--concurrency", str(streams), "--duration-s", "%.3f" % duration,
                "--ramp-s", "%.3f" % ramp, "--drain-s", "%.3f" % drain,
                "--body-file", self.body(max_tokens), "--out", out, "--quiet"]
        for h in self.headers(path):
            argv += ["--header", h]
        if samples:
            argv += ["--samples", samples]
        return argv + list(extra)

    def run_loadgen(self, argv, name):
        lg = Proc(name, argv, self.tmp, cpu=self.cpu(LOAD_CPU))
        try:
            lg.p.wait()
        finally:
            lg.stop()  # only if interrupted: it has exited otherwise
        return lg

    def warm(self, path, url, itl_ms):
        """A short run of 20 streams of 16 tokens: code paths, upstream
        connections and (for node) the JIT warm before the measurement. Few
        streams, so that the heap is not grown for the measured load before
        the idle RSS is read (freed memory mostly stays in RSS); the
        measured run's ramp, which is not counted, warms the rest."""
        out = os.path.join(self.tmp, "warm-%s.json" % path)
        dur = 1.5 if itl_ms <= 20 else 3.0
        argv = self.loadgen_argv(url, path, WARM_STREAMS, dur, 0, 10 + 16 * itl_ms / 1000,
                                 16, out)
        self.progress.set(phase="%s warm-up" % PATH_LABEL[path], length=dur + 16 * itl_ms / 1000)
        self.run_loadgen(argv, "warm-%s" % path)
        r = read_json(out)
        return (r or {}).get("errors", {}).get("requests", -1)

    # -- one measurement --

    def measure(self, scen, path, round_no):
        """A fresh gateway, a warm-up, its idle RSS, then C streams for the
        scenario's window with /proc read at the window's start, middle and
        end."""
        C, itl = scen["streams"], scen["itl_ms"]
        ramp = ANSWER_TOKENS * itl / 1000.0
        window = scen["window_s"]
        drain = ramp + 10
        res = {"path": path, "round": round_no, "streams": C, "itl_ms": itl, "ramp_s": ramp,
               "window_s": window}
        self.start_sim(itl)
        try:
            gw, url = self.start_gateway(path)
        except RuntimeError as e:
            self.note("%s: %s" % (path, e))
            res["failed"] = str(e)
            return res
        lg = None
        try:
            res["warmup_errors"] = self.warm(path, url, itl)
            time.sleep(0.5)
            res["idle_rss_kb"] = gw.rss_kb() if gw else None
            tag = "%s-%d-%s-r%d" % (scen["name"], C, path, round_no)
            out = os.path.join(self.tmp, tag + ".json")
            samples = os.path.join(self.tmp, tag + ".itl")
            argv = self.loadgen_argv(url, path, C, ramp + window, ramp, drain, ANSWER_TOKENS,
                                     out, samples)
            self.progress.set(phase="%s ramp %.1fs + window" % (PATH_LABEL[path], ramp),
                              length=ramp + window)
            lg = Proc("lg-" + tag, argv, self.tmp, cpu=self.cpu(LOAD_CPU))
            t0 = now()
            marks = {}

            def snap():
                return {"t": now(), "gw": gw.ticks() if gw else 0, "sim": self.sim.ticks(),
                        "lg": proc_ticks(lg.pid), "self": proc_ticks(os.getpid()),
                        "stat": cpu_busy_ticks()}

            for name, at in (("a", ramp), ("mid", ramp + window / 2), ("b", ramp + window)):
                while now() < t0 + at and lg.poll() is None:
                    time.sleep(min(0.05, max(0.0, t0 + at - now())))
                if lg.poll() is not None:
                    break
                marks[name] = snap()
                if name == "mid":
                    res["open_rss_kb"] = gw.rss_kb() if gw else None
            self.progress.set(phase="%s drain" % PATH_LABEL[path], length=drain)
            lg.p.wait()
            r = read_json(out)
            if r is None or lg.p.returncode not in (0, None):
                res["failed"] = "loadgen exit %s: %s" % (lg.p.returncode, lg.log_tail())
                self.note("%s %s: %s" % (scen["label"], path, res["failed"]))
                return res
            res["loadgen"] = r
            res["itl_ccdf"] = ccdf_points(samples)
            try:
                os.unlink(samples)
            except OSError:
                pass
            if "a" in marks and "b" in marks:
                a, b = marks["a"], marks["b"]
                dt = b["t"] - a["t"]
                gw_s = (b["gw"] - a["gw"]) / CLK_TCK
                ours = (b["gw"] - a["gw"] + b["sim"] - a["sim"] + b["lg"] - a["lg"] +
                        b["self"] - a["self"]) / CLK_TCK
                busy = (b["stat"]["cpu"] - a["stat"]["cpu"]) / CLK_TCK
                c0 = "cpu%d" % GATEWAY_CPU
                c1 = "cpu%d" % LOAD_CPU
                tokens = r["tokens_per_s"] * dt
                res["cpu"] = {
                    "window_measured_s": dt,
                    "gateway_s": gw_s,
                    "gateway_cores": gw_s / dt,
                    "gateway_s_per_mtok": gw_s / tokens * 1e6 if gw and tokens > 0 else None,
                    "upstream_s": (b["sim"] - a["sim"]) / CLK_TCK,
                    "loadgen_s": (b["lg"] - a["lg"]) / CLK_TCK,
                    "other_s": busy - ours,
                    "other_cores": (busy - ours) / dt,
                }
                if c0 in a["stat"] and c1 in a["stat"]:
                    b0 = (b["stat"][c0] - a["stat"][c0]) / CLK_TCK
                    b1 = (b["stat"][c1] - a["stat"][c1]) / CLK_TCK
                    res["cpu"]["gateway_core_busy"] = b0 / dt
                    res["cpu"]["load_core_busy"] = b1 / dt
                    res["cpu"]["other_on_gateway_core"] = (b0 - gw_s) / dt if self.pin else None
            if gw and res.get("open_rss_kb") is not None and res.get("idle_rss_kb") is not None:
                res["mem_per_stream_kib"] = (res["open_rss_kb"] - res["idle_rss_kb"]) / C
            return res
        finally:
            if lg:
                lg.stop()  # only if interrupted: it has exited otherwise
            if gw:
                gw.stop()

    # -- cancel latency --

    def cancel_latency(self, path, n_cancels, after_tokens=10):
        """One stream at a time, each cancelled after after_tokens tokens;
        the simulator's abort counter polled every millisecond."""
        self.start_sim(20)
        res = {"path": path, "cancel_after_tokens": after_tokens}
        try:
            gw, url = self.start_gateway(path)
        except RuntimeError as e:
            res["failed"] = str(e)
            self.note("cancel %s: %s" % (path, e))
            return res
        stop = threading.Event()
        polls = []  # (t_send_ns, t_recv_ns, aborts, running)
        pat_abort = re.compile(r'^vllm:request_success_total\{[^}]*finished_reason="abort"[^}]*\}'
                               r' ([0-9.eE+-]+)', re.M)
        pat_run = re.compile(r'^vllm:num_requests_running\{[^}]*\} ([0-9.eE+-]+)', re.M)

        def poll():
            conn = http.client.HTTPConnection("127.0.0.1", self.sim_port, timeout=5)
            while not stop.is_set():
                t1 = time.monotonic_ns()
                try:
                    text = self.sim_metrics(conn)
                except (OSError, http.client.HTTPException):
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", self.sim_port, timeout=5)
                    continue
                t2 = time.monotonic_ns()
                ma, mr = pat_abort.search(text), pat_run.search(text)
                polls.append((t1, t2, float(ma.group(1)) if ma else -1,
                              float(mr.group(1)) if mr else -1))
                time.sleep(0.001)
            conn.close()

        try:
            self.warm(path, url, 20)
            time.sleep(0.3)
            th = threading.Thread(target=poll, daemon=True)
            th.start()
            time.sleep(0.2)
            clog = os.path.join(self.tmp, "cancel-%s.log" % path)
            out = os.path.join(self.tmp, "cancel-%s.json" % path)
            per = after_tokens * 0.020 + 0.01
            dur = n_cancels * per
            argv = self.loadgen_argv(url, path, 1, dur, 0, 5, ANSWER_TOKENS, out,
                                     extra=["--cancel-after-tokens", str(after_tokens),
                                            "--cancel-log", clog])
            self.progress.set(phase="%s cancels" % PATH_LABEL[path], length=dur)
            t_start = time.monotonic_ns()
            lg = self.run_loadgen(argv, "cancel-%s" % path)
            t_end = time.monotonic_ns()
            time.sleep(0.5)  # the last abort
            stop.set()
            th.join(timeout=5)
            r = read_json(out)
            try:
                with open(clog) as f:
                    cancels = [int(x) for x in f.read().split()]
            except OSError:
                cancels = []
            if r is None or not cancels:
                res["failed"] = "no cancels (loadgen exit %s: %s)" % (lg.p.returncode,
                                                                      lg.log_tail())
                return res
            if not all(t_start <= c <= t_end for c in cancels):
                res["failed"] = "cancel-log times are not CLOCK_MONOTONIC"
                return res
            # Each step of the abort counter: it moved after the previous
            # poll was sent and before this poll's answer came back.
            aborts, resolution = [], []
            base = None
            for i in range(1, len(polls)):
                prev, cur = polls[i - 1], polls[i]
                if base is None:
                    base = prev[2]
                if cur[2] > prev[2]:
                    lo, hi = prev[0], cur[1]
                    for _ in range(int(round(cur[2] - prev[2]))):
                        aborts.append((lo + hi) / 2)
                        resolution.append((hi - lo) / 2)
            gaps = [p2[0] - p1[0] for p1, p2 in zip(polls, polls[1:])]
            lat = []
            for c, a in zip(cancels, aborts):
                lat.append((a - c) / 1e6)
            res.update({
                "cancels": len(cancels), "aborts_seen": len(aborts), "polls": len(polls),
                "poll_interval_ms_p50": pct(gaps, 50) / 1e6 if gaps else None,
                "resolution_ms_p50": pct(resolution, 50) / 1e6 if resolution else None,
                "latency_ms": sorted(lat),
                "p50_ms": pct(lat, 50) if lat else None,
                "p99_ms": pct(lat, 99) if lat else None,
                "max_ms": max(lat) if lat else None,
                "loadgen_errors": r.get("errors", {}).get("requests"),
            })
            if len(aborts) != len(cancels):
                res["warning"] = ("%d cancels but the simulator counted %d aborts: paired in order"
                                  % (len(cancels), len(aborts)))
            return res
        finally:
            stop.set()
            if gw:
                gw.stop()

    # -- bytes kept per finished stream --

    def retention(self, seconds):
        """sluice with retention on (its default) and off, the same load on
        each (50 streams of 128 tokens at 1 ms, so thousands finish): the
        difference of their RSS afterwards, over the streams finished."""
        port = free_port()
        sim = Proc("sim-retention", [self.sluice, "sim", "--listen", "127.0.0.1:%d" % port,
                                     "--ttft-ms", "0", "--itl-ms", "1", "--jitter-ms", "0",
                                     "--max-num-seqs", "1000000", "--itl-load-pct", "0"],
                   self.tmp, cpu=self.cpu(LOAD_CPU))
        res = {"streams_at_once": 50, "itl_ms": 1, "run_s": seconds}
        try:
            if not wait_port(port, sim):
                res["failed"] = "simulator: " + sim.log_tail()
                return res
            for mode, ret in (("off", 0), ("on", None)):
                gw, url = self.start_gateway("sluice", retention=ret, upstream_port=port)
                try:
                    self.progress.set(phase="sluice retention %s" % mode, length=seconds + 1.5)
                    warm = os.path.join(self.tmp, "ret-warm-%s.json" % mode)
                    self.run_loadgen(self.loadgen_argv(url, "sluice", 10, 0.5, 0, 10, 16, warm),
                                     "ret-warm-%s" % mode)
                    time.sleep(0.3)
                    idle = gw.rss_kb()
                    out = os.path.join(self.tmp, "ret-%s.json" % mode)
                    self.run_loadgen(self.loadgen_argv(url, "sluice", 50, seconds, 0, 10,
                                                       ANSWER_TOKENS, out), "ret-%s" % mode)
                    time.sleep(1.0)
                    after = gw.rss_kb()
                    r = read_json(out) or {}
                    res[mode] = {"idle_rss_kb": idle, "after_rss_kb": after,
                                 "streams": r.get("requests", 0) + r.get("excluded_ramp", 0),
                                 "errors": r.get("errors", {}).get("requests")}
                finally:
                    gw.stop()
            on, off = res["on"], res["off"]
            n = on["streams"]
            if n > 0:
                res["streams"] = n
                # What the same load leaves behind without retention (heap
                # grown for 50 streams at once) is not kept per stream.
                res["bytes_per_stream"] = ((on["after_rss_kb"] - on["idle_rss_kb"]) -
                                           (off["after_rss_kb"] - off["idle_rss_kb"])) * 1024 / n
                res["bytes_per_stream_raw"] = (on["after_rss_kb"] - on["idle_rss_kb"]) * 1024 / n
            return res
        except RuntimeError as e:
            res["failed"] = str(e)
            return res
        finally:
            sim.stop()

    # -- micro-benchmark --

    def micro_bench(self):
        res = {}
        if not os.path.exists(self.micro):
            return {"failed": "bench/micro is not built (make -C bench)"}
        fixture = os.environ.get("SL_FIXTURES") or os.path.join(ROOT, "tests", "fixtures", "vllm")
        env = dict(os.environ, SL_FIXTURES=fixture)
        events = 50000 if self.quick else 200000
        self.progress.set(phase="micro: timing", length=8)
        cmd = [self.micro, "--json", "--events", str(events)]
        if self.pin:
            cmd = ["taskset", "-c", str(GATEWAY_CPU)] + cmd
        r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
        if r.returncode != 0:
            return {"failed": "micro: " + r.stderr.strip()}
        timing = json.loads(r.stdout)
        res["fixture"] = timing["fixture"]
        res["fixture_events"] = timing["fixture_events"]
        res["stages"] = {k: {"ns_per_event": v["ns_per_event"]}
                         for k, v in timing["stages"].items()}
        if shutil.which("valgrind") is None:
            res["callgrind"] = "valgrind missing"
            return res
        cg_events = 5000 if self.quick else 20000
        for stage in res["stages"]:
            self.progress.set(phase="micro: callgrind %s" % stage, length=5)
            outf = os.path.join(self.tmp, "callgrind.%s" % stage)
            r = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=" + outf,
                                "--collect-atstart=no", "--toggle-collect=micro_" + stage,
                                self.micro, "--stage", stage, "--events", str(cg_events)],
                               capture_output=True, text=True, env=env, timeout=600)
            ir = None
            try:
                with open(outf) as f:
                    for line in f:
                        if line.startswith("summary:") or line.startswith("totals:"):
                            ir = int(line.split()[1])
            except OSError:
                pass
            ev = None
            m = re.match(r"(\S+) (\d+)", r.stdout.strip())
            if m:
                ev = int(m.group(2))
            if ir is not None and ev:
                res["stages"][stage]["instructions_per_event"] = ir / ev
        return res

    def cleanup(self):
        self.stop_sim()
        if not self.args.keep_tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)


# ---- helpers --------------------------------------------------------------

def fill(template, values):
    with open(os.path.join(BENCH, template)) as f:
        s = f.read()
    for k, v in values.items():
        s = s.replace("@%s@" % k, str(v))
    left = re.findall(r"@[A-Z_]+@", s)
    if left:
        raise RuntimeError("%s: unfilled %s" % (template, ", ".join(sorted(set(left)))))
    return s


def read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def pct(values, p):
    """Nearest rank, as the load generator computes its percentiles."""
    v = sorted(values)
    if not v:
        return None
    k = max(0, min(len(v) - 1, math.ceil(p / 100.0 * len(v)) - 1))
    return v[k]


def median(values):
    v = [x for x in values if x is not None]
    return statistics.median(v) if v else None


# Exceedance levels of the ITL plot: 1 down to 1e-6, 20 a decade.
CCDF_LEVELS = [10 ** (-k / 20.0) for k in range(0, 121)]


def ccdf_points(samples_path):
    """[(q, ms)]: the gap that a fraction q of the gaps exceeds, from the
    load generator's sorted samples (one ms value a line)."""
    try:
        with open(samples_path, "rb") as f:
            lines = f.read().split()
    except OSError:
        return []
    n = len(lines)
    if n == 0:
        return []
    pts = []
    for q in CCDF_LEVELS:
        if q < 1.0 / n:
            break
        k = min(n - 1, max(0, math.ceil((1 - q) * n)))
        pts.append((q, float(lines[k])))
    pts.append((1.0 / n, float(lines[-1])))
    return pts


def median_ccdf(curves):
    """The median over rounds of each level's gap."""
    curves = [c for c in curves if c]
    if not curves:
        return []
    n = min(len(c) for c in curves)
    return [(curves[0][i][0], statistics.median(c[i][1] for c in curves)) for i in range(n)]


def sub(a, b):
    return None if a is None or b is None else a - b


# ---- summaries ------------------------------------------------------------

def summarize(scen, runs):
    """Per path: medians over rounds of each figure, added latencies
    against direct in the same round."""
    direct = {r["round"]: r for r in runs if r["path"] == "direct" and "loadgen" in r}
    out = {}
    for path in scen["paths"]:
        rs = [r for r in runs if r["path"] == path]
        ok = [r for r in rs if "loadgen" in r]
        s = {"rounds": len(rs), "rounds_ok": len(ok)}
        if not ok:
            s["failed"] = "; ".join(r.get("failed", "?") for r in rs) or "not run"
            out[path] = s
            continue
        for kind in ("ttft_ms", "itl_ms"):
            for q in ("p50", "p99", "max"):
                s["%s_%s" % (kind, q)] = median([r["loadgen"][kind][q] for r in ok])
                if path != "direct":
                    s["added_%s_%s" % (kind, q)] = median(
                        [sub(r["loadgen"][kind][q], direct[r["round"]]["loadgen"][kind][q])
                         for r in ok if r["round"] in direct])
        s["tokens_per_s"] = median([r["loadgen"]["tokens_per_s"] for r in ok])
        s["requests"] = sum(r["loadgen"]["requests"] for r in ok)
        s["errors"] = sum(r["loadgen"]["errors"]["requests"] for r in ok)
        kinds = {}
        for r in ok:
            for k, v in r["loadgen"]["errors"].items():
                if k != "requests" and v:
                    kinds[k] = kinds.get(k, 0) + v
        s["error_kinds"] = kinds
        s["tokens"] = sum(r["loadgen"]["tokens"] for r in ok)
        s["tokens_expected"] = s["requests"] * ANSWER_TOKENS
        cpu = [r["cpu"] for r in ok if "cpu" in r]
        for k in ("gateway_s_per_mtok", "gateway_cores", "other_cores", "other_on_gateway_core",
                  "load_core_busy"):
            s[k] = median([c.get(k) for c in cpu])
        s["mem_per_stream_kib"] = median([r.get("mem_per_stream_kib") for r in ok])
        s["idle_rss_kib"] = median([r.get("idle_rss_kb") for r in ok])
        s["itl_ccdf"] = median_ccdf([r.get("itl_ccdf") for r in ok])
        out[path] = s
    return out


def targets(results, quick):
    """The issue's targets, from the 1,000-stream medians."""
    t = []
    s1k = results["scenarios"].get("s1000", {}).get("summary", {})
    sl, ng, hp, pk = (s1k.get(p, {}) for p in ("sluice", "nginx", "haproxy", "portkey"))

    def cmp(name, a, b, ok, fmt, unit):
        if a is None or b is None:
            t.append({"target": name, "sluice": a, "bound": b, "result": "n/a"})
        else:
            t.append({"target": name, "sluice": a, "bound": b, "result": "PASS" if ok(a, b)
                      else "MISS", "text": (fmt % (a, b)) + unit})

    g = "gateway_s_per_mtok"
    cmp("CPU s/M tokens ≤ nginx's", sl.get(g), ng.get(g), lambda a, b: a <= b,
        "%.2f vs %.2f", " s/M tok")
    cmp("CPU s/M tokens ≤ HAProxy's", sl.get(g), hp.get(g), lambda a, b: a <= b,
        "%.2f vs %.2f", " s/M tok")
    cmp("CPU s/M tokens ≤ 1/10 of Portkey's", sl.get(g),
        pk.get(g) / 10 if pk.get(g) is not None else None, lambda a, b: a <= b,
        "%.2f vs %.2f", " s/M tok")
    for kind, label in (("itl_ms", "ITL"), ("ttft_ms", "TTFT")):
        k = "added_%s_p99" % kind
        cmp("added %s p99 ≤ nginx's + 1 ms (1,000 streams)" % label, sl.get(k),
            ng.get(k) + 1 if ng.get(k) is not None else None, lambda a, b: a <= b,
            "%+.2f vs %+.2f", " ms")
    m = "mem_per_stream_kib"
    cmp("memory per open stream ≤ 1.5× nginx's", sl.get(m),
        ng.get(m) * 1.5 if ng.get(m) is not None else None, lambda a, b: a <= b,
        "%.1f vs %.1f", " KiB")
    cmp("memory per open stream ≤ nginx's", sl.get(m), ng.get(m), lambda a, b: a <= b,
        "%.1f vs %.1f", " KiB")
    c = results.get("cancel", {}).get("sluice", {})
    cmp("cancel latency p99 ≤ 50 ms", c.get("p99_ms"), 50.0, lambda a, b: a <= b,
        "%.1f vs %.0f", " ms")
    s8 = results["scenarios"].get("s8000", {}).get("summary", {}).get("sluice")
    if not s8 or "errors" not in s8:
        t.append({"target": "8,000 streams, zero errors, every token delivered",
                  "result": "n/a", "text": "not run" + (" (--quick)" if quick else "")})
    else:
        ok = s8["errors"] == 0 and s8["tokens"] == s8["tokens_expected"] and s8["requests"] > 0
        t.append({"target": "8,000 streams, zero errors, every token delivered",
                  "result": "PASS" if ok else "MISS",
                  "text": "%d requests, %d errors, %d of %d tokens" % (
                      s8["requests"], s8["errors"], s8["tokens"], s8["tokens_expected"])})
    return t


# ---- output ---------------------------------------------------------------

def f2(x, fmt="%.2f"):
    return "–" if x is None else fmt % x


def signed(x):
    return "–" if x is None else "%+.2f" % x


def markdown(results):
    m, v = results["machine"], results["versions"]
    L = []
    L.append("Run %s (%s), sluice %s. Machine: `nproc` %d, %s, Linux %s. nginx %s, HAProxy %s, "
             "Portkey %s on node %s." % (results["started_utc"], results["mode"], v["sluice"],
                                         m["nproc"], m["cpu_model"], m["kernel"], v["nginx"],
                                         v["haproxy"], v["portkey"], v["node"]))
    L.append("")
    L.append("| target (1,000-stream medians) | sluice vs bound | result |")
    L.append("| --- | --- | --- |")
    for t in results["targets"]:
        L.append("| %s | %s | **%s** |" % (t["target"], t.get("text", "–"), t["result"]))
    for key in ("s1000", "s100", "s8000"):
        sc = results["scenarios"].get(key)
        if not sc:
            continue
        L.append("")
        rounds = sc["rounds"]
        L.append("**%s** (%s; window %.0f s after a %.2f s ramp%s)" % (
            sc["label"], "median of %d interleaved rounds" % rounds if rounds > 1 else "one round",
            sc["window_s"], ANSWER_TOKENS * sc["itl_ms"] / 1000.0,
            "" if not sc.get("skipped") else "; " + sc["skipped"]))
        L.append("")
        L.append("| path | tokens/s | TTFT ms p50 / p99 / max | ITL ms p50 / p99 / max | "
                 "CPU s per M tokens | KiB per open stream | errors | other CPU, cores "
                 "(gateway core / all) |")
        L.append("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for path in sc["paths"]:
            s = sc["summary"].get(path, {})
            if "failed" in s:
                L.append("| %s | failed: %s | | | | | | |" % (PATH_LABEL[path],
                                                            s["failed"][:120].replace("|", "/")))
                continue
            if path == "direct":
                ttft = "%s / %s / %s" % (f2(s["ttft_ms_p50"]), f2(s["ttft_ms_p99"]),
                                         f2(s["ttft_ms_max"]))
                itl = "%s / %s / %s" % (f2(s["itl_ms_p50"]), f2(s["itl_ms_p99"]),
                                        f2(s["itl_ms_max"]))
            else:
                ttft = "%s / %s / %s" % (signed(s["added_ttft_ms_p50"]),
                                         signed(s["added_ttft_ms_p99"]),
                                         signed(s["added_ttft_ms_max"]))
                itl = "%s / %s / %s" % (signed(s["added_itl_ms_p50"]),
                                        signed(s["added_itl_ms_p99"]),
                                        signed(s["added_itl_ms_max"]))
            errs = str(s["errors"])
            if s["error_kinds"]:
                errs += " (" + ", ".join("%s %d" % kv for kv in sorted(s["error_kinds"].items())) + ")"
            other = "%s / %s" % (f2(s.get("other_on_gateway_core")), f2(s.get("other_cores")))
            L.append("| %s | %.0f | %s | %s | %s | %s | %s | %s |" % (
                PATH_LABEL[path], s["tokens_per_s"] or 0, ttft, itl,
                f2(s.get("gateway_s_per_mtok")), f2(s.get("mem_per_stream_kib"), "%.1f"), errs,
                other))
        L.append("")
        busy = ["%s %.0f%%" % (PATH_LABEL[p], sc["summary"][p]["load_core_busy"] * 100)
                for p in sc["paths"]
                if sc["summary"].get(p, {}).get("load_core_busy") is not None]
        L.append("direct: absolute latencies; the other paths: added over direct in the same "
                 "round. The upstream and load generator's core was busy: %s." %
                 (", ".join(busy) or "–"))
    c = results.get("cancel", {})
    if c:
        L.append("")
        L.append("**Cancel latency** (client closes after 10 tokens → the simulator's abort "
                 "counter moves; one stream at a time)")
        L.append("")
        L.append("| path | cancels | p50 ms | p99 ms | max ms | resolution ± ms |")
        L.append("| --- | ---: | ---: | ---: | ---: | ---: |")
        for path in ("sluice", "direct"):
            r = c.get(path)
            if not r:
                continue
            if "failed" in r:
                L.append("| %s | failed: %s | | | | |" % (PATH_LABEL[path], r["failed"][:100]))
                continue
            L.append("| %s | %d (%d aborts seen) | %s | %s | %s | %s |" % (
                PATH_LABEL[path] + (" (the simulator alone)" if path == "direct" else ""),
                r["cancels"], r["aborts_seen"], f2(r["p50_ms"]), f2(r["p99_ms"]),
                f2(r["max_ms"]), f2(r["resolution_ms_p50"])))
    rt = results.get("retention")
    if rt:
        L.append("")
        if "failed" in rt:
            L.append("**Bytes kept per finished stream**: failed: %s" % rt["failed"])
        else:
            L.append("**Bytes kept per finished stream** (sluice, retention on): %s bytes over "
                     "%d finished streams of %d tokens (RSS growth with retention on minus "
                     "with it off, same load)." % (f2(rt.get("bytes_per_stream"), "%.0f"),
                                                   rt.get("streams", 0), ANSWER_TOKENS))
    mc = results.get("micro")
    if mc:
        L.append("")
        if "failed" in mc:
            L.append("**Micro-benchmark**: failed: %s" % mc["failed"])
        else:
            L.append("**Micro-benchmark** of the sans-I/O cores (`bench/micro`, fixture %s, "
                     "%d events)" % (os.path.basename(mc["fixture"]), mc["fixture_events"]))
            L.append("")
            L.append("| stage | ns per event | instructions per event (callgrind) |")
            L.append("| --- | ---: | ---: |")
            for k, s in mc["stages"].items():
                L.append("| %s | %s | %s |" % (k, f2(s.get("ns_per_event"), "%.1f"),
                                              f2(s.get("instructions_per_event"), "%.0f")))
    if results.get("notes"):
        L.append("")
        L.append("Notes: " + " ".join(results["notes"]))
    return "\n".join(L) + "\n"


def svg(results):
    """ITL distributions: per scenario, per path, the fraction of gaps
    longer than x (log-log), with guides at p50, p90, p99, p99.9."""
    panels = [results["scenarios"][k] for k in ("s1000", "s100", "s8000")
              if k in results["scenarios"]]
    W, PH, ML, MR, MT, MB = 980, 330, 70, 230, 40, 50
    H = 60 + PH * len(panels)
    o = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" '
         'font-family="sans-serif" font-size="12">' % (W, H),
         '<rect width="100%" height="100%" fill="white"/>',
         '<text x="%d" y="24" font-size="16" font-weight="bold">Inter-token gaps per path: '
         'the fraction of gaps longer than x</text>' % ML,
         '<text x="%d" y="42" fill="#555">%s · %s · sluice %s · gaps of 0 (tokens in one read) '
         'at the left edge</text>' % (ML, esc(results["started_utc"]), esc(results["mode"]),
                                      esc(results["versions"]["sluice"]))]
    for i, sc in enumerate(panels):
        top = 60 + i * PH + MT
        ph = PH - MT - MB
        pw = W - ML - MR
        curves = {p: sc["summary"].get(p, {}).get("itl_ccdf") or [] for p in sc["paths"]}
        xs = [x for c in curves.values() for _, x in c if x > 0]
        if not xs:
            continue
        x_lo = 10 ** math.floor(math.log10(max(0.01, min(xs))))
        x_lo = max(x_lo, 0.1)
        x_hi = 10 ** math.ceil(math.log10(max(xs) * 1.0001))
        qmin = min(q for c in curves.values() for q, _ in c) if any(curves.values()) else 1e-6
        y_dec = max(1, math.ceil(-math.log10(qmin)))

        def X(x):
            x = min(max(x, x_lo), x_hi)
            return ML + (math.log10(x) - math.log10(x_lo)) / (
                math.log10(x_hi) - math.log10(x_lo)) * pw

        def Y(q):
            return top + (-math.log10(q)) / y_dec * ph

        o.append('<text x="%d" y="%d" font-size="14" font-weight="bold">%s</text>' % (
            ML, top - 10, esc(sc["label"] + (" (median of %d rounds)" % sc["rounds"]
                                            if sc["rounds"] > 1 else ""))))
        o.append('<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#999"/>' % (
            ML, top, pw, ph))
        d = int(round(math.log10(x_lo)))
        while 10 ** d <= x_hi * 1.0001:
            for m in range(1, 10):
                x = m * 10 ** d
                if x < x_lo or x > x_hi * 1.0001:
                    continue
                o.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="%s"/>' % (
                    X(x), top, X(x), top + ph, "#ccc" if m == 1 else "#eee"))
                if m == 1 or (m in (2, 5) and x_hi / x_lo <= 1e4):
                    o.append('<text x="%.1f" y="%d" text-anchor="middle" fill="#333">%s</text>' % (
                        X(x), top + ph + 16, ("%g" % x)))
            d += 1
        o.append('<text x="%d" y="%d" text-anchor="middle">inter-token gap, ms (log)</text>' % (
            ML + pw / 2, top + ph + 34))
        for k in range(0, y_dec + 1):
            q = 10 ** -k
            o.append('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#eee"/>' % (
                ML, Y(q), ML + pw, Y(q)))
            o.append('<text x="%d" y="%.1f" text-anchor="end" fill="#333">%s</text>' % (
                ML - 6, Y(q) + 4, ("%g%%" % (q * 100))))
        for q, name in ((0.5, "p50"), (0.1, "p90"), (0.01, "p99"), (0.001, "p99.9")):
            if q >= 10 ** -y_dec:
                o.append('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#c00" '
                         'stroke-dasharray="3,3" stroke-width="0.8"/>' % (ML, Y(q), ML + pw, Y(q)))
                o.append('<text x="%d" y="%.1f" fill="#c00" font-size="10" text-anchor="end">'
                         '%s</text>' % (ML + pw - 4, Y(q) - 3, name))
        o.append('<text transform="translate(%d,%d) rotate(-90)" text-anchor="middle">'
                 'gaps longer than x</text>' % (16, top + ph / 2))
        ly = top + 8
        for p in sc["paths"]:
            c = curves.get(p)
            s = sc["summary"].get(p, {})
            if not c:
                continue
            pts = " ".join("%.1f,%.1f" % (X(x), Y(q)) for q, x in c)
            o.append('<polyline fill="none" stroke="%s" stroke-width="%s" points="%s"/>' % (
                PATH_COLOR[p], "2.2" if p == "sluice" else "1.5", pts))
            o.append('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="3"/>' % (
                ML + pw + 12, ly + 6, ML + pw + 32, ly + 6, PATH_COLOR[p]))
            o.append('<text x="%d" y="%d">%s</text>' % (ML + pw + 38, ly + 10, PATH_LABEL[p]))
            o.append('<text x="%d" y="%d" fill="#555" font-size="10">p50 %s p99 %s max %s ms</text>'
                     % (ML + pw + 38, ly + 23, f2(s.get("itl_ms_p50"), "%.1f"),
                        f2(s.get("itl_ms_p99"), "%.1f"), f2(s.get("itl_ms_max"), "%.0f")))
            ly += 36
    o.append("</svg>")
    return "\n".join(o) + "\n"


def esc(s):
    return str(s).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def update_readme(table):
    path = os.path.join(BENCH, "README.md")
    try:
        with open(path) as f:
            s = f.read()
    except OSError:
        return False
    a, b = "<!-- bench:latest:begin -->", "<!-- bench:latest:end -->"
    if a not in s or b not in s:
        return False
    s = s[:s.index(a) + len(a)] + "\n" + table + s[s.index(b):]
    with open(path, "w") as f:
        f.write(s)
    return True


def strip_for_json(results):
    """The JSON keeps every run's loadgen report, the curves rounded."""
    def walk(x):
        if isinstance(x, dict):
            return {k: walk(v) for k, v in x.items()}
        if isinstance(x, list):
            return [walk(v) for v in x]
        if isinstance(x, tuple):
            return [walk(v) for v in x]
        if isinstance(x, float):
            return float("%.6g" % x)
        return x
    return walk(results)


# ---- the plan -------------------------------------------------------------

def plan(args):
    quick = args.quick
    window = {"s100": 5, "s1000": 5, "s8000": 5} if quick else {"s100": 15, "s1000": 20,
                                                                 "s8000": 20}
    paths = [p for p in PATHS if p in args.paths]
    scen = [
        {"name": "s100", "label": "100 streams at 20 ms", "streams": 100, "itl_ms": 20,
         "rounds": 1, "paths": paths},
        {"name": "s1000", "label": "1,000 streams at 20 ms", "streams": 1000, "itl_ms": 20,
         "rounds": 1 if quick else 3, "paths": paths},
        {"name": "s8000", "label": "8,000 streams at 160 ms", "streams": 8000, "itl_ms": 160,
         "rounds": 1, "paths": [p for p in paths if p != "portkey"]},
    ]
    out = []
    for s in scen:
        if s["name"] not in args.scenarios or (quick and s["name"] == "s8000"):
            continue
        s["window_s"] = args.window_s or window[s["name"]]
        if args.rounds and s["name"] == "s1000":
            s["rounds"] = args.rounds
        out.append(s)
    return out


def est_measure(scen, path):
    ramp = ANSWER_TOKENS * scen["itl_ms"] / 1000.0
    warm = (1.5 if scen["itl_ms"] <= 20 else 3.0) + 16 * scen["itl_ms"] / 1000.0
    start = 2.0 if path == "portkey" else 0.5
    # Portkey cannot keep up with 1,000 streams: its drain runs to the end.
    drain = ramp + (10 if path == "portkey" and scen["streams"] >= 1000 else 0)
    return start + warm + 0.5 + ramp + scen["window_s"] + drain + 0.5


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="5 s windows, one round, no 8,000-stream scenario (development)")
    ap.add_argument("--paths", default=",".join(PATHS), help="subset of " + ",".join(PATHS))
    ap.add_argument("--scenarios", default="s100,s1000,s8000", help="subset of s100,s1000,s8000")
    ap.add_argument("--window-s", type=float, default=0, help="override each window (≤ 30)")
    ap.add_argument("--rounds", type=int, default=0,
                    help="interleaved rounds of s1000 (default 3; --quick 1)")
    ap.add_argument("--budget-s", type=float, default=0,
                    help="start no step that would end past this many seconds after --t0 "
                         "(default 1110: `make bench` within 20 minutes; --quick 600)")
    ap.add_argument("--t0", type=float, default=0,
                    help="when the budget started, Unix seconds (`make bench` passes the "
                         "start of its install and build); default now")
    ap.add_argument("--build", default="build", help="the release build directory")
    ap.add_argument("--readme", action="store_true",
                    help="put the table in bench/README.md (a full run does it anyway)")
    ap.add_argument("--no-readme", action="store_true", help="leave bench/README.md alone")
    ap.add_argument("--no-extras", action="store_true",
                    help="only the scenarios: no cancel latency, retention or micro-benchmark")
    ap.add_argument("--keep-tmp", action="store_true", help="keep the logs and configs")
    args = ap.parse_args()
    args.paths = [p.strip() for p in args.paths.split(",") if p.strip()]
    args.scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    if "direct" not in args.paths:
        args.paths.insert(0, "direct")  # every figure is relative to it
    if args.window_s > 30:
        ap.error("--window-s: at most 30 s")
    budget = args.budget_s or (600 if args.quick else 1110)

    # Open files: two per stream in a gateway; children inherit this.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    mach = machine()
    b = Bench(args)
    for exe in (b.sluice, b.loadgen):
        if not os.access(exe, os.X_OK):
            sys.exit("bench: %s is missing (make bench builds it)" % exe)
    # This script samples /proc and polls the simulator: it stays off the
    # gateway's core.
    if b.pin:
        os.sched_setaffinity(0, {LOAD_CPU})
    else:
        b.note("fewer than 2 CPUs: nothing is pinned")

    scens = plan(args)
    steps = []
    for s in scens:
        for rnd in range(1, s["rounds"] + 1):
            order = s["paths"][rnd - 1:] + s["paths"][:rnd - 1]  # rotate: no path always first
            for p in order:
                steps.append(("measure", s, p, rnd, est_measure(s, p)))
    n_cancel = 20 if args.quick else 50
    if "sluice" in args.paths and not args.no_extras:
        steps.append(("cancel", "sluice", n_cancel, None, n_cancel * 0.21 + 4))
        steps.append(("cancel", "direct", n_cancel, None, n_cancel * 0.21 + 3))
        steps.append(("retention", None, None, None, (3 if args.quick else 5) * 2 + 6))
    if not args.no_extras:
        steps.append(("micro", None, None, None, 20 if args.quick else 35))

    started = datetime.datetime.now(datetime.timezone.utc)
    results = {"started_utc": started.strftime("%Y-%m-%d %H:%M UTC"),
               "mode": "quick" if args.quick else "full", "machine": mach,
               "versions": versions(b.portkey_entry), "answer_tokens": ANSWER_TOKENS,
               "pinning": ({"gateway_cpu": GATEWAY_CPU, "upstream_and_loadgen_cpu": LOAD_CPU}
                           if b.pin else None),
               "nofile": hard, "scenarios": {}, "notes": b.notes}
    for s in scens:
        results["scenarios"][s["name"]] = {k: s[k] for k in ("label", "streams", "itl_ms",
                                                             "rounds", "paths", "window_s")}
        results["scenarios"][s["name"]]["runs"] = []

    t_start = now() - max(0.0, time.time() - args.t0 if args.t0 else 0.0)
    total_est = sum(st[4] for st in steps)
    b.progress.say("bench: %d steps, about %s (budget %s); logs in %s" % (
        len(steps), fmt_s(total_est), fmt_s(budget), b.tmp))
    try:
        for i, (kind, a1, a2, a3, est) in enumerate(steps):
            left = sum(st[4] for st in steps[i:])
            if now() - t_start + est > budget:
                b.note("skipped %s %s: over the %d s budget" % (
                    kind, a1["name"] + " " + a2 if kind == "measure" else (a1 or ""), budget))
                continue
            if kind == "measure":
                s, path, rnd = a1, a2, a3
                b.progress.set(step="%s, round %d/%d, %s" % (s["label"], rnd, s["rounds"],
                                                             PATH_LABEL[path]), left=left)
                r = b.measure(s, path, rnd)
                results["scenarios"][s["name"]]["runs"].append(r)
            elif kind == "cancel":
                b.progress.set(step="cancel latency, %s" % PATH_LABEL[a1], left=left)
                results.setdefault("cancel", {})[a1] = b.cancel_latency(a1, a2)
            elif kind == "retention":
                b.progress.set(step="bytes kept per finished stream (sluice)", left=left)
                results["retention"] = b.retention(3 if args.quick else 5)
            elif kind == "micro":
                b.progress.set(step="micro-benchmark", left=left)
                results["micro"] = b.micro_bench()
    except KeyboardInterrupt:
        b.note("interrupted")
    finally:
        b.cleanup()
        b.progress.done()

    for key, sc in results["scenarios"].items():
        s = next(x for x in scens if x["name"] == key)
        sc["summary"] = summarize(s, sc["runs"])
    results["targets"] = targets(results, args.quick)
    results["elapsed_s"] = now() - t_start

    os.makedirs(RESULTS, exist_ok=True)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    jpath = os.path.join(RESULTS, "%s%s.json" % (stamp, "-quick" if args.quick else ""))
    with open(jpath, "w") as f:
        json.dump(strip_for_json(results), f, indent=1)
        f.write("\n")
    table = markdown(results)
    with open(os.path.join(RESULTS, "latest.md"), "w") as f:
        f.write("# sluice benchmark: latest run\n\n" + table)
    with open(os.path.join(RESULTS, "itl.svg"), "w") as f:
        f.write(svg(results))
    readme = (not args.quick or args.readme) and not args.no_readme and update_readme(table)
    print(table)
    print("bench: %s, %s and %s written%s; took %s." % (
        os.path.relpath(jpath, ROOT), "bench/results/latest.md", "bench/results/itl.svg",
        ", bench/README.md updated" if readme else "", fmt_s(results["elapsed_s"])))


if __name__ == "__main__":
    main()
