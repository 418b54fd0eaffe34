"""What a build is asked for: the options of POST /build the builder acts on."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class BuildOptions:
    tags: list[str] = field(default_factory=list)
    build_args: dict[str, str | None] = field(default_factory=dict)
    target: str = ""
    no_cache: bool = False
    rm: bool = True
    force_rm: bool = False
    labels: dict[str, str] = field(default_factory=dict)
    pull: bool = False
    network_mode: str = ""
    platform: str = ""
    extra_hosts: list[str] = field(default_factory=list)
    shm_size: int = 0
    secrets: dict[str, bytes] = field(default_factory=dict)
    cache_dir: str = ""  # where RUN --mount=type=cache keeps its directories
    cache_from: list[str] = field(default_factory=list)
