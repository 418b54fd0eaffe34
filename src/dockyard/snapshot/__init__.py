"""snapshot: layer tarballs unpacked into overlayfs layers, and containers' writable snapshots.

What the engine may call:

- apply_layer(stream, target_dir) -> AppliedLayer: a layer tarball (plain, gzip, zstd,
  bzip2, xz) unpacked into an empty directory in overlayfs form, safely.
- chain_id(parent_chain_id, diff_id), chain_ids(diff_ids): OCI chain IDs.
- Snapshotter(root): layers by chain ID (add_layer, has_layer, layer, layers,
  remove_layer; stage_layer/publish_layer/discard_staged to unpack an image's layers
  concurrently and publish them in order; settle/settle_later for layers added with
  durable=False), snapshots by key (prepare, snapshot, snapshots, mounts, mount, unmount,
  diff, changes, commit, remove) and usage().
- The exceptions: SnapshotError and its subclasses LayerError (bad layer content),
  NotFoundError, AlreadyExistsError, InUseError.

Whiteouts and opaque directories need root (trusted.overlay.* xattrs; overlay in a user
namespace would use user.overlay.* and the userxattr mount option: not done yet).
"""

from ._apply import AppliedLayer, apply_layer
from ._changes import Change
from ._compression import Readable
from ._digests import chain_id, chain_ids
from ._errors import AlreadyExistsError, InUseError, LayerError, NotFoundError, SnapshotError
from ._overlay import Mount
from ._snapshotter import LayerInfo, SnapshotInfo, Snapshotter, StagedLayer, Usage

__all__ = [
    "AlreadyExistsError",
    "AppliedLayer",
    "Change",
    "InUseError",
    "LayerError",
    "LayerInfo",
    "Mount",
    "NotFoundError",
    "Readable",
    "SnapshotError",
    "SnapshotInfo",
    "Snapshotter",
    "StagedLayer",
    "Usage",
    "apply_layer",
    "chain_id",
    "chain_ids",
]
