"""The bridge driver on the real kernel, without a daemon: a bridge, a sandbox with one
endpoint, a second endpoint plugged in later (network connect), and everything removed."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

from dockyard.network import bridge
from tests.conftest import require_root


def _inside(path: Path, *argv: str) -> str:
    return subprocess.run(["nsenter", f"--net={path}", *argv], capture_output=True,
                          text=True, check=True).stdout


def test_sandbox_endpoints_and_cleanup() -> None:
    require_root()
    tag = uuid.uuid4().hex[:6]
    first, second = f"dyi{tag}a", f"dyi{tag}b"
    path = Path(tempfile.mkdtemp(prefix="dynetns")) / "sandbox"
    endpoints = []
    try:
        assert bridge.ensure_bridge(first, ["10.213.31.1/24"])
        assert not bridge.ensure_bridge(first, ["10.213.31.1/24"])   # kept, not made again
        assert bridge.ipv4_interface(first) == "10.213.31.1/24"
        assert bridge.ensure_bridge(second, ["10.213.32.1/24"], mtu=1400)
        endpoints.append(bridge.Endpoint(first, "eth0", ["10.213.31.2/24"], ["10.213.31.1"],
                                         "02:42:0a:d5:1f:02"))
        bridge.create_sandbox(path, endpoints)
        assert bridge.sandbox_exists(path)
        links = _inside(path, "ip", "-o", "link")
        assert "lo:" in links and "eth0@" in links and "02:42:0a:d5:1f:02" in links
        assert "default via 10.213.31.1 dev eth0" in _inside(path, "ip", "route")
        endpoints.append(bridge.Endpoint(second, "eth1", ["10.213.32.5/24"], [],
                                         "02:42:0a:d5:20:05", mtu=1400))
        bridge.plug(path, endpoints[1:])
        addresses = _inside(path, "ip", "-o", "-4", "addr")
        assert "10.213.31.2/24" in addresses and "10.213.32.5/24" in addresses
        assert "mtu 1400" in _inside(path, "ip", "link", "show", "eth1")
        assert "hairpin on" in subprocess.run(["ip", "-d", "link", "show", endpoints[0].veth],
                                              capture_output=True, text=True).stdout
        subprocess.run(["nsenter", f"--net={path}", "busybox", "ping", "-c", "1", "-W", "2",
                        "10.213.31.1"], check=True, capture_output=True)
        bridge.unplug(endpoints[1].veth)
        assert "eth1" not in _inside(path, "ip", "-o", "link")
        # A failed plug leaves no veth behind.
        broken = bridge.Endpoint("dyi-nonexistent", "eth2", ["10.213.33.2/24"], [],
                                 "02:42:0a:d5:21:02")
        try:
            bridge.plug(path, [broken])
            raise AssertionError("plugging into a missing bridge must fail")
        except bridge.BridgeError:
            pass
        assert not bridge.link_exists(broken.veth)
    finally:
        bridge.remove_sandbox(path)
        shutil.rmtree(path.parent, ignore_errors=True)
        for endpoint in endpoints:
            bridge.unplug(endpoint.veth)
        bridge.delete_link(first)
        bridge.delete_link(second)
    assert not bridge.sandbox_exists(path) and not path.exists()
    assert not bridge.link_exists(first) and not bridge.link_exists(second)
    assert not any(bridge.link_exists(e.veth) for e in endpoints)
