"""Containers: create from an image, start through the shim and the OCI runtime, stop,
kill, wait, remove, and the state transitions the shim's exit events drive.

Each container has a record (container_store.py), a writable snapshot named by its ID
(snapshot layer), a bundle directory with the OCI config.json, and, while it runs, a place
in the shim. State changes are saved before they are announced, so a daemon restarted
at any moment finds the truth on disk and in the shim.
"""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import wait as futures_wait
from pathlib import Path
from typing import Any

from ..image import ResolvedImage, parse_platform
from ..image import errors as image_errors
from ..shim.client import ShimClient
from ..shim.protocol import ShimError
from ..snapshot import SnapshotError, Snapshotter, chain_ids
from . import _volume_attach as volume_attach
from . import emulation
from ._container_exits import ContainerExits, _ephemeral, _is_mounted, _state
from .container_store import ContainerStore, new_id, validate_name
from .errors import Conflict, EngineError, InvalidParameter, NotFound, NotModified
from .etc_files import write_etc_files
from .events import EventBus
from .images import ImageService
from .merge import merge_image_config
from .networks import check_container_mode
from .oci_spec import ContainerPaths, build_spec
from .options import EngineOptions
from .timefmt import ZERO_TIME, rfc3339_now

_SIGNALS = {"SIGHUP": 1, "SIGINT": 2, "SIGQUIT": 3, "SIGKILL": 9, "SIGUSR1": 10,
            "SIGUSR2": 12, "SIGTERM": 15, "SIGSTOP": 19, "SIGCONT": 18, "SIGWINCH": 28}


def parse_signal(value: str | int | None, default: int = 15) -> int:
    if value in (None, ""):
        return default
    text = str(value).upper()
    if text.isdigit():
        return int(text)
    name = text if text.startswith("SIG") else f"SIG{text}"
    if name not in _SIGNALS:
        import signal

        try:
            return int(signal.Signals[name])
        except KeyError:
            raise InvalidParameter(f"Invalid signal: {value}") from None
    return _SIGNALS[name]


class ContainerService(ContainerExits):
    def __init__(self, options: EngineOptions, images: ImageService, snapshots: Snapshotter,
                 events: EventBus) -> None:
        self.options = options
        self.images = images
        self.snapshots = snapshots
        self.events = events
        self.store = ContainerStore(options.data_root / "containers")
        self._changed = threading.Condition()
        self._shim_lock = threading.Lock()
        self._shim: ShimClient | None = None
        self._listener: threading.Thread | None = None
        self.runtime_root = options.exec_root / "runtime"
        self.execs: Any = None  # the ExecService, which registers itself
        self.volumes: Any = None  # the VolumeService (the Engine sets it)
        self.networks: Any = None  # the NetworkService (engine.py sets it)
        # Attach requests that arrived before start: each gets its shim stream between the
        # shim's create and start, so that not a byte of output is missed.
        self._pending_attach: dict[str, list[tuple[dict[str, bool], Any]]] = {}
        # One transition at a time per container (start, exit handling, removal): an exit
        # still unmounting must not race a restart mounting again.
        self._transitions: dict[str, threading.RLock] = {}
        self._transitions_lock = threading.Lock()
        # Containers whose exit released their runtime state and network (see _finish).
        self._released: set[str] = set()
        self._restarting: set[str] = set()  # --rm containers that a restart stops
        self._helpers = ThreadPoolExecutor(max_workers=4, thread_name_prefix="container")

    # -- the shim -------------------------------------------------------------------------

    def shim(self) -> ShimClient:
        """The request connection (one at a time: callers hold _shim_lock)."""
        if self._shim is None:
            import sys

            argv = [sys.executable, "-m", "dockyard.shim.main"]
            self._shim = ShimClient.connect_or_start(str(self.options.exec_root), argv)
            self._start_listener()
        return self._shim

    def _request(self, method: str, *args: Any, **kwargs: Any) -> Any:
        with self._shim_lock:
            try:
                return getattr(self.shim(), method)(*args, **kwargs)
            except ShimError as e:
                raise _shim_error(e) from None
            except (ConnectionError, OSError):
                self._shim = None  # reconnect (the shim may have idled out) and retry once
                try:
                    return getattr(self.shim(), method)(*args, **kwargs)
                except ShimError as e:
                    raise _shim_error(e) from None

    def _start_listener(self) -> None:
        if self._listener is not None and self._listener.is_alive():
            return
        self._listener = threading.Thread(target=self._listen, name="shim-events", daemon=True)
        self._listener.start()

    def _listen(self) -> None:
        while True:
            try:
                events = ShimClient.connect(str(self.options.exec_root))
            except OSError:
                return  # no shim: nothing runs; shim() starts one (and us) again
            try:
                self.reconcile()
                while True:
                    event = events.next_event(timeout=None)
                    if event is not None and event.get("event") == "exit":
                        self._on_exit(event)
            except (ConnectionError, OSError):
                time.sleep(0.1)
            finally:
                events.close()

    # -- lifecycle ------------------------------------------------------------------------

    def create(self, name: str | None, config: dict[str, Any], host_config: dict[str, Any],
               platform: str | None = None,
               networking_config: dict[str, Any] | None = None) -> dict[str, Any]:
        image_ref = config.get("Image") or ""
        if not image_ref:
            raise InvalidParameter("Config.Image: an image is required")
        try:
            wanted = parse_platform(platform) if platform else None
        except image_errors.PlatformError as e:
            raise InvalidParameter(str(e)) from None
        target, image = self.images.find(image_ref, wanted)
        merged = merge_image_config(config, image.image_config)
        mounts = volume_attach.plan(merged, host_config, self.volumes, self.store.get,
                                    self.store.dir_of)
        emulated = emulation.ensure_for_image(image.platform)
        container_id = new_id()
        record = {
            "Id": container_id,
            "Created": rfc3339_now(),
            "Path": (merged.get("Entrypoint") or merged.get("Cmd") or [""])[0],
            "Args": ((merged.get("Entrypoint") or []) + (merged.get("Cmd") or []))[1:],
            "State": _state("created"),
            "Image": str(image.id),
            "ImageTarget": target,
            "Name": validate_name(name) if name else self.store.unique_name(),
            "RestartCount": 0,
            "Driver": "overlay2",
            "Platform": image.image_config.os or "linux",
            "MountLabel": "", "ProcessLabel": "", "AppArmorProfile": "",
            "ExecIDs": None,
            "HostConfig": _host_config_defaults(host_config),
            "Config": merged,
            "Mounts": [mount.inspect() for mount in mounts],
            "NetworkSettings": _network_settings(host_config),
        }
        check_container_mode(config, host_config)
        if not merged.get("Hostname"):
            merged["Hostname"] = container_id[:12]
        if self.networks is not None:
            self.networks.prepare(record, networking_config)
        self._ensure_layers(image)
        layers = chain_ids([str(d) for d in image.diff_ids])
        # Forced to the disk once, by the save at the end; this first write is as atomic
        # (what a killed daemon leaves is the same), and a fsync less on the run path.
        self.store.add(record, durable=False)
        directory = self.store.dir_of(container_id)
        volume_attach.create_volumes(mounts, self.volumes)
        volume_attach.save(directory, mounts)
        record["Mounts"] = [mount.inspect() for mount in mounts]
        emulation.remember(directory, emulated)
        record.update(LogPath=str(directory / f"{container_id}-json.log"),
                      ResolvConfPath=str(directory / "resolv.conf"),
                      HostnamePath=str(directory / "hostname"),
                      HostsPath=str(directory / "hosts"))
        try:
            self.snapshots.prepare(container_id, layers[-1] if layers else None,
                                   durable=not _ephemeral(record))
        except SnapshotError as e:
            self.store.remove(container_id)
            volume_attach.remove_anonymous(record, self.volumes)
            raise EngineError(f"creating the container's filesystem: {e}") from None
        self.store.save(record, durable=not _ephemeral(record))
        self.events.emit("container", "create", container_id, self._attributes(record))
        return record

    def _join_etc_files(self, record: dict[str, Any], joined: str) -> Path:
        """--network container:X: X's hostname, domain name and /etc files (its
        directory), as dockerd's initializeNetworkingPaths."""
        other = self.store.get(joined)
        directory = self.store.dir_of(other["Id"])
        record["Config"]["Hostname"] = other["Config"].get("Hostname") or ""
        record["Config"]["Domainname"] = other["Config"].get("Domainname") or ""
        record.update(ResolvConfPath=str(directory / "resolv.conf"),
                      HostnamePath=str(directory / "hostname"),
                      HostsPath=str(directory / "hosts"))
        return directory

    def _ensure_layers(self, image: ResolvedImage) -> None:
        parent = None
        for layer, chain in zip(image.layers, chain_ids([str(d) for d in image.diff_ids]),
                                strict=True):
            if not self.snapshots.has_layer(chain):
                with self.images.content.open(layer.digest) as stream:
                    diff_id = self.snapshots.add_layer(chain, parent, stream)
                del diff_id
            parent = chain

    def get(self, ref: str) -> dict[str, Any]:
        return self.store.get(ref)

    def start(self, ref: str) -> None:
        record = self.store.get(ref)
        with self._transition(record["Id"]):
            self._start(record)

    def _start(self, record: dict[str, Any]) -> None:
        state = record["State"]
        if state["Running"]:
            if state["Paused"]:
                raise Conflict("cannot start a paused container, try unpause instead")
            raise NotModified("container already started")
        container_id = record["Id"]
        self._released.discard(container_id)
        directory = self.store.dir_of(container_id)
        rootfs = directory / "rootfs"
        rootfs.mkdir(exist_ok=True)
        config, host_config = record["Config"], record["HostConfig"]
        try:
            emulation.ensure_for_container(directory)
            if not _is_mounted(rootfs):
                # A container removed when it stops keeps nothing a crash could lose.
                self.snapshots.mount(container_id, rootfs, volatile=_ephemeral(record))
            sandbox = self.networks.attach(record) if self.networks is not None else None
            etc = directory
            if sandbox is not None and sandbox.joined:
                etc = self._join_etc_files(record, sandbox.joined)
            else:
                write_etc_files(directory, config.get("Hostname") or container_id[:12],
                                config.get("Domainname") or "",
                                {**host_config, "ExtraHosts": sandbox.extra_hosts}
                                if sandbox else host_config,
                                sandbox.addresses if sandbox else [],
                                embedded_dns=bool(sandbox and sandbox.embedded_dns))
            paths = ContainerPaths(rootfs, etc / "hostname", etc / "hosts",
                                   etc / "resolv.conf", _init_binary(),
                                   netns=sandbox.netns if sandbox else None)
            paths.user_mounts = volume_attach.start(directory, record, rootfs, self.volumes)
            spec = build_spec(container_id, config, host_config, paths,
                              f"{self.options.cgroup_parent}/{container_id}")
            bundle = directory / "bundle"
            bundle.mkdir(exist_ok=True)
            (bundle / "config.json").write_text(json.dumps(spec))
            runtime = self.options.runtime_path(host_config.get("Runtime"))
            created = self._request("create", container_id, str(bundle), runtime,
                          str(self.runtime_root), log_path=record["LogPath"],
                          log_max_size=self.options.log_max_size,
                          log_max_files=self.options.log_max_files,
                          terminal=bool(config.get("Tty")),
                          stdin_open=bool(config.get("OpenStdin")), delete_on_exit=True)
            self._attach_pending(container_id)
            before = dict(state)
            state.update(_state("running"), Pid=int(created.get("pid") or 0),
                         StartedAt=rfc3339_now(), FinishedAt=ZERO_TIME)
            # Saved as running (fsync and all) while the shim starts the process.
            saving = self._helpers.submit(self.store.save, record, not _ephemeral(record))
            try:
                self._request("start", container_id)
            except EngineError:
                futures_wait([saving])  # one writer of the record at a time
                state.clear()
                state.update(before)
                raise
            saving.result()
        except EngineError as error:
            self._start_failed(record, rootfs, str(error))
            if record["HostConfig"].get("AutoRemove"):
                # As dockerd: a --rm container that could not start is removed at once
                # (a client waiting for "removed" is waiting for exactly that).
                self.remove(container_id, force=True, volumes=True)
            raise
        self.events.emit("container", "start", container_id, self._attributes(record))
        self._notify()

    def attach_when_started(self, ref: str, streams: dict[str, bool],
                            deliver: Any) -> None:
        """deliver(socket) is called with the shim's attach stream once the container's
        process exists (now, if it runs); deliver(None) if it is removed first."""
        record = self.store.get(ref)
        if record["State"]["Running"]:
            deliver(self.attach(record["Id"], streams))
            return
        with self._shim_lock:
            self._pending_attach.setdefault(record["Id"], []).append((streams, deliver))

    def attach(self, container_id: str, streams: dict[str, bool],
               exec_id: str | None = None) -> Any:
        with self._shim_lock:
            try:
                return self.shim().attach(container_id, exec_id, **streams)
            except ShimError as e:
                raise _shim_error(e) from None

    def _attach_pending(self, container_id: str) -> None:
        with self._shim_lock:
            pending = self._pending_attach.pop(container_id, [])
            for streams, deliver in pending:
                try:
                    deliver(self.shim().attach(container_id, None, **streams))
                except (ShimError, OSError):
                    deliver(None)

    def transition(self, container_id: str) -> threading.RLock:
        """The lock of a container's transitions (start, exit, removal, and what mounts
        its filesystem from outside, such as copies and commits)."""
        return self._transition(container_id)

    def _transition(self, container_id: str) -> threading.RLock:
        with self._transitions_lock:
            return self._transitions.setdefault(container_id, threading.RLock())

    def _start_failed(self, record: dict[str, Any], rootfs: Path, message: str) -> None:
        with self._shim_lock:
            for _, deliver in self._pending_attach.pop(record["Id"], []):
                deliver(None)
        record["State"].update(Error=message, ExitCode=exit_code_for_start_error(message))
        if self.networks is not None:
            self.networks.detach(record)
        self.store.save(record)
        try:
            self._request("delete", record["Id"], force=True)
        except EngineError:
            pass
        if _is_mounted(rootfs):
            self.snapshots.unmount(rootfs)
        self._release_volumes(record)

    def _release_volumes(self, record: dict[str, Any]) -> None:
        running = {r["Id"] for r in self.store.all() if r["State"]["Running"]}
        volume_attach.release(record["Id"], self.store.dir_of(record["Id"]), record,
                              self.volumes, running)

    def kill(self, ref: str, signal: str | int | None = None) -> None:
        record = self.store.get(ref)
        if not record["State"]["Running"]:
            raise Conflict(f"Cannot kill container: {ref}: Container {record['Id']} is not "
                           "running")
        number = parse_signal(signal, 9)
        self._request("kill", record["Id"], signal=number)
        if number == 9 and record["State"]["Paused"]:
            self.unpause(ref)
        self.events.emit("container", "kill", record["Id"],
                         {**self._attributes(record), "signal": str(number)})

    def stop(self, ref: str, timeout: int | None = None, signal: str | None = None) -> None:
        record = self.store.get(ref)
        if not record["State"]["Running"]:
            raise NotModified("container already stopped")
        config = record["Config"]
        number = parse_signal(signal or config.get("StopSignal"), 15)
        if timeout is None:
            timeout = config.get("StopTimeout")
        if timeout is None:
            timeout = 10
        self._request("kill", record["Id"], signal=number)
        if timeout < 0 or not self.wait_for_exit(record["Id"], timeout):
            if record["State"]["Running"]:
                try:
                    self._request("kill", record["Id"], signal=9, all=True)
                except EngineError:
                    pass
                self.wait_for_exit(record["Id"], 10)
        self.events.emit("container", "stop", record["Id"], self._attributes(record))

    def restart(self, ref: str, timeout: int | None = None) -> None:
        record = self.store.get(ref)
        # As dockerd: a --rm container restarts; it is not removed by the stop.
        self._restarting.add(record["Id"])
        try:
            if record["State"]["Running"]:
                self.stop(ref, timeout)
            self.start(ref)
        finally:
            self._restarting.discard(record["Id"])
        self.events.emit("container", "restart", record["Id"], self._attributes(record))

    def pause(self, ref: str) -> None:
        record = self.store.get(ref)
        if not record["State"]["Running"]:
            raise Conflict(f"Container {record['Id']} is not running")
        if record["State"]["Paused"]:
            raise Conflict(f"Container {record['Id']} is already paused")
        self._runtime(record, "pause")
        record["State"].update(Paused=True, Status="paused")
        self.store.save(record)
        self.events.emit("container", "pause", record["Id"], self._attributes(record))

    def unpause(self, ref: str) -> None:
        record = self.store.get(ref)
        if not record["State"]["Paused"]:
            raise Conflict(f"Container {record['Id']} is not paused")
        self._runtime(record, "resume")
        record["State"].update(Paused=False, Status="running")
        self.store.save(record)
        self.events.emit("container", "unpause", record["Id"], self._attributes(record))

    def _runtime(self, record: dict[str, Any], command: str) -> None:
        import subprocess

        runtime = self.options.runtime_path(record["HostConfig"].get("Runtime"))
        result = subprocess.run([runtime, "--root", str(self.runtime_root), command,
                                 record["Id"]], capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise EngineError(result.stderr.strip() or f"{command} failed")

    def remove(self, ref: str, force: bool = False, volumes: bool = False) -> None:
        record = self.store.get(ref)
        if record["State"]["Running"]:
            if not force:
                raise Conflict(f"You cannot remove a running container {record['Id']}. Stop "
                               "the container before attempting removal or force remove")
            self.kill(record["Id"], 9)
            self.wait_for_exit(record["Id"], 10)
        if record["State"].get("RemovalInProgress"):
            raise Conflict(f"removal of container {record['Id']} is already in progress")
        record["State"]["RemovalInProgress"] = True
        container_id = record["Id"]
        with self._transition(container_id):
            self._remove_locked(record)
        with self._transitions_lock:
            self._transitions.pop(container_id, None)
        self.events.emit("container", "destroy", container_id, self._attributes(record))
        self._notify()
        if volumes:
            volume_attach.remove_anonymous(record, self.volumes)

    def _remove_locked(self, record: dict[str, Any]) -> None:
        container_id = record["Id"]
        if container_id not in self._released:  # else the exit did all this already
            try:
                self._request("delete", container_id, force=True)
            except NotFound:
                pass
            except EngineError:
                pass
            if self.networks is not None:
                self.networks.detach(record)
        self._released.discard(container_id)
        rootfs = self.store.dir_of(container_id) / "rootfs"
        if _is_mounted(rootfs):
            self.snapshots.unmount(rootfs)
        try:
            self.snapshots.remove(container_id, wait=False)
        except SnapshotError:
            pass
        self.store.remove(container_id, wait=False)

    def _attributes(self, record: dict[str, Any]) -> dict[str, str]:
        labels = record["Config"].get("Labels") or {}
        return {**labels, "image": record["Config"].get("Image", ""),
                "name": record["Name"].lstrip("/")}


def exit_code_for_start_error(message: str) -> int:
    lowered = message.lower()
    if "executable file not found" in lowered or "no such file or directory" in lowered:
        return 127
    if "permission denied" in lowered:
        return 126
    return 128


def _shim_error(error: ShimError) -> EngineError:
    kind = getattr(error, "kind", "")
    message = str(error)
    if kind == "not_found":
        return NotFound(message)
    if kind == "conflict":
        return Conflict(message)
    if kind == "invalid":
        return InvalidParameter(message)
    return EngineError(f"failed to create task for container: {message}")


def _host_config_defaults(host_config: dict[str, Any]) -> dict[str, Any]:
    result = dict(host_config)
    result.setdefault("NetworkMode", "default")
    result.setdefault("RestartPolicy", {"Name": "no", "MaximumRetryCount": 0})
    result.setdefault("LogConfig", {"Type": "json-file", "Config": {}})
    return result


def _network_settings(host_config: dict[str, Any]) -> dict[str, Any]:
    mode = host_config.get("NetworkMode") or "default"
    return {"Bridge": "", "SandboxID": "", "HairpinMode": False, "Ports": {},
            "SandboxKey": "", "Networks": {} if mode in ("none", "default", "host") else {}}


def _init_binary() -> Path | None:
    import shutil

    for name in ("docker-init", "tini-static", "tini"):
        found = shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists()
                                       else None)
        if found:
            return Path(found)
    return None
