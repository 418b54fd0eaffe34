"""The docker CLI 28's own registry client (`docker manifest`, no daemon involved) against
`dockyard registry serve`: inspect an index, create and push a manifest list (which
mounts the blobs across repositories and pushes the manifests by digest)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from tests.integration.test_registry_server_support import (
    FIXTURES,
    OCI_INDEX,
    Registry,
    registry,
    skopeo,
)

__all__ = ["registry"]

# The docker CLI 28 where the machine has it, else Debian's (20.10 has `manifest` too).
DOCKER = "/usr/local/bin/docker" if Path("/usr/local/bin/docker").exists() else "docker"


def _docker(tmp_path: Path, *args: str) -> str:
    env = {**os.environ, "DOCKER_CONFIG": str(tmp_path / "docker-config"),
           "DOCKER_HOST": f"unix://{tmp_path / 'no-daemon.sock'}"}
    result = subprocess.run([DOCKER, *args], capture_output=True, text=True, env=env,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_docker_manifest_inspect_create_push(registry: Registry, tmp_path: Path) -> None:
    skopeo("copy", "--all", "--dest-tls-verify=false",
           f"oci-archive:{FIXTURES / 'fixture-multiarch-oci.tar'}",
           f"docker://{registry.address}/multi:1.0")
    index = json.loads(_docker(tmp_path, "manifest", "inspect", "--insecure",
                               f"{registry.address}/multi:1.0"))
    assert index["mediaType"] == OCI_INDEX
    children = {m["platform"]["architecture"]: m["digest"] for m in index["manifests"]}
    assert set(children) == {"amd64", "arm64"}
    target = f"{registry.address}/combined:1"
    _docker(tmp_path, "manifest", "create", "--insecure", target,
            *(f"{registry.address}/multi@{digest}" for digest in children.values()))
    pushed = _docker(tmp_path, "manifest", "push", "--insecure", target)
    list_digest = pushed.strip().splitlines()[-1]
    got = registry.request("GET", f"/v2/combined/manifests/{list_digest}")
    assert got.status == 200
    assert {m["digest"] for m in got.json()["manifests"]} == set(children.values())
    amd = registry.request("GET", f"/v2/combined/manifests/{children['amd64']}")
    layers = amd.json()["layers"]
    assert registry.request("HEAD", f"/v2/combined/blobs/{layers[0]['digest']}").status == 200
