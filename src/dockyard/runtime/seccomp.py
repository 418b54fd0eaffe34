"""Load an OCI `linux.seccomp` filter into the calling process through libseccomp (ctypes).

The behaviour follows runc's libcontainer/seccomp:
- syscall names libseccomp does not know are skipped: profiles list syscalls newer than the
  installed libseccomp or kernel, and refusing them would make every profile version-bound;
- a rule whose action equals the default action is skipped (libseccomp refuses it);
- several conditions on the same argument index become one rule per condition, because
  libseccomp refuses them in a single rule; those conditions are therefore OR'ed;
- libseccomp's own no_new_privs is switched off: `process.noNewPrivileges` decides, and the
  caller must then hold CAP_SYS_ADMIN (or have set no_new_privs) before calling `load_filter`.

SCMP_ACT_NOTIFY is refused: it needs a seccomp agent on `listenerPath`, which is not supported.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import os
import sys

from .config import Seccomp, SeccompArg

__all__ = ["SeccompError", "compile_filter", "load_filter", "resolve_syscall"]

_ACTIONS: dict[str, int] = {
    "SCMP_ACT_KILL": 0x00000000,  # SECCOMP_RET_KILL_THREAD, as in libseccomp and runc
    "SCMP_ACT_KILL_THREAD": 0x00000000,
    "SCMP_ACT_KILL_PROCESS": 0x80000000,
    "SCMP_ACT_TRAP": 0x00030000,
    "SCMP_ACT_ERRNO": 0x00050000,
    "SCMP_ACT_TRACE": 0x7FF00000,
    "SCMP_ACT_LOG": 0x7FFC0000,
    "SCMP_ACT_ALLOW": 0x7FFF0000,
}
# The actions that carry a 16-bit return value (errno for ERRNO, the tracer's message for TRACE).
_ACTIONS_WITH_ERRNO = ("SCMP_ACT_ERRNO", "SCMP_ACT_TRACE")

_OPS: dict[str, int] = {
    "SCMP_CMP_NE": 1,
    "SCMP_CMP_LT": 2,
    "SCMP_CMP_LE": 3,
    "SCMP_CMP_EQ": 4,
    "SCMP_CMP_GE": 5,
    "SCMP_CMP_GT": 6,
    "SCMP_CMP_MASKED_EQ": 7,
}

# enum scmp_filter_attr in libseccomp 2.5's seccomp.h
_FLTATR_CTL_NNP = 3
_FLTATR_CTL_TSYNC = 4
_FLTATR_CTL_LOG = 6
_FLTATR_CTL_SSB = 7
_FLTATR_CTL_OPTIMIZE = 8
_FLTATR_API_SYSRAWRC = 9
_FLTATR_CTL_WAITKILL = 10  # libseccomp 2.6

_FLAG_ATTRIBUTES: dict[str, int] = {
    "SECCOMP_FILTER_FLAG_TSYNC": _FLTATR_CTL_TSYNC,
    "SECCOMP_FILTER_FLAG_LOG": _FLTATR_CTL_LOG,
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW": _FLTATR_CTL_SSB,
    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV": _FLTATR_CTL_WAITKILL,
}

_ARCH_PREFIX = "SCMP_ARCH_"
_NR_SCMP_ERROR = -1  # what seccomp_syscall_resolve_name returns for an unknown name
_EPERM = errno.EPERM
# runc switches to libseccomp's binary-tree filter above this many syscall rules (one per
# name); below it the linear filter is as fast, and libseccomp <= 2.5.4 mishandles the tree
# with no rules at all.
_BINARY_TREE_MIN_RULES = 32
_UINT64_MAX = 2**64 - 1


class SeccompError(RuntimeError):
    """The seccomp configuration cannot be loaded; the message names the field."""


class _ArgCmp(ctypes.Structure):
    _fields_ = [
        ("arg", ctypes.c_uint),
        ("op", ctypes.c_int),
        ("datum_a", ctypes.c_uint64),
        ("datum_b", ctypes.c_uint64),
    ]


class _Version(ctypes.Structure):
    _fields_ = [("major", ctypes.c_uint), ("minor", ctypes.c_uint), ("micro", ctypes.c_uint)]


@functools.cache
def _library() -> ctypes.CDLL:
    # Opened on first use, not at import: most runtime commands (state, kill, delete) never
    # load a filter and should not pay for dlopen.
    try:
        lib = ctypes.CDLL("libseccomp.so.2")
    except OSError as exc:
        raise SeccompError(
            f"libseccomp is not installed: apt-get install libseccomp2 ({exc})") from exc
    ctx = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_init.restype = ctx
    lib.seccomp_release.argtypes = [ctx]
    lib.seccomp_release.restype = None
    lib.seccomp_attr_set.argtypes = [ctx, ctypes.c_int, ctypes.c_uint32]
    lib.seccomp_attr_set.restype = ctypes.c_int
    lib.seccomp_arch_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_arch_resolve_name.restype = ctypes.c_uint32
    lib.seccomp_arch_add.argtypes = [ctx, ctypes.c_uint32]
    lib.seccomp_arch_add.restype = ctypes.c_int
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_syscall_resolve_name.restype = ctypes.c_int
    lib.seccomp_rule_add_array.argtypes = [ctx, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint,
                                           ctypes.POINTER(_ArgCmp)]
    lib.seccomp_rule_add_array.restype = ctypes.c_int
    lib.seccomp_load.argtypes = [ctx]
    lib.seccomp_load.restype = ctypes.c_int
    lib.seccomp_export_bpf.argtypes = [ctx, ctypes.c_int]
    lib.seccomp_export_bpf.restype = ctypes.c_int
    lib.seccomp_version.argtypes = []
    lib.seccomp_version.restype = ctypes.POINTER(_Version)
    return lib


def preload() -> None:
    """Opens libseccomp now, for a process that will change its root before loading."""
    _library()


def _version(lib: ctypes.CDLL) -> str:
    v = lib.seccomp_version().contents
    return f"{v.major}.{v.minor}.{v.micro}"


def _strerror(rc: int) -> str:
    # libseccomp returns negated errno values.
    return os.strerror(-rc) if rc < 0 else f"error {rc}"


def resolve_syscall(name: str) -> int | None:
    """The native syscall number for `name` (negative for libseccomp's pseudo syscalls such
    as `socketcall` on x86_64, which apply to the other architectures in the filter), or None
    when libseccomp does not know the name."""
    if not name or "\0" in name:
        return None
    number: int = _library().seccomp_syscall_resolve_name(name.encode())
    return None if number == _NR_SCMP_ERROR else number


def _action(name: str, errno_ret: int | None, action_field: str, errno_field: str) -> int:
    if name == "SCMP_ACT_NOTIFY":
        raise SeccompError(f"{action_field}: SCMP_ACT_NOTIFY is not supported "
                           "(dockyard-runc does not talk to a seccomp agent)")
    if name not in _ACTIONS:
        raise SeccompError(f"{action_field}: unknown action {name!r}")
    if name not in _ACTIONS_WITH_ERRNO:
        # The runtime spec requires an error here rather than dropping the value.
        if errno_ret is not None:
            raise SeccompError(f"{errno_field}: only SCMP_ACT_ERRNO and SCMP_ACT_TRACE take "
                               f"a return code, not {name}")
        return _ACTIONS[name]
    value = _EPERM if errno_ret is None else errno_ret
    if not 0 <= value <= 0xFFFF:
        raise SeccompError(f"{errno_field}: must be 0 to 65535, got {value}")
    return _ACTIONS[name] | value


def _condition(arg: SeccompArg, where: str) -> _ArgCmp:
    if arg.op not in _OPS:
        raise SeccompError(f"{where}.op: unknown operator {arg.op!r}")
    if not 0 <= arg.index <= 5:
        raise SeccompError(f"{where}.index: must be 0 to 5, got {arg.index}")
    for key, value in (("value", arg.value), ("valueTwo", arg.value_two)):
        if not 0 <= value <= _UINT64_MAX:
            raise SeccompError(f"{where}.{key}: must be a uint64, got {value}")
    return _ArgCmp(arg.index, _OPS[arg.op], arg.value, arg.value_two)


def _condition_sets(args: list[SeccompArg], where: str) -> list[list[_ArgCmp]]:
    """The condition lists to add as separate rules for one syscall."""
    conditions = [_condition(arg, f"{where}.args[{j}]") for j, arg in enumerate(args)]
    indexes = [arg.index for arg in args]
    if len(set(indexes)) == len(indexes):
        return [conditions]
    return [[condition] for condition in conditions]


def _debug(message: str) -> None:
    # Importing logging costs ~10 ms on the container start path; if nothing has imported it,
    # no handler is configured and a debug record would be dropped anyway.
    logging = sys.modules.get("logging")
    if logging is not None:
        logging.getLogger(__name__).debug(message)


def _set_attr(lib: ctypes.CDLL, ctx: int, attr: int, value: int, what: str) -> None:
    rc = lib.seccomp_attr_set(ctx, attr, value)
    if rc != 0:
        raise SeccompError(f"{what}: not supported by libseccomp {_version(lib)} or this "
                           f"kernel: {_strerror(rc)}")


def _add_architectures(lib: ctypes.CDLL, ctx: int, architectures: list[str]) -> None:
    for i, arch in enumerate(architectures):
        where = f"linux.seccomp.architectures[{i}]"
        token = 0
        if arch.startswith(_ARCH_PREFIX) and len(arch) > len(_ARCH_PREFIX):
            token = lib.seccomp_arch_resolve_name(arch[len(_ARCH_PREFIX):].lower().encode())
        if token == 0:
            raise SeccompError(f"{where}: unknown architecture {arch!r} "
                               f"(libseccomp {_version(lib)})")
        rc = lib.seccomp_arch_add(ctx, token)
        # The native architecture is in every new filter; listing it (or any twice) is fine.
        if rc != 0 and rc != -errno.EEXIST:
            raise SeccompError(f"{where}: cannot add architecture {arch!r}: {_strerror(rc)}")


def _add_rules(lib: ctypes.CDLL, ctx: int, seccomp: Seccomp, default_action: int) -> None:
    for i, rule in enumerate(seccomp.syscalls):
        where = f"linux.seccomp.syscalls[{i}]"
        action = _action(rule.action, rule.errno_ret, f"{where}.action", f"{where}.errnoRet")
        # Checked before the skip below, so a bad rule is reported even where it is redundant.
        condition_sets = _condition_sets(rule.args, where)
        if action == default_action:
            continue
        for k, name in enumerate(rule.names):
            number = resolve_syscall(name)
            if number is None:
                _debug(f"{where}.names[{k}]: unknown syscall {name!r} ignored")
                continue
            for conditions in condition_sets:
                array = (_ArgCmp * len(conditions))(*conditions)
                rc = lib.seccomp_rule_add_array(ctx, action, number, len(conditions), array)
                if rc != 0:
                    raise SeccompError(f"{where}.names[{k}]: cannot add a rule for syscall "
                                       f"{name!r}: {_strerror(rc)}")


def load_filter(seccomp: Seccomp) -> None:
    """Build the filter described by `seccomp` and load it into the calling process.

    Raises SeccompError, naming the field, for configurations libseccomp cannot express and
    when the kernel refuses the filter (EACCES: neither no_new_privs nor CAP_SYS_ADMIN).
    """
    _build(seccomp, export=False)


def compile_filter(seccomp: Seccomp) -> bytes:
    """The filter as the BPF program libseccomp would load (struct sock_filter array), for
    loading later with seccomp(2) (seccomp_bpf.py) and for caching."""
    program = _build(seccomp, export=True)
    assert program is not None
    return program


def _build(seccomp: Seccomp, export: bool) -> bytes | None:
    lib = _library()
    default_action = _action(seccomp.default_action, seccomp.default_errno_ret,
                             "linux.seccomp.defaultAction", "linux.seccomp.defaultErrnoRet")
    ctx = lib.seccomp_init(default_action)
    if not ctx:
        raise SeccompError(f"linux.seccomp.defaultAction: libseccomp {_version(lib)} cannot "
                           f"create a filter with {seccomp.default_action}")
    try:
        _set_attr(lib, ctx, _FLTATR_CTL_NNP, 0, "linux.seccomp")
        # So that a kernel refusal reads EACCES etc., not ECANCELED; libseccomp < 2.5 lacks it.
        lib.seccomp_attr_set(ctx, _FLTATR_API_SYSRAWRC, 1)
        for i, flag in enumerate(seccomp.flags):
            where = f"linux.seccomp.flags[{i}]"
            if flag not in _FLAG_ATTRIBUTES:
                raise SeccompError(f"{where}: unknown flag {flag!r}")
            _set_attr(lib, ctx, _FLAG_ATTRIBUTES[flag], 1, f"{where}: {flag}")
        if sum(len(rule.names) for rule in seccomp.syscalls) > _BINARY_TREE_MIN_RULES:
            # Only a speed-up of the generated filter; older libseccomp lacks it.
            lib.seccomp_attr_set(ctx, _FLTATR_CTL_OPTIMIZE, 2)
        _add_architectures(lib, ctx, seccomp.architectures)
        _add_rules(lib, ctx, seccomp, default_action)
        if export:
            return _export(lib, ctx)
        rc = lib.seccomp_load(ctx)
        if rc != 0:
            raise SeccompError(f"linux.seccomp: the kernel refused the filter: {_strerror(rc)}")
        return None
    finally:
        lib.seccomp_release(ctx)


def _export(lib: ctypes.CDLL, ctx: int) -> bytes:
    fd = os.memfd_create("seccomp-bpf", os.MFD_CLOEXEC)
    try:
        rc = lib.seccomp_export_bpf(ctx, fd)
        if rc != 0:
            raise SeccompError(f"linux.seccomp: exporting the filter: {_strerror(rc)}")
        size = os.lseek(fd, 0, os.SEEK_END)
        return os.pread(fd, size, 0)
    finally:
        os.close(fd)
