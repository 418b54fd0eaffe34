"""The few ctypes pieces the runtime needs, built on _ctypes directly.

`import ctypes` costs ~2 ms (it defines every C type, loads pythonapi, builds helper
functions); the runtime pays it on the critical path of every container start. These
definitions are the ones ctypes/__init__.py makes for the same types, nothing more.
"""

import _ctypes
from _ctypes import (
    FUNCFLAG_CDECL,
    FUNCFLAG_USE_ERRNO,
    Structure,
    addressof,
    byref,
    get_errno,
)

__all__ = ["Structure", "addressof", "byref", "get_errno", "c_char", "c_int", "c_uint32",
           "c_ulong", "c_ushort", "c_void_p", "libc"]

_RTLD_GLOBAL = 0x100


class c_int(_ctypes._SimpleCData):  # noqa: N801 - the ctypes names, for familiarity
    _type_ = "i"


class c_uint32(_ctypes._SimpleCData):  # noqa: N801
    _type_ = "I"


class c_ulong(_ctypes._SimpleCData):  # noqa: N801
    _type_ = "L"


class c_ushort(_ctypes._SimpleCData):  # noqa: N801
    _type_ = "H"


class c_void_p(_ctypes._SimpleCData):  # noqa: N801
    _type_ = "P"


class c_char(_ctypes._SimpleCData):  # noqa: N801
    _type_ = "c"


class _LibcFunction(_ctypes.CFuncPtr):
    _flags_ = FUNCFLAG_CDECL | FUNCFLAG_USE_ERRNO
    _restype_ = c_int


class _Library:
    """A loaded shared object; attribute access gives its functions (int result, errno
    saved for get_errno)."""

    def __init__(self, name: str | None) -> None:
        self._handle = _ctypes.dlopen(name, _RTLD_GLOBAL)

    def __getattr__(self, name: str) -> _LibcFunction:
        function = _LibcFunction((name, self))
        setattr(self, name, function)
        return function


_libc: _Library | None = None


def libc() -> _Library:
    global _libc
    if _libc is None:
        _libc = _Library(None)
    return _libc
