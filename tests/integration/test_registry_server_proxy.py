"""Pull-through cache mode: a `dockyard registry serve --proxy-remote` in front of a
token-authenticated upstream, read through by skopeo, then serving with upstream gone."""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import tarfile
import threading
import time
from pathlib import Path

from tests.integration.test_registry_server_support import (
    FIXTURES,
    digest_of,
    skopeo,
    start_registry,
)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _fetch(port: int, path: str) -> tuple[int, bool]:
    """(status, whether the body arrived whole)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        try:
            response.read()
        except http.client.IncompleteRead:
            return response.status, False
        return response.status, True
    finally:
        connection.close()


def _pulled_digest(layout: Path) -> str:
    return json.loads((layout / "index.json").read_text())["manifests"][0]["digest"]


def test_pull_through_cache(tmp_path: Path) -> None:
    htpasswd = tmp_path / "htpasswd"
    subprocess.run(["htpasswd", "-Bbc", str(htpasswd), "mirror", "pw"], check=True,
                   capture_output=True)
    port = _free_port()
    upstream = start_registry(tmp_path / "upstream", "--addr", f"127.0.0.1:{port}",
                              "--htpasswd", str(htpasswd), "--token-realm",
                              f"http://127.0.0.1:{port}/token")
    cache = None
    try:
        for archive, ref in (("fixture-oci.tar", "lib/app:1.0"),
                             ("fixture-oci.tar", "lib/app:2.0"),
                             ("fixture-multiarch-oci.tar", "lib/multi:1.0")):
            skopeo("copy", "--all", "--dest-tls-verify=false", "--dest-creds", "mirror:pw",
                   f"oci-archive:{FIXTURES / archive}", f"docker://{upstream.address}/{ref}")
        cache = start_registry(tmp_path / "cache", "--proxy-remote",
                               f"http://127.0.0.1:{port}", "--proxy-username", "mirror",
                               "--proxy-password", "pw")
        first = tmp_path / "first"
        skopeo("copy", "--src-tls-verify=false", f"docker://{cache.address}/lib/app:1.0",
               f"oci:{first}:x")
        with tarfile.open(FIXTURES / "fixture-oci.tar") as tar:
            member = tar.extractfile("index.json")
            assert member is not None
            assert _pulled_digest(first) == json.load(member)["manifests"][0]["digest"]
        # The cache holds it now, verified.
        assert (tmp_path / "cache" / "blobs" / "sha256").is_dir()
        multi = tmp_path / "multi"
        skopeo("copy", "--all", "--src-tls-verify=false",
               f"docker://{cache.address}/lib/multi:1.0", f"oci:{multi}:x")
        assert sorted(cache.request("GET", "/v2/_catalog").json()["repositories"]) == [
            "lib/app", "lib/multi"]
        # Tags are upstream's (2.0 was never pulled through the cache).
        listed = skopeo("list-tags", "--tls-verify=false", f"docker://{cache.address}/lib/app")
        assert json.loads(listed.stdout)["Tags"] == ["1.0", "2.0"]
        # A cache takes no pushes.
        refused = cache.request("POST", "/v2/lib/app/blobs/uploads/")
        assert refused.status == 405 and refused.codes == ["UNSUPPORTED"]
        missing = cache.request("GET", "/v2/lib/app/manifests/nope")
        assert missing.status == 404 and missing.codes == ["MANIFEST_UNKNOWN"]
        app_digest = _pulled_digest(first)
        upstream.stop()
        # Upstream gone: what was pulled is still served, by tag and by digest.
        again = tmp_path / "again"
        skopeo("copy", "--src-tls-verify=false", f"docker://{cache.address}/lib/app:1.0",
               f"oci:{again}:x")
        assert _pulled_digest(again) == app_digest
        listed = skopeo("list-tags", "--tls-verify=false", f"docker://{cache.address}/lib/app")
        assert json.loads(listed.stdout)["Tags"] == ["1.0"]   # what the cache has
        skopeo("copy", "--all", "--src-tls-verify=false",
               f"docker://{cache.address}/lib/multi@{_pulled_digest(multi)}",
               f"oci:{tmp_path / 'by-digest'}:x")
        unknown = cache.request("GET", f"/v2/lib/app/blobs/{digest_of(b'never')}")
        assert unknown.status == 503 and unknown.codes == ["UNAVAILABLE"]
    finally:
        upstream.stop()
        if cache is not None:
            cache.stop()


def test_pull_through_the_reference_registry(tmp_path: Path) -> None:
    """Debian's docker-registry (distribution 2.8) as the upstream."""
    port = _free_port()
    config = tmp_path / "distribution.yml"
    config.write_text(
        "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n"
        f"storage:\n  filesystem:\n    rootdirectory: {tmp_path / 'upstream'}\n"
        f"http:\n  addr: 127.0.0.1:{port}\n")
    upstream = subprocess.Popen(["docker-registry", "serve", str(config)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cache = None
    try:
        source = f"oci-archive:{FIXTURES / 'fixture-multiarch-oci.tar'}"
        for _ in range(100):
            if skopeo("copy", "--all", "--dest-tls-verify=false", source,
                      f"docker://127.0.0.1:{port}/lib/multi:1.0", check=False
                      ).returncode == 0:
                break
            time.sleep(0.1)
        else:
            raise AssertionError("docker-registry did not start")
        cache = start_registry(tmp_path / "cache", "--proxy-remote",
                               f"http://127.0.0.1:{port}")
        out = tmp_path / "out"
        skopeo("copy", "--all", "--src-tls-verify=false",
               f"docker://{cache.address}/lib/multi:1.0", f"oci:{out}:x")
        with tarfile.open(FIXTURES / "fixture-multiarch-oci.tar") as tar:
            member = tar.extractfile("index.json")
            assert member is not None
            assert _pulled_digest(out) == json.load(member)["manifests"][0]["digest"]
    finally:
        upstream.terminate()
        upstream.wait(10)
        if cache is not None:
            cache.stop()


def test_cache_streams_one_download_to_many_clients(tmp_path: Path) -> None:
    upstream = start_registry(tmp_path / "upstream")
    cache = None
    try:
        data = os.urandom(24 << 20)
        digest = upstream.push_blob("big/blob", data)
        cache = start_registry(tmp_path / "cache", "--proxy-remote",
                               f"http://{upstream.address}")
        bodies: list[bytes] = []

        def fetch() -> None:
            bodies.append(cache.request("GET", f"/v2/big/blob/blobs/{digest}").body)

        threads = [threading.Thread(target=fetch) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert len(bodies) == 4 and all(body == data for body in bodies)
        head = cache.request("HEAD", f"/v2/big/blob/blobs/{digest}")
        assert head.status == 200 and head.headers["content-length"] == str(len(data))
        upstream.stop()
        assert cache.request("GET", f"/v2/big/blob/blobs/{digest}").body == data
        part = cache.request("GET", f"/v2/big/blob/blobs/{digest}",
                             headers={"Range": "bytes=5-9"})
        assert part.status == 206 and part.body == data[5:10]
        assert not os.listdir(tmp_path / "cache" / "uploads")
    finally:
        upstream.stop()
        if cache is not None:
            cache.stop()


def test_cache_refuses_corrupt_upstream_content(tmp_path: Path) -> None:
    upstream = start_registry(tmp_path / "upstream")
    cache = None
    try:
        data = os.urandom(3 << 20)
        digest = upstream.push_blob("bad/blob", data)
        # Corrupt the upstream's stored copy behind its back.
        stored = tmp_path / "upstream" / "blobs" / "sha256" / digest.split(":")[1]
        stored.chmod(0o644)
        with open(stored, "r+b") as handle:
            handle.seek(len(data) // 2)
            handle.write(b"corrupted!")
        cache = start_registry(tmp_path / "cache", "--proxy-remote",
                               f"http://{upstream.address}")
        for _ in range(2):   # the second request finds nothing cached either
            status, complete = _fetch(cache.port, f"/v2/bad/blob/blobs/{digest}")
            # Refused up front, or cut short before the end: never the whole bad body.
            assert status != 200 or not complete
        assert not list((tmp_path / "cache" / "blobs").rglob(digest.split(":")[1]))
    finally:
        upstream.stop()
        if cache is not None:
            cache.stop()
