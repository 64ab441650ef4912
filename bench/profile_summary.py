#!/usr/bin/env python3
"""Summarise a py-spy raw profile (``py-spy record -f raw``, collapsed stacks, optionally
gzipped): share of samples per thread, then the functions with the most samples on top of the
stack (self) and anywhere in it (inclusive). Used for ``docs/profiles/``.

    python3 bench/profile_summary.py docs/profiles/sends-1000.txt.gz [TOP]
"""

from __future__ import annotations

import collections
import gzip
import re
import sys


def main(path: str, top: int) -> None:
    opener = gzip.open if path.endswith(".gz") else open
    selfc: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    threads: collections.Counter[str] = collections.Counter()
    total = 0
    with opener(path, "rt") as lines:
        for line in lines:
            line = line.rstrip("\n")
            if not line:
                continue
            stack, _, count = line.rpartition(" ")
            n = int(count)
            total += n
            frames = stack.split(";")
            thread = frames[0] if frames[0].startswith(("thread", "process")) else ""
            if thread:
                frames = frames[1:]
            threads[thread] += n
            names = [_short(f) for f in frames]
            if names:
                selfc[names[-1]] += n
            for name in set(names):
                incl[name] += n
    print("total samples", total)
    for thread, n in threads.most_common():
        print(f"  {100 * n / total:5.1f}% {thread or '(one thread)'}")
    print("-- self")
    for name, n in selfc.most_common(top):
        print(f"{100 * n / total:5.1f}% {name}")
    print("-- inclusive")
    for name, n in incl.most_common(top):
        print(f"{100 * n / total:5.1f}% {name}")


def _short(frame: str) -> str:
    frame = re.sub(r" \(/.*?(site-packages|src|lib/python3\.\d+)/", " (", frame)
    return re.sub(r":\d+\)$", ")", frame)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 25)
