"""OCI mount options: the flags mount(2) understands, the propagation flags, the rest as data."""

from . import linux as s

# option -> (flags to set, flags to clear)
_FLAG_OPTIONS: dict[str, tuple[int, int]] = {
    "async": (0, s.MS_SYNCHRONOUS),
    "atime": (0, s.MS_NOATIME),
    "bind": (s.MS_BIND, 0),
    "defaults": (0, 0),
    "dev": (0, s.MS_NODEV),
    "diratime": (0, s.MS_NODIRATIME),
    "dirsync": (s.MS_DIRSYNC, 0),
    "exec": (0, s.MS_NOEXEC),
    "lazytime": (s.MS_LAZYTIME, 0),
    "loud": (0, s.MS_SILENT),
    "mand": (s.MS_MANDLOCK, 0),
    "noatime": (s.MS_NOATIME, 0),
    "nodev": (s.MS_NODEV, 0),
    "nodiratime": (s.MS_NODIRATIME, 0),
    "noexec": (s.MS_NOEXEC, 0),
    "nolazytime": (0, s.MS_LAZYTIME),
    "nomand": (0, s.MS_MANDLOCK),
    "norelatime": (0, s.MS_RELATIME),
    "nostrictatime": (0, s.MS_STRICTATIME),
    "nosuid": (s.MS_NOSUID, 0),
    "nosymfollow": (s.MS_NOSYMFOLLOW, 0),
    "rbind": (s.MS_BIND | s.MS_REC, 0),
    "relatime": (s.MS_RELATIME, 0),
    "remount": (s.MS_REMOUNT, 0),
    "ro": (s.MS_RDONLY, 0),
    "rw": (0, s.MS_RDONLY),
    "silent": (s.MS_SILENT, 0),
    "strictatime": (s.MS_STRICTATIME, 0),
    "suid": (0, s.MS_NOSUID),
    "symfollow": (0, s.MS_NOSYMFOLLOW),
    "sync": (s.MS_SYNCHRONOUS, 0),
}

_PROPAGATION_OPTIONS: dict[str, int] = {
    "private": s.MS_PRIVATE,
    "rprivate": s.MS_PRIVATE | s.MS_REC,
    "shared": s.MS_SHARED,
    "rshared": s.MS_SHARED | s.MS_REC,
    "slave": s.MS_SLAVE,
    "rslave": s.MS_SLAVE | s.MS_REC,
    "unbindable": s.MS_UNBINDABLE,
    "runbindable": s.MS_UNBINDABLE | s.MS_REC,
}

# Options that only change how the runtime prepares the mount, not the kernel call.
_RUNTIME_OPTIONS = ("tmpcopyup", "z", "Z", "notmpcopyup")
_UNSUPPORTED = ("idmap", "ridmap", "rro", "rrw", "rnosuid", "rsuid", "rnodev", "rdev",
                "rnoexec", "rexec", "rnodiratime", "rdiratime", "rrelatime", "rnorelatime",
                "rnoatime", "ratime", "rstrictatime", "rnostrictatime", "rnosymfollow",
                "rsymfollow")


class MountOptions:
    def __init__(self) -> None:
        self.flags = 0
        self.propagation: list[int] = []
        self.data: list[str] = []
        self.runtime: set[str] = set()

    @property
    def data_string(self) -> str | None:
        return ",".join(self.data) or None

    @property
    def is_bind(self) -> bool:
        return bool(self.flags & s.MS_BIND)


def parse_mount_options(options: list[str]) -> MountOptions:
    result = MountOptions()
    for option in options:
        if option in _FLAG_OPTIONS:
            set_flags, clear_flags = _FLAG_OPTIONS[option]
            result.flags = (result.flags & ~clear_flags) | set_flags
        elif option in _PROPAGATION_OPTIONS:
            result.propagation.append(_PROPAGATION_OPTIONS[option])
        elif option in _RUNTIME_OPTIONS:
            result.runtime.add(option)
        elif option in _UNSUPPORTED:
            raise ValueError(f"mount option {option!r} is not supported")
        else:
            result.data.append(option)
    return result


def known_mount_options() -> list[str]:
    return sorted([*_FLAG_OPTIONS, *_PROPAGATION_OPTIONS, "tmpcopyup"])
