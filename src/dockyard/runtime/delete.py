"""`kill` and `delete`."""

import posix
import sys
import time

from .container import CREATED, PAUSED, STOPPED, Container
from .errors import RuntimeFailure
from .linux import SIGKILL
from .state import is_alive


def _signal_table() -> dict[str, int]:
    # _signal, not signal: the latter's enums cost milliseconds on every `kill`.
    import _signal

    return {name: getattr(_signal, name) for name in dir(_signal)
            if name.startswith("SIG") and not name.startswith("SIG_")}


def parse_signal(text: str) -> int:
    if text.isdigit():
        number = int(text)
        if number <= 0 or number >= 65:
            raise RuntimeFailure(f"invalid signal: {text}")
        return number
    name = text.upper()
    if not name.startswith("SIG"):
        name = f"SIG{name}"
    signals = _signal_table()
    if name in signals:
        return signals[name]
    if name.startswith(("SIGRTMIN+", "SIGRTMAX-")) and name[9:].isdigit():
        base, offset = name[:8], int(name[9:])
        return signals[base] + offset if base == "SIGRTMIN" else signals[base] - offset
    raise RuntimeFailure(f"unknown signal {text!r}")


def kill_container(container: Container, signum: int, all_processes: bool = False) -> None:
    status = container.status()
    if status == STOPPED and not all_processes:
        raise RuntimeFailure("container not running")
    if all_processes:
        cgroup = container.cgroup()
        for pid in cgroup.pids():
            try:
                posix.kill(pid, signum)
            except ProcessLookupError:
                pass
        if status == PAUSED and signum == SIGKILL:
            cgroup.thaw()
        return
    posix.kill(container.state.pid, signum)


def delete_container(container: Container, force: bool = False) -> None:
    status = container.status()
    if status not in (STOPPED, CREATED) and not force:
        raise RuntimeFailure(f"cannot delete container {container.id} that is not stopped: "
                             f"{status}")
    if status != STOPPED:
        try:
            posix.kill(container.state.pid, SIGKILL)
        except ProcessLookupError:
            pass
        if status == PAUSED:
            container.cgroup().thaw()
        _wait_until_gone(container)
    container.destroy_cgroup()
    hooks = container.hooks("poststop")
    if hooks:
        from .hooks import run_hooks

        try:
            run_hooks("poststop", hooks, container.oci_state(STOPPED))
        except RuntimeFailure as e:
            # The spec: a failing poststop hook is a warning; deletion goes on.
            sys.stderr.write(f"warning: {e}\n")
    container.store.remove(container.id)


def _wait_until_gone(container: Container, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while is_alive(container.state):
        if time.monotonic() > deadline:
            raise RuntimeFailure(f"container {container.id} did not exit after SIGKILL")
        time.sleep(0.005)
