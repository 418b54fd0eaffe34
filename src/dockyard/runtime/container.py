"""A container as the commands see it: its saved state plus its live status."""

from .state import OCI_VERSION, ContainerState, StateStore, exists, is_alive

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from .cgroups import CgroupManager
    from .config import Hook

CREATING = "creating"
CREATED = "created"
RUNNING = "running"
PAUSED = "paused"
STOPPED = "stopped"


class Container:
    def __init__(self, store: StateStore, state: ContainerState) -> None:
        self.store = store
        self.state = state

    @classmethod
    def load(cls, store: StateStore, container_id: str) -> "Container":
        return cls(store, store.load(container_id))

    @property
    def id(self) -> str:
        return self.state.id

    def cgroup(self) -> "CgroupManager":
        from .cgroups import cgroup_from_paths, open_cgroup

        if self.state.cgroup_paths:
            return cgroup_from_paths(self.state.cgroup_paths)
        linux = self.state.config.get("linux") or {}
        return open_cgroup(linux.get("cgroupsPath") or "", self.id)

    def destroy_cgroup(self) -> None:
        """Kills what is left in the container's cgroup and removes it."""
        if self.state.cgroup_paths:
            from .cgroups import destroy_at

            destroy_at(self.state.cgroup_paths)
        else:
            self.cgroup().destroy()

    def hooks(self, kind: str) -> "list[Hook]":
        """The config's hooks of one kind (the config is parsed only if there are some)."""
        if not (self.state.config.get("hooks") or {}).get(kind):
            return []
        from .config import parse_hooks

        return parse_hooks(self.state.config).get(kind, [])

    def status(self) -> str:
        if not is_alive(self.state):
            return STOPPED
        if exists(self.store.fifo_path(self.id)):
            return CREATED
        try:
            if self.cgroup().is_frozen():
                return PAUSED
        except OSError:
            pass
        return RUNNING

    def oci_state(self, status: str | None = None) -> "dict[str, Any]":
        """The state of the runtime spec, plus runc's rootfs, created and owner fields."""
        status = status or self.status()
        doc: dict[str, Any] = {
            "ociVersion": OCI_VERSION,
            "id": self.id,
            "pid": self.state.pid if status != STOPPED else 0,
            "status": status,
            "bundle": self.state.bundle,
            "rootfs": self.state.rootfs,
            "created": self.state.created,
            "owner": self.state.owner,
        }
        if self.state.annotations:
            doc["annotations"] = self.state.annotations
        return doc
