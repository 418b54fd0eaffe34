"""A container's OCI runtime config (config.json) from its Docker configuration.

Docker's defaults are reproduced here: the capability set, masked and read-only /proc
paths, the /dev mounts, the default seccomp profile, the device cgroup rules, /etc/hosts,
/etc/hostname and /etc/resolv.conf bind mounts, PATH and HOSTNAME in the environment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from . import seccomp_profile
from .errors import InvalidParameter
from .mounts import user_mounts
from .users import resolve_user

DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEFAULT_CAPABILITIES = [
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
]
MASKED_PATHS = [
    "/proc/asound", "/proc/acpi", "/proc/interrupts", "/proc/kcore", "/proc/keys",
    "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug",
    "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap",
]
READONLY_PATHS = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
# Docker's default device cgroup rules: deny all, then these (type, major, minor, access).
DEFAULT_DEVICE_RULES = [
    ("c", None, None, "m"), ("b", None, None, "m"), ("c", 1, 3, "rwm"), ("c", 1, 8, "rwm"),
    ("c", 1, 7, "rwm"), ("c", 5, 0, "rwm"), ("c", 1, 5, "rwm"), ("c", 1, 9, "rwm"),
    ("c", 136, None, "rwm"), ("c", 5, 2, "rwm"), ("c", 10, 200, "rwm"),
]
DEFAULT_SHM_SIZE = 64 * 1024 * 1024
INIT_PATH = "/sbin/docker-init"


class ContainerPaths:
    """Where the engine keeps one container's files on the host."""

    def __init__(self, rootfs: Path, hostname_file: Path, hosts_file: Path,
                 resolv_conf: Path, init_binary: Path | None,
                 netns: str | None = None) -> None:
        self.rootfs = rootfs
        self.hostname_file = hostname_file
        self.hosts_file = hosts_file
        self.resolv_conf = resolv_conf
        self.init_binary = init_binary
        # The container's resolved mount points (volumes with their paths), as OCI mounts;
        # None: the binds and tmpfs mounts of host_config.
        self.user_mounts: list[dict[str, Any]] | None = None
        self.netns = netns  # a network namespace to join (the daemon's sandbox)


def all_capabilities() -> list[str]:
    from ..runtime.capabilities import CAPABILITIES, last_cap

    return [name for name, bit in CAPABILITIES.items() if bit <= last_cap()]


def capability_set(host_config: dict[str, Any]) -> list[str]:
    if host_config.get("Privileged"):
        return all_capabilities()
    caps = list(DEFAULT_CAPABILITIES)
    adds = [_cap_name(c) for c in host_config.get("CapAdd") or []]
    drops = [_cap_name(c) for c in host_config.get("CapDrop") or []]
    known = set(all_capabilities())
    for name in adds + drops:
        if name != "ALL" and name not in known:
            raise InvalidParameter(f"unknown capability: \"{name}\"")
    if "ALL" in adds:
        caps = all_capabilities()
    else:
        caps += [c for c in adds if c not in caps]
    if "ALL" in drops:
        return [c for c in adds if c != "ALL"] if "ALL" not in adds else []
    return [c for c in caps if c not in drops]


def _cap_name(name: str) -> str:
    name = name.upper()
    return name if name == "ALL" or name.startswith("CAP_") else f"CAP_{name}"


def build_spec(container_id: str, config: dict[str, Any], host_config: dict[str, Any],
               paths: ContainerPaths, cgroups_path: str) -> dict[str, Any]:
    privileged = bool(host_config.get("Privileged"))
    caps = capability_set(host_config)
    args = list(config.get("Entrypoint") or []) + list(config.get("Cmd") or [])
    if not args:
        raise InvalidParameter("no command specified")
    if host_config.get("Init"):
        if paths.init_binary is None:
            raise InvalidParameter("--init: no init binary (docker-init or tini) is installed")
        args = [INIT_PATH, "--", *args]
    hostname = config.get("Hostname") or container_id[:12]
    env = _environment(config.get("Env") or [], hostname)
    if config.get("Tty") and not any(e.startswith("TERM=") for e in env):
        env.append("TERM=xterm")
    user = resolve_user(paths.rootfs, config.get("User") or "",
                        host_config.get("GroupAdd") or [])
    process: dict[str, Any] = {
        "terminal": bool(config.get("Tty")),
        "user": user,
        "args": args,
        "env": env,
        "cwd": config.get("WorkingDir") or "/",
        "capabilities": {kind: list(caps) for kind in ("bounding", "effective", "permitted")},
        "noNewPrivileges": _no_new_privileges(host_config),
        "rlimits": _rlimits(host_config.get("Ulimits") or []),
    }
    if host_config.get("OomScoreAdj"):
        process["oomScoreAdj"] = host_config["OomScoreAdj"]
    if user["uid"] != 0:
        # Docker gives a non-root user no effective or permitted capabilities (only the
        # bounding set): it gains them only through file capabilities or setuid.
        process["capabilities"]["effective"] = []
        process["capabilities"]["permitted"] = []
    linux: dict[str, Any] = {
        "namespaces": _namespaces(host_config, paths.netns),
        "cgroupsPath": cgroups_path,
        "resources": _resources(host_config, privileged),
        "devices": _devices(host_config, privileged),
    }
    if not privileged:
        linux["maskedPaths"] = list(MASKED_PATHS)
        linux["readonlyPaths"] = list(READONLY_PATHS)
        linux["seccomp"] = _seccomp(host_config, caps)
    if host_config.get("Sysctls"):
        linux["sysctl"] = dict(host_config["Sysctls"])
    if linux.get("seccomp") is None:
        linux.pop("seccomp", None)
    spec: dict[str, Any] = {
        "ociVersion": "1.0.2",
        "process": process,
        "root": {"path": str(paths.rootfs), "readonly": bool(host_config.get("ReadonlyRootfs"))},
        "hostname": hostname,
        "mounts": _mounts(host_config, paths, privileged),
        "linux": linux,
    }
    if config.get("Domainname"):
        spec["domainname"] = config["Domainname"]
    if not any(ns["type"] == "uts" for ns in linux["namespaces"]):
        # --network host: the host's UTS namespace, whose name the container must not set.
        spec.pop("hostname", None)
        spec.pop("domainname", None)
    return spec


def _environment(env: list[str], hostname: str) -> list[str]:
    result = [f"HOSTNAME={hostname}"] if not any(e.startswith("HOSTNAME=") for e in env) else []
    if not any(e.startswith("PATH=") for e in env):
        result.insert(0, DEFAULT_PATH)
    return result + list(env)


def _no_new_privileges(host_config: dict[str, Any]) -> bool:
    for option in host_config.get("SecurityOpt") or []:
        key, _, value = option.replace(":", "=", 1).partition("=")
        if key == "no-new-privileges":
            return value in ("", "true")
    return False


def _seccomp(host_config: dict[str, Any], caps: list[str]) -> dict[str, Any] | None:
    profile = None
    for option in host_config.get("SecurityOpt") or []:
        key, sep, value = option.partition("=")
        if key != "seccomp" or not sep:
            continue
        if value == "unconfined":
            return None
        profile = seccomp_profile.load_profile(value)
    try:
        return seccomp_profile.to_oci(profile or seccomp_profile.default_profile(), caps)
    except seccomp_profile.ProfileError as e:
        raise InvalidParameter(str(e)) from None


_RLIMIT_NAMES = {"core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice",
                 "nofile", "nproc", "rss", "rtprio", "rttime", "sigpending", "stack", "as"}


def _rlimits(ulimits: list[dict[str, Any]]) -> list[dict[str, Any]]:
    result = []
    for ulimit in ulimits:
        name = str(ulimit.get("Name", "")).lower()
        if name not in _RLIMIT_NAMES:
            raise InvalidParameter(f"invalid ulimit type: {name}")
        result.append({"type": f"RLIMIT_{name.upper()}", "soft": int(ulimit.get("Soft", 0)),
                       "hard": int(ulimit.get("Hard", 0))})
    return result


def _namespaces(host_config: dict[str, Any],
                netns: str | None = None) -> list[dict[str, str]]:
    namespaces = [{"type": "mount"}, {"type": "uts"}]
    mode = host_config.get("NetworkMode") or "default"
    if mode == "host":
        namespaces.pop()  # the host's hostname too, as Docker does with --network host
    elif netns:
        namespaces.append({"type": "network", "path": netns})
    elif mode.startswith("container:"):
        raise InvalidParameter("--network container:<name>: that container has no network "
                               "namespace")
    else:
        namespaces.append({"type": "network"})
    namespaces += _shared_or_new("pid", host_config.get("PidMode") or "")
    namespaces += _shared_or_new("ipc", host_config.get("IpcMode") or "")
    if (host_config.get("CgroupnsMode") or "host") == "private":
        namespaces.append({"type": "cgroup"})
    return namespaces


def _shared_or_new(kind: str, mode: str) -> list[dict[str, str]]:
    if mode == "host":
        return []
    if mode not in ("", "private", "shareable"):
        raise InvalidParameter(f"--{kind} {mode} is not supported yet")
    return [{"type": kind}]


def _resources(host_config: dict[str, Any], privileged: bool) -> dict[str, Any]:
    resources: dict[str, Any] = {}
    if privileged:
        resources["devices"] = [{"allow": True, "access": "rwm"}]
    else:
        rules = [{"allow": False, "access": "rwm"}]
        for kind, major, minor, access in DEFAULT_DEVICE_RULES:
            rule: dict[str, Any] = {"allow": True, "type": kind, "access": access}
            if major is not None:
                rule["major"] = major
            if minor is not None:
                rule["minor"] = minor
            rules.append(rule)
        resources["devices"] = rules
    memory: dict[str, Any] = {}
    if host_config.get("Memory"):
        memory["limit"] = int(host_config["Memory"])
        swap = host_config.get("MemorySwap")
        if swap:
            memory["swap"] = int(swap)
    if host_config.get("MemoryReservation"):
        memory["reservation"] = int(host_config["MemoryReservation"])
    if memory:
        resources["memory"] = memory
    cpu: dict[str, Any] = {}
    if host_config.get("CpuShares"):
        cpu["shares"] = int(host_config["CpuShares"])
    if host_config.get("NanoCpus"):
        cpu["period"] = 100000
        cpu["quota"] = int(host_config["NanoCpus"]) * 100000 // 1_000_000_000
    if host_config.get("CpuQuota"):
        cpu["quota"] = int(host_config["CpuQuota"])
    if host_config.get("CpuPeriod"):
        cpu["period"] = int(host_config["CpuPeriod"])
    for docker_key, oci_key in (("CpusetCpus", "cpus"), ("CpusetMems", "mems")):
        if host_config.get(docker_key):
            cpu[oci_key] = host_config[docker_key]
    if cpu:
        resources["cpu"] = cpu
    if host_config.get("PidsLimit"):
        resources["pids"] = {"limit": int(host_config["PidsLimit"])}
    if host_config.get("BlkioWeight"):
        resources["blockIO"] = {"weight": int(host_config["BlkioWeight"])}
    return resources


def _devices(host_config: dict[str, Any], privileged: bool) -> list[dict[str, Any]]:
    import os
    import stat

    devices = []
    for index, mapping in enumerate(host_config.get("Devices") or []):
        host_path = mapping.get("PathOnHost", "")
        try:
            st = os.stat(host_path)
        except OSError:
            raise InvalidParameter(f"error gathering device information while adding custom "
                                   f"device \"{host_path}\": no such file or directory") from None
        if not (stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)):
            raise InvalidParameter(f"Devices[{index}]: {host_path} is not a device node")
        devices.append({
            "path": mapping.get("PathInContainer") or host_path,
            "type": "c" if stat.S_ISCHR(st.st_mode) else "b",
            "major": os.major(st.st_rdev), "minor": os.minor(st.st_rdev),
            "fileMode": stat.S_IMODE(st.st_mode), "uid": 0, "gid": 0,
        })
    del privileged  # privileged containers get /dev bound from the host: not yet
    return devices


def _mounts(host_config: dict[str, Any], paths: ContainerPaths,
            privileged: bool) -> list[dict[str, Any]]:
    shm_size = int(host_config.get("ShmSize") or DEFAULT_SHM_SIZE)
    mounts: list[dict[str, Any]] = [
        {"destination": "/proc", "type": "proc", "source": "proc",
         "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620",
                     "gid=5"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs",
         "options": ["nosuid", "noexec", "nodev", "ro" if not privileged else "rw"]},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
         "options": ["ro" if not privileged else "rw", "nosuid", "noexec", "nodev"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
         "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", f"size={shm_size}"]},
    ]
    for destination, options in (host_config.get("Tmpfs") or {}).items():
        extra = [o for o in str(options).split(",") if o]
        mounts.append({"destination": destination, "type": "tmpfs", "source": "tmpfs",
                       "options": ["nosuid", "nodev", "noexec", *extra]})
    for source, destination in ((paths.resolv_conf, "/etc/resolv.conf"),
                                (paths.hostname_file, "/etc/hostname"),
                                (paths.hosts_file, "/etc/hosts")):
        mounts.append({"destination": destination, "type": "bind", "source": str(source),
                       "options": ["rbind", "rprivate"]})
    if host_config.get("Init") and paths.init_binary is not None:
        mounts.append({"destination": INIT_PATH, "type": "bind",
                       "source": str(paths.init_binary), "options": ["bind", "ro"]})
    if paths.user_mounts is not None:
        mounts += paths.user_mounts
    else:
        mounts += [mount.oci() for mount in user_mounts(host_config)]
    return mounts
