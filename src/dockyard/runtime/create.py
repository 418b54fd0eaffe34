"""`create`: build the container and leave its init waiting on the exec FIFO for `start`.

This is the runtime's side; the container's side is init.py, loaded by the forked child
while the runtime moves it into its cgroup (see spawn.py).
"""

import os

from ..atomicfile import write_atomic
from .cgroups import open_cgroup
from .channel import HOOKS, HOOKS_DONE, READY, ChannelClosed, ChildFailed
from .config import load_bundle_config
from .container import CREATING, Container
from .errors import RuntimeFailure
from .hooks import has_runtime_hooks
from .linux import NAMESPACE_PROC_NAMES, SIGKILL
from .spawn import SpawnPlan, start_init_intermediate
from .state import (
    SECCOMP_CACHE,
    ContainerState,
    StateStore,
    now_rfc3339,
    process_start_time,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    import socket
    from collections.abc import Callable
    from typing import Any

    from .cgroups import CgroupManager
    from .channel import Channel
    from .config import Spec
    from .spawn import Intermediate


class CreateOptions:
    def __init__(self, bundle: str, console_socket: str | None = None,
                 pid_file: str | None = None, no_pivot: bool = False,
                 no_new_keyring: bool = False, preserve_fds: int = 0) -> None:
        self.bundle = bundle
        self.console_socket = console_socket
        self.pid_file = pid_file
        self.no_pivot = no_pivot
        self.no_new_keyring = no_new_keyring
        self.preserve_fds = preserve_fds
        # Foreground `run -t` without a console socket: the runtime keeps the pty master.
        self.console_fd: socket.socket | None = None
        # Done while the init moves into its cgroup (e.g. becoming a subreaper).
        self.meanwhile: Callable[[], None] | None = None
        # The child that becomes the container's init, if the caller forked it already
        # (spawn.start_init_intermediate): the earlier, the more of its imports overlap ours.
        self.intermediate: Intermediate | None = None


def create_container(store: StateStore, container_id: str, opts: CreateOptions) -> Container:
    bundle = os.path.abspath(opts.bundle)
    intermediate = opts.intermediate or start_init_intermediate()
    try:
        spec = _checked_spec(bundle, opts)
        store.reserve(container_id)
    except BaseException:
        intermediate.abandon()
        raise
    cgroup: CgroupManager | None = None
    init_pid = 0
    try:
        fifo = store.fifo_path(container_id)
        os.mkfifo(fifo, 0o622)
        os.chmod(fifo, 0o622)
        cgroup = open_cgroup(spec.linux.cgroups_path, container_id)
        payload = {
            "config": spec.raw, "root_path": spec.root_path, "bundle": bundle, "fifo": fifo,
            "id": container_id, "cgroup": cgroup.paths(), "no_pivot": opts.no_pivot,
            "no_new_keyring": opts.no_new_keyring, "preserve_fds": opts.preserve_fds,
            "console_socket": opts.console_socket,
            "console_fd": opts.console_fd.fileno() if opts.console_fd is not None else None,
            "seccomp_cache": os.path.join(store.root, SECCOMP_CACHE),
        }
        # C turns the payload into the container's init while we make the cgroup.
        intermediate.prepare(payload)
        cgroup.create()
        cgroup.apply_resources(effective_resources(spec))
        plan = SpawnPlan(
            create=[ns.type for ns in spec.linux.namespaces if not ns.path],
            join=[(ns.type, ns.path) for ns in spec.linux.namespaces if ns.path],
            uid_mappings=spec.linux.uid_mappings, gid_mappings=spec.linux.gid_mappings,
            cgroup=cgroup, meanwhile=opts.meanwhile)
        spawned = intermediate.launch(plan)
        init_pid = spawned.pid
        state = ContainerState(
            id=container_id, pid=init_pid, bundle=bundle, rootfs=spec.root_path,
            created=now_rfc3339(), owner="", init_start_time=process_start_time(init_pid) or 0,
            config=spec.raw, cgroup_paths=cgroup.paths(), annotations=spec.annotations,
            namespace_paths={ns.type: ns.path or
                             f"/proc/{init_pid}/ns/{NAMESPACE_PROC_NAMES[ns.type]}"
                             for ns in spec.linux.namespaces})
        container = Container(store, state)
        # Written while the init still sets up (they come off the critical path); undone
        # below if it fails.
        store.save(state)
        if opts.pid_file:
            write_pid_file(opts.pid_file, init_pid)
        _finish_handshake(spawned.channel, spec, container)
        return container
    except BaseException as error:
        intermediate.abandon()
        _undo_create(store, container_id, init_pid, cgroup)
        if init_pid and opts.pid_file:
            try:
                os.unlink(opts.pid_file)
            except FileNotFoundError:
                pass
        if isinstance(error, ChildFailed):
            raise RuntimeFailure(f"unable to start container process: {error}") from None
        if isinstance(error, ChannelClosed):
            raise RuntimeFailure("container init exited before it was ready") from None
        raise


def _checked_spec(bundle: str, opts: CreateOptions) -> "Spec":
    spec = load_bundle_config(bundle)
    _check_spec_for_create(spec)
    assert spec.process is not None
    if spec.process.terminal and opts.console_socket is None and opts.console_fd is None:
        raise RuntimeFailure("cannot allocate tty if runc will detach without setting "
                             "console socket")
    if not spec.process.terminal and opts.console_socket:
        raise RuntimeFailure("cannot use console socket if runc will not detach or "
                             "allocate tty")
    return spec


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


def effective_resources(spec: "Spec") -> "dict[str, Any]":
    """linux.resources plus the device rules runc always adds: the default devices and
    each entry of linux.devices."""
    resources = dict(spec.linux.resources)
    rules = list(resources.get("devices") or [])
    rules += _ALWAYS_ALLOWED_DEVICES
    rules += [{"allow": True, "type": d.type if d.type != "u" else "c", "major": d.major,
               "minor": d.minor, "access": "rwm"} for d in spec.linux.devices if d.type != "p"]
    resources["devices"] = rules
    return resources


def _check_spec_for_create(spec: "Spec") -> None:
    if spec.process is None:
        raise RuntimeFailure("process: is required to create a container")
    mount_ns = spec.linux.namespace("mount")
    if mount_ns is None:
        raise RuntimeFailure("linux.namespaces: a new mount namespace is required")
    if mount_ns.path:
        raise RuntimeFailure("linux.namespaces: joining an existing mount namespace is not "
                             "supported")


def _finish_handshake(channel: "Channel", spec: "Spec", container: Container) -> None:
    """Runs the runtime-side hooks when init asks for them, then waits for it to be ready."""
    try:
        message = channel.expect(HOOKS if has_runtime_hooks(spec) else READY)
        if message["type"] == HOOKS:
            from .hooks import run_hooks

            state = container.oci_state(CREATING)
            run_hooks("prestart", spec.hooks.get("prestart", []), state)
            run_hooks("createRuntime", spec.hooks.get("createRuntime", []), state)
            channel.send_or_collect_error(HOOKS_DONE, state=state)
            channel.expect(READY)
    finally:
        channel.close()


def _undo_create(store: StateStore, container_id: str, init_pid: int,
                 cgroup: "CgroupManager | None") -> None:
    if init_pid:
        try:
            os.kill(init_pid, SIGKILL)
        except ProcessLookupError:
            pass
    if cgroup is not None:
        try:
            cgroup.destroy()
        except Exception:  # noqa: BLE001 - the original error is the one to report
            pass
    store.remove(container_id)


def write_pid_file(path: str, pid: int) -> None:
    write_atomic(path, str(pid))
