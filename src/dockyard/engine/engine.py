"""The engine as the daemon composes it: the services over one data root and exec root."""

from __future__ import annotations

import os

from ..snapshot import Snapshotter
from ._volume_attach import users_by_volume
from .containers import ContainerService
from .distribution import DistributionService
from .events import EventBus
from .execs import ExecService
from .images import ImageService
from .networks import NetworkService
from .options import EngineOptions
from .volumes import VolumeService


class Engine:
    def __init__(self, options: EngineOptions) -> None:
        self.options = options
        options.data_root.mkdir(parents=True, exist_ok=True)
        options.exec_root.mkdir(parents=True, exist_ok=True)
        self.events = EventBus()
        self.images = ImageService(options.data_root / "image", self.events)
        self.snapshots = Snapshotter(options.data_root / "snapshot")
        self.containers = ContainerService(options, self.images, self.snapshots, self.events)
        self.execs = ExecService(self.containers)
        self.volumes = VolumeService(options.data_root / "volumes", self.events,
                                     lambda: users_by_volume(self.containers.store.all()))
        self.containers.volumes = self.volumes
        self.networks = NetworkService(options, self.containers, self.events)
        self.containers.networks = self.networks
        self.distribution = DistributionService(options, self.images, self.snapshots)

    def restore(self) -> None:
        """At daemon start: if a shim from before runs, reconnect (and learn what exited
        while we were away)."""
        from ..shim.client import socket_path

        if any(r["State"]["Running"] for r in self.containers.store.all()) or \
                os.path.exists(socket_path(str(self.options.exec_root))):
            try:
                self.containers.shim()
                self.containers.reconcile()
            except Exception:  # noqa: BLE001 - a daemon must start even if the shim is gone
                for record in self.containers.store.all():
                    if record["State"]["Running"]:
                        from .timefmt import rfc3339_now

                        self.containers._finish(record, 255, rfc3339_now())
        self.networks.restore()

    def shutdown(self) -> None:
        """At a clean daemon stop: what only running containers need goes if none runs."""
        self.networks.shutdown()
