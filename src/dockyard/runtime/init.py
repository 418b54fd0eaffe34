"""The container's init: what it does inside its new namespaces, up to waiting on the exec
FIFO for `start` and exec'ing the user's program.

Imported by the forked intermediate process (spawn.py), never by the runtime's own start-up
path: everything imported here must be loaded before pivot_root, when our modules go out
of sight.
"""

import fcntl
import os
from sys import byteorder

from . import rootfs
from .channel import HOOKS, HOOKS_DONE, READY
from .errors import RuntimeFailure
from .hooks import has_runtime_hooks, run_hooks
from .hooks import preload as preload_hooks
from .process import (
    apply_rlimits,
    become_process_user,
    close_fds_on_exec,
    exec_process,
    find_executable,
    reset_signal_dispositions,
    with_home,
)
from .syscalls import LinuxSyscall

TYPE_CHECKING = False
if TYPE_CHECKING:
    import socket
    from collections.abc import Callable
    from typing import Any

    from .channel import Channel
    from .config import Spec
    from .syscalls import Syscall

_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_IFF_UP = 0x1
_AF_INET = 2
_SOCK_DGRAM = 2


def make_init(payload: "dict[str, Any]") -> "Callable[[Channel], None]":
    """Rebuilds, in the intermediate process, what the runtime decided (create.py)."""
    from .config import parse_spec

    spec = parse_spec(payload["config"])
    spec.root_path = payload["root_path"]
    console = None
    if payload["console_fd"] is not None:
        import socket

        console = socket.socket(fileno=payload["console_fd"])
    elif payload["console_socket"]:
        console = connect_console(payload["console_socket"])
    return ContainerInit(spec, payload["bundle"], payload["cgroup"],
                         payload["fifo"], console, payload["id"], payload["no_pivot"],
                         payload["no_new_keyring"], payload["preserve_fds"],
                         payload["seccomp_cache"]).run


def connect_console(path: str) -> "socket.socket":
    import socket

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError as e:
        sock.close()
        raise RuntimeFailure(f"connecting to console socket {path}: {e.strerror}") from None
    return sock


class ContainerInit:
    def __init__(self, spec: "Spec", bundle: str, cgroup_paths: dict[str, str], fifo: str,
                 console: "socket.socket | None", container_id: str, no_pivot: bool,
                 no_new_keyring: bool, preserve_fds: int, seccomp_cache: str) -> None:
        self.spec = spec
        self.bundle = bundle
        self.cgroup_paths = cgroup_paths
        self.console = console
        self.container_id = container_id
        self.no_pivot = no_pivot
        self.no_new_keyring = no_new_keyring
        self.preserve_fds = preserve_fds
        # Opened now, while the host's /proc and the state dir are in view; after
        # pivot_root the FIFO is reached through this /proc's self/fd.
        self.fifo_fd = os.open(fifo, os.O_PATH | os.O_CLOEXEC)
        self.proc_fd = os.open("/proc", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        if console is not None:
            from . import console as _console  # noqa: F401 - loaded before pivot_root
        self.seccomp = None
        if spec.linux.seccomp is not None:
            # Imported (and the filter compiled or read from the cache) now: after
            # pivot_root our modules and the cache are out of sight.
            from . import seccomp_bpf

            self.seccomp = seccomp_bpf.prepare(spec.raw["linux"]["seccomp"],
                                               spec.linux.seccomp, seccomp_cache)
        if spec.hooks.get("startContainer"):
            preload_hooks()

    def run(self, channel: "Channel") -> None:
        spec, process, sys = self.spec, self.spec.process, LinuxSyscall()
        assert process is not None
        os.setsid()
        in_userns = spec.linux.namespace("user") is not None
        rootfs.prepare_rootfs(spec, self.bundle, sys, in_userns, self.cgroup_paths)
        state = None
        if has_runtime_hooks(spec):
            channel.send(HOOKS)
            state = channel.expect(HOOKS_DONE)["state"]
            run_hooks("createContainer", spec.hooks.get("createContainer", []), state)
        rootfs.pivot(spec.root_path, sys, self.no_pivot)
        # sysctls go in through /proc/sys before finish_rootfs makes it read-only.
        self._set_identity_and_kernel_settings(sys)
        rootfs.finish_rootfs(spec, sys)
        if self.console is not None:
            from .console import become_terminal_owner, open_pty, send_master, set_window_size

            master, slave = open_pty()
            if process.console_size is not None:
                set_window_size(master, process.console_size.height,
                                process.console_size.width)
            send_master(self.console, master, slave)
            os.close(master)
            self.console.close()
            become_terminal_owner(slave)
        process.env = with_home(process.env, process.user.uid)
        executable = find_executable(process.args[0], process.env)
        become_process_user(process, self.seccomp, sys)
        close_fds_on_exec(2 + self.preserve_fds)
        channel.send(READY)
        channel.close()
        self._wait_for_start()
        if spec.hooks.get("startContainer"):
            run_hooks("startContainer", spec.hooks["startContainer"], state or {})
        reset_signal_dispositions()
        try:
            exec_process(executable, process.args, process.env)
        except OSError as e:
            os.write(2, f"exec {process.args[0]}: {e.strerror}\n".encode())
            os._exit(127 if e.errno == 2 else 126)

    def _set_identity_and_kernel_settings(self, sys: "Syscall") -> None:
        spec, process = self.spec, self.spec.process
        assert process is not None
        if spec.hostname:
            sys.sethostname(spec.hostname)
        if spec.domainname:
            sys.setdomainname(spec.domainname)
        network = spec.linux.namespace("network")
        if network is not None and not network.path:
            _bring_up_loopback(sys)
        for key, value in spec.linux.sysctl.items():
            try:
                with open(f"/proc/sys/{key.replace('.', '/')}", "w") as f:
                    f.write(value)
            except OSError as e:
                raise RuntimeFailure(f"linux.sysctl.{key}: {e.strerror}") from None
        apply_rlimits(process.rlimits, sys)
        if process.oom_score_adj is not None:
            with open("/proc/self/oom_score_adj", "w") as f:
                f.write(str(process.oom_score_adj))
        if not self.no_new_keyring:
            sys.join_session_keyring(self.container_id)

    def _wait_for_start(self) -> None:
        fd = os.open(f"self/fd/{self.fifo_fd}", os.O_WRONLY | os.O_CLOEXEC,
                     dir_fd=self.proc_fd)
        os.write(fd, b"0")
        os.close(fd)
        os.close(self.fifo_fd)
        os.close(self.proc_fd)


def _bring_up_loopback(sys: "Syscall") -> None:
    # A socket from libc, not from _socket: creating that module costs ~0.15 ms here.
    fd = sys.socket(_AF_INET, _SOCK_DGRAM)
    try:
        # struct ifreq: the name in 16 bytes, then the flags (a native short) in a 24-byte
        # union. Built by hand: `struct` would be one module more for the init to load.
        name = b"lo".ljust(16, b"\0")
        reply = fcntl.ioctl(fd, _SIOCGIFFLAGS, name + bytes(24))
        flags = int.from_bytes(reply[16:18], byteorder) | _IFF_UP
        fcntl.ioctl(fd, _SIOCSIFFLAGS, name + flags.to_bytes(2, byteorder) + bytes(22))
    finally:
        os.close(fd)
