"""Helpers of the network tests against a test daemon (test_network_docker.py,
test_network_nftables.py): names, inspect, a busybox web server and a patient GET."""

from __future__ import annotations

import json
import time
import urllib.request
import uuid

from tests.compat.conftest import Daemon

IMAGE = "dockyard-fixture:1.0"


def unique_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def inspect_one(d: Daemon, *args: str) -> dict:
    return json.loads(d.docker("inspect", *args, check=True).stdout)[0]


def http_get(url: str, tries: int = 50) -> str:
    """The body at `url`, retried while the server (or its port mapping) comes up."""
    for _ in range(tries):
        try:
            with urllib.request.urlopen(url, timeout=2) as reply:
                return reply.read().decode()
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"no answer from {url}")


def start_httpd(d: Daemon, *args: str, port: int = 80) -> str:
    """A detached busybox httpd serving /www/index.html ("hello <name>"); its name."""
    name = unique_name("web")
    d.docker("run", "-d", "--name", name, *args, IMAGE, "sh", "-c",
             f"mkdir -p /www && echo hello {name} > /www/index.html && "
             f"exec httpd -f -p {port} -h /www", check=True)
    return name
