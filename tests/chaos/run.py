"""One deployment, start to verdict: start it, sign users up, follow and write on every node,
inject the schedule, heal, let everyone catch up, judge, and tear it all down."""

from __future__ import annotations

import asyncio
import contextlib
import random
import secrets
import shutil
import tempfile
import time
from pathlib import Path

import httpx

from tests.chaos.clients import TRANSPORTS, Follower, stop_all
from tests.chaos.deploy import Cluster, Deployment, Sqlite
from tests.chaos.faults import Injector, schedule
from tests.chaos.oracle import Report, converge, judge, server_state
from tests.chaos.record import Journal
from tests.chaos.workload import Ledger, Sender
from tests.support import PASSWORD

ROOMS = 3
SENDERS_PER_NODE = {"cluster": 2, "sqlite": 3}


async def sign_up(url: str, count: int) -> list[tuple[str, str]]:
    """(user_id, access token) for ``count`` fresh users."""

    async def one(http: httpx.AsyncClient, i: int) -> tuple[str, str]:
        creds = {"username": f"chaos{i}_{secrets.token_hex(4)}", "password": PASSWORD}
        r = await http.post("/auth/register", json=creds)
        assert r.status_code == 201, r.text
        r = await http.post("/auth/login", json=creds)
        assert r.status_code == 200, r.text
        return r.json()["user"]["id"], r.json()["access_token"]

    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        return list(await asyncio.gather(*[one(http, i) for i in range(count)]))


async def make_rooms(url: str, users: list[tuple[str, str]]) -> list[str]:
    rooms = []
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        owner = {"Authorization": f"Bearer {users[0][1]}"}
        for i in range(ROOMS):
            body = {"name": f"chaos {i} {secrets.token_hex(3)}", "visibility": "public"}
            r = await http.post("/chat/rooms", json=body, headers=owner)
            assert r.status_code == 201, r.text
            rooms.append(r.json()["id"])
        for _, token in users[1:]:
            for room in rooms:
                r = await http.post(
                    f"/chat/room/{room}/join", headers={"Authorization": f"Bearer {token}"}
                )
                assert r.status_code == 200, r.text
    return rooms


async def run_deployment(
    kind: str, seed: int, faults: int, duration: float, partitions: bool, logs: Path | None
) -> Report:
    started = time.monotonic()
    base = Path(tempfile.mkdtemp(prefix=f"hubbub-chaos-{kind}-"))
    deployment: Deployment = Cluster(base) if kind == "cluster" else Sqlite(base)
    report = Report(kind, seed)
    journal, ledger = Journal(), Ledger()
    followers: list[Follower] = []
    senders: list[Sender] = []
    tasks: list[asyncio.Task[None]] = []
    rng = random.Random(f"hubbub-chaos/{seed}/{kind}/clients")
    try:
        await asyncio.to_thread(deployment.start)
        phase(kind, "started", started)
        nodes = deployment.nodes
        per_node = SENDERS_PER_NODE[kind]
        users = await sign_up(nodes[0].url, len(nodes) * per_node + 1)
        rooms = await make_rooms(nodes[0].url, users)

        for n in range(len(nodes)):
            for t, (transport, cls) in enumerate(TRANSPORTS.items()):
                i = len(followers)
                user_id, token = users[i % len(users)]
                followed = rooms if transport in ("events", "ws") else [rooms[(n + t) % ROOMS]]
                followers.append(
                    cls(
                        f"{transport}@node{n}#{i}",
                        token,
                        rooms=followed,
                        nodes=nodes,
                        home=n,
                        rng=random.Random(rng.random()),
                        journal=journal,
                    )
                )
        for i, (user_id, token) in enumerate(users[:-1]):
            senders.append(
                Sender(
                    user_id, token, rooms, nodes, i % len(nodes),
                    random.Random(rng.random()), ledger, journal,
                )
            )  # fmt: skip
        burster = Sender(
            users[-1][0], users[-1][1], rooms, nodes, 0, random.Random(rng.random()),
            ledger, journal,
        )  # fmt: skip
        senders.append(burster)
        tasks = [asyncio.create_task(f.run()) for f in followers]
        await asyncio.sleep(1.0)
        send_tasks = [asyncio.create_task(s.run()) for s in senders[:-1]]

        injector = Injector(deployment, followers, burster, journal)
        plan = schedule(seed, kind, faults, duration, partitions)
        try:
            for number, fault in enumerate(plan, 1):
                print(f"  [{kind} {number}/{len(plan)}] {fault}", flush=True)
                await injector.inject(fault)
                await asyncio.sleep(fault.gap)
        finally:
            await injector.heal_all()
        phase(kind, "faults done", started)
        report.faults = injector.done
        report.stalls_cut = injector.stalls_cut

        for s in senders:
            s.stopping = True
        await asyncio.wait_for(asyncio.gather(*send_tasks), 120)
        phase(kind, "senders drained", started)
        truth = await server_state(nodes[0].url, users[0][1], rooms)
        await converge(followers, truth, timeout=45)
        phase(kind, "clients caught up", started)
        await stop_all(followers, tasks)
        judge(report, truth, ledger, followers, journal)
    except BaseException:
        report.violations.append("the run itself failed")
        raise
    finally:
        await stop_all(followers, tasks)
        for s in senders:
            s.stopping = True
            await s.close()
        if report.violations and logs is not None:
            copy_logs(base, logs)
        await asyncio.to_thread(deployment.close)
    report.seconds = time.monotonic() - started
    return report


def phase(kind: str, what: str, started: float) -> None:
    print(f"  [{kind}] {what} at {time.monotonic() - started:.1f}s", flush=True)


def copy_logs(base: Path, logs: Path) -> None:
    with contextlib.suppress(OSError):
        logs.mkdir(parents=True, exist_ok=True)
        for log in base.glob("*.log"):
            shutil.copy(log, logs / f"{base.name}-{log.name}")
