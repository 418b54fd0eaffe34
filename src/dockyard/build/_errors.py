"""The build layer's errors."""

from __future__ import annotations


class BuildError(Exception):
    """A build that cannot go on; the message is what the client shows. `code` is the
    exit status the docker CLI exits with (a failing RUN's own status)."""

    def __init__(self, message: str, code: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class DockerfileError(BuildError):
    """A Dockerfile that cannot be built, found before anything runs. With a line
    number the message reads as Docker's: "Dockerfile parse error line 3: ..."."""

    def __init__(self, message: str, line: int = 0) -> None:
        super().__init__(f"Dockerfile parse error line {line}: {message}" if line else message)
        self.problem = message
        self.line = line

    def at(self, line: int) -> DockerfileError:
        """The same problem, placed on a line (if it has no line yet)."""
        return self if self.line else DockerfileError(self.problem, line)
