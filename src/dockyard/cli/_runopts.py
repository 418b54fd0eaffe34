"""`run`/`create` flags and their translation into the API's create body, as docker's
cli/command/container/opts.go does it (same fields, same defaults, same normalisation)."""

from __future__ import annotations

import os

from ..units import ram_in_bytes
from ._args import Options, UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:   # typing costs ~10 ms at start-up
    from typing import Any

    from ._args import Flag

CREATE_FLAGS: list[Flag] = [
    ("", "add-host", "list", [], "Add a custom host-to-IP mapping (host:ip)"),
    ("a", "attach", "list", [], "Attach to STDIN, STDOUT or STDERR"),
    ("", "blkio-weight", "int", 0, "Block IO (relative weight), between 10 and 1000"),
    ("", "cap-add", "list", [], "Add Linux capabilities"),
    ("", "cap-drop", "list", [], "Drop Linux capabilities"),
    ("", "cgroup-parent", "str", "", "Optional parent cgroup for the container"),
    ("", "cgroupns", "str", "", "Cgroup namespace to use (host|private)"),
    ("", "cidfile", "str", "", "Write the container ID to the file"),
    ("", "cpu-period", "int", 0, "Limit CPU CFS (Completely Fair Scheduler) period"),
    ("", "cpu-quota", "int", 0, "Limit CPU CFS (Completely Fair Scheduler) quota"),
    ("", "cpu-rt-period", "int", 0, "Limit CPU real-time period in microseconds"),
    ("", "cpu-rt-runtime", "int", 0, "Limit CPU real-time runtime in microseconds"),
    ("c", "cpu-shares", "int", 0, "CPU shares (relative weight)"),
    ("", "cpus", "str", "", "Number of CPUs"),
    ("", "cpuset-cpus", "str", "", "CPUs in which to allow execution (0-3, 0,1)"),
    ("", "cpuset-mems", "str", "", "MEMs in which to allow execution (0-3, 0,1)"),
    ("", "device", "list", [], "Add a host device to the container"),
    ("", "device-cgroup-rule", "list", [], "Add a rule to the cgroup allowed devices list"),
    ("", "dns", "list", [], "Set custom DNS servers"),
    ("", "dns-option", "list", [], "Set DNS options"),
    ("", "dns-search", "list", [], "Set custom DNS search domains"),
    ("", "domainname", "str", "", "Container NIS domain name"),
    ("", "entrypoint", "str", "", "Overwrite the default ENTRYPOINT of the image"),
    ("e", "env", "list", [], "Set environment variables"),
    ("", "env-file", "list", [], "Read in a file of environment variables"),
    ("", "expose", "list", [], "Expose a port or a range of ports"),
    ("", "group-add", "list", [], "Add additional groups to join"),
    ("", "health-cmd", "str", "", "Command to run to check health"),
    ("", "health-interval", "str", "", "Time between running the check (ms|s|m|h)"),
    ("", "health-retries", "int", 0, "Consecutive failures needed to report unhealthy"),
    ("", "health-start-interval", "str", "", "Time between checks during the start period"),
    ("", "health-start-period", "str", "", "Start period for the container to initialize"),
    ("", "health-timeout", "str", "", "Maximum time to allow one check to run (ms|s|m|h)"),
    ("h", "hostname", "str", "", "Container host name"),
    ("", "init", "bool", False, "Run an init inside the container that forwards signals "
                                 "and reaps processes"),
    ("i", "interactive", "bool", False, "Keep STDIN open even if not attached"),
    ("", "ip", "str", "", "IPv4 address (e.g., 172.30.100.104)"),
    ("", "ip6", "str", "", "IPv6 address (e.g., 2001:db8::33)"),
    ("", "ipc", "str", "", "IPC mode to use"),
    ("", "isolation", "str", "", "Container isolation technology"),
    ("l", "label", "list", [], "Set meta data on a container"),
    ("", "label-file", "list", [], "Read in a line delimited file of labels"),
    ("", "link", "list", [], "Add link to another container"),
    ("", "log-driver", "str", "", "Logging driver for the container"),
    ("", "log-opt", "list", [], "Log driver options"),
    ("", "mac-address", "str", "", "Container MAC address (e.g., 92:d0:c6:0a:29:33)"),
    ("m", "memory", "str", "", "Memory limit"),
    ("", "memory-reservation", "str", "", "Memory soft limit"),
    ("", "memory-swap", "str", "", "Swap limit equal to memory plus swap: '-1' to enable "
                                   "unlimited swap"),
    ("", "memory-swappiness", "int", -1, "Tune container memory swappiness (0 to 100)"),
    ("", "mount", "list", [], "Attach a filesystem mount to the container"),
    ("", "name", "str", "", "Assign a name to the container"),
    ("", "network", "str", "", "Connect a container to a network"),
    ("", "network-alias", "list", [], "Add network-scoped alias for the container"),
    ("", "no-healthcheck", "bool", False, "Disable any container-specified HEALTHCHECK"),
    ("", "oom-kill-disable", "bool", False, "Disable OOM Killer"),
    ("", "oom-score-adj", "int", 0, "Tune host's OOM preferences (-1000 to 1000)"),
    ("", "pid", "str", "", "PID namespace to use"),
    ("", "pids-limit", "int", 0, "Tune container pids limit (set -1 for unlimited)"),
    ("", "platform", "str", "", "Set platform if server is multi-platform capable"),
    ("", "privileged", "bool", False, "Give extended privileges to this container"),
    ("p", "publish", "list", [], "Publish a container's port(s) to the host"),
    ("P", "publish-all", "bool", False, "Publish all exposed ports to random ports"),
    ("", "pull", "str", "missing", 'Pull image before running ("always", "missing", '
                                   '"never")'),
    ("q", "quiet", "bool", False, "Suppress the pull output"),
    ("", "read-only", "bool", False, "Mount the container's root filesystem as read only"),
    ("", "restart", "str", "no", "Restart policy to apply when a container exits"),
    ("", "rm", "bool", False, "Automatically remove the container and its associated "
                              "anonymous volumes when it exits"),
    ("", "runtime", "str", "", "Runtime to use for this container"),
    ("", "security-opt", "list", [], "Security Options"),
    ("", "shm-size", "str", "", "Size of /dev/shm"),
    ("", "stop-signal", "str", "", "Signal to stop the container"),
    ("", "stop-timeout", "int", 0, "Timeout (in seconds) to stop a container"),
    ("", "storage-opt", "list", [], "Storage driver options for the container"),
    ("", "sysctl", "list", [], "Sysctl options"),
    ("", "tmpfs", "list", [], "Mount a tmpfs directory"),
    ("t", "tty", "bool", False, "Allocate a pseudo-TTY"),
    ("", "ulimit", "list", [], "Ulimit options"),
    ("u", "user", "str", "", "Username or UID (format: <name|uid>[:<group|gid>])"),
    ("", "userns", "str", "", "User namespace to use"),
    ("", "uts", "str", "", "UTS namespace to use"),
    ("v", "volume", "list", [], "Bind mount a volume"),
    ("", "volume-driver", "str", "", "Optional volume driver for the container"),
    ("", "volumes-from", "list", [], "Mount volumes from the specified container(s)"),
    ("w", "workdir", "str", "", "Working directory inside the container"),
]

RUN_FLAGS: list[Flag] = sorted(CREATE_FLAGS + [
    ("d", "detach", "bool", False, "Run container in background and print container ID"),
    ("", "detach-keys", "str", "", "Override the key sequence for detaching a container"),
    ("", "sig-proxy", "bool", True, "Proxy received signals to the process"),
], key=lambda flag: flag[1])


# -- small parsers ----------------------------------------------------------------------------

_DURATION_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000,
                   "m": 60_000_000_000, "h": 3_600_000_000_000}


def go_duration(text: str) -> int:
    """Go's time.ParseDuration, in nanoseconds ("1m30s", "500ms", "2h")."""
    rest = text
    sign = 1
    if rest[:1] in "+-" and rest:
        sign = -1 if rest[0] == "-" else 1
        rest = rest[1:]
    if rest == "0":
        return 0
    if not rest:
        raise ValueError(f'time: invalid duration "{text}"')
    total = 0.0
    while rest:
        index = 0
        while index < len(rest) and (rest[index].isdigit() or rest[index] == "."):
            index += 1
        number, rest = rest[:index], rest[index:]
        unit_end = 0
        while unit_end < len(rest) and not (rest[unit_end].isdigit() or rest[unit_end] == "."):
            unit_end += 1
        unit, rest = rest[:unit_end], rest[unit_end:]
        if not number or unit not in _DURATION_UNITS:
            raise ValueError(f'time: invalid duration "{text}"')
        total += float(number) * _DURATION_UNITS[unit]
    return sign * int(total)


def _kv_map(items: list[str]) -> dict[str, str]:
    result: dict[str, str] = {}
    for item in items:
        key, _, value = item.partition("=")
        result[key] = value
    return result


def _read_lines(path: str, what: str) -> list[str]:
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as err:
        raise UsageError(f"open {path}: {err.strerror.lower() if err.strerror else err}") \
            from None
    del what
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def _env_value(item: str) -> str:
    # Docker: a bare NAME takes its value from the local environment, if set there.
    if "=" not in item:
        if item in os.environ:
            return f"{item}={os.environ[item]}"
        return item
    if item.startswith("="):
        raise UsageError(f"invalid environment variable: {item}")
    return item


def _capability(name: str) -> str:
    upper = name.upper()
    if upper == "ALL" or upper.startswith("CAP_"):
        return upper
    return "CAP_" + upper


def parse_port_spec(spec: str) -> list[tuple[str, dict[str, str] | None]]:
    """nat.ParsePortSpec: [ip:][hostPort:]containerPort[/proto] -> [(port/proto, binding)]."""
    raw, _, proto = spec.partition("/")
    proto = proto or "tcp"
    ip = ""
    host_port = ""
    if raw.startswith("["):
        end = raw.find("]")
        ip = raw[1:end]
        raw = raw[end + 2:]
    parts = raw.split(":")
    if len(parts) == 1:
        container = parts[0]
    elif len(parts) == 2:
        host_port, container = parts
    else:
        container = parts[-1]
        host_port = parts[-2]
        ip = ip or ":".join(parts[:-2])
    if not container:
        raise UsageError(f"no port specified: {spec}<empty>")

    def port_range(text: str) -> tuple[int, int]:
        start, _, end = text.partition("-")
        try:
            first = int(start)
            last = int(end) if end else first
        except ValueError:
            raise UsageError(f"invalid containerPort: {text}") from None
        return first, last

    first, last = port_range(container)
    host_first = host_last = 0
    if host_port:
        host_first, host_last = port_range(host_port)
    result = []
    for offset in range(last - first + 1):
        port = f"{first + offset}/{proto}"
        if host_port and host_last != host_first:
            hp = str(host_first + offset)
        else:
            hp = host_port
        result.append((port, {"HostIp": ip, "HostPort": hp}))
    return result


def _parse_mount(spec: str) -> dict[str, Any]:
    mount: dict[str, Any] = {"Type": "volume"}
    fields = [f for f in spec.split(",") if f]
    pairs = []
    for field in fields:
        key, has_value, value = field.partition("=")
        pairs.append((key.strip().lower(), value if has_value else None, field))
    for key, value, _ in pairs:
        if key == "type":
            mount["Type"] = value
    volume_options: dict[str, Any] | None = None
    for key, value, field in pairs:
        if key == "type":
            continue
        if key in ("readonly", "ro"):
            mount["ReadOnly"] = value is None or value.lower() in ("1", "true")
        elif key in ("source", "src"):
            mount["Source"] = value
        elif key in ("target", "dst", "destination"):
            mount["Target"] = value
        elif key == "consistency":
            mount["Consistency"] = value
        elif key == "bind-propagation":
            mount.setdefault("BindOptions", {})["Propagation"] = value
        elif key == "bind-nonrecursive":
            mount.setdefault("BindOptions", {})["NonRecursive"] = value in (None, "true", "1")
        elif key.startswith("volume-"):
            if volume_options is None:
                volume_options = {"DriverConfig": {}}
                mount["VolumeOptions"] = volume_options
            if key == "volume-nocopy":
                volume_options["NoCopy"] = value in (None, "true", "1")
            elif key == "volume-label":
                label, _, label_value = (value or "").partition("=")
                volume_options.setdefault("Labels", {})[label] = label_value
            elif key == "volume-driver":
                volume_options["DriverConfig"]["Name"] = value
            elif key == "volume-opt":
                opt, _, opt_value = (value or "").partition("=")
                volume_options["DriverConfig"].setdefault("Options", {})[opt] = opt_value
            else:
                raise UsageError(f"invalid argument \"{spec}\" for \"--mount\" flag: "
                                 f"unexpected key '{key}' in '{field}'")
        elif key == "tmpfs-size":
            mount.setdefault("TmpfsOptions", {})["SizeBytes"] = ram_in_bytes(value or "")
        elif key == "tmpfs-mode":
            mount.setdefault("TmpfsOptions", {})["Mode"] = int(value or "0", 8)
        else:
            raise UsageError(f"invalid argument \"{spec}\" for \"--mount\" flag: "
                             f"unexpected key '{key}' in '{field}'")
    if not mount.get("Target"):
        raise UsageError(f"invalid argument \"{spec}\" for \"--mount\" flag: "
                         "target is required")
    # Docker lists the keys in its struct's order.
    order = ["Type", "Source", "Target", "ReadOnly", "Consistency", "BindOptions",
             "VolumeOptions", "TmpfsOptions"]
    return {key: mount[key] for key in order if key in mount}


def _parse_device(spec: str) -> dict[str, str]:
    parts = spec.split(":")
    host = parts[0]
    inside = host
    permissions = "rwm"
    if len(parts) == 2:
        if parts[1] and all(c in "rwm" for c in parts[1]):
            permissions = parts[1]
        else:
            inside = parts[1]
    elif len(parts) == 3:
        inside, permissions = parts[1], parts[2]
    elif len(parts) > 3:
        raise UsageError(f"invalid device specification: {spec}")
    return {"PathOnHost": host, "PathInContainer": inside or host,
            "CgroupPermissions": permissions}


def _parse_ulimit(spec: str) -> dict[str, Any]:
    name, _, limits = spec.partition("=")
    if not limits:
        raise UsageError(f'invalid argument "{spec}" for "--ulimit" flag: '
                         f"invalid ulimit argument: {spec}")
    soft, _, hard = limits.partition(":")
    try:
        soft_value = int(soft)
        hard_value = int(hard) if hard else soft_value
    except ValueError:
        raise UsageError(f'invalid argument "{spec}" for "--ulimit" flag: '
                         f"invalid ulimit argument: {spec}") from None
    return {"Name": name, "Hard": hard_value, "Soft": soft_value}


def _restart_policy(text: str) -> dict[str, Any]:
    name, _, count = text.partition(":")
    if name not in ("no", "always", "on-failure", "unless-stopped", ""):
        raise UsageError(f"invalid restart policy format: {text}")
    retries = 0
    if count:
        try:
            retries = int(count)
        except ValueError:
            raise UsageError(f"invalid restart policy format: maximum retry count must "
                             f"be an integer: {text}") from None
    return {"Name": name or "no", "MaximumRetryCount": retries}


def _size(text: str, flag: str) -> int:
    if not text:
        return 0
    if text == "-1":
        return -1
    try:
        return ram_in_bytes(text)
    except ValueError as err:
        raise UsageError(f'invalid argument "{text}" for "{flag}" flag: {err}') from None


def _nano_cpus(text: str) -> int:
    if not text:
        return 0
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f'invalid argument "{text}" for "--cpus" flag: failed to parse '
                         f"{text} as a rational number") from None
    return int(round(value * 1e9))


def _security_opts(items: list[str]) -> list[str] | None:
    if not items:
        return None
    result = []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            key, sep, value = item.partition(":")
        if key == "seccomp" and value not in ("unconfined", "builtin", ""):
            try:
                with open(value, encoding="utf-8") as f:
                    content = f.read()
            except OSError as err:
                raise UsageError(f"opening seccomp profile ({value}) failed: {err}") from None
            import json

            item = "seccomp=" + json.dumps(json.loads(content), separators=(",", ":"))
        result.append(item)
    return result


# -- the body ---------------------------------------------------------------------------------

def build_create_body(opts: Options, image: str, command: list[str], detach: bool = False,
                      console_size: tuple[int, int] = (0, 0)) -> tuple[dict[str, Any],
                                                                         dict[str, str]]:
    """(create body, query) for `run`/`create` flags, the image and its command line."""
    given = opts.given
    attach = [a.lower() for a in opts.attach]
    for stream in attach:
        if stream not in ("stdin", "stdout", "stderr"):
            raise UsageError(f'invalid argument "{stream}" for "-a, --attach" flag: valid '
                             "streams are STDIN, STDOUT and STDERR")
    attach_stdin = "stdin" in attach or opts.interactive
    attach_stdout = "stdout" in attach or not attach
    attach_stderr = "stderr" in attach or not attach
    if detach:
        if attach:
            raise UsageError("Conflicting options: -a and -d")
        attach_stdin = attach_stdout = attach_stderr = False
    if opts.rm and opts.restart not in ("", "no"):
        raise UsageError("Conflicting options: --restart and --rm")

    env: list[str] = []
    for path in opts.env_file:
        env += [_env_value(line) for line in _read_lines(path, "env")]
    env += [_env_value(item) for item in opts.env]

    label_items: list[str] = []
    for path in opts.label_file:
        label_items += _read_lines(path, "label")
    label_items += opts.label

    exposed: dict[str, Any] = {}
    bindings: dict[str, list[dict[str, str]]] = {}
    for spec in opts.publish:
        for port, binding in parse_port_spec(spec):
            exposed[port] = {}
            bindings.setdefault(port, []).append(binding)  # type: ignore[arg-type]
    for spec in opts.expose:
        for port, _ in parse_port_spec(spec if "/" in spec else spec):
            exposed[port] = {}

    volumes: dict[str, Any] = {}
    binds: list[str] = []
    for spec in opts.volume:
        if ":" in spec.rstrip(":") and not spec.startswith(":"):
            binds.append(spec)
        else:
            volumes[spec] = {}

    entrypoint: list[str] | None = None
    if opts.entrypoint:
        entrypoint = [opts.entrypoint]
    elif "entrypoint" in given:
        entrypoint = [""]

    health: dict[str, Any] | None = None
    health_flags = ("health_cmd", "health_interval", "health_timeout", "health_start_period",
                    "health_retries", "health_start_interval")
    if opts.no_healthcheck:
        if any(flag in given for flag in health_flags):
            raise UsageError("--no-healthcheck conflicts with --health-* options")
        health = {"Test": ["NONE"]}
    elif any(flag in given for flag in health_flags):
        health = {}
        if opts.health_cmd:
            health["Test"] = ["CMD-SHELL", opts.health_cmd]
        for flag, key in (("health_interval", "Interval"), ("health_timeout", "Timeout"),
                          ("health_start_period", "StartPeriod"),
                          ("health_start_interval", "StartInterval")):
            if opts[flag]:
                try:
                    health[key] = go_duration(opts[flag])
                except ValueError as err:
                    raise UsageError(f'invalid argument "{opts[flag]}" for '
                                     f'"--{flag.replace("_", "-")}" flag: {err}') from None
        if opts.health_retries:
            health["Retries"] = opts.health_retries

    config: dict[str, Any] = {
        "Hostname": opts.hostname, "Domainname": opts.domainname, "User": opts.user,
        "AttachStdin": attach_stdin, "AttachStdout": attach_stdout,
        "AttachStderr": attach_stderr,
    }
    if exposed:
        config["ExposedPorts"] = exposed
    config.update({
        "Tty": opts.tty, "OpenStdin": opts.interactive,
        "StdinOnce": bool(opts.interactive and attach_stdin),
        "Env": env or None, "Cmd": command or None,
    })
    if health is not None:
        config["Healthcheck"] = health
    config.update({"Image": image, "Volumes": volumes, "WorkingDir": opts.workdir,
                   "Entrypoint": entrypoint})
    if opts.mac_address:
        config["MacAddress"] = opts.mac_address
    config["OnBuild"] = None
    config["Labels"] = _kv_map(label_items)
    if opts.stop_signal:
        config["StopSignal"] = opts.stop_signal
    if "stop_timeout" in given:
        config["StopTimeout"] = opts.stop_timeout

    network = opts.network or "default"
    log_config: dict[str, Any] = {"Type": opts.log_driver, "Config": _kv_map(opts.log_opt)}
    host: dict[str, Any] = {
        "Binds": binds or None, "ContainerIDFile": opts.cidfile, "LogConfig": log_config,
        "NetworkMode": network, "PortBindings": bindings,
        "RestartPolicy": _restart_policy(opts.restart), "AutoRemove": opts.rm,
        "VolumeDriver": opts.volume_driver, "VolumesFrom": opts.volumes_from or None,
        "ConsoleSize": list(console_size),
        "CapAdd": [_capability(c) for c in opts.cap_add] or None,
        "CapDrop": [_capability(c) for c in opts.cap_drop] or None,
        "CgroupnsMode": opts.cgroupns, "Dns": list(opts.dns),
        "DnsOptions": list(opts.dns_option), "DnsSearch": list(opts.dns_search),
        "ExtraHosts": [h.replace("=", ":", 1) if "=" in h else h for h in opts.add_host]
        or None,
        "GroupAdd": opts.group_add or None, "IpcMode": opts.ipc, "Cgroup": "",
        "Links": opts.link or None, "OomScoreAdj": opts.oom_score_adj, "PidMode": opts.pid,
        "Privileged": opts.privileged, "PublishAllPorts": opts.publish_all,
        "ReadonlyRootfs": opts.read_only, "SecurityOpt": _security_opts(opts.security_opt),
    }
    if opts.storage_opt:
        host["StorageOpt"] = _kv_map(opts.storage_opt)
    if opts.tmpfs:
        host["Tmpfs"] = {}
        for item in opts.tmpfs:
            path, _, options = item.partition(":")
            host["Tmpfs"][path] = options
    host.update({"UTSMode": opts.uts, "UsernsMode": opts.userns,
                 "ShmSize": _size(opts.shm_size, "--shm-size")})
    if opts.sysctl:
        host["Sysctls"] = _kv_map(opts.sysctl)
    if opts.runtime:
        host["Runtime"] = opts.runtime
    host.update({
        "Isolation": opts.isolation, "CpuShares": opts.cpu_shares,
        "Memory": _size(opts.memory, "-m, --memory"), "NanoCpus": _nano_cpus(opts.cpus),
        "CgroupParent": opts.cgroup_parent, "BlkioWeight": opts.blkio_weight,
        "BlkioWeightDevice": [], "BlkioDeviceReadBps": [], "BlkioDeviceWriteBps": [],
        "BlkioDeviceReadIOps": [], "BlkioDeviceWriteIOps": [],
        "CpuPeriod": opts.cpu_period, "CpuQuota": opts.cpu_quota,
        "CpuRealtimePeriod": opts.cpu_rt_period, "CpuRealtimeRuntime": opts.cpu_rt_runtime,
        "CpusetCpus": opts.cpuset_cpus, "CpusetMems": opts.cpuset_mems,
        "Devices": [_parse_device(d) for d in opts.device],
        "DeviceCgroupRules": opts.device_cgroup_rule or None, "DeviceRequests": None,
        "MemoryReservation": _size(opts.memory_reservation, "--memory-reservation"),
        "MemorySwap": _size(opts.memory_swap, "--memory-swap"),
        "MemorySwappiness": opts.memory_swappiness,
        "OomKillDisable": opts.oom_kill_disable, "PidsLimit": opts.pids_limit,
        "Ulimits": [_parse_ulimit(u) for u in opts.ulimit],
        "CpuCount": 0, "CpuPercent": 0, "IOMaximumIOps": 0, "IOMaximumBandwidth": 0,
    })
    if opts.mount:
        host["Mounts"] = [_parse_mount(m) for m in opts.mount]
    host["MaskedPaths"] = None
    host["ReadonlyPaths"] = None
    if "init" in given:
        host["Init"] = opts.init

    endpoints: dict[str, Any] = {}
    if network not in ("none", "host") and not network.startswith("container:"):
        endpoint: dict[str, Any] = {
            "IPAMConfig": None, "Links": None, "Aliases": opts.network_alias or None,
            "MacAddress": "", "DriverOpts": None, "GwPriority": 0, "NetworkID": "",
            "EndpointID": "", "Gateway": "", "IPAddress": "", "IPPrefixLen": 0,
            "IPv6Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0,
            "DNSNames": None}
        if opts.ip or opts.ip6:
            addresses = {"IPv4Address": opts.ip, "IPv6Address": opts.ip6}
            endpoint["IPAMConfig"] = {k: v for k, v in addresses.items() if v}
        endpoints[network] = endpoint
    body = {**config, "HostConfig": host, "NetworkingConfig": {"EndpointsConfig": endpoints}}
    query: dict[str, str] = {}
    if opts.name:
        query["name"] = opts.name
    if opts.platform:
        query["platform"] = opts.platform
    return body, query
