"""What the scenarios of ``bench/run.py`` share: servers they start, /proc CPU, the C load tools.

python3 stdlib only (the WebSocket and stream clients next to this file run in their own
processes); the chart alone needs matplotlib.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

Json = dict[str, Any]

CHECKOUT = Path(__file__).resolve().parent.parent.parent
HOST = "127.0.0.1"
HUBBUB_PORT = 8090
NCHAN_PORT = 8091
CLK_TCK = os.sysconf("SC_CLK_TCK")

CHAT_SUB = "/chat/room/{room}/events?user_id=u{i}"
CHAT_PUB = {
    "u": "/chat/messages",
    "b": '{"room_id": "{room}", "message": "{text}"}',
    "T": "application/json",
    "H": "User-ID: pub{conn}",
}
NCHAN_SUB = "/sub/{room}"
NCHAN_PUB = {"u": "/pub/{room}", "b": "{text}", "T": "text/plain"}


def log(*parts: object) -> None:
    print(time.strftime("%H:%M:%S"), "[run.py]", *parts, file=sys.stderr, flush=True)


class BenchError(RuntimeError):
    """A precondition failed; the message says what to do."""


def flags(**given: object) -> list[str]:
    """``flags(p=8090, c=100)`` -> ``['-p', '8090', '-c', '100']`` (the C tools' options)."""
    return [arg for k, v in given.items() for arg in (f"-{k}", str(v))]


def num(v: Any, nd: int = 1) -> str:
    if v is None:
        return "–"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, int | float):
        if abs(v) >= 1000:
            return f"{v:,.0f}"
        if isinstance(v, int):
            return str(v)
        return f"{v:.{nd}f}"
    return str(v)


# ------------------------------------------------------------------------------ /proc


def _stat(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def tree_pids(root: int) -> list[int]:
    """``root`` and its live descendants."""
    children: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            st = _stat(int(d))
            if st:
                children.setdefault(int(st[1]), []).append(int(d))
    out, stack = [], [root]
    while stack:
        p = stack.pop()
        out.append(p)
        stack.extend(children.get(p, []))
    return out


def tree_cpu_s(root: int) -> float:
    """utime+stime of the process tree (and the reaped children of its members), seconds."""
    ticks = 0
    for p in tree_pids(root):
        st = _stat(p)
        if st:
            ticks += sum(int(x) for x in st[11:15])
    return ticks / CLK_TCK


def tree_rss_mib(root: int) -> float:
    total = 0
    for p in tree_pids(root):
        with contextlib.suppress(OSError), open(f"/proc/{p}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total / 1024


def box_busy() -> tuple[int, int]:
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return sum(v[:8]), v[3] + v[4]


def busy_pct(before: tuple[int, int], after: tuple[int, int]) -> float | None:
    total = after[0] - before[0]
    return round(100 * (1 - (after[1] - before[1]) / total), 1) if total > 0 else None


# ------------------------------------------------------------------------------ servers


def hubbub_exe() -> str:
    venv = CHECKOUT / ".venv" / "bin" / "hubbub"
    if venv.exists():
        return str(venv)
    found = shutil.which("hubbub")
    if found is None:
        raise BenchError("no hubbub executable: run `make install` first")
    return found


def hubbub_command(
    data_dir: str, *, auth: str = "trust", database: str | None = None, extra: Sequence[str] = ()
) -> list[str]:
    """Hubbub on the harness port with the per-user rate limiter off (see the document)."""
    cmd = [
        hubbub_exe(),
        *f"serve --host {HOST} --port {HUBBUB_PORT} --auth {auth}".split(),
        "--rate-limit-per-second",
        "0",
        "--data-dir",
        data_dir,
    ]
    if auth == "jwt":
        cmd += ["--secret", "bench-secret-" + "x" * 40]
    if database:
        cmd += ["--database", database]
    return cmd + list(extra)


def nchan_command(harness: Path) -> list[str]:
    return [str(harness / "peers" / "nchan" / "start.sh"), "1"]


def port_in_use(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.3)
        return s.connect_ex((HOST, port)) == 0


class Server:
    """A server this tool starts (own session), samples by PID tree and stops by its PID."""

    def __init__(self, name: str, cmd: list[str], port: int, workdir: Path) -> None:
        self.name, self.cmd, self.port = name, cmd, port
        self.log_path = workdir / f"{name}.server.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout: float = 60) -> Server:
        if port_in_use(self.port):
            raise BenchError(
                f"port {self.port} already in use: stop whatever listens there "
                "(this tool refuses to measure a server it did not start)"
            )
        log("starting", self.name + ":", shlex.join(self.cmd))
        with open(self.log_path, "ab") as logf:
            self.proc = subprocess.Popen(
                self.cmd,
                cwd=self.log_path.parent,
                stdin=subprocess.DEVNULL,
                stdout=logf,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_raise_nofile,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(
                    f"{self.name} exited with {self.proc.returncode}; see {self.log_path}:\n"
                    + self.log_path.read_text(errors="replace")[-1500:]
                )
            with contextlib.suppress(OSError), socket.create_connection((HOST, self.port), 1) as s:
                s.sendall(b"GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
                if s.recv(16).startswith(b"HTTP/"):
                    time.sleep(0.3)
                    return self
            time.sleep(0.2)
        self.stop()
        raise BenchError(f"{self.name} did not answer on port {self.port} within {timeout:.0f} s")

    def cpu_s(self) -> float:
        return tree_cpu_s(self.pid)

    def stop(self) -> None:
        if self.proc is None:
            return
        pids = tree_pids(self.proc.pid)
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                log(f"{self.name} (pid {self.proc.pid}) ignored SIGTERM for 15 s; killing it")
                self.proc.kill()
                self.proc.wait(timeout=5)
        for p in pids[1:]:  # leftovers of the tree this tool started, by PID
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(p, signal.SIGKILL)
        for _ in range(50):
            if not port_in_use(self.port):
                break
            time.sleep(0.1)
        self.proc = None

    def log_errors(self) -> int:
        if not self.log_path.exists():
            return 0
        text = self.log_path.read_text(errors="replace")
        return text.count("Traceback") + text.count(" ERROR ")


def _raise_nofile() -> None:
    import resource

    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


@contextlib.contextmanager
def workdir(prefix: str, keep: bool = False) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        if keep:
            log(f"kept {path}")
        else:
            shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def running(server: Server) -> Iterator[Server]:
    server.start()
    try:
        yield server
    finally:
        server.stop()


# ------------------------------------------------------------------------------ HTTP


def request(
    method: str,
    path: str,
    body: Json | None = None,
    headers: dict[str, str] | None = None,
    port: int = HUBBUB_PORT,
) -> tuple[int, Any]:
    conn = http.client.HTTPConnection(HOST, port, timeout=30)
    try:
        data = json.dumps(body).encode() if body is not None else None
        hdrs = {"Content-Type": "application/json", **(headers or {})}
        conn.request(method, path, body=data, headers=hdrs)
        resp = conn.getresponse()
        raw = resp.read()
    finally:
        conn.close()
    try:
        return resp.status, json.loads(raw)
    except ValueError:
        return resp.status, raw.decode(errors="replace")


def metric(name: str, port: int = HUBBUB_PORT) -> float:
    """The value of one unlabelled counter/gauge in Hubbub's ``/metrics``."""
    status, text = request("GET", "/metrics", port=port)
    if status != 200 or not isinstance(text, str):
        raise BenchError(f"/metrics answered {status}")
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise BenchError(f"/metrics has no {name}")


def stored_messages() -> float:
    """Hubbub's counter of messages durably stored and published (hubbub.metrics)."""
    return metric("hubbub_messages_total")


# ------------------------------------------------------------------------------ C load tools


def ssepub(
    harness: Path,
    *,
    port: int,
    pub: dict[str, str],
    rate: float,
    duration: float,
    conns: int,
    rooms: int = 1,
    prefix: str = "r",
    drain: float = 0,
) -> Json:
    """bin/ssepub (rate 0 = closed loop at max): its JSON result, plus the command line."""
    args = [
        str(harness / "bin" / "ssepub"),
        *flags(h=HOST, p=port, X="POST", **pub),
        *flags(r=rooms, x=prefix, m=f"{rate:g}", d=f"{duration:g}", n=conns, D=f"{drain:g}"),
    ]
    r = subprocess.run(
        args, capture_output=True, text=True, timeout=duration + drain + 60, check=False
    )
    try:
        out: Json = json.loads(r.stdout)
    except ValueError:
        out = {"error": "bad ssepub output", "stderr": r.stderr[-2000:]}
    out["command"] = shlex.join(args)
    return out


class ReadyProcess:
    """A load tool in the background (sseload's output contract): wait for its READY line on
    stderr, then read its JSON result from stdout."""

    def __init__(self, args: list[str], timeout: float) -> None:
        self.args = args
        self.timeout = timeout
        self.proc = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.ready = threading.Event()
        self.ready_line = ""
        self.stderr: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr.append(line)
            if line.startswith("READY"):
                self.ready_line = line.strip()
                self.ready.set()
        self.ready.set()

    def wait_ready(self) -> str:
        self.ready.wait(self.timeout)
        return self.ready_line

    def result(self) -> Json:
        try:
            out, _ = self.proc.communicate(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
        self._reader.join(2)
        try:
            parsed: Json = json.loads(out)
        except ValueError:
            return {"error": "bad sseload output", "stderr": "".join(self.stderr)[-2000:]}
        return parsed


class Sseload(ReadyProcess):
    """bin/sseload: ``conns`` SSE subscribers over ``rooms`` rooms."""

    def __init__(
        self,
        harness: Path,
        *,
        port: int,
        path: str,
        conns: int,
        rooms: int,
        duration: float,
        prefix: str = "r",
        timeout: float = 60,
    ) -> None:
        args = [
            str(harness / "bin" / "sseload"),
            *flags(h=HOST, p=port, u=path, c=conns, r=rooms, x=prefix),
            *flags(d=f"{duration:g}", t=f"{timeout:g}"),
        ]
        super().__init__(args, timeout + duration + 30)


def fanout_step(
    harness: Path,
    server: Server,
    *,
    sub_path: str,
    pub: dict[str, str],
    subs: int,
    rate: float,
    duration: float,
    prefix: str,
    pub_conns: int = 8,
    drain: float = 2.0,
) -> Json:
    """One room x ``subs`` SSE subscribers, ``rate`` msg/s: server CPU per delivered event."""
    load = Sseload(
        harness,
        port=server.port,
        path=sub_path,
        conns=subs,
        rooms=1,
        duration=duration + drain + 0.5,
        prefix=prefix,
        timeout=30,
    )
    ready = load.wait_ready()
    cpu0, t0 = server.cpu_s(), time.monotonic()
    pub_out = ssepub(
        harness,
        port=server.port,
        pub=pub,
        rate=rate,
        duration=duration,
        conns=pub_conns,
        prefix=prefix,
        drain=drain,
    )
    sub = load.result()
    cpu, wall = server.cpu_s() - cpu0, time.monotonic() - t0
    events = int(sub.get("events") or 0)
    est = int(sub.get("established") or 0)
    ok = int(pub_out.get("ok") or 0)
    lat = sub.get("latency_ms") or {}
    return {
        "ready": ready,
        "subs": subs,
        "established": est,
        "sent_ok": ok,
        "publish_errors": int(pub_out.get("errors") or 0) + int(pub_out.get("non2xx") or 0),
        "delivered": events,
        "delivered_pct": round(100 * events / (ok * est), 2) if ok and est else None,
        "server_cpu_s": round(cpu, 3),
        "server_cpu_pct": round(100 * cpu / wall, 1) if wall else None,
        "cpu_us_per_event": round(cpu * 1e6 / events, 3) if events else None,
        "p50_ms": lat.get("p50"),
        "p99_ms": lat.get("p99"),
    }
