"""The registry's HTTP API, request by request: uploads, mounts, ranges, manifests,
pagination, catalog, referrers, every error code, concurrency, interrupted uploads,
garbage collection and token auth."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
from pathlib import Path

import pytest

from tests.host import wait_until
from tests.integration.test_registry_server_support import (
    DOCKYARD,
    OCI_CONFIG,
    OCI_INDEX,
    OCI_MANIFEST,
    Registry,
    basic,
    digest_of,
    registry,
    start_registry,
)

__all__ = ["registry"]


def _uploads(server: Registry) -> list[str]:
    return os.listdir(server.root / "uploads")


def test_base_and_headers(registry: Registry) -> None:
    reply = registry.request("GET", "/v2/")
    assert reply.status == 200 and reply.json() == {}
    assert reply.headers["docker-distribution-api-version"] == "registry/2.0"
    assert registry.request("GET", "/v2").status == 200
    assert registry.request("GET", "/nowhere").status == 404


def test_monolithic_uploads(registry: Registry) -> None:
    data = b"a monolithic blob"
    digest = digest_of(data)
    reply = registry.request("POST", f"/v2/lib/app/blobs/uploads/?digest={digest}", data)
    assert reply.status == 201
    assert reply.headers["location"] == f"/v2/lib/app/blobs/{digest}"
    assert reply.headers["docker-content-digest"] == digest
    got = registry.request("GET", f"/v2/lib/app/blobs/{digest}")
    assert got.status == 200 and got.body == data
    assert got.headers["docker-content-digest"] == digest
    head = registry.request("HEAD", f"/v2/lib/app/blobs/{digest}")
    assert head.status == 200 and head.headers["content-length"] == str(len(data))
    assert head.body == b""
    # POST, then PUT with the whole body.
    other = b"post then put"
    start = registry.request("POST", "/v2/lib/app/blobs/uploads/")
    assert start.status == 202 and start.headers["range"] == "0-0"
    assert start.headers["docker-upload-uuid"] in start.headers["location"]
    done = registry.request("PUT", f"{start.headers['location']}?digest={digest_of(other)}",
                            other)
    assert done.status == 201
    assert registry.request("GET", f"/v2/lib/app/blobs/{digest_of(other)}").body == other
    assert _uploads(registry) == []


def test_chunked_upload(registry: Registry) -> None:
    data = bytes(range(256)) * 40
    start = registry.request("POST", "/v2/chunky/blobs/uploads/", b"",
                             {"Content-Length": "0"})
    location = start.headers["location"]
    first = registry.request("PATCH", location, data[:1000],
                             {"Content-Range": "0-999",
                              "Content-Type": "application/octet-stream"})
    assert first.status == 202 and first.headers["range"] == "0-999"
    location = first.headers["location"]
    status = registry.request("GET", location)
    assert status.status == 204 and status.headers["range"] == "0-999"
    # Out of order: 416, and the upload is unchanged.
    wrong = registry.request("PATCH", location, data[2000:3000],
                             {"Content-Range": "2000-2999"})
    assert wrong.status == 416 and wrong.codes == ["RANGE_INVALID"]
    assert wrong.headers["range"] == "0-999"
    short = registry.request("PATCH", location, data[1000:1005], {"Content-Range": "1000-1999"})
    assert short.status == 400 and short.codes == ["SIZE_INVALID"]
    bad = registry.request("PATCH", location, data[1000:2000], {"Content-Range": "one-two"})
    assert bad.status == 400 and bad.codes == ["BLOB_UPLOAD_INVALID"]
    # A chunk without Content-Range is appended (Docker's streamed PATCH).
    second = registry.request("PATCH", location, data[1000:3000])
    assert second.status == 202 and second.headers["range"] == "0-2999"
    final = registry.request("PUT", f"{location}?digest={digest_of(data)}", data[3000:],
                             {"Content-Range": f"3000-{len(data) - 1}"})
    assert final.status == 201, final
    assert registry.request("GET", f"/v2/chunky/blobs/{digest_of(data)}").body == data
    assert registry.request("GET", location).codes == ["BLOB_UPLOAD_UNKNOWN"]


def test_upload_errors(registry: Registry) -> None:
    unknown = "/v2/x/blobs/uploads/8c3f2a5e-1111-4222-8333-944455556666"
    for method in ("GET", "PATCH", "PUT", "DELETE"):
        reply = registry.request(method, unknown)
        assert reply.status == 404 and reply.codes == ["BLOB_UPLOAD_UNKNOWN"]
    assert registry.request("GET", "/v2/x/blobs/uploads/not-a-uuid").status == 404
    start = registry.request("POST", "/v2/x/blobs/uploads/")
    location = start.headers["location"]
    # The session belongs to its repository.
    assert registry.request("GET", location.replace("/v2/x/", "/v2/y/")).status == 404
    missing = registry.request("PUT", location, b"abc")
    assert missing.status == 400 and missing.codes == ["DIGEST_INVALID"]
    malformed = registry.request("PUT", f"{location}?digest=sha256:nothex", b"abc")
    assert malformed.status == 400 and malformed.codes == ["DIGEST_INVALID"]
    cancel = registry.request("DELETE", location)
    assert cancel.status == 204
    assert registry.request("GET", location).status == 404
    assert _uploads(registry) == []


def test_corrupted_blob_is_rejected(registry: Registry) -> None:
    data = b"the real content"
    claimed = digest_of(b"something else")
    reply = registry.request("POST", f"/v2/c/blobs/uploads/?digest={claimed}", data)
    assert reply.status == 400 and reply.codes == ["DIGEST_INVALID"]
    assert registry.request("HEAD", f"/v2/c/blobs/{claimed}").status == 404
    assert registry.request("HEAD", f"/v2/c/blobs/{digest_of(data)}").status == 404
    # A chunked upload whose bytes were corrupted on the way.
    start = registry.request("POST", "/v2/c/blobs/uploads/")
    location = start.headers["location"]
    registry.request("PATCH", location, b"the real c0ntent")
    final = registry.request("PUT", f"{location}?digest={digest_of(data)}")
    assert final.status == 400 and final.codes == ["DIGEST_INVALID"]
    assert registry.request("HEAD", f"/v2/c/blobs/{digest_of(data)}").status == 404
    assert _uploads(registry) == []
    assert not list((registry.root / "blobs").rglob("*")) or all(
        p.is_dir() for p in (registry.root / "blobs").rglob("*"))


def test_blob_errors_and_delete(registry: Registry) -> None:
    digest = registry.push_blob("a", b"blob of a")
    other = registry.request("GET", f"/v2/b/blobs/{digest}")   # not linked into b
    assert other.status == 404 and other.codes == ["BLOB_UNKNOWN"]
    assert other.json()["errors"][0]["message"] == "blob unknown to registry"
    invalid = registry.request("GET", "/v2/a/blobs/sha256:1234")
    assert invalid.status == 400 and invalid.codes == ["DIGEST_INVALID"]
    assert registry.request("DELETE", f"/v2/a/blobs/{digest}").status == 202
    assert registry.request("GET", f"/v2/a/blobs/{digest}").codes == ["BLOB_UNKNOWN"]
    again = registry.request("DELETE", f"/v2/a/blobs/{digest}")
    assert again.status == 404 and again.codes == ["BLOB_UNKNOWN"]


def test_range_requests(registry: Registry) -> None:
    data = bytes(range(100))
    digest = registry.push_blob("r", data)
    part = registry.request("GET", f"/v2/r/blobs/{digest}", headers={"Range": "bytes=10-19"})
    assert part.status == 206 and part.body == data[10:20]
    assert part.headers["content-range"] == "bytes 10-19/100"
    tail = registry.request("GET", f"/v2/r/blobs/{digest}", headers={"Range": "bytes=-5"})
    assert tail.status == 206 and tail.body == data[95:]
    rest = registry.request("GET", f"/v2/r/blobs/{digest}", headers={"Range": "bytes=90-"})
    assert rest.body == data[90:]
    beyond = registry.request("GET", f"/v2/r/blobs/{digest}", headers={"Range": "bytes=100-"})
    assert beyond.status == 416 and beyond.headers["content-range"] == "bytes */100"
    whole = registry.request("GET", f"/v2/r/blobs/{digest}", headers={"Range": "bytes=1-2,4-5"})
    assert whole.status == 200 and whole.body == data


def test_cross_repository_mount(registry: Registry) -> None:
    digest = registry.push_blob("source/app", b"shared layer")
    mounted = registry.request("POST", f"/v2/target/blobs/uploads/?mount={digest}"
                               "&from=source/app")
    assert mounted.status == 201
    assert mounted.headers["location"] == f"/v2/target/blobs/{digest}"
    assert registry.request("GET", f"/v2/target/blobs/{digest}").body == b"shared layer"
    # Unknown blob, or a source without it: an ordinary upload session starts instead.
    missing = digest_of(b"nobody has this")
    fallback = registry.request("POST", f"/v2/target2/blobs/uploads/?mount={missing}"
                                "&from=source/app")
    assert fallback.status == 202 and "/v2/target2/blobs/uploads/" in fallback.headers[
        "location"]


def test_manifests(registry: Registry) -> None:
    digest, data = registry.push_image("img", "v1", b"layer one")
    for ref in ("v1", digest):
        got = registry.request("GET", f"/v2/img/manifests/{ref}",
                               headers={"Accept": OCI_MANIFEST})
        assert got.status == 200 and got.body == data
        assert got.headers["content-type"] == OCI_MANIFEST
        assert got.headers["docker-content-digest"] == digest
        head = registry.request("HEAD", f"/v2/img/manifests/{ref}")
        assert head.headers["content-length"] == str(len(data))
        assert head.headers["docker-content-digest"] == digest
    by_digest = registry.request("PUT", f"/v2/img/manifests/{digest}", data,
                                 {"Content-Type": OCI_MANIFEST})
    assert by_digest.status == 201
    assert by_digest.headers["location"] == f"/v2/img/manifests/{digest}"
    wrong = registry.request("PUT", f"/v2/img/manifests/{digest_of(b'x')}", data,
                             {"Content-Type": OCI_MANIFEST})
    assert wrong.status == 400 and wrong.codes == ["DIGEST_INVALID"]
    unknown = registry.request("GET", "/v2/img/manifests/nope")
    assert unknown.status == 404 and unknown.codes == ["MANIFEST_UNKNOWN"]
    assert registry.request("GET", "/v2/nothere/manifests/v1").codes == ["MANIFEST_UNKNOWN"]
    bad_tag = registry.request("PUT", "/v2/img/manifests/-bad", data,
                               {"Content-Type": OCI_MANIFEST})
    assert bad_tag.status == 400 and bad_tag.codes == ["TAG_INVALID"]
    # Delete a tag, then the manifest.
    registry.request("PUT", "/v2/img/manifests/v2", data, {"Content-Type": OCI_MANIFEST})
    assert registry.request("DELETE", "/v2/img/manifests/v1").status == 202
    assert registry.request("GET", "/v2/img/manifests/v1").status == 404
    assert registry.request("GET", "/v2/img/manifests/v2").status == 200
    assert registry.request("DELETE", f"/v2/img/manifests/{digest}").status == 202
    assert registry.request("GET", "/v2/img/manifests/v2").status == 404
    assert registry.request("GET", f"/v2/img/manifests/{digest}").status == 404
    again = registry.request("DELETE", f"/v2/img/manifests/{digest}")
    assert again.status == 404 and again.codes == ["MANIFEST_UNKNOWN"]


def test_manifest_errors(registry: Registry) -> None:
    missing_layer = digest_of(b"never pushed")
    config = registry.push_blob("m", b"{}")
    manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "config": {"mediaType": OCI_CONFIG, "digest": config, "size": 2},
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                            "digest": missing_layer, "size": 12}]}
    reply = registry.request("PUT", "/v2/m/manifests/t", json.dumps(manifest).encode(),
                             {"Content-Type": OCI_MANIFEST})
    assert reply.status == 400 and reply.codes == ["MANIFEST_BLOB_UNKNOWN"]
    assert reply.json()["errors"][0]["detail"] == {"digest": missing_layer}
    invalid = registry.request("PUT", "/v2/m/manifests/t", b"{not json",
                               {"Content-Type": OCI_MANIFEST})
    assert invalid.status == 400 and invalid.codes == ["MANIFEST_INVALID"]
    mismatch = registry.request("PUT", "/v2/m/manifests/t", json.dumps(manifest).encode(),
                                {"Content-Type": OCI_INDEX})
    assert mismatch.status == 400 and mismatch.codes == ["MANIFEST_INVALID"]
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": missing_layer, "size": 10}]}
    child = registry.request("PUT", "/v2/m/manifests/i", json.dumps(index).encode(),
                             {"Content-Type": OCI_INDEX})
    assert child.status == 400 and child.codes == ["MANIFEST_BLOB_UNKNOWN"]
    huge = registry.request("PUT", "/v2/m/manifests/big", b" " * (4 << 20 | 1),
                            {"Content-Type": OCI_MANIFEST})
    assert huge.status == 413 and huge.codes == ["SIZE_INVALID"]
    assert registry.request("GET", "/v2/m/tags/list").json()["tags"] == []


def test_index_of_pushed_manifests(registry: Registry) -> None:
    amd, amd_data = registry.push_image("multi", "amd", b"amd64 layer")
    arm, arm_data = registry.push_image("multi", "arm", b"arm64 layer")
    index = {"schemaVersion": 2,
             "mediaType": "application/vnd.docker.distribution.manifest.list.v2+json",
             "manifests": [
                 {"mediaType": OCI_MANIFEST, "digest": amd, "size": len(amd_data),
                  "platform": {"os": "linux", "architecture": "amd64"}},
                 {"mediaType": OCI_MANIFEST, "digest": arm, "size": len(arm_data),
                  "platform": {"os": "linux", "architecture": "arm64"}}]}
    data = json.dumps(index).encode()
    reply = registry.request("PUT", "/v2/multi/manifests/latest", data,
                             {"Content-Type": index["mediaType"]})
    assert reply.status == 201
    got = registry.request("GET", "/v2/multi/manifests/latest")
    assert got.headers["content-type"] == index["mediaType"] and got.body == data


def test_names(registry: Registry) -> None:
    for path in ("/v2/UPPER/tags/list", "/v2/a__-b/manifests/x", "/v2/-x/blobs/uploads/"):
        method = "POST" if path.endswith("uploads/") else "GET"
        reply = registry.request(method, path)
        assert reply.status == 400 and reply.codes == ["NAME_INVALID"], path
    unknown = registry.request("GET", "/v2/nobody/tags/list")
    assert unknown.status == 404 and unknown.codes == ["NAME_UNKNOWN"]
    not_allowed = registry.request("DELETE", "/v2/x/tags/list")
    assert not_allowed.status == 405 and not_allowed.codes == ["UNSUPPORTED"]


def test_tag_pagination(registry: Registry) -> None:
    _, data = registry.push_image("pages", "e", b"layer")
    for tag in ("c", "a", "d", "b"):
        registry.request("PUT", f"/v2/pages/manifests/{tag}", data,
                         {"Content-Type": OCI_MANIFEST})
    assert registry.request("GET", "/v2/pages/tags/list").json() == {
        "name": "pages", "tags": ["a", "b", "c", "d", "e"]}
    first = registry.request("GET", "/v2/pages/tags/list?n=2")
    assert first.json()["tags"] == ["a", "b"]
    assert first.headers["link"] == '</v2/pages/tags/list?last=b&n=2>; rel="next"'
    second = registry.request("GET", first.headers["link"][1:].split(">")[0])
    assert second.json()["tags"] == ["c", "d"]
    third = registry.request("GET", second.headers["link"][1:].split(">")[0])
    assert third.json()["tags"] == ["e"] and "link" not in third.headers
    zero = registry.request("GET", "/v2/pages/tags/list?n=0")
    assert zero.json()["tags"] == [] and "link" not in zero.headers
    assert registry.request("GET", "/v2/pages/tags/list?last=c").json()["tags"] == ["d", "e"]
    bad = registry.request("GET", "/v2/pages/tags/list?n=-1")
    assert bad.status == 400 and bad.codes == ["PAGINATION_NUMBER_INVALID"]


def test_catalog(registry: Registry) -> None:
    for name in ("zeta", "alpha/one", "alpha", "mid/x/y"):
        registry.push_blob(name, name.encode())
    assert registry.request("GET", "/v2/_catalog").json() == {
        "repositories": ["alpha", "alpha/one", "mid/x/y", "zeta"]}
    page = registry.request("GET", "/v2/_catalog?n=3")
    assert page.json()["repositories"] == ["alpha", "alpha/one", "mid/x/y"]
    assert page.headers["link"] == '</v2/_catalog?last=mid%2Fx%2Fy&n=3>; rel="next"'
    rest = registry.request("GET", page.headers["link"][1:].split(">")[0])
    assert rest.json()["repositories"] == ["zeta"] and "link" not in rest.headers


def test_referrers(registry: Registry) -> None:
    subject, subject_data = registry.push_image("ref", "v1", b"the image")
    empty = registry.push_blob("ref", b"{}")
    artifact = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "artifactType": "application/vnd.example.sbom",
                "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty,
                           "size": 2},
                "layers": [],
                "subject": {"mediaType": OCI_MANIFEST, "digest": subject,
                            "size": len(subject_data)},
                "annotations": {"org.example": "yes"}}
    data = json.dumps(artifact).encode()
    pushed = registry.request("PUT", f"/v2/ref/manifests/{digest_of(data)}", data,
                              {"Content-Type": OCI_MANIFEST})
    assert pushed.status == 201 and pushed.headers["oci-subject"] == subject
    listed = registry.request("GET", f"/v2/ref/referrers/{subject}")
    assert listed.status == 200 and listed.headers["content-type"] == OCI_INDEX
    assert listed.json() == {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": digest_of(data), "size": len(data),
         "artifactType": "application/vnd.example.sbom",
         "annotations": {"org.example": "yes"}}]}
    kept = registry.request("GET", f"/v2/ref/referrers/{subject}"
                            "?artifactType=application/vnd.example.sbom")
    assert kept.headers["oci-filters-applied"] == "artifactType"
    assert len(kept.json()["manifests"]) == 1
    other = registry.request("GET", f"/v2/ref/referrers/{subject}?artifactType=x/y")
    assert other.json()["manifests"] == []
    # A subject nobody refers to, even in an unknown repository: an empty list, not 404.
    assert registry.request("GET", f"/v2/nobody/referrers/{digest_of(b'z')}").json()[
        "manifests"] == []
    invalid = registry.request("GET", "/v2/ref/referrers/sha256:xyz")
    assert invalid.status == 400 and invalid.codes == ["DIGEST_INVALID"]
    # A subject that does not exist (yet) is accepted, as the spec requires.
    artifact["subject"]["digest"] = digest_of(b"later")
    data2 = json.dumps(artifact).encode()
    assert registry.request("PUT", "/v2/ref/manifests/sig", data2,
                            {"Content-Type": OCI_MANIFEST}).status == 201
    registry.request("DELETE", f"/v2/ref/manifests/{digest_of(data)}")
    assert registry.request("GET", f"/v2/ref/referrers/{subject}").json()["manifests"] == []


def test_concurrent_pushes_of_the_same_blob(registry: Registry) -> None:
    data = os.urandom(3 << 20)
    digest = digest_of(data)
    results: list[int] = []

    def push(name: str) -> None:
        start = registry.request("POST", f"/v2/{name}/blobs/uploads/")
        location = start.headers["location"]
        half = len(data) // 2
        registry.request("PATCH", location, data[:half], {"Content-Range": f"0-{half - 1}"})
        results.append(registry.request("PUT", f"{location}?digest={digest}",
                                        data[half:]).status)

    threads = [threading.Thread(target=push, args=(name,))
               for name in ("same", "same", "same", "other", "other", "third")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert results == [201] * 6
    for name in ("same", "other", "third"):
        assert registry.request("GET", f"/v2/{name}/blobs/{digest}").body == data
    assert _uploads(registry) == []


def test_interrupted_upload_leaves_nothing_visible(registry: Registry) -> None:
    data = os.urandom(1 << 20)
    digest = digest_of(data)
    with socket.create_connection(("127.0.0.1", registry.port)) as client:
        client.sendall((f"POST /v2/cut/blobs/uploads/?digest={digest} HTTP/1.1\r\n"
                        f"Host: x\r\nContent-Length: {len(data)}\r\n\r\n").encode())
        client.sendall(data[:300_000])
    assert wait_until(lambda: _uploads(registry) == [], 10)
    assert registry.request("HEAD", f"/v2/cut/blobs/{digest}").status == 404
    # An interrupted chunk stays in its session (resumable), still invisible.
    start = registry.request("POST", "/v2/cut/blobs/uploads/")
    location = start.headers["location"]
    with socket.create_connection(("127.0.0.1", registry.port)) as client:
        client.sendall((f"PATCH {location} HTTP/1.1\r\nHost: x\r\n"
                        f"Content-Length: {len(data)}\r\n\r\n").encode())
        client.sendall(data[:200_000])

    def received() -> bool:
        status = registry.request("GET", location)
        return status.headers.get("range") == f"0-{200_000 - 1}"

    assert wait_until(received, 10)
    assert registry.request("HEAD", f"/v2/cut/blobs/{digest}").status == 404
    resumed = registry.request("PUT", f"{location}?digest={digest}", data[200_000:],
                               {"Content-Range": f"200000-{len(data) - 1}"})
    assert resumed.status == 201
    assert registry.request("GET", f"/v2/cut/blobs/{digest}").body == data


def test_keep_alive_connection(registry: Registry) -> None:
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", registry.port, timeout=10)
    try:
        for _ in range(5):
            connection.request("GET", "/v2/")
            response = connection.getresponse()
            assert response.status == 200 and response.read() == b"{}\n"
        connection.request("POST", "/v2/k/blobs/uploads/?digest=sha256:bad", body=b"x" * 10)
        response = connection.getresponse()
        assert response.status == 400
        response.read()
        connection.request("GET", "/v2/")
        assert connection.getresponse().status == 200
    finally:
        connection.close()


def test_garbage_collect(registry: Registry) -> None:
    kept, _ = registry.push_image("gc", "keep", b"kept layer")
    dropped, _ = registry.push_image("gc", "drop", b"dropped layer")
    orphan = registry.push_blob("gc", b"orphan blob")
    assert registry.request("DELETE", f"/v2/gc/manifests/{dropped}").status == 202
    dry = subprocess.run([DOCKYARD, "registry", "garbage-collect", "--root",
                          str(registry.root), "--dry-run"], capture_output=True, text=True)
    assert dry.returncode == 0, dry.stderr
    assert f"would remove blob {orphan}" in dry.stdout
    assert f"would remove blob {dropped}" in dry.stdout
    assert registry.request("HEAD", f"/v2/gc/blobs/{orphan}").status == 200
    real = subprocess.run([DOCKYARD, "registry", "garbage-collect", "--root",
                           str(registry.root)], capture_output=True, text=True)
    assert real.returncode == 0, real.stderr
    assert "3 blobs removed" in real.stdout
    assert registry.request("HEAD", f"/v2/gc/blobs/{orphan}").status == 404
    assert registry.request("GET", "/v2/gc/manifests/keep").status == 200
    assert registry.request("HEAD", f"/v2/gc/blobs/{digest_of(b'kept layer')}").status == 200
    assert registry.request("GET", f"/v2/gc/manifests/{kept}").status == 200
    untagged, _ = registry.push_image("gc", "temporary", b"untagged layer")
    registry.request("DELETE", "/v2/gc/manifests/temporary")
    pruned = subprocess.run([DOCKYARD, "registry", "garbage-collect", "--root",
                             str(registry.root), "-m"], capture_output=True, text=True)
    assert pruned.returncode == 0, pruned.stderr
    assert f"removed manifest gc@{untagged}" in pruned.stdout
    assert registry.request("GET", f"/v2/gc/manifests/{untagged}").status == 404
    assert registry.request("GET", "/v2/gc/manifests/keep").status == 200
    bad = subprocess.run([DOCKYARD, "registry", "garbage-collect", "--root",
                          str(registry.root / "nothing")], capture_output=True, text=True)
    assert bad.returncode == 1 and "not a registry root" in bad.stderr


def test_read_only_mode(tmp_path: Path) -> None:
    server = start_registry(tmp_path / "root", "--read-only")
    try:
        reply = server.request("POST", "/v2/x/blobs/uploads/")
        assert reply.status == 405 and reply.codes == ["UNSUPPORTED"]
        assert server.request("GET", "/v2/").status == 200
    finally:
        server.stop()


def test_bad_configuration_is_reported(tmp_path: Path) -> None:
    (tmp_path / "htpasswd").write_text("alice:plaintext\n")
    result = subprocess.run([DOCKYARD, "registry", "serve", "--root", str(tmp_path / "r"),
                             "--addr", "127.0.0.1:0", "--htpasswd",
                             str(tmp_path / "htpasswd")], capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 1 and "bcrypt" in result.stderr
    result = subprocess.run([DOCKYARD, "registry", "serve", "--root", str(tmp_path / "r"),
                             "--token-realm", "http://127.0.0.1:1/token"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 1 and "--htpasswd" in result.stderr


@pytest.fixture
def token_registry(tmp_path: Path) -> Registry:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    htpasswd = tmp_path / "htpasswd"
    subprocess.run(["htpasswd", "-Bbc", str(htpasswd), "alice", "pw"], check=True,
                   capture_output=True)
    subprocess.run(["htpasswd", "-Bb", str(htpasswd), "bob", "pw2"], check=True,
                   capture_output=True)
    policy = tmp_path / "policy"
    policy.write_text("alice * *\nbob readonly/* pull\n")
    return start_registry(tmp_path / "root", "--addr", f"127.0.0.1:{port}", "--htpasswd",
                          str(htpasswd), "--token-realm", f"http://127.0.0.1:{port}/token",
                          "--token-service", "test-registry", "--access-policy", str(policy))


def _token(server: Registry, user: str, password: str, scope: str) -> str:
    reply = server.request("GET", f"/token?service=test-registry&scope={scope}",
                           headers={"Authorization": basic(user, password)})
    assert reply.status == 200, reply
    return reply.json()["token"]


def test_token_auth_raw(token_registry: Registry) -> None:
    server = token_registry
    try:
        realm = f'Bearer realm="http://{server.address}/token",service="test-registry"'
        base = server.request("GET", "/v2/")
        assert base.status == 401 and base.headers["www-authenticate"] == realm
        push = server.request("POST", "/v2/team/app/blobs/uploads/")
        assert push.status == 401 and push.codes == ["UNAUTHORIZED"]
        assert push.headers["www-authenticate"] == \
            realm + ',scope="repository:team/app:pull,push"'
        wrong = server.request("GET", "/token?service=test-registry&scope=repository:a:pull",
                               headers={"Authorization": basic("alice", "nope")})
        assert wrong.status == 401 and wrong.codes == ["UNAUTHORIZED"]
        token = _token(server, "alice", "pw", "repository:team/app:pull")
        bearer = {"Authorization": f"Bearer {token}"}
        assert server.request("GET", "/v2/", headers=bearer).status == 200
        # A pull token does not let its holder push: a new challenge names the scope.
        short = server.request("POST", "/v2/team/app/blobs/uploads/", headers=bearer)
        assert short.status == 401
        assert short.headers["www-authenticate"] == \
            realm + ',scope="repository:team/app:pull,push",error="insufficient_scope"'
        other_repo = server.request("GET", "/v2/team/other/tags/list", headers=bearer)
        assert other_repo.status == 401
        token = _token(server, "alice", "pw", "repository:team/app:pull,push")
        server.auth = f"Bearer {token}"
        digest = server.push_blob("team/app", b"content")
        assert server.request("GET", f"/v2/team/app/blobs/{digest}").body == b"content"
        forged = server.request("GET", "/v2/", headers={"Authorization": "Bearer a.b.c"})
        assert forged.status == 401 and 'error="invalid_token"' in forged.headers[
            "www-authenticate"]
        # bob may only pull readonly/*: a push is denied outright (403), not re-challenged.
        server.auth = None
        token = _token(server, "bob", "pw2", "repository:readonly/x:pull,push")
        denied = server.request("POST", "/v2/readonly/x/blobs/uploads/",
                                headers={"Authorization": f"Bearer {token}"})
        assert denied.status == 403 and denied.codes == ["DENIED"]
        pulled = server.request("GET", "/v2/readonly/x/tags/list",
                                headers={"Authorization": f"Bearer {token}"})
        assert pulled.status == 404 and pulled.codes == ["NAME_UNKNOWN"]
        # The catalog needs registry:catalog:*.
        token = _token(server, "alice", "pw", "registry:catalog:*")
        catalog = server.request("GET", "/v2/_catalog",
                                 headers={"Authorization": f"Bearer {token}"})
        assert catalog.json() == {"repositories": ["team/app"]}
        # The OAuth2 form containerd posts.
        form = server.request(
            "POST", "/token", b"grant_type=password&username=alice&password=pw"
            b"&service=test-registry&scope=repository:team/app:pull",
            {"Content-Type": "application/x-www-form-urlencoded"})
        assert form.status == 200 and form.json()["access_token"]
    finally:
        server.stop()


def test_content_negotiation(registry: Registry) -> None:
    amd, amd_data = registry.push_image("neg", "amd", b"amd64 layer")
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": amd, "size": len(amd_data),
         "platform": {"os": "linux", "architecture": "amd64"}}]}
    registry.request("PUT", "/v2/neg/manifests/multi", json.dumps(index).encode(),
                     {"Content-Type": OCI_INDEX})
    # Accepting the stored type, or anything: served as stored.
    for accept in (OCI_INDEX, "*/*", f"{OCI_MANIFEST}, {OCI_INDEX}"):
        got = registry.request("GET", "/v2/neg/manifests/multi", headers={"Accept": accept})
        assert got.headers["content-type"] == OCI_INDEX
    # An index to a client that takes only image manifests: its linux/amd64 manifest.
    single = registry.request("GET", "/v2/neg/manifests/multi", headers={
        "Accept": OCI_MANIFEST})
    assert single.status == 200 and single.body == amd_data
    assert single.headers["docker-content-digest"] == amd
    # An OCI manifest to a client that only knows Docker's: unknown to it.
    docker_only = registry.request("GET", "/v2/neg/manifests/amd", headers={
        "Accept": "application/vnd.docker.distribution.manifest.v2+json"})
    assert docker_only.status == 404 and docker_only.codes == ["MANIFEST_UNKNOWN"]


def test_refused_large_body_still_gets_its_answer(tmp_path: Path) -> None:
    htpasswd = tmp_path / "htpasswd"
    subprocess.run(["htpasswd", "-Bbc", str(htpasswd), "alice", "pw"], check=True,
                   capture_output=True)
    server = start_registry(tmp_path / "root", "--htpasswd", str(htpasswd))
    try:
        reply = server.request("POST", f"/v2/x/blobs/uploads/?digest={digest_of(b'x')}",
                               os.urandom(4 << 20))
        assert reply.status == 401 and reply.codes == ["UNAUTHORIZED"]
        server.auth = basic("alice", "pw")
        assert server.push_blob("x", b"after") == digest_of(b"after")
    finally:
        server.stop()


def test_kill_during_upload_leaves_nothing_visible(tmp_path: Path) -> None:
    server = start_registry(tmp_path / "root")
    data = os.urandom(2 << 20)
    digest = digest_of(data)
    try:
        with socket.create_connection(("127.0.0.1", server.port)) as client:
            client.sendall((f"POST /v2/k/blobs/uploads/?digest={digest} HTTP/1.1\r\n"
                            f"Host: x\r\nContent-Length: {len(data)}\r\n\r\n").encode())
            client.sendall(data[: 1 << 20])
            assert wait_until(lambda: any(
                (server.root / "uploads" / u / "data").stat().st_size > 0
                for u in _uploads(server)), 10)
            server.process.kill()   # kill -9 in the middle of the body
            server.process.wait(10)
    finally:
        server.stop()
    restarted = start_registry(tmp_path / "root")
    try:
        assert restarted.request("HEAD", f"/v2/k/blobs/{digest}").status == 404
        assert not [p for p in (restarted.root / "blobs").rglob("*") if p.is_file()]
        assert restarted.push_blob("k", data) == digest
        assert restarted.request("GET", f"/v2/k/blobs/{digest}").body == data
    finally:
        restarted.stop()


def test_rate_limit_and_access_log(tmp_path: Path) -> None:
    # One request every 4 s, bursts of one: the quick requests after the first are refused.
    server = start_registry(tmp_path / "root", "--rate-limit", "0.25", "--access-log")
    try:
        replies = [server.request("GET", "/v2/") for _ in range(4)]
        assert replies[0].status == 200
        limited = [reply for reply in replies if reply.status == 429]
        assert limited and limited[0].codes == ["TOOMANYREQUESTS"]
        assert int(limited[0].headers["retry-after"]) >= 1
    finally:
        server.stop()
    log = server.log_path.read_text()
    assert "GET /v2/ 200" in log and "GET /v2/ 429" in log
