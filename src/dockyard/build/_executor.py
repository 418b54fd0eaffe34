"""What the builder needs from below: images, containers that run a step, and commits.

The engine implements this (engine/builds.py) with its container service and image
store; the builder above it only decides what to run, what to copy and what to record.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class BuildImage:
    """An image in the store: its ID (config digest), its config document, and how the
    executor finds it again (an index's digest for one platform of a multi-platform
    base image; empty: by ID)."""

    id: str
    doc: dict[str, Any]
    ref: str = ""


@dataclass
class RunMount:
    """A mount for one RUN step: bind (source on the host), or tmpfs."""

    type: str
    target: str
    source: str = ""
    readonly: bool = False


@dataclass
class RunOptions:
    network_mode: str = ""
    extra_hosts: list[str] = field(default_factory=list)
    shm_size: int = 0
    mounts: list[RunMount] = field(default_factory=list)


Output = Callable[[bytes], None]


class Executor(Protocol):
    def find_image(self, ref: str, platform: str, pull: bool) -> BuildImage:
        """A base image by name or ID (pulled when asked and possible); BuildError if
        there is none."""
        ...

    def image(self, image_id: str) -> BuildImage | None:
        """The image with this ID if it still exists (a cache entry's check)."""
        ...

    def create(self, parent: BuildImage | None, config: dict[str, Any],
               options: RunOptions, platform: str) -> str:
        """A container (its writable filesystem) on parent; its ID."""
        ...

    def run(self, container: str, output: Output) -> int:
        """Start the container, pass its output on as it comes; its exit status."""
        ...

    def rootfs(self, container: str) -> AbstractContextManager[str]:
        """The container's merged root, mounted for the length of the block."""
        ...

    def image_rootfs(self, image: BuildImage) -> AbstractContextManager[str]:
        """An image's files, readable for the length of the block (COPY --from)."""
        ...

    def commit(self, container: str | None, parent: BuildImage | None,
               doc: dict[str, Any], history: dict[str, Any]) -> BuildImage:
        """A new image: parent's layers (plus the container's changes as a layer, if
        any), the config document `doc` and `history` appended to parent's history."""
        ...

    def adopt(self, parent: BuildImage | None, doc: dict[str, Any], history: dict[str, Any],
              source: BuildImage, layer: int | None) -> BuildImage:
        """A new image: parent's layers plus layer number `layer` of source (none if
        None), the config document `doc`, `history` appended (--cache-from)."""
        ...

    def remove(self, container: str) -> None:
        ...
