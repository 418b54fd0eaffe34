"""Loading a compiled seccomp filter with seccomp(2), and a cache of compiled filters.

libseccomp takes ~15 ms to turn Docker's default profile into BPF, on every container
start. The result depends only on the profile, the architecture and the libseccomp build,
so the runtime keeps it on disk (under its --root, a tmpfs), keyed by those, and loads the
program itself: a container start after the first pays neither the compile nor ctypes.
"""

from __future__ import annotations

import hashlib
import os

from . import _ffi
from .errors import RuntimeFailure

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from .config import Seccomp

_SECCOMP_SET_MODE_FILTER = 1
_FLAG_BITS = {
    "SECCOMP_FILTER_FLAG_TSYNC": 1 << 0,
    "SECCOMP_FILTER_FLAG_LOG": 1 << 1,
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW": 1 << 2,
    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV": 1 << 5,
}
_SYSCALL_SECCOMP = {"x86_64": 317, "aarch64": 277}
_LIBRARY_DIRS = ("/usr/lib/{arch}-linux-gnu", "/lib/{arch}-linux-gnu", "/usr/lib64", "/lib64",
                 "/usr/lib", "/lib")


class SeccompProgram:
    """A compiled filter: BPF instructions and the seccomp(2) flags to load them with."""

    def __init__(self, program: bytes, flags: int) -> None:
        self.program = program
        self.flags = flags


class _SockFprog(_ffi.Structure):
    _fields_ = [("len", _ffi.c_ushort), ("filter", _ffi.c_void_p)]


def prepare(doc: dict[str, Any], seccomp: Seccomp, cache_dir: str | None) -> SeccompProgram:
    """The compiled filter for linux.seccomp (`doc` as in config.json, `seccomp` parsed):
    from the cache, or compiled now (and cached). Call before the root changes."""
    flags = 0
    for index, flag in enumerate(seccomp.flags):
        if flag not in _FLAG_BITS:
            raise RuntimeFailure(f"linux.seccomp.flags[{index}]: unknown flag {flag!r}")
        flags |= _FLAG_BITS[flag]
    key = _cache_key(doc)
    path = os.path.join(cache_dir, key) if cache_dir and key else None
    if path is not None:
        try:
            with open(path, "rb") as f:
                return SeccompProgram(f.read(), flags)
        except FileNotFoundError:
            pass
    from .seccomp import SeccompError, compile_filter

    try:
        program = compile_filter(seccomp)
    except SeccompError as e:
        raise RuntimeFailure(str(e)) from None
    if path is not None:
        _store(path, program)
    return SeccompProgram(program, flags)


def load(program: SeccompProgram) -> None:
    """seccomp(SECCOMP_SET_MODE_FILTER, flags, program) for the calling thread."""
    number = _SYSCALL_SECCOMP.get(os.uname().machine)
    if number is None:
        raise RuntimeFailure(f"linux.seccomp: not supported on {os.uname().machine}")
    buffer = bytearray(program.program)
    instructions = (_ffi.c_char * len(buffer)).from_buffer(buffer)
    fprog = _SockFprog(len(buffer) // 8, _ffi.addressof(instructions))
    result = _ffi.libc().syscall(number, _SECCOMP_SET_MODE_FILTER, program.flags,
                                 _ffi.byref(fprog))
    if result != 0:
        error = _ffi.get_errno()
        raise RuntimeFailure(f"linux.seccomp: the kernel refused the filter: "
                             f"{os.strerror(error)}")


def _cache_key(doc: dict[str, Any]) -> str | None:
    library = _libseccomp_identity()
    if library is None:
        return None
    from .jsonio import dumps_sorted

    digest = hashlib.sha256()
    for part in (dumps_sorted(doc), os.uname().machine, library):
        digest.update(part.encode())
        digest.update(b"\0")
    return digest.hexdigest()


def _libseccomp_identity() -> str | None:
    """Which libseccomp build would compile (path of the real file, size, mtime)."""
    arch = os.uname().machine
    for directory in _LIBRARY_DIRS:
        path = os.path.join(directory.format(arch=arch), "libseccomp.so.2")
        try:
            real = os.path.realpath(path)
            st = os.stat(real)
        except OSError:
            continue
        return f"{real}:{st.st_size}:{st.st_mtime_ns}"
    return None


def _store(path: str, program: bytes) -> None:
    from ..atomicfile import write_atomic

    try:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        write_atomic(path, program, mode=0o600)
    except OSError:
        pass  # a cache that cannot be written is only slower
