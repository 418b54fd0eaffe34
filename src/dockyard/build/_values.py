"""Values inside instructions: ports, modes, RUN --mount specs, JSON lists, platforms."""

from __future__ import annotations

import json
from typing import Any

from ._errors import DockerfileError
from ._instructions import Instruction


def scratch_doc(platform: str) -> dict[str, Any]:
    os_name, _, rest = (platform or "linux/amd64").partition("/")
    architecture, _, variant = (rest or "amd64").partition("/")
    doc: dict[str, Any] = {"architecture": architecture, "os": os_name or "linux",
                           "config": {}, "rootfs": {"type": "layers", "diff_ids": []},
                           "history": []}
    if variant:
        doc["variant"] = variant
    return doc


def platform_args(platform: str) -> dict[str, str]:
    os_name, _, rest = (platform or "linux/amd64").partition("/")
    architecture, _, variant = (rest or "amd64").partition("/")
    return {"TARGETPLATFORM": platform or "linux/amd64", "TARGETOS": os_name,
            "TARGETARCH": architecture, "TARGETVARIANT": variant,
            "BUILDPLATFORM": "linux/amd64", "BUILDOS": "linux", "BUILDARCH": "amd64"}


def json_list(text: str) -> list[str] | None:
    if not text.startswith("["):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    return None


def port_specs(port: str, line: int) -> list[str]:
    number, _, proto = port.partition("/")
    proto = (proto or "tcp").lower()
    if proto not in ("tcp", "udp", "sctp"):
        raise DockerfileError(f"invalid proto: {proto}", line)
    start, _, end = number.partition("-")
    try:
        first = int(start)
        last = int(end) if end else first
    except ValueError:
        raise DockerfileError(f"invalid containerPort: {number}", line) from None
    if not 0 < first <= 65535 or not 0 < last <= 65535 or last < first:
        raise DockerfileError(f"invalid containerPort: {number}", line)
    return [f"{p}/{proto}" for p in range(first, last + 1)]


def mount_fields(spec: str, line: int) -> dict[str, str]:
    fields: dict[str, str] = {}
    for part in spec.split(","):
        key, sep, value = part.partition("=")
        key = key.strip().lower()
        if not key:
            continue
        fields[key] = value if sep else ""
    if fields.get("type", "bind") not in ("bind", "cache", "tmpfs", "secret", "ssh"):
        raise DockerfileError(f"unsupported mount type \"{fields['type']}\"", line)
    if fields.get("type") == "ssh":
        raise DockerfileError("RUN --mount=type=ssh is not supported", line)
    return fields


def parse_mode(text: str, ins: Instruction) -> int:
    try:
        value = int(text, 8)
    except ValueError:
        raise DockerfileError(f"invalid chmod parameter {text}. it should be octal string and "
                              "between 0 and 07777", ins.line) from None
    if not 0 <= value <= 0o7777:
        raise DockerfileError(f"invalid chmod parameter {text}. it should be octal string and "
                              "between 0 and 07777", ins.line)
    return value
