"""`start`: release a created container's init through the exec FIFO."""

import posix
import select
import sys

from .container import CREATED, PAUSED, RUNNING, STOPPED, Container
from .errors import RuntimeFailure
from .state import is_alive

_POLL_SECONDS = 0.1


def start_container(container: Container) -> None:
    status = container.status()
    if status != CREATED:
        raise RuntimeFailure({
            STOPPED: "cannot start a container that has stopped",
            RUNNING: "cannot start an already running container",
            PAUSED: "cannot start a paused container",
        }.get(status, f"cannot start a container in the {status} state"))
    fifo_path = container.store.fifo_path(container.id)
    # Non-blocking open: a dead init would otherwise leave us waiting forever.
    fd = posix.open(fifo_path, posix.O_RDONLY | posix.O_NONBLOCK | posix.O_CLOEXEC)
    try:
        while True:
            ready, _, _ = select.select([fd], [], [], _POLL_SECONDS)
            if ready:
                data = posix.read(fd, 1)
                if data:
                    break
            if not is_alive(container.state):
                raise RuntimeFailure("cannot start a container that has stopped")
    finally:
        posix.close(fd)
    posix.unlink(fifo_path)
    hooks = container.hooks("poststart")
    if hooks:
        from .hooks import run_hooks

        try:
            run_hooks("poststart", hooks, container.oci_state(RUNNING))
        except RuntimeFailure as e:
            # The spec: a failing poststart hook is a warning; the container keeps going.
            sys.stderr.write(f"warning: {e}\n")
