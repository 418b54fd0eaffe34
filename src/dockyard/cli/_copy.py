"""`cp` between a container and the local filesystem, with docker's path rules.

Both directions go through the archive endpoints (GET/PUT/HEAD /containers/{id}/archive);
the tar is read and written here. Destination rules, as docker's: into an existing
directory the source keeps its name (`SRC/.` copies the directory's content); otherwise the
copy takes the destination's name in the destination's parent.
"""

from __future__ import annotations

import base64
import os
import sys
import tarfile
import tempfile

from ..units import human_size
from ._args import Options
from ._client import DaemonError
from ._context import CommandFailed, Context

TYPE_CHECKING = False
if TYPE_CHECKING:   # typing costs ~10 ms at start-up
    from typing import Any

_GO_DIR_BIT = 1 << 31


def _split(arg: str) -> tuple[str | None, str]:
    """(container, path) for CONTAINER:PATH, (None, path) for a local path."""
    if arg.startswith(("/", ".")) or arg == "-":
        return None, arg
    container, colon, path = arg.partition(":")
    if not colon or "/" in container:
        return None, arg
    return container, path


def _path_stat(ctx: Context, container: str, path: str) -> dict[str, Any] | None:
    from ._jsonlite import loads

    response = ctx.client.request("HEAD", f"/containers/{container}/archive", {"path": path},
                                  check=False)
    response.read()
    if response.status == 404:
        return None
    if response.status >= 400:
        message = "Could not find the file " + path + " in container " + container
        raise DaemonError(response.status, message)
    header = response.headers.get("x-docker-container-path-stat", "")
    return loads(base64.b64decode(header)) if header else {}


def _is_dir(stat: dict[str, Any]) -> bool:
    return bool(stat.get("mode", 0) & _GO_DIR_BIT)


def copy(ctx: Context, opts: Options, source: str, destination: str) -> int:
    src_container, src_path = _split(source)
    dst_container, dst_path = _split(destination)
    if src_container and dst_container:
        raise CommandFailed("copying between containers is not supported", 1)
    if not src_container and not dst_container:
        raise CommandFailed("must specify at least one container source", 1)
    if src_container:
        if not src_path:
            raise CommandFailed("filepath cannot be empty", 1)
        return _from_container(ctx, opts, src_container, src_path, dst_path)
    if not dst_path:
        raise CommandFailed("filepath cannot be empty", 1)
    assert dst_container is not None
    return _to_container(ctx, opts, src_path, dst_container, dst_path)


def _from_container(ctx: Context, opts: Options, container: str, path: str,
                    destination: str) -> int:
    try:
        response = ctx.client.request("GET", f"/containers/{container}/archive",
                                      {"path": path})
    except DaemonError as err:
        raise CommandFailed(f"Error response from daemon: {err.message}", 1) from None
    if destination == "-":
        sys.stdout.flush()
        with os.fdopen(os.dup(1), "wb") as out:
            while True:
                piece = response.read_some()
                if not piece:
                    break
                out.write(piece)
        return 0
    from ._jsonlite import loads

    header = response.headers.get("x-docker-container-path-stat", "")
    stat = loads(base64.b64decode(header)) if header else {}
    src_is_dir = _is_dir(stat)
    src_name = stat.get("name") or os.path.basename(path.rstrip("/")) or "/"
    contents_only = path.endswith("/.")
    target_dir, rename_to = _local_target(destination, src_is_dir, contents_only)
    reader = _ResponseReader(response)
    total = 0
    root = os.path.realpath(target_dir)
    with tarfile.open(fileobj=reader, mode="r|") as archive:
        for member in archive:
            name = member.name
            parts = name.split("/")
            if rename_to is not None and parts[0] == src_name:
                parts[0] = rename_to
            elif contents_only and parts[0] == src_name:
                parts = parts[1:]
                if not parts:
                    continue
            if name.startswith("/") or ".." in parts:
                continue
            member.name = "/".join(parts)
            # A symbolic link extracted earlier must not lead a later entry outside.
            parent = os.path.realpath(os.path.join(root, os.path.dirname(member.name)))
            if parent != root and not parent.startswith(root + os.sep):
                continue
            if not opts.archive:
                member.uid, member.gid = os.getuid(), os.getgid()
                member.uname = member.gname = ""
            total += member.size if member.isfile() else 0
            archive.extract(member, target_dir, set_attrs=True, numeric_owner=True)
    if not opts.quiet and os.isatty(2):
        sys.stderr.write(f"Successfully copied {human_size(total)} to {destination}\n")
    return 0


def _local_target(destination: str, src_is_dir: bool, contents_only: bool
                  ) -> tuple[str, str | None]:
    """(directory to extract into, new name of the top entry or None)."""
    if os.path.isdir(destination):
        return destination, None
    if os.path.exists(destination):
        if src_is_dir:
            raise CommandFailed("cannot copy a directory to a file", 1)
        return os.path.dirname(os.path.abspath(destination)), os.path.basename(destination)
    if destination.endswith("/"):
        if not src_is_dir:
            raise CommandFailed(f"destination directory {destination} does not exist", 1)
    parent = os.path.dirname(os.path.abspath(destination.rstrip("/")))
    if not os.path.isdir(parent):
        raise CommandFailed(f"destination directory {parent} does not exist", 1)
    if contents_only:
        os.mkdir(destination)
        return destination, None
    return parent, os.path.basename(destination.rstrip("/"))


class _ResponseReader:
    """A file-like reader over a streamed response body, for tarfile's stream mode."""

    def __init__(self, response: Any) -> None:
        self.response = response
        self.buffer = b""

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self.buffer) < size:
            piece = self.response.read_some()
            if not piece:
                break
            self.buffer += piece
        if size < 0:
            data, self.buffer = self.buffer, b""
        else:
            data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data


def _to_container(ctx: Context, opts: Options, source: str, container: str,
                  destination: str) -> int:
    client = ctx.client
    query: dict[str, Any] = {"noOverwriteDirNonDir": "true"}
    if opts.archive:
        query["copyUIDGID"] = "true"
    if source == "-":
        with os.fdopen(os.dup(0), "rb") as stdin:
            client.stream_upload("PUT", f"/containers/{container}/archive",
                                 {**query, "path": destination}, stdin,
                                 {"Content-Type": "application/x-tar"}).read()
        return 0
    if not os.path.lexists(source):
        raise CommandFailed(f"stat {source}: no such file or directory", 1)
    src_is_dir = os.path.isdir(source)
    contents_only = source.endswith("/.")
    try:
        stat = _path_stat(ctx, container, destination)
    except DaemonError as err:
        raise CommandFailed(f"Error response from daemon: {err.message}", 1) from None
    if stat is not None and _is_dir(stat):
        put_dir, name = destination, os.path.basename(os.path.abspath(source))
    elif stat is not None:
        if src_is_dir:
            raise CommandFailed("cannot copy a directory to a file", 1)
        put_dir, name = os.path.dirname(destination) or "/", os.path.basename(destination)
    else:
        if destination.endswith("/") and not src_is_dir:
            raise CommandFailed(f"Error response from daemon: Could not find the file "
                                f"{destination} in container {container}", 1)
        stripped = destination.rstrip("/")
        put_dir, name = os.path.dirname(stripped) or "/", os.path.basename(stripped)
    total = 0
    with tempfile.TemporaryFile() as spool:
        with tarfile.open(fileobj=spool, mode="w", format=tarfile.PAX_FORMAT) as archive:
            def owner(info: tarfile.TarInfo) -> tarfile.TarInfo:
                nonlocal total
                if not opts.archive:
                    info.uid = info.gid = 0
                    info.uname = info.gname = ""
                total += info.size if info.isfile() else 0
                return info

            if contents_only and src_is_dir:
                for entry in sorted(os.listdir(source)):
                    archive.add(os.path.join(source, entry), arcname=entry, filter=owner)
            else:
                archive.add(source, arcname=name, filter=owner)
        spool.seek(0)
        target = destination if contents_only and src_is_dir else put_dir
        try:
            client.stream_upload("PUT", f"/containers/{container}/archive",
                                 {**query, "path": target}, spool,
                                 {"Content-Type": "application/x-tar"}).read()
        except DaemonError as err:
            raise CommandFailed(f"Error response from daemon: {err.message}", 1) from None
    if not opts.quiet and os.isatty(2):
        sys.stderr.write(f"Successfully copied {human_size(total)} to "
                         f"{container}:{destination}\n")
    return 0
