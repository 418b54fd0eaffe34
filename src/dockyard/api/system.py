"""/version, /info, /events, /system/df."""

from __future__ import annotations

import asyncio
import os
import platform
import socket
import time
from typing import Any

from .. import __version__
from ..engine.distribution import registry_config
from ..engine.engine import Engine
from ..engine.events import matches
from ..engine.timefmt import parse_rfc3339, rfc3339_now
from . import Request, Response, Router, StreamingResponse, json_response
from ._versions import API_VERSION, MIN_API_VERSION
from .containers import status_text
from .engine_calls import call

_GO_ARCH = {"x86_64": "amd64", "aarch64": "arm64"}


def register(router: Router, engine: Engine) -> None:
    @router.route("GET", "/version")
    async def version(request: Request) -> Response:
        details = {
            "Version": __version__, "ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION,
            "GitCommit": "dockyard", "GoVersion": f"python{platform.python_version()}",
            "Os": "linux", "Arch": _GO_ARCH.get(os.uname().machine, os.uname().machine),
            "KernelVersion": os.uname().release, "BuildTime": "", "Experimental": False,
        }
        return json_response({
            "Platform": {"Name": f"Dockyard Engine {__version__}"},
            "Components": [{"Name": "Engine", "Version": __version__,
                            "Details": {k: str(v).lower() if isinstance(v, bool) else str(v)
                                        for k, v in details.items()}}],
            **details,
        })

    @router.route("GET", "/info")
    async def info(request: Request) -> Response:
        return json_response(system_info(engine))

    @router.route("GET", "/events")
    async def events(request: Request) -> StreamingResponse:
        filters = request.query.filters()
        since_text = request.query.get_str("since")
        since = request.query.get_time("since")
        until = request.query.get_time("until")
        wanted = {key: filters.values_of(key) for key in filters}
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        loop = asyncio.get_running_loop()

        def deliver(event: dict[str, Any]) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, event)

        # --since 0 is "from the beginning", not "no history".
        past = engine.events.subscribe(deliver, int(since * 1e9) if since_text else None)

        async def stream():  # type: ignore[no-untyped-def]
            try:
                for event in past:
                    if _in_window(event, until) and matches(event, wanted):
                        yield _line(event)
                while True:
                    timeout = max(0.0, until - time.time()) if until else None
                    try:
                        event = await asyncio.wait_for(queue.get(), timeout)
                    except TimeoutError:
                        return
                    if not _in_window(event, until):
                        return
                    if matches(event, wanted):
                        yield _line(event)
            finally:
                engine.events.unsubscribe(deliver)

        return StreamingResponse(stream(), content_type="application/json")

    @router.route("GET", "/system/df")
    async def disk_usage(request: Request) -> Response:
        usage = engine.snapshots.usage()
        images = []
        for target, image in engine.images.all():
            summary = engine.images.summary(target, image)
            summary["SharedSize"] = 0
            summary["Containers"] = sum(1 for r in engine.containers.store.all()
                                        if r["Image"] == summary["Id"])
            images.append(summary)
        containers = []
        snapshots = {s["key"]: s for s in engine.snapshots.snapshots()}
        for record in engine.containers.store.all():
            size = usage.snapshots.get(record["Id"], 0) if hasattr(usage, "snapshots") else 0
            containers.append({"Id": record["Id"], "Names": [record["Name"]],
                               "Image": record["Config"].get("Image", ""),
                               "ImageID": record["Image"],
                               "Command": " ".join([record["Path"], *record["Args"]]),
                               "Created": int(parse_rfc3339(record["Created"])),
                               "State": record["State"]["Status"],
                               "Status": status_text(record["State"]),
                               "SizeRw": size, "SizeRootFs": 0,
                               "Mounts": record.get("Mounts") or [],
                               "Labels": record["Config"].get("Labels") or {}})
        del snapshots
        volumes = await call(engine.volumes.usage)
        return json_response({"LayersSize": usage.layers_size, "Images": images,
                              "Containers": containers, "Volumes": volumes,
                              "BuildCache": []})


def _line(event: dict[str, Any]) -> bytes:
    import json

    return (json.dumps(event) + "\n").encode()


def _in_window(event: dict[str, Any], until: float) -> bool:
    return not until or event["timeNano"] / 1e9 <= until


def system_info(engine: Engine) -> dict[str, Any]:
    records = engine.containers.store.all()
    running = sum(1 for r in records if r["State"]["Running"] and not r["State"]["Paused"])
    paused = sum(1 for r in records if r["State"]["Paused"])
    cgroup_version = "2" if os.path.exists("/sys/fs/cgroup/cgroup.controllers") else "1"
    mem_total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    runtimes = {name: {"path": path} for name, path in engine.options.runtimes.items()}
    return {
        "ID": _daemon_id(engine), "Containers": len(records), "ContainersRunning": running,
        "ContainersPaused": paused, "ContainersStopped": len(records) - running - paused,
        "Images": len(engine.images.all()), "Driver": "overlay2",
        "DriverStatus": [["Backing Filesystem", "extfs"], ["Supports d_type", "true"]],
        "Plugins": {"Volume": ["local"], "Network": ["bridge", "host", "none"],
                    "Authorization": None, "Log": ["json-file"]},
        "MemoryLimit": True, "SwapLimit": cgroup_version == "2", "CpuCfsPeriod": True,
        "CpuCfsQuota": True, "CPUShares": True, "CPUSet": True, "PidsLimit": True,
        "IPv4Forwarding": True, "BridgeNfIptables": False, "BridgeNfIp6tables": False,
        "Debug": False, "NFd": len(os.listdir("/proc/self/fd")), "OomKillDisable": False,
        "NGoroutines": 0, "SystemTime": rfc3339_now(), "LoggingDriver": "json-file",
        "CgroupDriver": "cgroupfs", "CgroupVersion": cgroup_version, "NEventsListener": 0,
        "KernelVersion": os.uname().release, "OperatingSystem": _os_name(),
        "OSVersion": _os_release().get("VERSION_ID", ""), "OSType": "linux",
        "Architecture": os.uname().machine, "IndexServerAddress": "https://index.docker.io/v1/",
        "RegistryConfig": registry_config(engine.options.insecure_registries,
                                          engine.options.registry_mirrors),
        "NCPU": os.cpu_count() or 1, "MemTotal": mem_total, "GenericResources": None,
        "DockerRootDir": str(engine.options.data_root), "HttpProxy": "", "HttpsProxy": "",
        "NoProxy": "", "Name": socket.gethostname(), "Labels": [], "ExperimentalBuild": False,
        "ServerVersion": __version__, "Runtimes": runtimes,
        "DefaultRuntime": engine.options.default_runtime,
        "Swarm": {"NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive",
                  "ControlAvailable": False, "Error": "", "RemoteManagers": None},
        "LiveRestoreEnabled": True, "Isolation": "", "InitBinary": "docker-init",
        "ContainerdCommit": {"ID": ""}, "RuncCommit": {"ID": ""}, "InitCommit": {"ID": ""},
        "SecurityOptions": ["name=seccomp,profile=builtin"], "Warnings": None,
        **_firewall_backend(engine),
    }


def _firewall_backend(engine: Engine) -> dict[str, Any]:
    """Docker 28's FirewallBackend, absent (as dockerd) when the daemon manages no rules."""
    firewall = getattr(getattr(engine, "networks", None), "firewall", None)
    if firewall is None or not firewall.enabled:
        return {}
    return {"FirewallBackend": {"Driver": firewall.backend}}


def _daemon_id(engine: Engine) -> str:
    path = engine.options.data_root / "engine-id"
    if not path.exists():
        import uuid

        from ..atomicfile import write_atomic

        write_atomic(path, str(uuid.uuid4()))
    return path.read_text().strip()


def _os_release() -> dict[str, str]:
    try:
        text = open("/etc/os-release").read()
    except OSError:
        return {}
    pairs = (line.split("=", 1) for line in text.splitlines() if "=" in line)
    return {key: value.strip('"') for key, value in pairs}


def _os_name() -> str:
    return _os_release().get("PRETTY_NAME", "Linux")
