"""Docker's seccomp profile format (with includes/excludes by capability, architecture and
kernel) turned into the OCI `linux.seccomp` object for one container.

The default profile is Docker's own (default-seccomp.json, Apache-2.0, from moby), so that
a container gets exactly the syscalls it would get under Docker.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

_DEFAULT_PROFILE = Path(__file__).with_name("default-seccomp.json")

# Go's GOARCH names (used in profiles' "arches") for this machine's architecture.
_GOARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386",
           "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}
_SCMP_ARCH = {"amd64": "SCMP_ARCH_X86_64", "arm64": "SCMP_ARCH_AARCH64", "386": "SCMP_ARCH_X86",
              "arm": "SCMP_ARCH_ARM", "ppc64le": "SCMP_ARCH_PPC64LE", "s390x": "SCMP_ARCH_S390X",
              "riscv64": "SCMP_ARCH_RISCV64"}


class ProfileError(ValueError):
    pass


def default_profile() -> dict[str, Any]:
    with open(_DEFAULT_PROFILE, "rb") as f:
        return json.load(f)


def load_profile(text: str) -> dict[str, Any]:
    """A profile given with --security-opt seccomp=<file contents>."""
    try:
        profile = json.loads(text)
    except json.JSONDecodeError as e:
        raise ProfileError(f"decoding seccomp profile failed: {e}") from None
    if not isinstance(profile, dict):
        raise ProfileError("decoding seccomp profile failed: not a JSON object")
    return profile


def host_goarch() -> str:
    machine = os.uname().machine
    return _GOARCH.get(machine, machine)


def to_oci(profile: dict[str, Any], capabilities: list[str], goarch: str | None = None,
           kernel: tuple[int, int] | None = None) -> dict[str, Any]:
    """The OCI seccomp object for a container with these capabilities on this arch."""
    goarch = goarch or host_goarch()
    kernel = kernel or _kernel_version()
    caps = set(capabilities)
    result: dict[str, Any] = {"defaultAction": profile.get("defaultAction", "SCMP_ACT_ERRNO")}
    if "defaultErrnoRet" in profile:
        result["defaultErrnoRet"] = profile["defaultErrnoRet"]
    result["architectures"] = _architectures(profile, goarch)
    if profile.get("flags"):
        result["flags"] = list(profile["flags"])
    syscalls = []
    for index, rule in enumerate(profile.get("syscalls") or []):
        if not isinstance(rule, dict):
            raise ProfileError(f"syscalls[{index}]: must be an object")
        if not _applies(rule, caps, goarch, kernel):
            continue
        names = rule.get("names") or ([rule["name"]] if rule.get("name") else [])
        entry: dict[str, Any] = {"names": names, "action": rule.get("action", "")}
        for key in ("errnoRet", "args"):
            if rule.get(key) is not None:
                entry[key] = rule[key]
        syscalls.append(entry)
    result["syscalls"] = syscalls
    return result


def _architectures(profile: dict[str, Any], goarch: str) -> list[str]:
    native = _SCMP_ARCH.get(goarch)
    arch_map = profile.get("archMap") or []
    if not arch_map:
        return list(profile.get("architectures") or [])
    for entry in arch_map:
        if entry.get("architecture") == native:
            return [native, *entry.get("subArchitectures", [])]
    return [native] if native else []


def _applies(rule: dict[str, Any], caps: set[str], goarch: str,
             kernel: tuple[int, int]) -> bool:
    includes = rule.get("includes") or {}
    excludes = rule.get("excludes") or {}
    if includes.get("arches") and goarch not in includes["arches"]:
        return False
    if includes.get("caps") and not set(includes["caps"]) <= caps:
        return False
    if includes.get("minKernel") and kernel < _parse_kernel(includes["minKernel"]):
        return False
    if excludes.get("arches") and goarch in excludes["arches"]:
        return False
    if excludes.get("caps") and set(excludes["caps"]) & caps:
        return False
    if excludes.get("minKernel") and kernel >= _parse_kernel(excludes["minKernel"]):
        return False
    return True


def _parse_kernel(text: str) -> tuple[int, int]:
    major, _, rest = text.partition(".")
    minor = "".join(ch for ch in rest.split(".")[0] if ch.isdigit()) or "0"
    return int(major), int(minor)


def _kernel_version() -> tuple[int, int]:
    return _parse_kernel(os.uname().release)
