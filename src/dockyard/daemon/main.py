"""`dockyardd` (also `dockyard daemon`): flags and daemon.json as dockerd reads them where
they apply, a pid file, the API server on its sockets, and a clean stop on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ..atomicfile import write_atomic
from ..engine.options import EngineOptions

DEFAULT_HOST = "unix:///run/dockyard.sock"
DEFAULT_DATA_ROOT = "/var/lib/dockyard"
DEFAULT_EXEC_ROOT = "/run/dockyard"
DEFAULT_CONFIG = "/etc/dockyard/daemon.json"
# Blocking engine calls (wait, logs -f, attach set-up) each hold a worker thread.
_WORKERS = 128

log = logging.getLogger("dockyard.daemon")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="dockyardd", description="The Dockyard daemon.")
    parser.add_argument("-H", "--host", action="append", default=[],
                        help="unix:///path or tcp://127.0.0.1:PORT (repeatable)")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--exec-root", default=None)
    parser.add_argument("-p", "--pidfile", default=None)
    parser.add_argument("--runtime", "--default-runtime", dest="runtime", default=None)
    parser.add_argument("--add-runtime", action="append", default=[],
                        help="name=path of an extra OCI runtime")
    parser.add_argument("-l", "--log-level", default=None,
                        choices=["debug", "info", "warn", "error", "fatal"])
    parser.add_argument("--config-file", default=DEFAULT_CONFIG)
    parser.add_argument("--cgroup-parent", default=None,
                        help="parent cgroup of the containers' cgroups (default /dockyard)")
    parser.add_argument("-b", "--bridge", default=None,
                        help="the default bridge network's device (default dockyard0), or "
                        "'none' for no default bridge")
    parser.add_argument("--bip", default=None,
                        help="the default bridge's address and prefix (e.g. 172.30.0.1/16)")
    parser.add_argument("--iptables", default=None, type=_flag_bool, nargs="?", const=True,
                        help="manage firewall rules (default true)")
    parser.add_argument("--ip-forward", default=None, type=_flag_bool, nargs="?", const=True,
                        help="enable net.ipv4.ip_forward (default true)")
    parser.add_argument("--firewall-prefix", default=None,
                        help="prefix of the daemon's iptables chains (default DOCKYARD), so "
                        "that two daemons on one host do not share rules")
    parser.add_argument("--firewall-backend", default=None, choices=["iptables", "nftables"],
                        help="firewall rules through iptables or nftables (default: iptables "
                        "when iptables-restore and iptables-save are found, else nftables)")
    parser.add_argument("--insecure-registry", action="append", default=[],
                        help="a registry (host:port or CIDR) to reach over HTTP (repeatable)")
    parser.add_argument("--registry-mirror", action="append", default=[],
                        help="a mirror to pull through first (repeatable)")
    return parser.parse_args(argv)


def _flag_bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes"):
        return True
    if text.lower() in ("0", "false", "no"):
        return False
    raise argparse.ArgumentTypeError(f"invalid boolean value: {text}")


def load_config(path: str, explicit: bool) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            config = json.load(f)
    except FileNotFoundError:
        if explicit:
            raise SystemExit(f"unable to configure the Dockyard daemon with file {path}: "
                             "no such file") from None
        return {}
    except json.JSONDecodeError as e:
        raise SystemExit(f"unable to configure the Dockyard daemon with file {path}: {e}") \
            from None
    if not isinstance(config, dict):
        raise SystemExit(f"unable to configure the Dockyard daemon with file {path}: "
                         "not a JSON object")
    return config


def build_options(args: argparse.Namespace, config: dict[str, Any]) -> tuple[
        EngineOptions, list[str], str | None, str]:
    def pick(flag: Any, key: str, default: Any) -> Any:
        return flag if flag not in (None, []) else config.get(key, default)

    runtimes = {name: spec.get("path", name) if isinstance(spec, dict) else str(spec)
                for name, spec in (config.get("runtimes") or {}).items()}
    for item in args.add_runtime:
        name, sep, path = item.partition("=")
        if not sep:
            raise SystemExit(f"--add-runtime {item}: expected name=path")
        runtimes[name] = path
    log_opts = config.get("log-opts") or {}
    options = EngineOptions(
        data_root=Path(pick(args.data_root, "data-root", DEFAULT_DATA_ROOT)),
        exec_root=Path(pick(args.exec_root, "exec-root", DEFAULT_EXEC_ROOT)),
        runtime=pick(args.runtime, "default-runtime", "dockyard-runc"),
        runtimes=runtimes,
        log_max_size=_size(log_opts.get("max-size", "10m")),
        log_max_files=int(log_opts.get("max-file", 3)),
        insecure_registries=[*(config.get("insecure-registries") or []),
                             *getattr(args, "insecure_registry", [])],
        registry_mirrors=[*(config.get("registry-mirrors") or []),
                          *getattr(args, "registry_mirror", [])],
        cgroup_parent=pick(args.cgroup_parent, "cgroup-parent", "/dockyard"),
        bridge=pick(args.bridge, "bridge", "dockyard0") or "dockyard0",
        bip=pick(args.bip, "bip", None),
        iptables=bool(pick(args.iptables, "iptables", True)),
        ip_forward=bool(pick(args.ip_forward, "ip-forward", True)),
        firewall_prefix=pick(args.firewall_prefix, "firewall-prefix", "DOCKYARD"),
        firewall_backend=_firewall_backend(pick(args.firewall_backend, "firewall-backend", ""),
                                           bool(pick(args.iptables, "iptables", True))),
    )
    hosts = pick(args.host, "hosts", [DEFAULT_HOST])
    pidfile = pick(args.pidfile, "pidfile", None)
    level = pick(args.log_level, "log-level", "info")
    return options, hosts, pidfile, level


def _firewall_backend(choice: str, enabled: bool) -> str:
    """The backend chosen or detected, or a clear error at start when there is none."""
    from ..network.firewall import FirewallError, resolve_backend

    try:
        return resolve_backend(str(choice or ""), enabled)
    except FirewallError as e:
        raise SystemExit(f"dockyardd: {e}") from None


def _size(text: Any) -> int:
    value = str(text).strip().lower()
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    if value and value[-1] in units:
        return int(float(value[:-1]) * units[value[-1]])
    return int(value)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    config = load_config(args.config_file, "--config-file" in (argv or sys.argv))
    options, hosts, pidfile, level = build_options(args, config)
    logging.basicConfig(level={"warn": "WARNING", "fatal": "CRITICAL"}.get(level,
                                                                           level.upper()),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if os.geteuid() != 0:
        print("dockyardd needs to be started with root privileges", file=sys.stderr)
        return 1
    if pidfile:
        _claim_pidfile(Path(pidfile))
    code = 1
    try:
        code = asyncio.run(_serve(options, hosts, pidfile))
    finally:
        if pidfile:
            Path(pidfile).unlink(missing_ok=True)
    return code


def _claim_pidfile(path: Path) -> None:
    if path.exists():
        try:
            other = int(path.read_text().strip() or 0)
        except ValueError:
            other = 0
        if other and Path(f"/proc/{other}").exists():
            raise SystemExit(f"pid file found, ensure dockyardd is not running or delete "
                             f"{path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, str(os.getpid()))


async def _serve(options: EngineOptions, hosts: list[str], pidfile: str | None) -> int:
    from ..api import ApiServer, Router
    from ..api import archive as archive_routes
    from ..api import build as build_routes
    from ..api import containers as container_routes
    from ..api import images as image_routes
    from ..api import monitor as monitor_routes
    from ..api import networks as network_routes
    from ..api import system as system_routes
    from ..api import volumes as volume_routes
    from ..engine.engine import Engine

    loop = asyncio.get_running_loop()
    loop.set_default_executor(ThreadPoolExecutor(max_workers=_WORKERS,
                                                 thread_name_prefix="engine"))
    engine = await asyncio.to_thread(Engine, options)
    await asyncio.to_thread(engine.restore)
    router = Router()
    system_routes.register(router, engine)
    image_routes.register(router, engine)
    container_routes.register(router, engine)
    archive_routes.register(router, engine)
    monitor_routes.register(router, engine)
    volume_routes.register(router, engine)
    build_routes.register(router, engine)
    network_routes.register(router, engine)
    server = ApiServer(router)
    for host in hosts:
        await server.listen(host)
    log.info("API listening on %s", ", ".join(hosts))
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    serving = asyncio.create_task(server.serve_forever())
    await stop.wait()
    log.info("shutting down (containers keep running under the shim)")
    await server.shutdown(timeout=5)
    serving.cancel()
    try:
        await asyncio.wait_for(asyncio.to_thread(engine.shutdown), timeout=10)
    except Exception:  # noqa: BLE001 - the daemon stops all the same
        log.exception("engine shutdown")
    # Engine threads blocked in waits (wait, logs -f, attach) would hold asyncio.run's
    # executor shutdown forever; all state is on disk, so leave now.
    if pidfile:
        Path(pidfile).unlink(missing_ok=True)
    logging.shutdown()
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
