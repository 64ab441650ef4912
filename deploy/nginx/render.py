#!/usr/bin/env python3
"""Render hubbub.conf.template: the listen address and one upstream ``server`` line per node.

    cd deploy/nginx && python3 render.py --listen 80 hubbub-1:8000 hubbub-2:8000 > hubbub.conf

With ``--resolver ADDRESS`` each upstream name is looked up again while nginx runs (every 10 s,
``server … resolve``, nginx >= 1.27.3) and may stand for several addresses, e.g. the compose
service ``hubbub`` with its replicas behind Docker's DNS (127.0.0.11)::

    cd deploy/nginx && python3 render.py --listen 80 --resolver 127.0.0.11 hubbub:8000 > hubbub.conf

Standard library only. deploy/nginx/hubbub.conf (used by deploy/compose.yaml) is exactly the
second command's output; tests/integration/test_deploy_manifests.py checks that they agree and runs
``nginx -t`` on a rendering with local upstreams.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

TEMPLATE = Path(__file__).with_name("hubbub.conf.template")
# Passive health check: after 3 failed attempts a node is left out for 10 s.
SERVER_LINE = "    server {address} max_fails=3 fail_timeout=10s;"
LISTEN = re.compile(r"([0-9A-Za-z.\-]+:|\[[0-9a-fA-F:]+\]:)?\d+")
RESOLVER = re.compile(r"[0-9A-Za-z.\-]+(:\d+)?|\[[0-9a-fA-F:]+\](:\d+)?")
# With a resolver: re-resolved names need a shared-memory zone for the upstream's state.
RESOLVE_LINES = """    zone hubbub_upstream 64k;
    resolver {resolver} valid=10s ipv6=off;
    resolver_timeout 5s;"""
UPSTREAM = re.compile(r"([0-9A-Za-z.\-]+|\[[0-9a-fA-F:]+\]):\d+")


def render(
    listen: str, upstreams: list[str], template: str | None = None, resolver: str | None = None
) -> str:
    """The template with ``{{LISTEN}}`` and ``{{UPSTREAMS}}`` filled in."""
    if not LISTEN.fullmatch(listen):
        raise ValueError(f"listen must be PORT or HOST:PORT, not {listen!r}")
    if not upstreams:
        raise ValueError("at least one upstream HOST:PORT is needed")
    for address in upstreams:
        if not UPSTREAM.fullmatch(address):
            raise ValueError(f"an upstream must be HOST:PORT, not {address!r}")
    if resolver is not None and not RESOLVER.fullmatch(resolver):
        raise ValueError(f"resolver must be HOST or HOST:PORT, not {resolver!r}")
    text = TEMPLATE.read_text() if template is None else template
    line = SERVER_LINE if resolver is None else SERVER_LINE.replace(";", " resolve;")
    servers = "\n".join(line.format(address=a) for a in upstreams)
    if resolver is not None:
        servers = RESOLVE_LINES.format(resolver=resolver) + "\n" + servers
    text = text.replace("{{UPSTREAMS}}", servers).replace("{{LISTEN}}", listen)
    if "{{" in text:
        raise ValueError("a placeholder was left unrendered")
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Render hubbub.conf.template to stdout.")
    parser.add_argument("--listen", default="80", help="nginx listen: PORT or HOST:PORT [80]")
    parser.add_argument(
        "--resolver",
        help="DNS server for looking the upstream names up while running (Docker: 127.0.0.11)",
    )
    parser.add_argument("upstreams", nargs="+", metavar="HOST:PORT", help="the Hubbub nodes")
    args = parser.parse_args(argv)
    try:
        sys.stdout.write(render(args.listen, args.upstreams, resolver=args.resolver))
    except ValueError as exc:
        parser.error(str(exc))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
