"""`create`: build the container and leave its init waiting on the exec FIFO for `start`."""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import socket
import struct
from dataclasses import dataclass
from typing import Any

from . import rootfs
from .cgroups import CgroupManager, open_cgroup
from .channel import Channel, ChannelClosed, ChildFailed
from .config import Spec, load_bundle_config
from .console import become_terminal_owner, open_pty, send_master, set_window_size
from .container import CREATING, Container
from .errors import RuntimeFailure
from .hooks import run_hooks
from .process import (
    apply_rlimits,
    become_process_user,
    close_fds_on_exec,
    exec_process,
    find_executable,
    preload_seccomp,
)
from .spawn import SpawnPlan, spawn
from .state import ContainerState, StateStore, now_rfc3339, process_start_time
from .syscalls import NAMESPACE_PROC_NAMES, LinuxSyscall, Syscall


@dataclass
class CreateOptions:
    bundle: str
    console_socket: str | None = None
    pid_file: str | None = None
    no_pivot: bool = False
    no_new_keyring: bool = False
    preserve_fds: int = 0
    # Foreground `run -t` without a console socket: the runtime keeps the pty master.
    console_fd: socket.socket | None = None


def create_container(store: StateStore, container_id: str, opts: CreateOptions) -> Container:
    bundle = os.path.abspath(opts.bundle)
    spec = load_bundle_config(bundle)
    _check_spec_for_create(spec)
    if spec.process.terminal and opts.console_socket is None and opts.console_fd is None:
        raise RuntimeFailure("cannot allocate tty if runc will detach without setting "
                             "console socket")
    if not spec.process.terminal and opts.console_socket:
        raise RuntimeFailure("cannot use console socket if runc will not detach or "
                             "allocate tty")
    store.reserve(container_id)
    cgroup: CgroupManager | None = None
    init_pid = 0
    try:
        fifo = store.fifo_path(container_id)
        os.mkfifo(fifo, 0o622)
        os.chmod(fifo, 0o622)
        cgroup = open_cgroup(spec.linux.cgroups_path, container_id)
        cgroup.create()
        cgroup.apply_resources(effective_resources(spec))
        console = opts.console_fd or (_connect(opts.console_socket)
                                      if opts.console_socket else None)
        preload_seccomp(spec.linux.seccomp)
        init = _InitContext(spec, bundle, opts, cgroup, fifo, console, container_id)
        plan = SpawnPlan(
            create=[ns.type for ns in spec.linux.namespaces if not ns.path],
            join=[(ns.type, ns.path) for ns in spec.linux.namespaces if ns.path],
            uid_mappings=spec.linux.uid_mappings, gid_mappings=spec.linux.gid_mappings,
            cgroup=cgroup)
        spawned = spawn(plan, init.run)
        init_pid = spawned.pid
        if console is not None and console is not opts.console_fd:
            console.close()
        state = ContainerState(
            id=container_id, pid=init_pid, bundle=bundle, rootfs=spec.root_path,
            created=now_rfc3339(), owner="", init_start_time=process_start_time(init_pid) or 0,
            config=spec.raw, cgroup_paths=cgroup.paths(), annotations=spec.annotations,
            namespace_paths={ns.type: ns.path or
                             f"/proc/{init_pid}/ns/{NAMESPACE_PROC_NAMES[ns.type]}"
                             for ns in spec.linux.namespaces})
        container = Container(store, state)
        _finish_handshake(spawned.channel, spec, container)
        store.save(state)
        if opts.pid_file:
            write_pid_file(opts.pid_file, init_pid)
        return container
    except BaseException as error:
        _undo_create(store, container_id, init_pid, cgroup)
        if isinstance(error, ChildFailed):
            raise RuntimeFailure(f"unable to start container process: {error}") from None
        if isinstance(error, ChannelClosed):
            raise RuntimeFailure("container init exited before it was ready") from None
        raise


# What runc allows whatever the config's device rules say: mknod of anything (it is the
# access that matters), the standard character devices, ptys and the tun device.
_ALWAYS_ALLOWED_DEVICES = [
    {"allow": True, "type": "c", "access": "m"},
    {"allow": True, "type": "b", "access": "m"},
    *({"allow": True, "type": "c", "major": major, "minor": minor, "access": "rwm"}
      for major, minor in ((1, 3), (1, 8), (1, 7), (5, 0), (1, 5), (1, 9), (5, 1), (5, 2),
                           (10, 200))),
    {"allow": True, "type": "c", "major": 136, "access": "rwm"},
]


def effective_resources(spec: Spec) -> dict[str, Any]:
    """linux.resources plus the device rules runc always adds: the default devices and
    each entry of linux.devices."""
    resources = dict(spec.linux.resources)
    rules = list(resources.get("devices") or [])
    rules += _ALWAYS_ALLOWED_DEVICES
    rules += [{"allow": True, "type": d.type if d.type != "u" else "c", "major": d.major,
               "minor": d.minor, "access": "rwm"} for d in spec.linux.devices if d.type != "p"]
    resources["devices"] = rules
    return resources


def _check_spec_for_create(spec: Spec) -> None:
    if spec.process is None:
        raise RuntimeFailure("process: is required to create a container")
    mount_ns = spec.linux.namespace("mount")
    if mount_ns is None:
        raise RuntimeFailure("linux.namespaces: a new mount namespace is required")
    if mount_ns.path:
        raise RuntimeFailure("linux.namespaces: joining an existing mount namespace is not "
                             "supported")


def _finish_handshake(channel: Channel, spec: Spec, container: Container) -> None:
    """Runs the runtime-side hooks when init asks for them, then waits for it to be ready."""
    try:
        message = channel.expect("hooks" if _has_runtime_hooks(spec) else "ready")
        if message["type"] == "hooks":
            state = container.oci_state(CREATING)
            run_hooks("prestart", spec.hooks.get("prestart", []), state)
            run_hooks("createRuntime", spec.hooks.get("createRuntime", []), state)
            channel.send("hooks-done", state=state)
            channel.expect("ready")
    finally:
        channel.close()


def _has_runtime_hooks(spec: Spec) -> bool:
    return any(spec.hooks.get(name) for name in ("prestart", "createRuntime",
                                                 "createContainer"))


def _undo_create(store: StateStore, container_id: str, init_pid: int,
                 cgroup: CgroupManager | None) -> None:
    if init_pid:
        with contextlib.suppress(ProcessLookupError):
            os.kill(init_pid, signal.SIGKILL)
    if cgroup is not None:
        with contextlib.suppress(Exception):
            cgroup.destroy()
    store.remove(container_id)


def _connect(path: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError as e:
        sock.close()
        raise RuntimeFailure(f"connecting to console socket {path}: {e.strerror}") from None
    return sock


def write_pid_file(path: str, pid: int) -> None:
    tmp = os.path.join(os.path.dirname(os.path.abspath(path)), f".{os.path.basename(path)}")
    with open(tmp, "w") as f:
        f.write(str(pid))
    os.rename(tmp, path)


class _InitContext:
    """What the container's init does in its own namespaces, up to waiting for `start`."""

    def __init__(self, spec: Spec, bundle: str, opts: CreateOptions, cgroup: CgroupManager,
                 fifo: str, console: socket.socket | None, container_id: str) -> None:
        self.spec = spec
        self.bundle = bundle
        self.opts = opts
        self.cgroup = cgroup
        self.console = console
        self.container_id = container_id
        # Opened now, while the host's /proc and the state dir are in view; after
        # pivot_root the FIFO is reached through this /proc's self/fd.
        self.fifo_fd = os.open(fifo, os.O_PATH | os.O_CLOEXEC)
        self.proc_fd = os.open("/proc", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)

    def run(self, channel: Channel) -> None:
        spec, process, sys = self.spec, self.spec.process, LinuxSyscall()
        assert process is not None
        os.setsid()
        in_userns = spec.linux.namespace("user") is not None
        rootfs.prepare_rootfs(spec, self.bundle, sys, in_userns, self.cgroup)
        state = None
        if _has_runtime_hooks(spec):
            channel.send("hooks")
            state = channel.expect("hooks-done")["state"]
            run_hooks("createContainer", spec.hooks.get("createContainer", []), state)
        rootfs.pivot(spec.root_path, sys, self.opts.no_pivot)
        # sysctls go in through /proc/sys before finish_rootfs makes it read-only.
        self._set_identity_and_kernel_settings(sys)
        rootfs.finish_rootfs(spec, sys)
        if self.console is not None:
            master, slave = open_pty()
            if process.console_size is not None:
                set_window_size(master, process.console_size.height,
                                process.console_size.width)
            send_master(self.console, master, slave)
            os.close(master)
            self.console.close()
            become_terminal_owner(slave)
        executable = find_executable(process.args[0], process.env)
        become_process_user(process, spec.linux.seccomp, sys)
        close_fds_on_exec(2 + self.opts.preserve_fds)
        channel.send("ready")
        channel.close()
        self._wait_for_start()
        if spec.hooks.get("startContainer"):
            run_hooks("startContainer", spec.hooks["startContainer"], state or {})
        try:
            exec_process(executable, process.args, process.env)
        except OSError as e:
            os.write(2, f"exec {process.args[0]}: {e.strerror}\n".encode())
            os._exit(127 if e.errno == 2 else 126)

    def _set_identity_and_kernel_settings(self, sys: Syscall) -> None:
        spec, process = self.spec, self.spec.process
        assert process is not None
        if spec.hostname:
            sys.sethostname(spec.hostname)
        if spec.domainname:
            sys.setdomainname(spec.domainname)
        if spec.linux.namespace("network") is not None and not spec.linux.namespace(
                "network").path:
            _bring_up_loopback()
        for key, value in spec.linux.sysctl.items():
            try:
                with open(f"/proc/sys/{key.replace('.', '/')}", "w") as f:
                    f.write(value)
            except OSError as e:
                raise RuntimeFailure(f"linux.sysctl.{key}: {e.strerror}") from None
        apply_rlimits(process.rlimits)
        if process.oom_score_adj is not None:
            with open("/proc/self/oom_score_adj", "w") as f:
                f.write(str(process.oom_score_adj))
        if not self.opts.no_new_keyring:
            sys.join_session_keyring(self.container_id)

    def _wait_for_start(self) -> None:
        fd = os.open(f"self/fd/{self.fifo_fd}", os.O_WRONLY | os.O_CLOEXEC,
                     dir_fd=self.proc_fd)
        os.write(fd, b"0")
        os.close(fd)
        os.close(self.fifo_fd)
        os.close(self.proc_fd)


_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_IFF_UP = 0x1


def _bring_up_loopback() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH14s", b"lo", 0, b"")
        flags = struct.unpack("16sH14s", fcntl.ioctl(sock, _SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(sock, _SIOCSIFFLAGS, struct.pack("16sH14s", b"lo", flags | _IFF_UP, b""))
