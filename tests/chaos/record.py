"""What the run saw that the oracle judges later: 5xx answers and store outage windows.

A 5xx is a bug except a 503 while the store is really out; to tell them apart, every outage a
fault caused is kept as a time window next to every 5xx with the time its request started.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

# A request that began before an outage may fail when the outage hits it, and one that began
# during it may wait out the pool (10 s) and the command timeout (4 s) before it is answered.
BEFORE_SLACK = 15.0
AFTER_SLACK = 2.0


@dataclass
class ServerError:
    node: int
    status: int
    what: str
    started: float
    answered: float


@dataclass
class Outage:
    node: int | None  # None: every node
    start: float
    end: float = float("inf")


@dataclass
class Journal:
    errors: list[ServerError] = field(default_factory=list)
    outages: list[Outage] = field(default_factory=list)
    t0: float = field(default_factory=time.monotonic)

    def server_error(self, node: int, status: int, what: str, started: float) -> None:
        self.errors.append(ServerError(node, status, what, started, time.monotonic()))

    def outage_begins(self, node: int | None) -> Outage:
        outage = Outage(node, time.monotonic())
        self.outages.append(outage)
        return outage

    def excused(self, e: ServerError) -> bool:
        if e.status != 503:
            return False
        return any(
            (o.node is None or o.node == e.node)
            and e.answered >= o.start
            and e.started <= o.end + AFTER_SLACK
            and e.started >= o.start - BEFORE_SLACK
            for o in self.outages
        )

    def unexcused(self) -> list[ServerError]:
        return [e for e in self.errors if not self.excused(e)]
