"""Listening sockets: a unix socket with dockerd's safety rules, or TCP."""

from __future__ import annotations

import contextlib
import grp
import os
import secrets
import socket
import stat
from pathlib import Path

# sun_path holds 108 bytes including the terminating NUL.
_MAX_UNIX_PATH = 107


class ListenError(OSError):
    """The address cannot be listened on (in use, not a socket, ...)."""


def _server_answers(path: Path) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(os.fsencode(path))
    except (ConnectionRefusedError, FileNotFoundError):
        return False
    except OSError as error:
        raise ListenError(f"cannot tell whether a server is listening on {path}: "
                          f"{error}") from None
    finally:
        probe.close()
    return True


def _group_id(group: str | int) -> int:
    if isinstance(group, int):
        return group
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        raise ListenError(f"group {group!r} does not exist") from None


def bind_unix(path: Path, mode: int = 0o660, group: str | int | None = None
              ) -> socket.socket:
    """A listening unix socket at `path` with `mode` (and `group`) set.

    A socket file left by a dead server is replaced; a live server on it, or a file
    that is not a socket, is an error rather than something to delete.
    """
    if len(os.fsencode(path)) > _MAX_UNIX_PATH:
        raise ListenError(f"unix socket path too long: {path}")
    with contextlib.suppress(FileNotFoundError):
        if not stat.S_ISSOCK(os.lstat(path).st_mode):
            raise ListenError(f"{path} exists and is not a socket")
        if _server_answers(path):
            raise ListenError(f"another server is listening on {path}")
    gid = None if group is None else _group_id(group)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        # Bind under a temporary name, set the mode, then rename into place: clients
        # never see the socket with the umask's permissions, and a stale socket is
        # replaced atomically. Fall back to binding in place if the name is too long.
        temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
        staged = len(os.fsencode(temporary)) <= _MAX_UNIX_PATH
        target = temporary if staged else path
        if not staged:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        sock.bind(os.fsencode(target))
        try:
            os.chmod(target, mode)
            if gid is not None:
                os.chown(target, -1, gid)
            if staged:
                os.rename(temporary, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(target)
            raise
        sock.listen(socket.SOMAXCONN)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def remove_unix_socket(path: Path, identity: tuple[int, int]) -> None:
    """Remove the socket file if it is still ours (same device and inode)."""
    with contextlib.suppress(FileNotFoundError):
        info = os.lstat(path)
        if (info.st_dev, info.st_ino) == identity:
            os.unlink(path)


def socket_identity(path: Path) -> tuple[int, int]:
    info = os.lstat(path)
    return info.st_dev, info.st_ino
