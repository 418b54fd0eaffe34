"""The overlayfs snapshotter: committed layers by chain ID, and containers' active snapshots.

On disk, under root:

    layers/<short id>/diff/          a layer's files in overlayfs form (read-only once there)
    layers/<short id>/layer.json     chain ID, diff ID, parent, size, link
    l/<link>  -> ../layers/<short id>/diff   short names keep mount options short
    snapshots/<id>/{upper,work}/     a container's writable layer and overlay's work dir
    snapshots/<id>/snapshot.json     key, parent chain ID
    empty/                           the lower dir of a snapshot on scratch
    tmp/<pid>-<random>/              staging: made complete, then renamed into place
    lock                             flock: serialises the short metadata changes

A layer or snapshot exists once its directory has been renamed into layers/ or
snapshots/, complete with its JSON file, so a daemon killed at any instant leaves only
staging directories behind, which the next start removes.

Durability (power loss, not a killed process: the page cache survives a kill -9): a layer
added with durable=True is synced (syncfs) before its rename. A layer added with
durable=False (a pull: its compressed blob, kept and fsynced by the content store, can
make it again) is renamed into place at once and carries in layer.json the boot ID of the
kernel holding its files; settle() later syncs the file system and drops that mark. A
layer still marked from another boot may have lost data to a power cut: the next start
removes it, and the layers above it, unless a snapshot uses them (kept, with a warning);
the engine unpacks a missing layer again from its blob when it needs it.
"""

from __future__ import annotations

import base64
import dataclasses
import errno
import fcntl
import hashlib
import json
import logging
import os
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

from . import _overlay
from ._apply import AppliedLayer, apply_layer
from ._changes import Change, overlay_changes
from ._compression import IteratorReader, Readable
from ._digests import chain_id as compute_chain_id
from ._digests import check_digest
from ._errors import AlreadyExistsError, InUseError, LayerError, NotFoundError
from ._export import export_upper
from ._fstree import content_size, remove_tree
from ._records import LayerRecord, SnapshotRecord, fsync_dir, read_json, write_json_atomic

_LAYER_JSON = "layer.json"
_SNAPSHOT_JSON = "snapshot.json"
_BOOT_ID = Path("/proc/sys/kernel/random/boot_id")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LayerInfo:
    chain_id: str
    diff_id: str
    parent: str | None
    size: int


@dataclass(frozen=True)
class StagedLayer:
    """A layer unpacked into a staging directory, not visible yet (publish_layer)."""

    path: Path
    diff_id: str
    size: int


class SnapshotInfo(TypedDict):
    key: str
    parent: str | None
    upperdir: str
    workdir: str
    created: float


@dataclass(frozen=True)
class Usage:
    """Sizes for `docker system df`: content bytes per layer and per snapshot's upper dir."""

    layers: dict[str, int]
    snapshots: dict[str, int]

    @property
    def layers_size(self) -> int:
        return sum(self.layers.values())

    @property
    def snapshots_size(self) -> int:
        return sum(self.snapshots.values())


class Snapshotter:
    def __init__(self, root: Path | str) -> None:
        self.root = Path(root).absolute()
        if any(char in str(self.root) for char in ",:=\n"):
            # They would split overlay's mount options (lowerdir=a:b,upperdir=...).
            raise ValueError(f"{self.root}: a snapshotter root cannot contain , : or =")
        self._layers = self.root / "layers"
        self._links = self.root / "l"
        self._snapshots = self.root / "snapshots"
        self._empty = self.root / "empty"
        self._tmp = self.root / "tmp"
        for directory in (self.root, self._layers, self._links, self._snapshots, self._empty,
                          self._tmp):
            directory.mkdir(mode=0o700 if directory == self.root else 0o755, exist_ok=True)
        self._boot_id = boot_id()
        self._settle_lock = threading.Lock()  # one settle() at a time
        self._settler_lock = threading.Lock()  # guards the two below
        self._settler: threading.Thread | None = None
        self._settle_requested = False
        self._recover()

    # -- layers ----------------------------------------------------------------------------

    def has_layer(self, chain_id: str) -> bool:
        return self._read_layer(chain_id) is not None

    def layer(self, chain_id: str) -> LayerInfo:
        return _info(self._layer_record(chain_id))

    def layers(self) -> list[LayerInfo]:
        return [_info(record) for record in self._layer_records()]

    def add_layer(self, chain_id: str, parent_chain_id: str | None, stream: Readable,
                  durable: bool = True) -> str:
        """Unpack a layer tarball as chain_id on top of parent_chain_id; returns its diff ID.

        Idempotent: a layer already there is not unpacked again (and the stream is not
        read). The content must match the chain ID; concurrent calls for one chain ID each
        unpack into their own staging directory and the first rename wins. durable=False:
        see the module's note on durability.
        """
        check_digest(chain_id, "chain ID")
        if parent_chain_id is not None:
            check_digest(parent_chain_id, "parent chain ID")
        existing = self._read_layer(chain_id)
        if existing is not None:
            return existing.diff_id
        if parent_chain_id is not None:
            self._layer_record(parent_chain_id)
        return self.publish_layer(self.stage_layer(stream), chain_id, parent_chain_id,
                                  durable)

    def stage_layer(self, stream: Readable) -> StagedLayer:
        """Unpack a layer tarball into a staging directory of its own, invisible until
        publish_layer (or gone with discard_staged). A layer's files do not depend on its
        parent's, so the layers of an image can be staged concurrently, in any order."""
        staging = self._new_staging(create=True)
        try:
            applied = apply_layer(stream, staging / "diff")
        except BaseException:
            remove_tree(staging)
            raise
        return StagedLayer(staging, applied.diff_id, applied.size)

    def publish_layer(self, staged: StagedLayer, chain_id: str, parent_chain_id: str | None,
                      durable: bool = True) -> str:
        """Make a staged layer the layer chain_id on top of parent_chain_id (which must be
        there); returns its diff ID. The staging directory is used up either way."""
        try:
            check_digest(chain_id, "chain ID")
            if parent_chain_id is not None:
                check_digest(parent_chain_id, "parent chain ID")
            computed = compute_chain_id(parent_chain_id, staged.diff_id)
            if computed != chain_id:
                raise LayerError(f"layer content (diff ID {staged.diff_id}) on parent "
                                 f"{parent_chain_id} gives chain ID {computed}, not {chain_id}")
            applied = AppliedLayer(staged.diff_id, staged.size)
            return self._publish(staged.path, chain_id, parent_chain_id, applied,
                                 durable).diff_id
        finally:
            remove_tree(staged.path)  # already gone when published

    def discard_staged(self, staged: StagedLayer) -> None:
        remove_tree(staged.path)

    def settle(self) -> None:
        """Make the layers published with durable=False durable: one syncfs of the file
        system, then their mark is dropped (a layer published meanwhile keeps its own)."""
        with self._settle_lock:
            # By chain ID and link: the link name is new with every publish, so a layer
            # removed and unpacked again meanwhile is not taken for the one synced here.
            pending = {r.chain_id: r.link for r in self._layer_records() if r.unsynced_boot}
            if not pending:
                return
            fd = os.open(self._layers, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                _overlay.syncfs(fd)
            finally:
                os.close(fd)
            for chain_id, link in pending.items():
                with self._locked():
                    record = self._read_layer(chain_id)
                    if record is None or not record.unsynced_boot or record.link != link:
                        continue  # removed (or replaced) meanwhile
                    settled = dataclasses.replace(record, unsynced_boot=None)
                    write_json_atomic(self._layer_dir(chain_id) / _LAYER_JSON,
                                      settled.to_json())

    def settle_later(self) -> None:
        """settle() in a background thread (once more if one is running already)."""
        with self._settler_lock:
            self._settle_requested = True
            if self._settler is not None:
                return  # it loops while asked
            self._settler = threading.Thread(target=self._settle_loop, daemon=True,
                                             name="snapshot-settle")
            self._settler.start()

    def _settle_loop(self) -> None:
        while True:
            with self._settler_lock:
                if not self._settle_requested:
                    self._settler = None
                    return
                self._settle_requested = False
            try:
                self.settle()
            except OSError as e:  # the root removed (tests), a full disk: the next start
                log.warning("syncing unpacked layers: %s", e)  # treats them as unsynced

    def commit(self, key: str) -> LayerInfo:
        """Turn a snapshot's changes into a layer on top of its parent (docker commit)."""
        record = self._snapshot_record(key)
        upper = self._snapshot_dir(key) / "upper"
        staging = self._new_staging(create=True)
        try:
            applied = apply_layer(IteratorReader(export_upper(upper)), staging / "diff")
            chain_id = compute_chain_id(record.parent, applied.diff_id)
            existing = self._read_layer(chain_id)
            if existing is not None:
                return _info(existing)
            return _info(self._publish(staging, chain_id, record.parent, applied))
        finally:
            remove_tree(staging)

    def remove_layer(self, chain_id: str) -> None:
        """Remove a layer nothing builds on: no child layer, no snapshot."""
        with self._locked():
            record = self._layer_record(chain_id)
            children = [r.chain_id for r in self._layer_records() if r.parent == chain_id]
            if children:
                raise InUseError(f"layer {chain_id} is the parent of layer {children[0]}")
            users = [s.key for s in self._snapshot_records() if s.parent == chain_id]
            if users:
                raise InUseError(f"layer {chain_id} is used by snapshot {users[0]!r}")
            trash = self._new_staging(create=False)
            os.rename(self._layer_dir(chain_id), trash)  # gone for everyone from here on
            _unlink_if_present(self._links / record.link)
        remove_tree(trash)

    # -- snapshots -------------------------------------------------------------------------

    def prepare(self, key: str, parent_chain_id: str | None,
                durable: bool = True) -> SnapshotInfo:
        """Create an empty writable snapshot for a container on top of an image's layers.
        durable=False: not forced to the disk (a snapshot a power loss may take, such as a
        container's that is removed when it stops); as atomic for a killed process."""
        if not isinstance(key, str) or not key:
            raise ValueError("a snapshot key is a non-empty string")
        if parent_chain_id is not None:
            check_digest(parent_chain_id, "parent chain ID")
        with self._locked():
            final = self._snapshot_dir(key)
            if final.exists():
                raise AlreadyExistsError(f"snapshot {key!r} already exists")
            if parent_chain_id is not None:
                self._layer_record(parent_chain_id)
            staging = self._new_staging(create=True)
            try:
                (staging / "upper").mkdir()
                # The container's "/" is the upper dir's root: 0755 whatever the umask.
                os.chmod(staging / "upper", 0o755)
                (staging / "work").mkdir(mode=0o700)
                record = SnapshotRecord(key=key, parent=parent_chain_id, created=time.time())
                if durable:
                    write_json_atomic(staging / _SNAPSHOT_JSON, record.to_json())
                else:  # staging is nobody else's until the rename: a plain write will do
                    (staging / _SNAPSHOT_JSON).write_text(
                        json.dumps(record.to_json(), indent=2, sort_keys=True) + "\n")
                os.rename(staging, final)
            except BaseException:
                remove_tree(staging)
                raise
            if durable:
                fsync_dir(self._snapshots)
        return self._snapshot_info(record)

    def snapshot(self, key: str) -> SnapshotInfo:
        return self._snapshot_info(self._snapshot_record(key))

    def snapshots(self) -> list[SnapshotInfo]:
        return [self._snapshot_info(record) for record in self._snapshot_records()]

    def mounts(self, key: str) -> list[_overlay.Mount]:
        """The overlay mount for a snapshot, with absolute paths (may exceed a page for
        images with many layers: mount() handles that, a caller mounting itself must too)."""
        record = self._snapshot_record(key)
        directory = self._snapshot_dir(key)
        lowers = [self._links / r.link for r in self._chain(record.parent)] or [self._empty]
        return [_overlay.overlay_mount(lowers, directory / "upper", directory / "work")]

    def mount(self, key: str, target: Path | str, volatile: bool = False) -> None:
        """volatile: for a snapshot that a crash may lose (a container removed when it
        stops): overlay's `volatile` option, so that neither the container's fsyncs nor
        the unmount sync the whole upper file system (a sync waits for every other
        writer's dirty data on it, tens of ms on a busy disk)."""
        for spec in self.mounts(key):
            _overlay.clear_volatile_marker(spec)
            if volatile:
                _overlay.mount_volatile(spec, Path(target))
            else:
                _overlay.mount(spec, Path(target))

    def unmount(self, target: Path | str) -> None:
        _overlay.unmount(Path(target))

    def diff(self, key: str) -> Iterator[bytes]:
        """The snapshot's changes as an (uncompressed) OCI layer tar stream."""
        upper = self._snapshot_dir(key) / "upper"
        self._snapshot_record(key)  # fail now, not at the first next()
        return export_upper(upper)

    def changes(self, key: str) -> list[Change]:
        """The snapshot's changes as `docker diff` lists them."""
        record = self._snapshot_record(key)
        lowers = [self._layer_dir(r.chain_id) / "diff" for r in self._chain(record.parent)]
        return overlay_changes(lowers, self._snapshot_dir(key) / "upper")

    def remove(self, key: str, wait: bool = True) -> None:
        """Remove a snapshot and its writes; refused while it is mounted. wait=False: the
        snapshot is gone when this returns, its files are deleted by a background thread
        (what a stop of the process leaves in tmp/ goes at the next start)."""
        with self._locked():
            self._snapshot_record(key)
            directory = self._snapshot_dir(key)
            if _overlay.is_mounted_upper(directory / "upper"):
                raise InUseError(f"snapshot {key!r} is mounted")
            trash = self._new_staging(create=False)
            os.rename(directory, trash)
        if wait:
            remove_tree(trash)
        else:
            threading.Thread(target=_remove_quietly, args=(trash,), name="snapshot-trash",
                             daemon=True).start()

    def usage(self) -> Usage:
        return Usage(
            layers={r.chain_id: r.size for r in self._layer_records()},
            snapshots={s.key: content_size(self._snapshot_dir(s.key) / "upper")
                       for s in self._snapshot_records()})

    # -- internals -------------------------------------------------------------------------

    def _layer_dir(self, chain_id: str) -> Path:
        return self._layers / check_digest(chain_id, "chain ID")[len("sha256:"):][:16]

    def _snapshot_dir(self, key: str) -> Path:
        # Keys are the engine's (container IDs, names): hashed, any string is a safe name.
        digest = hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()
        return self._snapshots / digest[:24]

    def _read_layer(self, chain_id: str) -> LayerRecord | None:
        try:
            record = LayerRecord.from_json(read_json(self._layer_dir(chain_id) / _LAYER_JSON))
        except (FileNotFoundError, ValueError, KeyError, TypeError):
            return None  # a record a power cut damaged: the next start removes the layer
        # A different chain ID behind the same short id (a 64-bit prefix collision) is
        # some other layer, not this one.
        return record if record.chain_id == chain_id else None

    def _layer_record(self, chain_id: str) -> LayerRecord:
        record = self._read_layer(chain_id)
        if record is None:
            raise NotFoundError(f"no layer {chain_id}")
        return record

    def _layer_records(self) -> list[LayerRecord]:
        records = []
        for directory in sorted(self._layers.iterdir()):
            try:
                records.append(LayerRecord.from_json(read_json(directory / _LAYER_JSON)))
            except (FileNotFoundError, ValueError, KeyError, TypeError):
                continue
        return records

    def _snapshot_record(self, key: str) -> SnapshotRecord:
        try:
            record = SnapshotRecord.from_json(
                read_json(self._snapshot_dir(key) / _SNAPSHOT_JSON))
        except FileNotFoundError:
            record = None
        if record is None or record.key != key:
            raise NotFoundError(f"no snapshot {key!r}")
        return record

    def _snapshot_records(self) -> list[SnapshotRecord]:
        records = []
        for directory in sorted(self._snapshots.iterdir()):
            try:
                records.append(SnapshotRecord.from_json(read_json(directory / _SNAPSHOT_JSON)))
            except FileNotFoundError:
                continue
        return records

    def _snapshot_info(self, record: SnapshotRecord) -> SnapshotInfo:
        directory = self._snapshot_dir(record.key)
        return SnapshotInfo(key=record.key, parent=record.parent,
                            upperdir=str(directory / "upper"), workdir=str(directory / "work"),
                            created=record.created)

    def _chain(self, chain_id: str | None) -> list[LayerRecord]:
        """The layers of a chain, topmost first (overlay's lowerdir order)."""
        chain = []
        while chain_id is not None:
            record = self._layer_record(chain_id)
            self._ensure_link(record)
            chain.append(record)
            chain_id = record.parent
        return chain

    def _publish(self, staging: Path, chain_id: str, parent: str | None,
                 applied: AppliedLayer, durable: bool = True) -> LayerRecord:
        record = LayerRecord(chain_id=chain_id, diff_id=applied.diff_id, parent=parent,
                             size=applied.size, link=_new_link_name(),
                             unsynced_boot=None if durable else self._boot_id)
        write_json_atomic(staging / _LAYER_JSON, record.to_json(), durable=durable)
        if durable:
            fd = os.open(staging, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                _overlay.syncfs(fd)  # the files themselves, before the layer is visible
            finally:
                os.close(fd)
        with self._locked():
            if parent is not None:
                self._layer_record(parent)  # removed while this one was unpacked?
            try:
                os.rename(staging, self._layer_dir(chain_id))
            except OSError as e:
                if e.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                    raise
                # Another call unpacked the same layer first: theirs is as good as ours.
                return self._layer_record(chain_id)
            if durable:
                fsync_dir(self._layers)
            self._ensure_link(record)
        return record

    def _ensure_link(self, record: LayerRecord) -> None:
        """Create root/l/<link> if missing (made after the layer, so a crash can lose it)."""
        link = self._links / record.link
        if os.path.lexists(link):
            return
        temporary = self._links / f".{record.link}.{os.getpid()}.{secrets.token_hex(4)}"
        os.symlink(f"../layers/{self._layer_dir(record.chain_id).name}/diff", temporary)
        os.rename(temporary, link)

    def _new_staging(self, create: bool) -> Path:
        path = self._tmp / f"{os.getpid()}-{secrets.token_hex(8)}"
        if create:
            path.mkdir(mode=0o700)
        return path

    @contextmanager
    def _locked(self) -> Iterator[None]:
        # flock is per open file description: this serialises threads of this process as
        # well as other processes on the same root.
        fd = os.open(self.root / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _recover(self) -> None:
        """Remove what a killed process left: its staging dirs, links to removed layers."""
        with self._locked():
            for entry in self._tmp.iterdir():
                pid = entry.name.split("-", 1)[0]
                if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
                    remove_tree(entry)
            pending = self._remove_unsynced_layers()
            for link in self._links.iterdir():
                if link.is_symlink() and not link.exists():
                    _unlink_if_present(link)
        if pending:
            self.settle_later()  # published by a process killed before it settled them

    def _remove_unsynced_layers(self) -> bool:
        """Remove the layers a power cut may have damaged (see the module's note), and
        those above them; True if layers of this boot still wait for settle()."""
        records: dict[str, LayerRecord] = {}
        damaged: list[Path] = []
        for directory in self._layers.iterdir():
            try:
                record = LayerRecord.from_json(read_json(directory / _LAYER_JSON))
            except (FileNotFoundError, ValueError, KeyError, TypeError):
                damaged.append(directory)  # renamed complete: only a power cut does this
                continue
            if directory != self._layer_dir(record.chain_id):
                continue  # not where this snapshotter puts it: not ours to judge
            records[record.chain_id] = record
        suspect = {c for c, r in records.items()
                   if r.unsynced_boot not in (None, self._boot_id)}
        changed = True
        while changed:  # a layer on a suspect (or missing) parent is suspect too
            changed = False
            for c, r in records.items():
                if c not in suspect and r.parent is not None and (
                        r.parent in suspect or r.parent not in records):
                    suspect.add(c)
                    changed = True
        used: set[str] = set()
        for snapshot in self._snapshot_records():
            chain_id = snapshot.parent
            while chain_id is not None and chain_id not in used:
                used.add(chain_id)
                chain_id = records[chain_id].parent if chain_id in records else None
        for c in sorted(suspect):
            if c in used:
                log.warning("layer %s may have lost data to a power cut, but a snapshot "
                            "uses it: kept", c)
                continue
            log.warning("layer %s was not synced before the system went down: removed "
                        "(it is unpacked again from its blob when needed)", c)
            damaged.append(self._layer_dir(c))
        for directory in damaged:
            trash = self._new_staging(create=False)
            os.rename(directory, trash)
            remove_tree(trash)
        return any(r.unsynced_boot == self._boot_id for c, r in records.items()
                   if c not in suspect)


def boot_id() -> str:
    """The running kernel's boot ID: it changes with every boot, so a layer marked with
    another one was not synced before the system went down."""
    try:
        return _BOOT_ID.read_text().strip()
    except OSError:
        return "unknown"


def _remove_quietly(path: Path) -> None:
    try:
        remove_tree(path)
    except OSError:
        pass  # left in tmp/: removed at the next start


def _info(record: LayerRecord) -> LayerInfo:
    return LayerInfo(chain_id=record.chain_id, diff_id=record.diff_id, parent=record.parent,
                     size=record.size)


def _new_link_name() -> str:
    # Docker's overlay2: 26 characters of base32, so 120 layers fit a page once relative.
    return base64.b32encode(secrets.token_bytes(16)).decode()[:26]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _unlink_if_present(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
