"""Command lines for the OCI runtime (runc's, which dockyard-runc, runc and crun share) and
the reading of its errors."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Sequence

# Signals the shim ignores or handles; a runtime (and so the container) starts with them
# at their defaults, as it would from a shell.
RESET_SIGNALS = (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGHUP, signal.SIGINT, signal.SIGTERM,
                 signal.SIGCHLD, signal.SIGTTIN, signal.SIGTTOU, signal.SIGTSTP)


class Runtime:
    """One runtime binary with its --root and global options."""

    __slots__ = ("path", "root", "global_args")

    def __init__(self, path: str, root: str, global_args: Sequence[str] = ()) -> None:
        self.path = path
        self.root = root
        self.global_args = tuple(global_args)

    def argv(self, command: str, *args: str, log_path: str | None = None) -> list[str]:
        argv = [self.path, "--root", self.root, *self.global_args]
        if log_path:
            argv += ["--log", log_path, "--log-format", "json"]
        return [*argv, command, *args]

    def create(self, container_id: str, bundle: str, pid_file: str,
               console_socket: str | None, log_path: str | None = None) -> list[str]:
        args = ["--bundle", bundle, "--pid-file", pid_file]
        if console_socket:
            args += ["--console-socket", console_socket]
        return self.argv("create", *args, container_id, log_path=log_path)

    def exec(self, container_id: str, process_file: str, pid_file: str,
             console_socket: str | None, log_path: str | None = None) -> list[str]:
        args = ["--detach", "--pid-file", pid_file, "--process", process_file]
        if console_socket:
            args += ["--console-socket", console_socket]
        return self.argv("exec", *args, container_id, log_path=log_path)

    def to_dict(self) -> dict[str, object]:
        return {"runtime": self.path, "runtime_root": self.root,
                "runtime_args": list(self.global_args)}


def error_message(log_text: bytes, stderr_text: bytes, status: int) -> str:
    """The runtime's own words for a failure: the last error of its --log (JSON lines),
    else its stderr, else the exit status."""
    message = ""
    for line in log_text.splitlines():
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if isinstance(doc, dict) and doc.get("level") in ("error", "fatal") and doc.get("msg"):
            message = str(doc["msg"])
    if message:
        return message
    lines = [line.strip() for line in stderr_text.decode("utf-8", "replace").splitlines()
             if line.strip()]
    if lines:
        return lines[-1]
    if os.WIFSIGNALED(status):
        return f"runtime killed by signal {os.WTERMSIG(status)}"
    return f"runtime exited with status {os.waitstatus_to_exitcode(status)}"


def is_not_found(message: str) -> bool:
    """Whether a `delete` failed only because the runtime has no such container."""
    lowered = message.lower()
    return "does not exist" in lowered or "no such file or directory" in lowered
