"""Atomic file replacement: write beside the target, then rename over it, so a reader (or
a restart after a crash) sees the old content or the new, never half of either."""

import os


def write_atomic(path: str | os.PathLike[str], data: bytes | str, *, durable: bool = False,
                 mode: int = 0o644) -> None:
    """durable=True also fsyncs the file and its directory (state that must survive a
    power loss, unlike state on tmpfs)."""
    path = os.fspath(path)
    directory = os.path.dirname(path) or "."
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}.tmp")
    raw = data.encode() if isinstance(data, str) else data
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        view = memoryview(raw)
        while view:
            view = view[os.write(fd, view):]
        if durable:
            os.fsync(fd)
    except BaseException:
        os.close(fd)
        os.unlink(tmp)
        raise
    os.close(fd)
    os.rename(tmp, path)
    if durable:
        dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
