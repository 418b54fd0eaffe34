"""What every command gets: the parsed global options, the daemon client, stdio."""

from __future__ import annotations

import os
import sys

from ._args import Options, Spec, parse

TYPE_CHECKING = False
if TYPE_CHECKING:   # typing costs ~10 ms at start-up
    from typing import Any


class CommandFailed(Exception):
    """A command's own failure: print message (if any) to stderr and exit with code."""

    def __init__(self, message: str = "", exit_code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


class Context:
    def __init__(self, name: str, host: str | None = None, config_dir: str | None = None
                 ) -> None:
        self.name = name               # the command as invoked: "ps", "container ls"
        self.host = host
        self.config_dir_flag = config_dir
        self.spec: Spec | None = None
        self._client: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            from ._client import Client

            self._client = Client(self.host)
        return self._client

    def parse(self, spec: Spec, argv: list[str]) -> tuple[Options, list[str]]:
        self.spec = spec
        return parse(spec, argv, self.name)

    @property
    def config_dir(self) -> str:
        return (self.config_dir_flag or os.environ.get("DOCKER_CONFIG")
                or os.path.join(os.path.expanduser("~"), ".docker"))

    @staticmethod
    def out(text: str) -> None:
        sys.stdout.write(text)

    @staticmethod
    def err(text: str) -> None:
        sys.stderr.write(text)
