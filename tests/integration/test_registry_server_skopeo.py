"""skopeo (containers/image) against `dockyard registry serve`: push, pull, inspect,
list-tags, delete, multi-arch, basic and token auth."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest

from tests.integration.test_registry_server_support import (
    FIXTURES,
    Registry,
    basic,
    registry,
    skopeo,
    start_registry,
)

__all__ = ["registry"]

NO_TLS = "--tls-verify=false"


def _index_of(archive: Path) -> dict:
    with tarfile.open(archive) as tar:
        member = tar.extractfile("index.json")
        assert member is not None
        return json.load(member)


def _copy_in(server: Registry, archive: str, ref: str, *extra: str) -> None:
    skopeo("copy", "--all", "--dest-tls-verify=false", *extra,
           f"oci-archive:{FIXTURES / archive}", f"docker://{server.address}/{ref}")


@pytest.mark.parametrize("archive", ["fixture-oci.tar", "fixture-multiarch-oci.tar",
                                     "fixture-oci-zstd.tar"])
def test_copy_in_and_out_keeps_digests(registry: Registry, tmp_path: Path,
                                       archive: str) -> None:
    _copy_in(registry, archive, "fixtures/image:1.0")
    expected = _index_of(FIXTURES / archive)["manifests"][0]["digest"]
    out = tmp_path / "out"
    skopeo("copy", "--all", "--src-tls-verify=false",
           f"docker://{registry.address}/fixtures/image:1.0", f"oci:{out}:copy")
    assert json.loads((out / "index.json").read_text())["manifests"][0]["digest"] == expected
    # ...and by digest.
    out2 = tmp_path / "by-digest"
    skopeo("copy", "--all", "--src-tls-verify=false",
           f"docker://{registry.address}/fixtures/image@{expected}", f"oci:{out2}:copy")
    assert json.loads((out2 / "index.json").read_text())["manifests"][0]["digest"] == expected


def test_inspect_list_tags_and_delete(registry: Registry) -> None:
    _copy_in(registry, "fixture-oci.tar", "app:1.0")
    _copy_in(registry, "fixture-oci.tar", "app:latest")
    info = json.loads(skopeo("inspect", NO_TLS, f"docker://{registry.address}/app:1.0").stdout)
    assert info["Labels"] == {"org.example.fixture": "dockyard"}
    assert info["Architecture"] == "amd64" and len(info["Layers"]) == 5
    tags = json.loads(skopeo("list-tags", NO_TLS, f"docker://{registry.address}/app").stdout)
    assert tags["Tags"] == ["1.0", "latest"]
    # skopeo delete removes the manifest by digest, so both tags go.
    skopeo("delete", NO_TLS, f"docker://{registry.address}/app:latest")
    gone = skopeo("inspect", NO_TLS, f"docker://{registry.address}/app:1.0", check=False)
    assert gone.returncode != 0 and "manifest unknown" in gone.stderr


def test_multiarch_index_and_platform_choice(registry: Registry) -> None:
    _copy_in(registry, "fixture-multiarch-oci.tar", "multi:1.0")
    raw = json.loads(skopeo("inspect", NO_TLS, "--raw",
                            f"docker://{registry.address}/multi:1.0").stdout)
    platforms = {(m["platform"]["os"], m["platform"]["architecture"]) for m in raw["manifests"]}
    assert platforms == {("linux", "amd64"), ("linux", "arm64")}
    arm = json.loads(skopeo("inspect", NO_TLS, "--override-arch", "arm64",
                            f"docker://{registry.address}/multi:1.0").stdout)
    assert arm["Architecture"] == "arm64"


def test_push_between_repositories_mounts_blobs(registry: Registry) -> None:
    _copy_in(registry, "fixture-oci.tar", "one/app:1")
    # Copying registry to registry within one registry: skopeo mounts the blobs.
    skopeo("copy", "--src-tls-verify=false", "--dest-tls-verify=false",
           f"docker://{registry.address}/one/app:1", f"docker://{registry.address}/two/app:1")
    info = json.loads(skopeo("inspect", NO_TLS,
                             f"docker://{registry.address}/two/app:1").stdout)
    assert len(info["Layers"]) == 5


def _htpasswd(tmp_path: Path) -> Path:
    import subprocess

    path = tmp_path / "htpasswd"
    subprocess.run(["htpasswd", "-Bbc", str(path), "alice", "wonderland"], check=True,
                   capture_output=True)
    return path


def test_basic_auth(tmp_path: Path) -> None:
    server = start_registry(tmp_path / "root", "--htpasswd", str(_htpasswd(tmp_path)))
    try:
        ref = f"docker://{server.address}/private:1"
        source = f"oci-archive:{FIXTURES / 'fixture-oci.tar'}"
        refused = skopeo("copy", "--dest-tls-verify=false", "--dest-creds", "alice:wrong",
                         source, ref, check=False)
        assert refused.returncode != 0 and "unauthorized" in refused.stderr.lower()
        anonymous = skopeo("copy", "--dest-tls-verify=false", source, ref, check=False)
        assert anonymous.returncode != 0
        skopeo("copy", "--dest-tls-verify=false", "--dest-creds", "alice:wonderland",
               source, ref)
        denied = skopeo("inspect", NO_TLS, "--creds", "alice:nope", ref, check=False)
        assert denied.returncode != 0
        info = json.loads(skopeo("inspect", NO_TLS, "--creds", "alice:wonderland", ref).stdout)
        assert len(info["Layers"]) == 5
        # Raw HTTP: the challenge, and the error body.
        reply = server.request("GET", "/v2/")
        assert reply.status == 401 and reply.codes == ["UNAUTHORIZED"]
        assert reply.headers["www-authenticate"].startswith("Basic realm=")
        assert server.request("GET", "/v2/", headers={
            "Authorization": basic("alice", "wrong")}).status == 401
        assert server.request("GET", "/v2/", headers={
            "Authorization": basic("alice", "wonderland")}).status == 200
    finally:
        server.stop()


def test_token_auth(tmp_path: Path) -> None:
    import socket

    with socket.socket() as probe:   # the realm URL names the port, so choose it first
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    policy = tmp_path / "policy"
    policy.write_text("alice * *\nbob shared/* pull\nanonymous public/* pull\n")
    import subprocess

    htpasswd = _htpasswd(tmp_path)
    subprocess.run(["htpasswd", "-Bb", str(htpasswd), "bob", "builder"], check=True,
                   capture_output=True)
    server = start_registry(tmp_path / "root", "--htpasswd", str(htpasswd),
                            "--token-realm", f"http://127.0.0.1:{port}/token",
                            "--access-policy", str(policy), "--addr", f"127.0.0.1:{port}")
    try:
        source = f"oci-archive:{FIXTURES / 'fixture-oci.tar'}"
        for ref in ("shared/app:1", "public/app:1"):
            skopeo("copy", "--dest-tls-verify=false", "--dest-creds", "alice:wonderland",
                   source, f"docker://{server.address}/{ref}")
        wrong = skopeo("copy", "--dest-tls-verify=false", "--dest-creds", "alice:bad",
                       source, f"docker://{server.address}/x:1", check=False)
        assert wrong.returncode != 0
        # bob may pull shared/*, not push there.
        pulled = skopeo("inspect", NO_TLS, "--creds", "bob:builder",
                        f"docker://{server.address}/shared/app:1")
        assert json.loads(pulled.stdout)["Layers"]
        pushed = skopeo("copy", "--dest-tls-verify=false", "--dest-creds", "bob:builder",
                        source, f"docker://{server.address}/shared/app:2", check=False)
        assert pushed.returncode != 0
        # Anonymous clients may pull public/* only.
        skopeo("inspect", NO_TLS, f"docker://{server.address}/public/app:1")
        hidden = skopeo("inspect", NO_TLS, f"docker://{server.address}/shared/app:1",
                        check=False)
        assert hidden.returncode != 0
    finally:
        server.stop()


def test_docker_schema2_push_and_pull(registry: Registry, tmp_path: Path) -> None:
    skopeo("copy", "--format", "v2s2", "--dest-tls-verify=false",
           f"oci-archive:{FIXTURES / 'fixture-oci.tar'}",
           f"docker://{registry.address}/schema2:1")
    raw = json.loads(skopeo("inspect", NO_TLS, "--raw",
                            f"docker://{registry.address}/schema2:1").stdout)
    assert raw["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"
    reply = registry.request("HEAD", "/v2/schema2/manifests/1")
    assert reply.headers["content-type"] == raw["mediaType"]
    skopeo("copy", "--src-tls-verify=false", f"docker://{registry.address}/schema2:1",
           f"docker-archive:{tmp_path / 'out.tar'}:schema2:1")
    assert (tmp_path / "out.tar").stat().st_size > 0
