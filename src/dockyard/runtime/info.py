"""`state`, `list`, `ps`, `pause`, `resume` and `features`."""

from __future__ import annotations

import os
import pwd
import sys

from .capabilities import CAPABILITIES
from .config import HOOK_NAMES, SECCOMP_ACTIONS, SECCOMP_OPS
from .container import PAUSED, RUNNING, Container
from .errors import RuntimeFailure
from .jsonio import dumps, dumps_indented
from .linux import NAMESPACE_FLAGS
from .mount_options import known_mount_options
from .state import OCI_VERSION, StateStore

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def print_json(doc: Any) -> None:
    sys.stdout.write(dumps_indented(doc) + "\n")


def list_containers(store: StateStore, fmt: str, quiet: bool) -> None:
    containers = []
    for container_id in store.ids():
        try:
            container = Container.load(store, container_id)
        except RuntimeFailure:
            continue  # deleted while we listed
        doc = container.oci_state()
        doc["owner"] = _owner(store.dir_of(container_id))
        containers.append(doc)
    if quiet:
        for doc in containers:
            print(doc["id"])
    elif fmt == "json":
        sys.stdout.write(dumps(containers or None) + "\n")
    else:
        rows = [["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]]
        rows += [[d["id"], str(d["pid"]), d["status"], d["bundle"], d["created"], d["owner"]]
                 for d in containers]
        _print_table(rows)


def _owner(path: str) -> str:
    try:
        return pwd.getpwuid(os.stat(path).st_uid).pw_name
    except (KeyError, OSError):
        return "#?"


def _print_table(rows: list[list[str]]) -> None:
    """Go's tabwriter as runc configures it: min width 12, padding 1."""
    widths = [max(12, max(len(row[i]) for row in rows) + 1) for i in range(len(rows[0]))]
    for row in rows:
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(row[:-1])] + [row[-1]]
        sys.stdout.write("".join(cells) + "\n")


def ps_container(container: Container, fmt: str, ps_args: list[str]) -> None:
    import subprocess

    pids = container.cgroup().pids()
    if fmt == "json":
        sys.stdout.write(dumps(pids) + "\n")
        return
    output = subprocess.run(["ps", *(ps_args or ["-ef"])], capture_output=True, text=True,
                            check=False)
    if output.returncode != 0:
        raise RuntimeFailure(f"ps: {output.stderr.strip()}")
    lines = output.stdout.splitlines()
    if not lines:
        return
    header = lines[0].split()
    if "PID" not in header:
        raise RuntimeFailure("couldn't find PID field in ps output")
    column = header.index("PID")
    wanted = set(pids)
    sys.stdout.write(lines[0] + "\n")
    for line in lines[1:]:
        fields = line.split()
        if len(fields) > column and fields[column].isdigit() and int(fields[column]) in wanted:
            sys.stdout.write(line + "\n")


def pause_container(container: Container) -> None:
    if container.status() != RUNNING:
        raise RuntimeFailure("container not running")
    container.cgroup().freeze()


def resume_container(container: Container) -> None:
    if container.status() != PAUSED:
        raise RuntimeFailure("container not paused")
    container.cgroup().thaw()


def features() -> dict[str, Any]:
    from .seccomp import resolve_syscall

    arch_names = ["SCMP_ARCH_X86", "SCMP_ARCH_X86_64", "SCMP_ARCH_X32", "SCMP_ARCH_AARCH64",
                  "SCMP_ARCH_ARM"]
    return {
        "ociVersionMin": "1.0.0",
        "ociVersionMax": OCI_VERSION,
        "hooks": list(HOOK_NAMES),
        "mountOptions": known_mount_options(),
        "linux": {
            "namespaces": list(NAMESPACE_FLAGS),
            "capabilities": list(CAPABILITIES),
            "cgroup": {"v1": True, "v2": True, "systemd": False, "systemdUser": False,
                       "rdma": False},
            "seccomp": {
                "enabled": resolve_syscall("read") is not None,
                "actions": list(SECCOMP_ACTIONS[:-1]),
                "operators": list(SECCOMP_OPS),
                "archs": arch_names,
                "knownFlags": ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG",
                               "SECCOMP_FILTER_FLAG_SPEC_ALLOW"],
                "supportedFlags": ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG",
                                   "SECCOMP_FILTER_FLAG_SPEC_ALLOW"],
            },
            "apparmor": {"enabled": False},
            "selinux": {"enabled": False},
            "intelRdt": {"enabled": False},
        },
        "annotations": {"org.dockyard.runtime.version": _version(),
                        "io.github.seccomp.libseccomp.version": "2.5"},
    }


def _version() -> str:
    from .. import __version__

    return __version__

