"""`dockyard-shim`: the supervisor of every container of one daemon exec root.

usage: dockyard-shim --exec-root DIR [--idle-timeout SECONDS] [--foreground]

Without --foreground it detaches (double fork, setsid, a process group of its own, stdio
to <exec_root>/shim.log) and the command returns once the shim answers on
<exec_root>/shim.sock: status 0 (also when another shim already serves that exec root),
1 with a message on stderr if it could not start. It exits by itself once it supervises
no process and no client has been connected for the idle timeout (0: never), or on the
`shutdown` request.
"""

from __future__ import annotations

import os
import socket
import sys
import time
from collections.abc import Callable

from . import protocol as p

DEFAULT_IDLE_TIMEOUT = 60.0
LOCK_WAIT = 5.0  # for an exiting predecessor to let go of the exec root
SHIM_LOG_LIMIT = 1024 * 1024
MAX_SOCKET_PATH = 107


class Options:
    def __init__(self) -> None:
        self.exec_root = ""
        self.idle_timeout = DEFAULT_IDLE_TIMEOUT
        self.foreground = False


def parse_args(argv: list[str]) -> Options:
    options = Options()
    args = list(argv)
    while args:
        arg = args.pop(0)
        name, has_value, value = arg.partition("=")
        if name in ("--exec-root", "--idle-timeout"):
            if not has_value:
                if not args:
                    raise ValueError(f"{name} needs a value")
                value = args.pop(0)
            if name == "--exec-root":
                options.exec_root = value
            else:
                options.idle_timeout = float(value)
        elif arg == "--foreground":
            options.foreground = True
        elif arg in ("-h", "--help"):
            raise SystemExit(__doc__)
        else:
            raise ValueError(f"unknown argument {arg!r}")
    if not options.exec_root:
        raise ValueError("--exec-root is required")
    options.exec_root = os.path.abspath(options.exec_root)
    # Unix socket paths are at most 107 bytes; ours are <exec_root>/shim.sock and the
    # console sockets <exec_root>/.tmp-<10 hex>.sock.
    if len(os.fsencode(options.exec_root)) + len("/.tmp-0123456789.sock") > MAX_SOCKET_PATH:
        raise ValueError(f"--exec-root {options.exec_root!r} is too long for unix socket "
                         f"paths (at most {MAX_SOCKET_PATH - 21} bytes)")
    return options


def main(argv: list[str] | None = None) -> int:
    try:
        options = parse_args(sys.argv[1:] if argv is None else argv)
    except ValueError as e:
        sys.stderr.write(f"dockyard-shim: {e}\n{__doc__}")
        return 2
    os.makedirs(options.exec_root, mode=0o711, exist_ok=True)
    if options.foreground:
        return run(options, lambda message: None)
    return _detach_and_run(options)


def _detach_and_run(options: Options) -> int:
    ready_r, ready_w = os.pipe()
    first = os.fork()
    if first:
        os.close(ready_w)
        report = b""
        while chunk := os.read(ready_r, 4096):
            report += chunk
        os.close(ready_r)
        os.waitpid(first, 0)
        if report.startswith((b"ready", b"running")):
            return 0
        sys.stderr.write(report.decode(errors="replace") or "dockyard-shim: failed to start\n")
        return 1
    # The first child: a new session, then the shim proper in a grandchild that is no
    # session leader (it can never get a controlling terminal) and not our caller's child.
    told = False

    def tell(message: bytes) -> None:
        nonlocal told
        if not told:
            told = True
            try:
                os.write(ready_w, message)
            except OSError:
                pass
            os.close(ready_w)

    try:
        os.close(ready_r)
        os.setsid()
        if os.fork():
            os._exit(0)
        os.setpgid(0, 0)
        os.chdir("/")
        os.umask(0o022)
        _redirect_stdio(os.path.join(options.exec_root, p.LOG_FILE_NAME))
        code = run(options, tell)
    except BaseException as e:  # noqa: BLE001 - report to the caller, whatever it is
        import traceback

        traceback.print_exc()
        tell(f"dockyard-shim: {e}\n".encode())
        code = 1
    try:
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
    os._exit(code)


def _redirect_stdio(log_path: str) -> None:
    try:
        if os.path.getsize(log_path) > SHIM_LOG_LIMIT:
            os.replace(log_path, f"{log_path}.1")
    except OSError:
        pass
    devnull = os.open(os.devnull, os.O_RDONLY)
    log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(devnull, 0)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    os.close(devnull)
    os.close(log_fd)


def _socket_answers(path: str) -> bool:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(2)
    try:
        sock.connect(path)
        sock.sendall(p.encode_request(0, "hello"))
        return b'"result"' in sock.recv(4096)
    except OSError:
        return False
    finally:
        sock.close()


def run(options: Options, tell: Callable[[bytes], None]) -> int:
    """Takes the exec root (a lock held for life), listens, tells the starter it is
    ready, then serves until idle or shut down."""
    import fcntl

    from ._inprocess import preload
    from ._system import log, set_child_subreaper

    # Dockyard's runtime runs forked from here (see _inprocess.py): import it once now.
    preload()
    exec_root = options.exec_root
    socket_path = os.path.join(exec_root, p.SOCKET_NAME)
    lock_fd = os.open(os.path.join(exec_root, p.PID_FILE_NAME),
                      os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    deadline = time.monotonic() + LOCK_WAIT
    while True:
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if _socket_answers(socket_path):
                tell(b"running\n")
                return 0
            if time.monotonic() > deadline:
                raise RuntimeError(f"another shim holds {exec_root} and does not answer on "
                                   f"{socket_path}") from None
            time.sleep(0.05)
    os.ftruncate(lock_fd, 0)
    os.pwrite(lock_fd, f"{os.getpid()}\n".encode(), 0)
    set_child_subreaper()
    try:
        os.unlink(socket_path)  # a predecessor's, which no longer answers: we hold the lock
    except FileNotFoundError:
        pass
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(socket_path)
    os.chmod(socket_path, 0o600)
    listener.listen(128)
    listener.setblocking(False)
    log(f"started, pid {os.getpid()}")
    tell(b"ready\n")

    # asyncio imports ssl if it can: 4-5 MiB of libssl and libcrypto, and the shim never
    # speaks TLS.
    if "ssl" not in sys.modules:
        sys.modules["ssl"] = None  # type: ignore[assignment]
    import asyncio

    from ._server import Shim

    async def serve() -> None:
        await Shim(exec_root, listener, options.idle_timeout).serve()

    asyncio.run(serve())
    os.close(lock_fd)
    return 0


if __name__ == "__main__":
    sys.exit(main())
