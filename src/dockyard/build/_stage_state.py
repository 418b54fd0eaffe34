"""One stage as it is being built: its image so far, that image's config document and
the run config the next step starts from."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ._executor import BuildImage
from ._instructions import Stage

DEFAULT_SHELL = ["/bin/sh", "-c"]


@dataclass
class StageState:
    """One stage as it is being built."""

    stage: Stage
    image: BuildImage | None
    doc: dict[str, Any]  # the current image's config document (a copy)
    config: dict[str, Any]  # the run config (Docker's container config)
    platform: str
    args: dict[str, str | None] = field(default_factory=dict)  # declared in this stage
    cmd_set: bool = False
    maintainer: str = ""

    @property
    def image_id(self) -> str:
        return self.image.id if self.image else ""

    @property
    def shell(self) -> list[str]:
        return list(self.config.get("Shell") or DEFAULT_SHELL)
