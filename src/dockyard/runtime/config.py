"""The OCI runtime configuration (config.json), parsed into typed objects and validated.

The classes are plain (no dataclasses): this module is on the start-up path of every
`run`, and generating dataclass methods costs more than the rest of the module.

Only what the runtime acts on is modelled; the raw document is kept for hooks and state.
Every error names the field (`linux.namespaces[2].type: ...`).
"""

import os

from ._validate import (
    ConfigError,
    fail,
    get_bool,
    get_int,
    get_list,
    get_obj,
    get_str,
    get_str_list,
    get_str_map,
    require_abs,
)
from .capabilities import CAPABILITIES
from .jsonio import JSONError, loads
from .linux import NAMESPACE_FLAGS

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["ConfigError", "Spec", "Process", "load_bundle_config", "parse_spec", "parse_process"]

# In the kernel's order: the index is the resource number (asm-generic: x86_64, arm64).
RLIMIT_NAMES = (
    "RLIMIT_CPU", "RLIMIT_FSIZE", "RLIMIT_DATA", "RLIMIT_STACK", "RLIMIT_CORE", "RLIMIT_RSS",
    "RLIMIT_NPROC", "RLIMIT_NOFILE", "RLIMIT_MEMLOCK", "RLIMIT_AS", "RLIMIT_LOCKS",
    "RLIMIT_SIGPENDING", "RLIMIT_MSGQUEUE", "RLIMIT_NICE", "RLIMIT_RTPRIO", "RLIMIT_RTTIME",
)
HOOK_NAMES = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart",
              "poststop")
SECCOMP_ACTIONS = ("SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD",
                   "SCMP_ACT_TRAP", "SCMP_ACT_ERRNO", "SCMP_ACT_TRACE", "SCMP_ACT_ALLOW",
                   "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY")
SECCOMP_OPS = ("SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ", "SCMP_CMP_GE",
               "SCMP_CMP_GT", "SCMP_CMP_MASKED_EQ")
PROPAGATIONS = ("", "private", "rprivate", "shared", "rshared", "slave", "rslave",
                "unbindable", "runbindable")


class User:
    def __init__(
        self,
        uid: int = 0,
        gid: int = 0,
        umask: int | None = None,
        additional_gids: list[int] | None = None,
    ) -> None:
        self.uid = uid
        self.gid = gid
        self.umask = umask
        self.additional_gids = [] if additional_gids is None else additional_gids


class Capabilities:
    def __init__(
        self,
        bounding: list[str] | None = None,
        effective: list[str] | None = None,
        inheritable: list[str] | None = None,
        permitted: list[str] | None = None,
        ambient: list[str] | None = None,
    ) -> None:
        self.bounding = [] if bounding is None else bounding
        self.effective = [] if effective is None else effective
        self.inheritable = [] if inheritable is None else inheritable
        self.permitted = [] if permitted is None else permitted
        self.ambient = [] if ambient is None else ambient


class Rlimit:
    def __init__(self, type: str, soft: int, hard: int) -> None:
        self.type = type
        self.soft = soft
        self.hard = hard


class ConsoleSize:
    def __init__(self, height: int, width: int) -> None:
        self.height = height
        self.width = width


class Process:
    def __init__(
        self,
        args: list[str],
        cwd: str = "/",
        env: list[str] | None = None,
        terminal: bool = False,
        console_size: ConsoleSize | None = None,
        user: User | None = None,
        capabilities: Capabilities | None = None,
        rlimits: list[Rlimit] | None = None,
        no_new_privileges: bool = False,
        oom_score_adj: int | None = None,
        apparmor_profile: str = "",
        selinux_label: str = "",
    ) -> None:
        self.args = args
        self.cwd = cwd
        self.env = [] if env is None else env
        self.terminal = terminal
        self.console_size = console_size
        self.user = User() if user is None else user
        self.capabilities = capabilities
        self.rlimits = [] if rlimits is None else rlimits
        self.no_new_privileges = no_new_privileges
        self.oom_score_adj = oom_score_adj
        self.apparmor_profile = apparmor_profile
        self.selinux_label = selinux_label


class Mount:
    def __init__(
        self,
        destination: str,
        type: str = "",
        source: str = "",
        options: list[str] | None = None,
    ) -> None:
        self.destination = destination
        self.type = type
        self.source = source
        self.options = [] if options is None else options


class Hook:
    def __init__(
        self,
        path: str,
        args: list[str] | None = None,
        env: list[str] | None = None,
        timeout: int | None = None,
    ) -> None:
        self.path = path
        self.args = [] if args is None else args
        self.env = [] if env is None else env
        self.timeout = timeout


class Namespace:
    def __init__(self, type: str, path: str = "") -> None:
        self.type = type
        self.path = path


class IdMapping:
    def __init__(self, container_id: int, host_id: int, size: int) -> None:
        self.container_id = container_id
        self.host_id = host_id
        self.size = size


class Device:
    def __init__(
        self,
        path: str,
        type: str,
        major: int = 0,
        minor: int = 0,
        file_mode: int | None = None,
        uid: int | None = None,
        gid: int | None = None,
    ) -> None:
        self.path = path
        self.type = type
        self.major = major
        self.minor = minor
        self.file_mode = file_mode
        self.uid = uid
        self.gid = gid


class SeccompArg:
    def __init__(self, index: int, value: int, value_two: int, op: str) -> None:
        self.index = index
        self.value = value
        self.value_two = value_two
        self.op = op


class SeccompRule:
    def __init__(
        self,
        names: list[str],
        action: str,
        errno_ret: int | None = None,
        args: list[SeccompArg] | None = None,
    ) -> None:
        self.names = names
        self.action = action
        self.errno_ret = errno_ret
        self.args = [] if args is None else args


class Seccomp:
    def __init__(
        self,
        default_action: str,
        default_errno_ret: int | None = None,
        architectures: list[str] | None = None,
        flags: list[str] | None = None,
        syscalls: list[SeccompRule] | None = None,
    ) -> None:
        self.default_action = default_action
        self.default_errno_ret = default_errno_ret
        self.architectures = [] if architectures is None else architectures
        self.flags = [] if flags is None else flags
        self.syscalls = [] if syscalls is None else syscalls


class Linux:
    def __init__(
        self,
        namespaces: list[Namespace] | None = None,
        uid_mappings: list[IdMapping] | None = None,
        gid_mappings: list[IdMapping] | None = None,
        devices: list[Device] | None = None,
        cgroups_path: str = "",
        resources: "dict[str, Any] | None" = None,
        sysctl: dict[str, str] | None = None,
        seccomp: Seccomp | None = None,
        rootfs_propagation: str = "",
        masked_paths: list[str] | None = None,
        readonly_paths: list[str] | None = None,
        mount_label: str = "",
    ) -> None:
        self.namespaces = [] if namespaces is None else namespaces
        self.uid_mappings = [] if uid_mappings is None else uid_mappings
        self.gid_mappings = [] if gid_mappings is None else gid_mappings
        self.devices = [] if devices is None else devices
        self.cgroups_path = cgroups_path
        self.resources = {} if resources is None else resources
        self.sysctl = {} if sysctl is None else sysctl
        self.seccomp = seccomp
        self.rootfs_propagation = rootfs_propagation
        self.masked_paths = [] if masked_paths is None else masked_paths
        self.readonly_paths = [] if readonly_paths is None else readonly_paths
        self.mount_label = mount_label

    def namespace(self, kind: str) -> Namespace | None:
        return next((ns for ns in self.namespaces if ns.type == kind), None)


class Spec:
    def __init__(
        self,
        oci_version: str,
        root_path: str,
        root_readonly: bool,
        process: Process | None,
        hostname: str,
        domainname: str,
        mounts: list[Mount],
        hooks: dict[str, list[Hook]],
        annotations: dict[str, str],
        linux: Linux,
        raw: "dict[str, Any]",
    ) -> None:
        self.oci_version = oci_version
        self.root_path = root_path
        self.root_readonly = root_readonly
        self.process = process
        self.hostname = hostname
        self.domainname = domainname
        self.mounts = mounts
        self.hooks = hooks
        self.annotations = annotations
        self.linux = linux
        self.raw = raw


def load_bundle_config(bundle: str) -> Spec:
    """Reads and validates <bundle>/config.json; the rootfs path comes back absolute."""
    path = os.path.join(bundle, "config.json")
    try:
        with open(path, "rb") as f:
            doc = loads(f.read())
    except FileNotFoundError:
        raise ConfigError(f"config.json: no such file in bundle {bundle}") from None
    except (JSONError, UnicodeDecodeError) as e:
        raise ConfigError(f"config.json: invalid JSON: {e}") from None
    spec = parse_spec(doc)
    if not os.path.isabs(spec.root_path):
        spec.root_path = os.path.join(os.path.abspath(bundle), spec.root_path)
    if not os.path.isdir(spec.root_path):
        fail("root.path", f"rootfs {spec.root_path} does not exist or is not a directory")
    return spec


def parse_spec(doc: "Any") -> Spec:
    if not isinstance(doc, dict):
        raise ConfigError("config.json: must be a JSON object")
    oci_version = get_str(doc, "ociVersion", "")
    if not oci_version:
        fail("ociVersion", "is required")
    root = get_obj(doc, "root", "")
    if root is None:
        fail("root", "is required")
    root_path = get_str(root, "path", "root")
    if not root_path:
        fail("root.path", "is required")
    process_doc = get_obj(doc, "process", "")
    linux_doc = get_obj(doc, "linux", "") or {}
    hooks = parse_hooks(doc)
    hostname = get_str(doc, "hostname", "", "")
    spec = Spec(
        oci_version=oci_version,
        root_path=root_path,
        root_readonly=get_bool(root, "readonly", "root"),
        process=parse_process(process_doc, "process") if process_doc is not None else None,
        hostname=hostname,
        domainname=get_str(doc, "domainname", "", ""),
        mounts=[_mount(m, f"mounts[{i}]") for i, m in enumerate(get_list(doc, "mounts", ""))],
        hooks=hooks,
        annotations=get_str_map(doc, "annotations", ""),
        linux=_linux(linux_doc),
        raw=doc,
    )
    uts = spec.linux.namespace("uts")
    if (hostname or spec.domainname) and (uts is None or uts.path):
        fail("hostname", "setting a hostname or domainname needs a new uts namespace")
    if spec.linux.uid_mappings and spec.linux.namespace("user") is None:
        fail("linux.uidMappings", "id mappings need a user namespace")
    return spec


def parse_hooks(doc: "dict[str, Any]") -> dict[str, list[Hook]]:
    """Only the hooks of a config (delete runs poststop hooks even when other parts of the
    saved config, such as a namespace path, are no longer valid)."""
    hooks_doc = get_obj(doc, "hooks", "") or {}
    hooks: dict[str, list[Hook]] = {}
    for name in hooks_doc:
        if name not in HOOK_NAMES:
            fail(f"hooks.{name}", f"unknown hook (known: {', '.join(HOOK_NAMES)})")
        hooks[name] = [_hook(entry, f"hooks.{name}[{i}]")
                       for i, entry in enumerate(get_list(hooks_doc, name, "hooks"))]
    return hooks


def parse_process(doc: "Any", path: str = "process") -> Process:
    if not isinstance(doc, dict):
        fail(path, "must be an object")
    args = get_str_list(doc, "args", path)
    if not args:
        fail(f"{path}.args", "must name the program to run")
    cwd = get_str(doc, "cwd", path, "/")
    require_abs(cwd, f"{path}.cwd")
    env = get_str_list(doc, "env", path)
    user_doc = get_obj(doc, "user", path) or {}
    user = User(
        uid=get_int(user_doc, "uid", f"{path}.user", 0),
        gid=get_int(user_doc, "gid", f"{path}.user", 0),
        umask=get_int(user_doc, "umask", f"{path}.user"),
        additional_gids=_int_list(user_doc, "additionalGids", f"{path}.user"),
    )
    caps_doc = get_obj(doc, "capabilities", path)
    capabilities = None
    if caps_doc is not None:
        sets = {}
        for key in ("bounding", "effective", "inheritable", "permitted", "ambient"):
            names = get_str_list(caps_doc, key, f"{path}.capabilities")
            for i, name in enumerate(names):
                if name not in CAPABILITIES:
                    fail(f"{path}.capabilities.{key}[{i}]", f"unknown capability {name!r}")
            sets[key] = names
        capabilities = Capabilities(**sets)
    rlimits = []
    seen: set[str] = set()
    for i, r in enumerate(get_list(doc, "rlimits", path)):
        where = f"{path}.rlimits[{i}]"
        if not isinstance(r, dict):
            fail(where, "must be an object")
        kind = get_str(r, "type", where, "")
        if kind not in RLIMIT_NAMES:
            fail(f"{where}.type", f"unknown rlimit {kind!r}")
        if kind in seen:
            fail(f"{where}.type", f"rlimit {kind} is set twice")
        seen.add(kind)
        rlimits.append(Rlimit(kind, _uint(r, "soft", where), _uint(r, "hard", where)))
    size_doc = get_obj(doc, "consoleSize", path)
    console_size = None
    if size_doc is not None:
        console_size = ConsoleSize(get_int(size_doc, "height", f"{path}.consoleSize", 0),
                                   get_int(size_doc, "width", f"{path}.consoleSize", 0))
    oom = get_int(doc, "oomScoreAdj", path)
    if oom is not None and not -1000 <= oom <= 1000:
        fail(f"{path}.oomScoreAdj", f"must be between -1000 and 1000, got {oom}")
    return Process(
        args=args, cwd=cwd, env=env, terminal=get_bool(doc, "terminal", path),
        console_size=console_size, user=user, capabilities=capabilities, rlimits=rlimits,
        no_new_privileges=get_bool(doc, "noNewPrivileges", path), oom_score_adj=oom,
        apparmor_profile=get_str(doc, "apparmorProfile", path, ""),
        selinux_label=get_str(doc, "selinuxLabel", path, ""),
    )


def _uint(doc: "dict[str, Any]", key: str, path: str) -> int:
    value = get_int(doc, key, path)
    if value is None:
        fail(f"{path}.{key}", "is required")
    if value < 0:
        fail(f"{path}.{key}", f"must not be negative, got {value}")
    return value


def _int_list(doc: "dict[str, Any]", key: str, path: str) -> list[int]:
    items = get_list(doc, key, path)
    for i, item in enumerate(items):
        if not isinstance(item, int) or isinstance(item, bool) or item < 0:
            fail(f"{path}.{key}[{i}]", f"must be a non-negative integer, got {item!r}")
    return items


def _hook(doc: "Any", path: str) -> Hook:
    if not isinstance(doc, dict):
        fail(path, "must be an object")
    hook_path = get_str(doc, "path", path, "")
    if not hook_path:
        fail(f"{path}.path", "is required")
    require_abs(hook_path, f"{path}.path")
    timeout = get_int(doc, "timeout", path)
    if timeout is not None and timeout <= 0:
        fail(f"{path}.timeout", f"must be greater than zero, got {timeout}")
    return Hook(hook_path, get_str_list(doc, "args", path), get_str_list(doc, "env", path),
                timeout)


def _mount(doc: "Any", path: str) -> Mount:
    if not isinstance(doc, dict):
        fail(path, "must be an object")
    destination = get_str(doc, "destination", path, "")
    if not destination:
        fail(f"{path}.destination", "is required")
    require_abs(destination, f"{path}.destination")
    mount = Mount(destination, get_str(doc, "type", path, ""), get_str(doc, "source", path, ""),
                  get_str_list(doc, "options", path))
    for i, option in enumerate(mount.options):
        if not option or "," in option and not option.startswith(("lowerdir", "upperdir")):
            fail(f"{path}.options[{i}]", f"bad mount option {option!r}")
    is_bind = mount.type == "bind" or any(o in ("bind", "rbind") for o in mount.options)
    if is_bind and not mount.source:
        fail(f"{path}.source", "a bind mount needs a source")
    return mount


def _mappings(doc: "dict[str, Any]", key: str) -> list[IdMapping]:
    result = []
    for i, m in enumerate(get_list(doc, key, "linux")):
        where = f"linux.{key}[{i}]"
        if not isinstance(m, dict):
            fail(where, "must be an object")
        mapping = IdMapping(_uint(m, "containerID", where), _uint(m, "hostID", where),
                            _uint(m, "size", where))
        if mapping.size == 0:
            fail(f"{where}.size", "must be greater than zero")
        result.append(mapping)
    return result


def _linux(doc: "dict[str, Any]") -> Linux:
    namespaces = []
    seen: set[str] = set()
    for i, ns in enumerate(get_list(doc, "namespaces", "linux")):
        where = f"linux.namespaces[{i}]"
        if not isinstance(ns, dict):
            fail(where, "must be an object")
        kind = get_str(ns, "type", where, "")
        if kind not in NAMESPACE_FLAGS:
            fail(f"{where}.type", f"unknown namespace {kind!r} "
                 f"(known: {', '.join(NAMESPACE_FLAGS)})")
        if kind in seen:
            fail(f"{where}.type", f"namespace {kind} is listed twice")
        seen.add(kind)
        ns_path = get_str(ns, "path", where, "")
        if ns_path:
            require_abs(ns_path, f"{where}.path")
            if not os.path.exists(ns_path):
                fail(f"{where}.path", f"{ns_path} does not exist")
        namespaces.append(Namespace(kind, ns_path))
    devices = []
    for i, d in enumerate(get_list(doc, "devices", "linux")):
        where = f"linux.devices[{i}]"
        if not isinstance(d, dict):
            fail(where, "must be an object")
        dev_path = require_abs(get_str(d, "path", where, ""), f"{where}.path")
        kind = get_str(d, "type", where, "")
        if kind not in ("c", "b", "u", "p"):
            fail(f"{where}.type", f"must be one of c, b, u, p, got {kind!r}")
        devices.append(Device(dev_path, kind, get_int(d, "major", where, 0),
                              get_int(d, "minor", where, 0), get_int(d, "fileMode", where),
                              get_int(d, "uid", where), get_int(d, "gid", where)))
    propagation = get_str(doc, "rootfsPropagation", "linux", "")
    if propagation not in PROPAGATIONS:
        fail("linux.rootfsPropagation", f"unknown propagation {propagation!r}")
    masked = get_str_list(doc, "maskedPaths", "linux")
    readonly = get_str_list(doc, "readonlyPaths", "linux")
    for key, paths in (("maskedPaths", masked), ("readonlyPaths", readonly)):
        for i, p in enumerate(paths):
            require_abs(p, f"linux.{key}[{i}]")
    seccomp_doc = get_obj(doc, "seccomp", "linux")
    resources = get_obj(doc, "resources", "linux") or {}
    _check_resources(resources)
    return Linux(
        namespaces=namespaces,
        uid_mappings=_mappings(doc, "uidMappings"),
        gid_mappings=_mappings(doc, "gidMappings"),
        devices=devices,
        cgroups_path=get_str(doc, "cgroupsPath", "linux", ""),
        resources=resources,
        sysctl=get_str_map(doc, "sysctl", "linux"),
        seccomp=_seccomp(seccomp_doc) if seccomp_doc is not None else None,
        rootfs_propagation=propagation,
        masked_paths=masked,
        readonly_paths=readonly,
        mount_label=get_str(doc, "mountLabel", "linux", ""),
    )


def _check_resources(doc: "dict[str, Any]") -> None:
    """Type-checks linux.resources; the cgroup managers read the dict itself."""
    int_fields = {
        "memory": ("limit", "reservation", "swap", "kernel", "kernelTCP", "swappiness"),
        "cpu": ("shares", "quota", "period", "realtimeRuntime", "realtimePeriod", "idle",
                "burst"),
        "pids": ("limit",),
        "blockIO": ("weight", "leafWeight"),
    }
    for section, keys in int_fields.items():
        sub = get_obj(doc, section, "linux.resources")
        if sub is None:
            continue
        for key in keys:
            get_int(sub, key, f"linux.resources.{section}")
    cpu = get_obj(doc, "cpu", "linux.resources") or {}
    for key in ("cpus", "mems"):
        value = get_str(cpu, key, "linux.resources.cpu", "")
        if value and not all(ch.isdigit() or ch in ",-" for ch in value):
            fail(f"linux.resources.cpu.{key}", f"bad cpu list {value!r}")
    for i, rule in enumerate(get_list(doc, "devices", "linux.resources")):
        where = f"linux.resources.devices[{i}]"
        if not isinstance(rule, dict):
            fail(where, "must be an object")
        if not isinstance(rule.get("allow"), bool):
            fail(f"{where}.allow", "is required and must be a boolean")
        kind = get_str(rule, "type", where, "a")
        if kind not in ("a", "c", "b"):
            fail(f"{where}.type", f"must be a, c or b, got {kind!r}")
        access = get_str(rule, "access", where, "rwm")
        if access and set(access) - set("rwm"):
            fail(f"{where}.access", f"must be made of r, w and m, got {access!r}")
        get_int(rule, "major", where)
        get_int(rule, "minor", where)


def parse_seccomp(doc: "dict[str, Any]") -> Seccomp:
    """linux.seccomp on its own (exec applies the container's filter to a new process)."""
    return _seccomp(doc)


def _seccomp(doc: "dict[str, Any]") -> Seccomp:
    where = "linux.seccomp"
    default = get_str(doc, "defaultAction", where, "")
    if default not in SECCOMP_ACTIONS:
        fail(f"{where}.defaultAction", f"unknown action {default!r}")
    architectures = get_str_list(doc, "architectures", where)
    for i, arch in enumerate(architectures):
        if not arch.startswith("SCMP_ARCH_"):
            fail(f"{where}.architectures[{i}]", f"unknown architecture {arch!r}")
    rules = []
    for i, rule in enumerate(get_list(doc, "syscalls", where)):
        rw = f"{where}.syscalls[{i}]"
        if not isinstance(rule, dict):
            fail(rw, "must be an object")
        names = get_str_list(rule, "names", rw)
        if not names:
            fail(f"{rw}.names", "must name at least one syscall")
        action = get_str(rule, "action", rw, "")
        if action not in SECCOMP_ACTIONS:
            fail(f"{rw}.action", f"unknown action {action!r}")
        args = []
        for j, arg in enumerate(get_list(rule, "args", rw)):
            aw = f"{rw}.args[{j}]"
            if not isinstance(arg, dict):
                fail(aw, "must be an object")
            op = get_str(arg, "op", aw, "")
            if op not in SECCOMP_OPS:
                fail(f"{aw}.op", f"unknown operator {op!r}")
            index = _uint(arg, "index", aw)
            if index > 5:
                fail(f"{aw}.index", f"must be 0 to 5, got {index}")
            args.append(SeccompArg(index, get_int(arg, "value", aw, 0),
                                   get_int(arg, "valueTwo", aw, 0), op))
        rules.append(SeccompRule(names, action, get_int(rule, "errnoRet", rw), args))
    return Seccomp(default, get_int(doc, "defaultErrnoRet", where), architectures,
                   get_str_list(doc, "flags", where), rules)
