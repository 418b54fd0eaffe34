"""NetworkService without the kernel: network records, validation, create-time endpoint
settings, prune, and the names the embedded DNS answers (resolve/reverse)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from dockyard.engine.errors import Conflict, Forbidden, InvalidParameter, NotFound
from dockyard.engine.events import EventBus
from dockyard.engine.networks import NetworkService, endpoint_settings
from dockyard.engine.options import EngineOptions


class FakeStore:
    def __init__(self) -> None:
        self.records: dict[str, dict[str, Any]] = {}

    def all(self) -> list[dict[str, Any]]:
        return list(self.records.values())

    def get(self, ref: str) -> dict[str, Any]:
        for record in self.records.values():
            if record["Id"] == ref or record["Name"] == "/" + ref:
                return record
        raise NotFound(f"No such container: {ref}")

    def save(self, record: dict[str, Any]) -> None:
        pass


class FakeContainers:
    def __init__(self) -> None:
        self.store = FakeStore()

    def transition(self, container_id: str) -> threading.RLock:
        return threading.RLock()


@pytest.fixture
def service(tmp_path: Path) -> NetworkService:
    options = EngineOptions(tmp_path / "data", tmp_path / "exec", bip="10.199.0.1/16")
    return NetworkService(options, FakeContainers(), EventBus())


def _container(service: NetworkService, name: str, mode: str,
               endpoints: dict[str, Any] | None = None) -> dict[str, Any]:
    record = {"Id": name * 8, "Name": "/" + name, "HostConfig": {"NetworkMode": mode},
              "Config": {"Hostname": f"{name}-host"}, "State": {"Running": True},
              "NetworkSettings": {"Networks": {}, "Ports": {}}}
    service.prepare(record, {"EndpointsConfig": endpoints or {}})
    service.containers.store.records[record["Id"]] = record
    return record


def test_predefined_networks_and_bip(service: NetworkService) -> None:
    names = sorted(r["Name"] for r in service.all())
    assert names == ["bridge", "host", "none"]
    bridge = service.find("bridge")
    assert bridge["IPAM"]["Config"] == [{"Subnet": "10.199.0.0/16", "Gateway": "10.199.0.1"}]
    assert service.view(bridge)["Options"]["com.docker.network.bridge.name"] == "dockyard0"
    assert "_Bridge" not in service.view(bridge)
    # The same IDs after a restart (the files are the truth).
    again = NetworkService(service.options, service.containers, EventBus())
    assert again.find("bridge")["Id"] == bridge["Id"]


def test_create_validates_and_refuses_duplicates(service: NetworkService) -> None:
    record = service.create({"Name": "app", "IPAM": {"Config": [
        {"Subnet": "10.50.0.0/24", "Gateway": "10.50.0.254", "IPRange": "10.50.0.128/25"}]},
        "Labels": {"a": "b"}, "Internal": True})
    assert record["IPAM"]["Config"][0]["Gateway"] == "10.50.0.254"
    assert service.find(record["Id"][:6])["Name"] == "app"
    with pytest.raises(Conflict, match="already exists"):
        service.create({"Name": "app"})
    with pytest.raises(Forbidden, match="overlaps"):
        service.create({"Name": "b", "IPAM": {"Config": [{"Subnet": "10.50.0.0/16"}]}})
    with pytest.raises(InvalidParameter, match="does not belong"):
        service.create({"Name": "c", "IPAM": {"Config": [{"Subnet": "10.51.0.0/24",
                                                           "Gateway": "10.52.0.1"}]}})
    with pytest.raises(NotFound, match="plugin"):
        service.create({"Name": "d", "Driver": "overlay"})
    with pytest.raises(InvalidParameter, match="IPv6"):
        service.create({"Name": "e", "EnableIPv6": True})
    automatic = service.create({"Name": "f"})
    subnet = automatic["IPAM"]["Config"][0]["Subnet"]
    assert subnet not in ("10.199.0.0/16", "10.50.0.0/24")
    assert not any(c["Subnet"] == subnet for r in service.all() if r is not automatic
                   for c in r["IPAM"]["Config"])


def test_remove_rules(service: NetworkService) -> None:
    with pytest.raises(Forbidden, match="pre-defined"):
        service.remove("bridge")
    service.create({"Name": "busy"})
    service.find("busy")["Containers"]["x" * 64] = {"Name": "x", "IPv4Address": "1.2.3.4/8"}
    with pytest.raises(Forbidden, match="active endpoints"):
        service.remove("busy")
    with pytest.raises(NotFound, match="network nope not found"):
        service.remove("nope")


def test_prepare_fills_endpoint_settings(service: NetworkService) -> None:
    service.create({"Name": "app", "IPAM": {"Config": [{"Subnet": "10.60.0.0/24"}]}})
    record = _container(service, "web", "app", {"app": {"Aliases": ["www"],
                                                        "IPAMConfig": {"IPv4Address":
                                                                       "10.60.0.9"}}})
    endpoint = record["NetworkSettings"]["Networks"]["app"]
    assert endpoint["Aliases"] == ["www"]
    assert endpoint["NetworkID"] == service.find("app")["Id"]
    assert set(endpoint) == set(endpoint_settings())
    default = _container(service, "plain", "default")
    assert default["HostConfig"]["NetworkMode"] == "bridge"
    assert list(default["NetworkSettings"]["Networks"]) == ["bridge"]
    with pytest.raises(InvalidParameter, match="user configured subnets"):
        _container(service, "bad", "bridge", {"bridge": {"IPAMConfig": {"IPv4Address":
                                                                        "10.199.0.9"}}})
    with pytest.raises(InvalidParameter, match="does not belong"):
        _container(service, "bad2", "app", {"app": {"IPAMConfig": {"IPv4Address":
                                                                   "10.61.0.9"}}})
    with pytest.raises(NotFound):
        _container(service, "bad3", "nonexistent")


def test_prune_keeps_networks_in_use(service: NetworkService) -> None:
    service.create({"Name": "used"})
    service.create({"Name": "unused"})
    _container(service, "c", "used")
    assert service.prune() == ["unused"]
    assert sorted(r["Name"] for r in service.all()) == ["bridge", "host", "none", "used"]


def test_resolve_and_reverse_on_user_networks_only(service: NetworkService) -> None:
    service.create({"Name": "app", "IPAM": {"Config": [{"Subnet": "10.70.0.0/24"}]}})
    web = _container(service, "web", "app", {"app": {"Aliases": ["www"]}})
    client = _container(service, "client", "app")
    lonely = _container(service, "lonely", "bridge")
    network = service.find("app")
    network["Containers"][web["Id"]] = {"Name": "web", "IPv4Address": "10.70.0.2/24",
                                        "IPv6Address": ""}
    network["Containers"][client["Id"]] = {"Name": "client", "IPv4Address": "10.70.0.3/24",
                                           "IPv6Address": ""}
    service.find("bridge")["Containers"][lonely["Id"]] = {
        "Name": "lonely", "IPv4Address": "10.199.0.2/16", "IPv6Address": ""}
    for name in ("web", "WWW.", "web-host", web["Id"][:12]):
        assert service.resolve(client["Id"], name, 1) == ["10.70.0.2"], name
    assert service.resolve(client["Id"], "web", 28) == []
    assert service.resolve(client["Id"], "example.org", 1) == []
    assert service.resolve(lonely["Id"], "web", 1) == []      # not on the default bridge
    assert service.resolve(client["Id"], "lonely", 1) == []
    assert service.reverse(client["Id"], "10.70.0.2") == "web.app"
    assert service.reverse(client["Id"], "10.199.0.2") is None


def test_host_gateway(service: NetworkService) -> None:
    assert service._extra_hosts(["outside:host-gateway", "x:1.2.3.4"]) == [
        "outside:10.199.0.1", "x:1.2.3.4"]


def test_embedded_dns_stand_in_and_resolv_conf(service: NetworkService,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """The interface the `dns` helper's module provides, stood in for here."""
    import sys
    import types

    from dockyard.engine.etc_files import resolv_conf

    calls: list[tuple[str, Any]] = []

    class EmbeddedDNS:
        def __init__(self, resolve: Any, reverse: Any) -> None:
            calls.append(("init", (resolve, reverse)))

        def start(self) -> None:
            calls.append(("start", None))

    module = types.ModuleType("dockyard.network.dns")
    module.EmbeddedDNS = EmbeddedDNS  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "dockyard.network.dns", module)
    assert service.embedded_dns_available()
    assert calls[0] == ("init", (service.resolve, service.reverse))
    assert calls[1] == ("start", None)
    assert service._upstream({"Dns": ["192.0.2.53"]}) == [("192.0.2.53", 53)]
    text = resolv_conf({"Dns": ["192.0.2.53"], "DnsSearch": ["corp"]}, embedded_dns=True)
    assert text == "nameserver 127.0.0.11\nsearch corp\noptions ndots:0\n"


def test_network_names_are_checked(service: NetworkService) -> None:
    with pytest.raises(InvalidParameter, match="invalid name"):
        service.create({"Name": "../escape"})
    with pytest.raises(InvalidParameter, match="required"):
        service.create({"Name": ""})
