"""Platforms (os/architecture/variant) with containerd's normalisation and matching.

The rules are those of github.com/containerd/platforms, which dockerd and containerd use
to pick an image out of a multi-platform index: `Normalize`, `Parse`, `DefaultSpec`,
`Only` (the platform plus the ones it can also run, best first) and `OnlyStrict`.
Windows os.version matching is not implemented: this engine runs Linux containers.
"""

from __future__ import annotations

import functools
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dockyard.image import _fields as fields
from dockyard.image.errors import PlatformError

_KNOWN_OS = frozenset({
    "aix", "android", "darwin", "dragonfly", "freebsd", "hurd", "illumos", "ios", "js",
    "linux", "nacl", "netbsd", "openbsd", "plan9", "solaris", "wasip1", "windows", "zos",
})
_KNOWN_ARCH = frozenset({
    "386", "amd64", "amd64p32", "arm", "armbe", "arm64", "arm64be", "ppc64", "ppc64le",
    "loong64", "mips", "mipsle", "mips64", "mips64le", "mips64p32", "mips64p32le", "ppc",
    "riscv", "riscv64", "s390", "s390x", "sparc", "sparc64", "wasm",
})
_OS_AND_VERSION = re.compile(r"([A-Za-z0-9_-]+)(?:\(([A-Za-z0-9_.-]*)\))?")
_COMPONENT = re.compile(r"[A-Za-z0-9_.-]+")


@dataclass(frozen=True)
class Platform:
    """An OCI platform. Values are kept as written; `normalized()` gives the canonical form."""

    os: str
    architecture: str
    variant: str = ""
    os_version: str = ""
    os_features: tuple[str, ...] = field(default=())

    def normalized(self) -> Platform:
        architecture, variant = normalize_arch(self.architecture, self.variant)
        return Platform(normalize_os(self.os), architecture, variant, self.os_version,
                        self.os_features)

    def __str__(self) -> str:
        # platforms.Format: "linux/arm64/v8"; os.version is not part of the short form.
        if not self.os:
            return "unknown"
        return "/".join(part for part in (self.os, self.architecture, self.variant) if part)

    def to_json(self) -> dict[str, Any]:
        """The OCI JSON form, keys in the order Go's specs.Platform marshals them."""
        doc: dict[str, Any] = {"architecture": self.architecture, "os": self.os}
        if self.os_version:
            doc["os.version"] = self.os_version
        if self.os_features:
            doc["os.features"] = list(self.os_features)
        if self.variant:
            doc["variant"] = self.variant
        return doc

    @classmethod
    def from_json(cls, doc: fields.JSONObject, where: str) -> Platform:
        features = fields.strings(doc, "os.features", where) or ()
        return cls(
            os=fields.string(doc, "os", where, required=True),
            architecture=fields.string(doc, "architecture", where, required=True),
            variant=fields.string(doc, "variant", where),
            os_version=fields.string(doc, "os.version", where),
            os_features=features,
        )


def normalize_os(name: str) -> str:
    if not name:
        return _host_os()
    name = name.lower()
    return "darwin" if name == "macos" else name


def normalize_arch(arch: str, variant: str) -> tuple[str, str]:
    """containerd's normalizeArch: canonical architecture names and implied variants."""
    arch, variant = arch.lower(), variant.lower()
    if arch == "i386":
        return "386", ""
    if arch in ("x86_64", "x86-64", "amd64"):
        return "amd64", "" if variant == "v1" else variant
    if arch in ("aarch64", "arm64"):
        # v8 is the baseline of arm64, so it is implied and dropped.
        if variant in ("8", "v8", "v8.0"):
            variant = ""
        elif variant in ("9", "9.0", "v9.0"):
            variant = "v9"
        return "arm64", variant
    if arch == "armhf":
        return "arm", "v7"
    if arch == "armel":
        return "arm", "v6"
    if arch == "arm":
        if variant in ("", "7"):
            variant = "v7"
        elif variant in ("5", "6", "8"):
            variant = "v" + variant
        return "arm", variant
    return arch, variant


def normalize_platform(platform: Platform) -> Platform:
    return platform.normalized()


def parse_platform(specifier: str) -> Platform:
    """containerd's platforms.Parse: "linux", "arm64", "linux/arm64", "linux/arm/v7".

    A single known OS gets the host architecture; a single known architecture gets the
    host OS. "linux/arm64/v8" keeps its v8 (as containerd does); matching normalises it.
    """
    if "*" in specifier:
        raise PlatformError(f"{specifier!r}: wildcards not yet supported: invalid argument")
    parts = specifier.split("/", 3)
    os_match = _OS_AND_VERSION.fullmatch(parts[0])
    if os_match is None:
        raise PlatformError(f"{parts[0]!r} is an invalid OS component of {specifier!r}: "
                            "OSAndVersion specifier component must match "
                            f"{_OS_AND_VERSION.pattern!r}: invalid argument")
    os_name, os_version = os_match.group(1), os_match.group(2) or ""
    for part in parts[1:]:
        if not _COMPONENT.fullmatch(part):
            raise PlatformError(f"{part!r} is an invalid component of {specifier!r}: platform "
                                f"specifier component must match {_COMPONENT.pattern!r}: "
                                "invalid argument")
    if len(parts) == 1:
        normalized_os = normalize_os(os_name)
        if normalized_os in _KNOWN_OS:
            host = host_platform()
            return Platform(normalized_os, host.architecture, host.variant, os_version)
        arch, variant = normalize_arch(os_name, "")
        if arch == "arm" and variant == "v7":
            variant = ""
        if arch in _KNOWN_ARCH:
            return Platform(_host_os(), arch, variant)
        raise PlatformError(
            f"{specifier!r}: unknown operating system or architecture: invalid argument")
    if len(parts) == 2:
        arch, variant = normalize_arch(parts[1], "")
        if arch == "arm" and variant == "v7":
            variant = ""
        return Platform(normalize_os(os_name), arch, variant, os_version)
    if len(parts) == 3:
        arch, variant = normalize_arch(parts[1], parts[2])
        if arch == "arm64" and variant == "":
            variant = "v8"
        return Platform(normalize_os(os_name), arch, variant, os_version)
    raise PlatformError(f"{specifier!r}: cannot parse platform specifier: invalid argument")


def _host_os() -> str:
    return "linux" if sys.platform.startswith("linux") else sys.platform


def _cpu_variant(arch: str) -> str:
    """The ARM variant from /proc/cpuinfo (containerd's cpuVariant); "" elsewhere."""
    if arch not in ("arm", "arm64"):
        return ""
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return ""
    values: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            values.setdefault(key.strip().lower(), value.strip())
    level = values.get("cpu architecture", "").lower()
    if level in ("aarch64", "8"):
        return "v8"
    if level == "7" and "armv6" in values.get("model name", "").lower():
        return "v6"  # some ARMv6 boards (Raspberry Pi Zero) report 7
    return f"v{level}" if level[:1].isdigit() else ""


@functools.cache
def host_platform() -> Platform:
    """The platform this engine runs natively (containerd's DefaultSpec, normalised)."""
    arch, _ = normalize_arch(os.uname().machine, "")
    return Platform(_host_os(), arch, _cpu_variant(arch)).normalized()


def _compatible(platform: Platform) -> list[Platform]:
    """containerd's platformVector: the platform, then what it can also run, best first."""
    vector = [platform]

    def same(arch: str, variant: str) -> Platform:
        return Platform(platform.os, arch, variant, platform.os_version, platform.os_features)

    def version(variant: str, prefix: str = "v") -> int | None:
        digits = variant.removeprefix(prefix)
        return int(digits) if digits.isdigit() else None

    if platform.architecture == "amd64":
        level = version(platform.variant)
        if level is not None and level > 1:
            vector += [same("amd64", f"v{n}") for n in range(level - 1, 0, -1)]
        vector.append(same("386", ""))
    elif platform.architecture == "arm":
        level = version(platform.variant)
        if level is not None and level > 5:
            vector += [same("arm", f"v{n}") for n in range(level - 1, 4, -1)]
    elif platform.architecture == "arm64":
        variant = platform.variant or "v8"
        major_text, _, minor_text = variant.partition(".")
        major = version(major_text)
        if major is not None and major >= 8:
            minor = int(minor_text) if minor_text.isdigit() and len(variant) == 4 else 0
            if major == 9:
                vector += [same("arm64", f"v9.{n}" if n else "v9")
                           for n in range(minor - 1, -1, -1)]
                # v9.x descends from v8.(x+5), up to v8.9.
                minor, major = min(minor + 5, 9), 8
                vector.append(same("arm64", f"v8.{minor}"))
            vector += [same("arm64", f"v{major}.{n}" if n else f"v{major}")
                       for n in range(minor - 1, -1, -1)]
        # Every arm64 CPU also runs 32-bit arm up to v8.
        if variant.startswith(("v8.", "v9.")):
            variant = "v8"
        vector += _compatible(same("arm", variant))
    return vector


class PlatformMatcher:
    """An ordered matcher (containerd's orderedPlatformComparer): a platform matches if any
    of the wanted platforms does, and ranks by the first one it matches."""

    def __init__(self, wanted: list[Platform]) -> None:
        self.wanted = [p.normalized() for p in wanted]

    def rank(self, platform: Platform) -> int | None:
        """The index of the first wanted platform `platform` satisfies; None if none."""
        candidate = platform.normalized()
        for index, want in enumerate(self.wanted):
            if (candidate.os == want.os and candidate.architecture == want.architecture
                    and candidate.variant == want.variant
                    and set(want.os_features) <= set(candidate.os_features)):
                return index
        return None

    def match(self, platform: Platform) -> bool:
        return self.rank(platform) is not None

    def less(self, first: Platform, second: Platform) -> bool:
        """containerd's Less: `first` is preferred over `second`."""
        a, b = self.rank(first), self.rank(second)
        return a is not None and (b is None or a < b)


def only(platform: Platform) -> PlatformMatcher:
    """platforms.Only: the platform and the ones it can run (arm64 runs arm/v8..v5, amd64
    runs 386, arm/v7 runs v6 and v5), preferring the closest."""
    return PlatformMatcher(_compatible(platform.normalized()))


def only_strict(platform: Platform) -> PlatformMatcher:
    """platforms.OnlyStrict: exactly the platform (in any spelling), no fallbacks."""
    return PlatformMatcher([platform])
