"""Linux capabilities: names, numbers, and applying the five sets to this process."""

from .linux import (
    PR_CAP_AMBIENT,
    PR_CAP_AMBIENT_CLEAR_ALL,
    PR_CAP_AMBIENT_RAISE,
    PR_CAPBSET_DROP,
    PR_CAPBSET_READ,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

    from .config import Capabilities
    from .syscalls import Syscall

_NAMES = (
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID",
    "SETUID", "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST",
    "NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO",
    "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE",
    "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE",
    "AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM",
    "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF", "CHECKPOINT_RESTORE",
)
CAPABILITIES: dict[str, int] = {f"CAP_{name}": bit for bit, name in enumerate(_NAMES)}


def last_cap() -> int:
    """The highest capability this kernel knows."""
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            return int(f.read())
    except OSError:
        return len(_NAMES) - 1


def mask(names: "Iterable[str]") -> int:
    """A bit mask of the capabilities this kernel knows; unknown newer ones are skipped."""
    top = last_cap()
    result = 0
    for name in names:
        bit = CAPABILITIES[name]
        if bit <= top:
            result |= 1 << bit
    return result


def names_of(bits: int) -> list[str]:
    return [name for name, bit in CAPABILITIES.items() if bits >> bit & 1]


def drop_bounding(sys: "Syscall", keep: int) -> None:
    """Drops from the bounding set every capability not in `keep` (needs CAP_SETPCAP)."""
    for bit in range(last_cap() + 1):
        if not keep >> bit & 1 and sys.prctl(PR_CAPBSET_READ, bit) == 1:
            sys.prctl(PR_CAPBSET_DROP, bit)


def apply_sets(sys: "Syscall", caps: "Capabilities") -> None:
    """Sets effective, permitted, inheritable and ambient (after setuid)."""
    sys.capset(mask(caps.effective), mask(caps.permitted), mask(caps.inheritable))
    sys.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)
    for name in caps.ambient:
        bit = CAPABILITIES[name]
        if bit <= last_cap():
            # A capability that is not both permitted and inheritable cannot be ambient;
            # runc ignores that case too rather than failing the container.
            try:
                sys.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, bit)
            except OSError:
                pass
