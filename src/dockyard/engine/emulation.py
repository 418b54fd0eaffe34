"""Running images of another architecture under qemu-user-static through binfmt_misc.

The kernel runs a foreign ELF binary through the interpreter registered for its magic in
binfmt_misc. The handler must have the F (fix-binary) flag: the kernel then opens the
interpreter when the handler is registered, so it works inside a container whose mount
namespace has no /usr/bin/qemu-*. Debian's qemu-user-static ships the static emulators
and their binfmt definitions (/usr/lib/binfmt.d/qemu-*.conf); when a handler is missing,
binfmt_misc is mounted if need be and the handler registered from that definition, with F.
Existing handlers are never changed or unregistered.
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

from ..image import Platform, host_platform, only
from .errors import EngineError

BINFMT_MISC = Path("/proc/sys/fs/binfmt_misc")
CONFIG_DIRS = (Path("/etc/binfmt.d"), Path("/usr/lib/binfmt.d"), Path("/run/binfmt.d"))
INSTALL_HINT = "apt-get install qemu-user-static"
MARKER = "emulation"  # in a container's directory: the architecture it needs emulated
# OCI architecture -> the name qemu gives it.
QEMU_NAMES = {"arm64": "aarch64", "arm": "arm", "amd64": "x86_64", "386": "i386",
              "ppc64le": "ppc64le", "ppc64": "ppc64", "s390x": "s390x",
              "riscv64": "riscv64", "mips64le": "mips64el", "mips64": "mips64",
              "mipsle": "mipsel", "mips": "mips", "loong64": "loongarch64"}


class EmulatorMissing(EngineError):
    pass


def needs_emulation(platform: Platform) -> bool:
    """True when this host cannot run the platform's binaries natively."""
    return not only(host_platform()).match(platform.normalized())


def ensure_emulator(architecture: str, binfmt_dir: Path = BINFMT_MISC,
                    config_dirs: tuple[Path, ...] = CONFIG_DIRS,
                    prefix: str = "qemu-") -> str:
    """The name of the binfmt_misc handler that runs `architecture` binaries, registered
    (with F) if it was not; EmulatorMissing says what to install otherwise."""
    qemu = QEMU_NAMES.get(architecture)
    if qemu is None:
        raise EmulatorMissing(f"no emulator is known for the architecture {architecture}")
    name = f"{prefix}{qemu}"
    _mount_binfmt_misc(binfmt_dir)
    entry = binfmt_dir / name
    if entry.exists():
        _check_entry(entry, name)
        return name
    rule = _definition(name, config_dirs)
    if rule is None:
        raise EmulatorMissing(
            f"image platform linux/{architecture} does not match the host platform "
            f"linux/{host_platform().architecture} and no emulator for it is installed: "
            f"install qemu-user-static ({INSTALL_HINT}) to run it through binfmt_misc")
    fields = rule.split(":")
    interpreter = fields[6]
    if not os.path.exists(interpreter):
        raise EmulatorMissing(f"the emulator {interpreter} for linux/{architecture} is "
                              f"missing: reinstall qemu-user-static ({INSTALL_HINT})")
    if "F" not in fields[7]:
        fields[7] += "F"
    try:
        with open(binfmt_dir / "register", "w") as register:
            register.write(":".join(fields))
    except FileExistsError:
        pass  # registered meanwhile (another daemon, systemd-binfmt)
    except OSError as e:
        raise EngineError(f"registering the binfmt_misc handler {name}: {e.strerror}") \
            from None
    _check_entry(entry, name)
    return name


def ensure_for_image(platform: Platform) -> str | None:
    """At create: the architecture a foreign image needs emulated (its emulator ready),
    None for a native one."""
    if not needs_emulation(platform):
        return None
    architecture = platform.normalized().architecture
    ensure_emulator(architecture)
    return architecture


def remember(directory: Path, architecture: str | None) -> None:
    """The container's start checks again (handlers do not survive a reboot)."""
    if architecture:
        (directory / MARKER).write_text(architecture)


def ensure_for_container(directory: Path) -> None:
    marker = directory / MARKER
    if marker.is_file():
        ensure_emulator(marker.read_text().strip())


def _mount_binfmt_misc(binfmt_dir: Path) -> None:
    if (binfmt_dir / "register").exists():
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.mount(b"binfmt_misc", str(binfmt_dir).encode(), b"binfmt_misc", 0, None) != 0:
        error = ctypes.get_errno()
        if error != 16:  # EBUSY: mounted meanwhile
            raise EmulatorMissing(f"mounting binfmt_misc on {binfmt_dir}: "
                                  f"{os.strerror(error)}")


def _definition(name: str, config_dirs: tuple[Path, ...]) -> str | None:
    """The `:name:type:offset:magic:mask:interpreter:flags` line for the handler."""
    for directory in config_dirs:
        path = directory / f"{name}.conf"
        if not path.is_file():
            continue
        for line in path.read_text().splitlines():
            line = line.strip()
            if line and not line.startswith(("#", ";")) and line.split(":")[1:2] == [name]:
                if len(line.split(":")) == 8:
                    return line
    return None


def _check_entry(entry: Path, name: str) -> None:
    text = entry.read_text()
    lines = text.splitlines()
    if not lines or lines[0] != "enabled":
        raise EmulatorMissing(f"the binfmt_misc handler {name} is disabled: enable it "
                              f"(echo 1 > {entry})")
    flags = next((line.split(":", 1)[1].strip() for line in lines
                  if line.startswith("flags:")), "")
    if "F" not in flags:
        raise EmulatorMissing(
            f"the binfmt_misc handler {name} is registered without the F (fix-binary) flag, "
            "so its interpreter cannot be found inside a container: register it again with "
            f"F (echo -1 > {entry}, then restart the daemon or run scripts/install.sh)")
