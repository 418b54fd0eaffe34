"""The snapshot layer's exceptions (re-exported by the package)."""

from __future__ import annotations


class SnapshotError(Exception):
    """Base class: anything the snapshot layer refuses or fails to do."""


class LayerError(SnapshotError):
    """A layer tarball is corrupt, truncated or unsafe; nothing of it is kept."""


class NotFoundError(SnapshotError):
    """No layer with that chain ID, or no snapshot with that key."""


class AlreadyExistsError(SnapshotError):
    """A snapshot with that key exists already."""


class InUseError(SnapshotError):
    """A layer still has children or snapshots on it, or a snapshot is still mounted."""
