"""Every kernel call the runtime makes that the standard library lacks.

The rest of the runtime talks to the kernel through a `Syscall` object, so that code that
decides *what* to mount or which namespaces to enter can be unit-tested with a recording
implementation, without root.
"""

import os

from . import _ffi

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Protocol

_LINUX_CAPABILITY_VERSION_3 = 0x20080522

_SYSCALL_NUMBERS = {
    "x86_64": {"pivot_root": 155, "keyctl": 250},
    "aarch64": {"pivot_root": 41, "keyctl": 219},
}
_KEYCTL_JOIN_SESSION_KEYRING = 1
_SOCK_CLOEXEC = 0o2000000


class _CapHeader(_ffi.Structure):
    _fields_ = [("version", _ffi.c_uint32), ("pid", _ffi.c_int)]


class _Rlimit(_ffi.Structure):
    _fields_ = [("soft", _ffi.c_ulong), ("hard", _ffi.c_ulong)]


class _CapData(_ffi.Structure):
    _fields_ = [
        ("effective", _ffi.c_uint32),
        ("permitted", _ffi.c_uint32),
        ("inheritable", _ffi.c_uint32),
    ]


if TYPE_CHECKING:
    class Syscall(Protocol):
        """The kernel calls the runtime needs beyond `os`; one real and one test implementation."""

        def mount(self, source: str | None, target: str, fstype: str | None, flags: int,
                  data: str | None = None) -> None: ...
        def umount2(self, target: str, flags: int = 0) -> None: ...
        def pivot_root(self, new_root: str, put_old: str) -> None: ...
        def unshare(self, flags: int) -> None: ...
        def setns(self, fd: int, nstype: int = 0) -> None: ...
        def sethostname(self, name: str) -> None: ...
        def setdomainname(self, name: str) -> None: ...
        def prctl(self, option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0,
                  arg5: int = 0) -> int: ...
        def capset(self, effective: int, permitted: int, inheritable: int) -> None: ...
        def capget(self, pid: int = 0) -> tuple[int, int, int]: ...
        def join_session_keyring(self, name: str | None) -> None: ...
        def setrlimit(self, resource: int, soft: int, hard: int) -> None: ...
        def socket(self, family: int, kind: int) -> int: ...


class SyscallError(OSError):
    """An OSError that also names the call and its main argument."""


class LinuxSyscall:
    """The real implementation, through libc (see _ffi.py)."""

    def __init__(self) -> None:
        self._libc = _ffi.libc()
        self._numbers = _SYSCALL_NUMBERS.get(os.uname().machine, {})

    def _check(self, result: int, what: str, arg: str = "") -> int:
        if result < 0:
            errno = _ffi.get_errno()
            raise SyscallError(errno, f"{what}: {os.strerror(errno)}", arg or None)
        return result

    def mount(self, source: str | None, target: str, fstype: str | None, flags: int,
              data: str | None = None) -> None:
        enc = _encode
        self._check(
            self._libc.mount(enc(source), enc(target), enc(fstype), _ffi.c_ulong(flags),
                             enc(data)),
            f"mount {source or fstype or ''} to {target}", target)

    def umount2(self, target: str, flags: int = 0) -> None:
        self._check(self._libc.umount2(_encode(target), flags), "umount", target)

    def pivot_root(self, new_root: str, put_old: str) -> None:
        number = self._numbers.get("pivot_root")
        if number is None:
            raise SyscallError(38, "pivot_root: unsupported architecture")
        self._check(self._libc.syscall(number, _encode(new_root), _encode(put_old)),
                    "pivot_root", new_root)

    def unshare(self, flags: int) -> None:
        self._check(self._libc.unshare(flags), "unshare")

    def setns(self, fd: int, nstype: int = 0) -> None:
        self._check(self._libc.setns(fd, nstype), "setns")

    def sethostname(self, name: str) -> None:
        raw = name.encode()
        self._check(self._libc.sethostname(raw, len(raw)), "sethostname", name)

    def setdomainname(self, name: str) -> None:
        raw = name.encode()
        self._check(self._libc.setdomainname(raw, len(raw)), "setdomainname", name)

    def prctl(self, option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0,
              arg5: int = 0) -> int:
        ul = _ffi.c_ulong
        return self._check(self._libc.prctl(option, ul(arg2), ul(arg3), ul(arg4), ul(arg5)),
                           f"prctl({option})")

    def capset(self, effective: int, permitted: int, inheritable: int) -> None:
        header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
        data = (_CapData * 2)()
        for i in range(2):
            shift = 32 * i
            data[i].effective = (effective >> shift) & 0xFFFFFFFF
            data[i].permitted = (permitted >> shift) & 0xFFFFFFFF
            data[i].inheritable = (inheritable >> shift) & 0xFFFFFFFF
        self._check(self._libc.capset(_ffi.byref(header), data), "capset")

    def capget(self, pid: int = 0) -> tuple[int, int, int]:
        header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, pid)
        data = (_CapData * 2)()
        self._check(self._libc.capget(_ffi.byref(header), data), "capget")
        return (
            data[0].effective | data[1].effective << 32,
            data[0].permitted | data[1].permitted << 32,
            data[0].inheritable | data[1].inheritable << 32,
        )

    def join_session_keyring(self, name: str | None) -> None:
        number = self._numbers.get("keyctl")
        if number is None:
            return
        result = self._libc.syscall(number, _KEYCTL_JOIN_SESSION_KEYRING, _encode(name))
        # Kernels without keyrings (ENOSYS) or a denying seccomp policy leave the
        # container with the caller's keyring, as runc does.
        if result < 0 and _ffi.get_errno() not in (38, 1, 13):
            self._check(result, "keyctl join session keyring")


    def setrlimit(self, resource: int, soft: int, hard: int) -> None:
        # Through libc rather than the `resource` module: one shared object fewer to load
        # in the container's process. The spec's and the kernel's "unlimited" are both
        # the all-ones 64-bit value.
        limit = _Rlimit(soft, hard)
        self._check(self._libc.prlimit(0, resource, _ffi.byref(limit), None), "setrlimit")


    def socket(self, family: int, kind: int) -> int:
        """A close-on-exec socket's descriptor (for ioctls: no `socket` module needed)."""
        return self._check(self._libc.socket(family, kind | _SOCK_CLOEXEC, 0), "socket")


def _encode(value: str | None) -> bytes | None:
    return None if value is None else value.encode()


