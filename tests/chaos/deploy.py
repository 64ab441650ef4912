"""Real processes the checker owns: a private PostgreSQL and Redis, Hubbub nodes, namespaces.

Everything here is private to one run (temp dirs, free ports, freshly named namespaces and
veths), because the faults kill, pause and cut these processes: doing that to the machine's
shared services would break everyone else's tests. Every start is undone by ``close()``.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.support import SECRET, free_port

PG_BIN = Path("/usr/lib/postgresql/15/bin")
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"

# Settings that make faults show within a short run: a node notices a lost broker message
# within a second, and a stalled reader is cut after a small buffer instead of 1 MiB.
NODE_ENV = {
    "HUBBUB_SECRET": SECRET,
    "HUBBUB_LOG_LEVEL": "warning",
    "HUBBUB_RATE_LIMIT_PER_SECOND": "0",
    "HUBBUB_RESYNC_INTERVAL": "1",
    "HUBBUB_STREAM_BUFFER_BYTES": "16384",
    "HUBBUB_ACCESS_TOKEN_TTL": str(6 * 3600),
    "HUBBUB_PRESENCE_GRACE": "1",
}


def ip(*args: str, ns: str | None = None, check: bool = True) -> None:
    cmd = ["ip", *args] if ns is None else ["ip", "netns", "exec", ns, "ip", *args]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {result.stderr.strip()}")


def netns_available() -> bool:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        return False
    return subprocess.run(["ip", "netns", "list"], capture_output=True).returncode == 0


def missing_binaries() -> list[str]:
    wanted = [PG_BIN / "initdb", PG_BIN / "pg_ctl", PG_BIN / "postgres", Path(REDIS_SERVER)]
    missing = [str(p) for p in wanted if not p.exists()]
    if shutil.which("runuser") is None:
        missing.append("runuser")
    return missing


class Network:
    """One namespace per node, each joined to the host by a veth, and a host-only veth that
    carries the PostgreSQL and Redis addresses. Two addresses, so a node can be cut from one
    service and not the other with a blackhole route inside its namespace."""

    def __init__(self, nodes: int) -> None:
        tag = secrets.token_hex(3)
        self.tag = tag
        self.a = 220 + int(tag[:2], 16) % 30
        self.b = int(tag[2:4], 16) % 200
        self.namespaces = [f"hbc{tag}n{i}" for i in range(nodes)]
        self.links = [f"hbc{tag}h{i}" for i in range(nodes)]
        self.service_link = f"hbc{tag}s"
        self.pg_addr = f"10.{self.a}.{self.b + 10}.1"
        self.redis_addr = f"10.{self.a}.{self.b + 10}.2"
        self.created_ns: list[str] = []
        self.created_links: list[str] = []

    def host_ip(self, i: int) -> str:
        return f"10.{self.a}.{self.b + i}.1"

    def node_ip(self, i: int) -> str:
        return f"10.{self.a}.{self.b + i}.2"

    def create(self) -> None:
        ip(
            "link",
            "add",
            self.service_link,
            "type",
            "veth",
            "peer",
            "name",
            self.service_link + "p",
        )
        self.created_links.append(self.service_link)
        ip("link", "set", self.service_link, "up")
        ip("link", "set", self.service_link + "p", "up")
        for addr in (self.pg_addr, self.redis_addr):
            ip("addr", "add", f"{addr}/32", "dev", self.service_link)
        for i, (ns, link) in enumerate(zip(self.namespaces, self.links, strict=True)):
            ip("netns", "add", ns)
            self.created_ns.append(ns)
            ip("link", "add", link, "type", "veth", "peer", "name", link + "p")
            self.created_links.append(link)
            ip("link", "set", link + "p", "netns", ns)
            ip("addr", "add", f"{self.host_ip(i)}/24", "dev", link)
            ip("link", "set", link, "up")
            ip("addr", "add", f"{self.node_ip(i)}/24", "dev", link + "p", ns=ns)
            ip("link", "set", link + "p", "up", ns=ns)
            ip("link", "set", "lo", "up", ns=ns)
            ip("route", "add", "default", "via", self.host_ip(i), ns=ns)
            # Small kernel send buffers (this namespace only): a stalled reader backs up into
            # the server's own bounded buffer after ~100 KiB instead of ~4 MiB of autotuning.
            subprocess.run(
                [
                    "ip",
                    "netns",
                    "exec",
                    ns,
                    "sysctl",
                    "-q",
                    "-w",
                    "net.ipv4.tcp_wmem=4096 16384 65536",
                ],
                check=True,
            )

    def cut(self, node: int, addr: str) -> None:
        ip("route", "add", "blackhole", f"{addr}/32", ns=self.namespaces[node])

    def heal(self, node: int, addr: str) -> None:
        ip("route", "del", "blackhole", f"{addr}/32", ns=self.namespaces[node], check=False)

    def close(self) -> None:
        for link in self.created_links:
            ip("link", "del", link, check=False)
        for ns in self.created_ns:
            ip("netns", "del", ns, check=False)
        self.created_links.clear()
        self.created_ns.clear()


class Postgres:
    """A throw-away cluster (initdb in a temp dir) run as the ``postgres`` user."""

    def __init__(self, base: Path, addr: str) -> None:
        self.dir = base / "pgdata"
        self.addr = addr
        self.port = free_port()
        self.log = base / "postgres.log"
        self.base = base
        self.paused = False

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@{self.addr}:{self.port}/postgres"

    def _pg(self, *args: str, check: bool = True) -> None:
        cmd = ["runuser", "-u", "postgres", "--", *args]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        if check and result.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)}: {result.stdout}{result.stderr}")

    def init(self) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        shutil.chown(self.base, "postgres", "postgres")
        self._pg(str(PG_BIN / "initdb"), "-D", str(self.dir), "-A", "trust", "-U", "postgres")
        with (self.dir / "pg_hba.conf").open("a") as hba:
            hba.write("host all all 0.0.0.0/0 trust\n")
        self.start()

    def start(self) -> None:
        opts = (
            f"-p {self.port} -k {self.base} -c listen_addresses={self.addr} "
            "-c max_connections=200 -c fsync=on"
        )
        self._pg(
            str(PG_BIN / "pg_ctl"), "-D", str(self.dir), "-l", str(self.log), "-o", opts, "-w",
            "start",
        )  # fmt: skip

    def pids(self) -> list[int]:
        """The postmaster and all its children (backends, checkpointer, ...)."""
        try:
            master = int((self.dir / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return []
        found = [master]
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == master:
                found.append(int(entry.name))
        return found

    def crash(self) -> None:
        """``-m immediate``: no checkpoint, WAL recovery on the next start, like a power cut."""
        self._pg(
            str(PG_BIN / "pg_ctl"), "-D", str(self.dir), "-m", "immediate", "stop", check=False
        )

    def pause(self) -> None:
        self.paused = True
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)

    def resume(self) -> None:
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        self.paused = False

    def close(self) -> None:
        self.resume()
        if self.dir.exists():
            self.crash()
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


class Redis:
    """redis-server on a fixed port with no persistence: a restart loses everything, which is
    exactly what a broker may do."""

    def __init__(self, base: Path, addr: str) -> None:
        self.addr = addr
        self.port = free_port()
        self.log = base / "redis.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{self.addr}:{self.port}/0"

    def start(self) -> None:
        cmd = [
            REDIS_SERVER, "--port", str(self.port), "--bind", self.addr, "--save", "",
            "--appendonly", "no", "--protected-mode", "no", "--daemonize", "no",
        ]  # fmt: skip
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            import socket

            with (
                contextlib.suppress(OSError),
                socket.create_connection((self.addr, self.port), 0.2),
            ):
                return
            time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def close(self) -> None:
        self.kill()


class Node:
    """``hubbub serve --auth jwt``, in a namespace or on loopback."""

    def __init__(
        self, index: int, base: Path, host: str, env: dict[str, str], ns: str | None = None
    ) -> None:
        self.index = index
        self.host = host
        self.port = free_port()
        self.ns = ns
        self.data_dir = base / f"node{index}"
        self.env = env
        self.log = base / f"node{index}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = 60.0) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        serve = [
            sys.executable, "-m", "hubbub", "serve", "--auth", "jwt", "--host", self.host,
            "--port", str(self.port), "--data-dir", str(self.data_dir),
        ]  # fmt: skip
        # `ip netns exec` execs the command: the pid we hold is the server's own.
        cmd = ["ip", "netns", "exec", self.ns, *serve] if self.ns else serve
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                cmd, env={**os.environ, **NODE_ENV, **self.env}, stdout=log, stderr=log
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"node {self.index} exited: {self.tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"node {self.index} did not start: {self.tail()}")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def close(self) -> None:
        self.kill()

    def tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


class Deployment:
    """What the faults and the clients need to know about one running system."""

    name = ""
    nodes: list[Node]
    postgres: Postgres | None = None
    redis: Redis | None = None
    network: Network | None = None

    def __init__(self, base: Path) -> None:
        self.base = base
        self.nodes = []

    def start(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Undo everything, in reverse, whatever state a fault left it in."""
        for node in self.nodes:
            with contextlib.suppress(Exception):
                node.close()
        for part in (self.redis, self.postgres, self.network):
            if part is not None:
                with contextlib.suppress(Exception):
                    part.close()
        shutil.rmtree(self.base, ignore_errors=True)


class Cluster(Deployment):
    name = "cluster"

    def __init__(self, base: Path, size: int = 3) -> None:
        super().__init__(base)
        self.size = size

    def start(self) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        self.base.chmod(0o755)
        self.network = Network(self.size)
        self.network.create()
        self.postgres = Postgres(self.base / "pg", self.network.pg_addr)
        self.postgres.init()
        self.redis = Redis(self.base, self.network.redis_addr)
        self.redis.start()
        env = {
            "HUBBUB_DATABASE": self.postgres.url,
            "HUBBUB_BROKER": self.redis.url,
            "HUBBUB_BROKER_PREFIX": "chaos:room:",
        }
        self.nodes = [
            Node(i, self.base, self.network.node_ip(i), env, self.network.namespaces[i])
            for i in range(self.size)
        ]
        self.nodes[0].start()  # creates the schema alone
        import threading

        errors: list[BaseException] = []

        def start(node: Node) -> None:
            try:
                node.start()
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=start, args=(n,)) for n in self.nodes[1:]]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise errors[0]


class Sqlite(Deployment):
    """One node on its embedded store; in a namespace of its own when we can make one, only
    so that its socket buffers can be made small like the cluster's."""

    name = "sqlite"

    def start(self) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        if netns_available():
            self.network = Network(1)
            self.network.create()
            self.nodes = [
                Node(0, self.base, self.network.node_ip(0), {}, self.network.namespaces[0])
            ]
        else:
            self.nodes = [Node(0, self.base, "127.0.0.1", {})]
        self.nodes[0].start()
