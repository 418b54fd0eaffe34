"""Pull and push against Debian's docker-registry (distribution 2.8) on 127.0.0.1, with
the dockyard CLI, the docker CLI 28 and docker-py talking to a temporary dockyardd."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.compat.conftest import FIXTURES, Daemon
from tests.distribution_images import make_oci_layout
from tests.distribution_registry import Registry, running_registry

FIXTURE = "dockyard-fixture:1.0"


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    with running_registry(tmp_path_factory.mktemp("registry")) as instance:
        yield instance


@pytest.fixture(scope="module")
def auth_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    assert shutil.which("htpasswd"), "htpasswd (apache2-utils) is needed"
    with running_registry(tmp_path_factory.mktemp("registry-auth"),
                          {"alice": "s3cret"}) as instance:
        yield instance


@pytest.fixture
def docker_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "docker-config"
    directory.mkdir()
    monkeypatch.setenv("DOCKER_CONFIG", str(directory))
    return directory


def _name(registry: Registry, repo: str) -> str:
    return f"{registry.host}/{repo}-{uuid.uuid4().hex[:8]}"


def _skopeo(*args: str) -> None:
    assert shutil.which("skopeo"), "skopeo is needed"
    subprocess.run(["skopeo", *args], check=True, capture_output=True, timeout=120)


def _inspect(daemon: Daemon, ref: str) -> dict:
    return json.loads(daemon.docker("image", "inspect", ref, check=True).stdout)[0]


def test_dockyard_push_then_pull_by_tag_and_digest(daemon: Daemon, registry: Registry) -> None:
    name = _name(registry, "fixture")
    daemon.docker("tag", FIXTURE, f"{name}:1.0", check=True)
    pushed = daemon.dockyard("push", f"{name}:1.0", check=True).stdout
    assert f"The push refers to repository [{name}]" in pushed
    assert "Pushed" in pushed
    digest_line = pushed.strip().splitlines()[-1]
    assert digest_line.startswith("1.0: digest: sha256:") and " size: " in digest_line
    digest = digest_line.split()[2]
    # The registry holds the very manifest the image has here.
    assert f"{name}@{digest}" in _inspect(daemon, f"{name}:1.0")["RepoDigests"]
    again = daemon.dockyard("push", f"{name}:1.0", check=True).stdout
    assert "Layer already exists" in again and "Pushed" not in again

    daemon.docker("rmi", f"{name}:1.0", check=True)
    pulled = daemon.dockyard("pull", f"{name}:1.0", check=True).stdout
    repo_path = name.split("/", 1)[1]
    assert f"1.0: Pulling from {repo_path}" in pulled
    assert f"Digest: {digest}" in pulled
    assert f"Status: Downloaded newer image for {name}:1.0" in pulled
    assert pulled.strip().endswith(f"{name}:1.0")
    up_to_date = daemon.dockyard("pull", f"{name}:1.0", check=True).stdout
    assert f"Status: Image is up to date for {name}:1.0" in up_to_date
    run = daemon.docker("run", "--rm", f"{name}:1.0", check=True)
    assert run.stdout == "hello from fixture\n"

    by_digest = daemon.dockyard("pull", f"{name}@{digest}", check=True).stdout
    assert f"{digest}: Pulling from {repo_path}" in by_digest
    assert f"{name}@{digest}" in _inspect(daemon, f"{name}@{digest}")["RepoDigests"]
    quiet = daemon.dockyard("pull", "-q", f"{name}:1.0", check=True).stdout
    assert quiet == f"{name}:1.0\n"
    daemon.docker("rmi", f"{name}:1.0", f"{name}@{digest}")


def test_docker_cli_push_pull_and_cross_repository_mount(daemon: Daemon,
                                                         registry: Registry) -> None:
    first, second = _name(registry, "cli"), _name(registry, "cli")
    daemon.docker("tag", FIXTURE, f"{first}:v1", check=True)
    pushed = daemon.docker("push", f"{first}:v1", check=True).stdout
    assert "v1: digest: sha256:" in pushed
    daemon.docker("tag", FIXTURE, f"{second}:v1", check=True)
    mounted = daemon.docker("push", f"{second}:v1", check=True).stdout
    assert "Mounted from " in mounted and "Pushed" not in mounted, mounted
    daemon.docker("rmi", f"{first}:v1", f"{second}:v1", check=True)
    pulled = daemon.docker("pull", f"{second}:v1", check=True)
    assert f"Status: Downloaded newer image for {second}:v1" in pulled.stdout
    missing = daemon.docker("pull", f"{second}:nope")
    assert missing.returncode == 1
    assert (f"Error response from daemon: manifest for {second}:nope not found: "
            "manifest unknown: manifest unknown") in missing.stderr
    daemon.docker("rmi", f"{second}:v1")


def test_docker_py_push_and_pull(daemon: Daemon, registry: Registry) -> None:
    import docker

    name = _name(registry, "py")
    client = docker.DockerClient(base_url=daemon.host)
    try:
        client.images.get(FIXTURE).tag(name, "t1")
        lines = list(client.images.push(name, "t1", stream=True, decode=True))
        assert any(line.get("status") in ("Pushed", "Layer already exists")
                   or line.get("status", "").startswith("Mounted from") for line in lines)
        assert not any("error" in line for line in lines)
        client.images.remove(f"{name}:t1")
        image = client.images.pull(name, tag="t1")
        assert f"{name}:t1" in image.tags
        client.images.remove(f"{name}:t1")
    finally:
        client.close()


def test_pull_platform_of_a_multi_arch_index(daemon: Daemon, registry: Registry) -> None:
    name = _name(registry, "multi")
    _skopeo("copy", "--all", "--dest-tls-verify=false",
            f"oci-archive:{FIXTURES / 'fixture-multiarch-oci.tar'}", f"docker://{name}:1.0")
    daemon.dockyard("pull", "--platform", "linux/arm64", f"{name}:1.0", check=True)
    arm = _inspect(daemon, f"{name}:1.0")
    assert (arm["Architecture"], arm.get("Variant")) == ("arm64", "v8")
    daemon.docker("pull", "--platform", "linux/amd64", f"{name}:1.0", check=True)
    amd = _inspect(daemon, f"{name}:1.0")
    assert amd["Architecture"] == "amd64"
    # Both point at the index: the digest a registry gives the name.
    assert arm["RepoDigests"] == amd["RepoDigests"]
    assert daemon.docker("run", "--rm", f"{name}:1.0", check=True).stdout == "x86_64\n"
    wrong = daemon.dockyard("pull", "--platform", "linux/s390x", f"{name}:1.0")
    assert wrong.returncode != 0 and "no matching manifest for linux/s390x" in wrong.stderr
    # Both platforms are here: the index goes up whole, with the same digest.
    copy = _name(registry, "multi-copy")
    daemon.docker("tag", f"{name}:1.0", f"{copy}:2", check=True)
    pushed = daemon.dockyard("push", f"{copy}:2", check=True).stdout
    index_digest = amd["RepoDigests"][0].partition("@")[2]
    assert f"2: digest: {index_digest}" in pushed
    raw = subprocess.run(["skopeo", "inspect", "--tls-verify=false", "--raw",
                          f"docker://{copy}:2"], capture_output=True, check=True).stdout
    assert len(json.loads(raw)["manifests"]) == 2
    # --platform: that platform's manifest alone under the tag.
    only = daemon.dockyard("push", "--platform", "linux/arm64", f"{copy}:2", check=True).stdout
    arm_digest = json.loads(raw)["manifests"][1]["digest"]
    assert f"2: digest: {arm_digest}" in only
    daemon.docker("rmi", f"{name}:1.0", f"{copy}:2")


def test_basic_auth_login_push_pull_logout(daemon: Daemon, auth_registry: Registry,
                                           docker_config: Path) -> None:
    name = _name(auth_registry, "auth")
    daemon.docker("tag", FIXTURE, f"{name}:1", check=True)
    refused = daemon.dockyard("push", f"{name}:1")
    assert refused.returncode != 0 and "no basic auth credentials" in refused.stderr
    wrong = daemon.dockyard("login", "-u", "alice", "--password-stdin", auth_registry.host)
    assert wrong.returncode != 0
    bad = subprocess.run([str(Path(os.sys.executable).parent / "dockyard"), "-H", daemon.host,
                          "login", "-u", "alice", "--password-stdin", auth_registry.host],
                         input="wrong\n", capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and "401 Unauthorized" in bad.stderr
    assert not (docker_config / "config.json").exists()
    good = daemon.docker("login", "-u", "alice", "--password-stdin", auth_registry.host,
                         input="s3cret\n")
    assert good.returncode == 0 and "Login Succeeded" in good.stdout, good.stderr
    auths = json.loads((docker_config / "config.json").read_text())["auths"]
    assert auths[auth_registry.host]["auth"] == "YWxpY2U6czNjcmV0"  # alice:s3cret
    assert "Pushed" in daemon.dockyard("push", f"{name}:1", check=True).stdout
    daemon.docker("rmi", f"{name}:1", check=True)
    assert "Downloaded newer image" in daemon.docker("pull", f"{name}:1", check=True).stdout
    out = daemon.dockyard("logout", auth_registry.host, check=True).stdout
    assert out == f"Removing login credentials for {auth_registry.host}\n"
    assert json.loads((docker_config / "config.json").read_text())["auths"] == {}
    daemon.docker("rmi", f"{name}:1")
    anonymous = daemon.dockyard("pull", f"{name}:1")
    assert anonymous.returncode == 1 and "no basic auth credentials" in anonymous.stderr


def test_corrupted_blob_is_refused_and_the_pull_resumes(daemon: Daemon, registry: Registry,
                                                        tmp_path: Path) -> None:
    name = _name(registry, "corrupt")
    layout = make_oci_layout(tmp_path / "oci", "v1", [
        {"data/one": os.urandom(300_000)}, {"data/two": os.urandom(6 << 20)}])
    _skopeo("copy", "--dest-tls-verify=false", f"oci:{layout}:v1", f"docker://{name}:v1")
    request = urllib.request.Request(
        f"http://{name.split('/')[0]}/v2/{name.split('/', 1)[1]}/manifests/v1",
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        manifest = json.loads(response.read())
    last = manifest["layers"][-1]["digest"].partition(":")[2]
    data = registry.storage / "docker/registry/v2/blobs/sha256" / last[:2] / last / "data"
    original = data.read_bytes()
    data.write_bytes(original[:-10] + b"X" * 10)
    failed = daemon.dockyard("pull", f"{name}:v1")
    assert failed.returncode == 1
    assert f"filesystem layer verification failed for digest sha256:{last}" in failed.stderr
    assert daemon.docker("image", "inspect", f"{name}:v1").returncode != 0
    content = daemon.data_root / "image" / "content" / "blobs" / "sha256"
    assert not (content / last).exists()
    assert not list((daemon.data_root / "image" / "content" / "ingest").iterdir())
    # The layer unpacked from the corrupted download was discarded, not published.
    assert not list((daemon.data_root / "snapshot" / "tmp").iterdir())
    data.write_bytes(original)
    resumed = daemon.dockyard("pull", f"{name}:v1", check=True).stdout
    lines = resumed.splitlines()
    # Only the layer that failed is downloaded again.
    assert [line for line in lines if "Verifying Checksum" in line] == [
        f"{last[:12]}: Verifying Checksum"]
    assert "Status: Downloaded newer image" in resumed
    daemon.docker("rmi", f"{name}:v1")


def test_run_pulls_a_missing_image(daemon: Daemon, registry: Registry) -> None:
    name = _name(registry, "run")
    daemon.docker("tag", FIXTURE, f"{name}:1.0", check=True)
    daemon.dockyard("push", f"{name}:1.0", check=True)
    daemon.docker("rmi", f"{name}:1.0", check=True)
    never = daemon.dockyard("run", "--rm", "--pull", "never", f"{name}:1.0")
    assert never.returncode == 125 and "No such image" in never.stderr
    run = daemon.dockyard("run", "--rm", f"{name}:1.0", check=True)
    assert run.stdout == "hello from fixture\n"
    assert f"Unable to find image '{name}:1.0' locally" in run.stderr
    assert "Status: Downloaded newer image" in run.stderr
    docker_run = daemon.docker("run", "--rm", "--pull", "always", f"{name}:1.0", check=True)
    assert "Status: Image is up to date" in docker_run.stderr
    daemon.docker("rmi", f"{name}:1.0")


def test_push_all_tags_and_pull_all_tags(daemon: Daemon, registry: Registry) -> None:
    name = _name(registry, "tags")
    for tag in ("a", "b"):
        daemon.docker("tag", FIXTURE, f"{name}:{tag}", check=True)
    pushed = daemon.dockyard("push", "--all-tags", name, check=True).stdout
    assert "a: digest: sha256:" in pushed and "b: digest: sha256:" in pushed
    daemon.docker("rmi", f"{name}:a", f"{name}:b", check=True)
    pulled = daemon.dockyard("pull", "--all-tags", name, check=True).stdout
    assert "a: Pulling from" in pulled and "b: Pulling from" in pulled
    tags = [tag for tag in _inspect(daemon, f"{name}:a")["RepoTags"] if tag.startswith(name)]
    assert sorted(tags) == [f"{name}:a", f"{name}:b"]
    daemon.docker("rmi", f"{name}:a", f"{name}:b")


def test_distribution_inspect_and_manifest_inspect(daemon: Daemon, registry: Registry) -> None:
    name = _name(registry, "dist")
    daemon.docker("tag", FIXTURE, f"{name}:1", check=True)
    daemon.dockyard("push", f"{name}:1", check=True)
    import docker

    client = docker.DockerClient(base_url=daemon.host)
    try:
        data = client.images.get_registry_data(f"{name}:1")
        assert data.id.startswith("sha256:")
        assert data.has_platform("linux/amd64")
    finally:
        client.close()
    shown = json.loads(daemon.dockyard("manifest", "inspect", f"{name}:1", check=True).stdout)
    assert shown["schemaVersion"] == 2 and len(shown["layers"]) == 5
    verbose = json.loads(daemon.dockyard("manifest", "inspect", "--verbose", f"{name}:1",
                                         check=True).stdout)
    assert verbose["Ref"] == f"{name}:1"
    assert verbose["Descriptor"]["digest"] == data.id
    daemon.docker("rmi", f"{name}:1")


_FAKE_HELPER = """#!/bin/sh
# A credential helper keeping one JSON file per server in $FAKE_HELPER_DIR.
dir="$FAKE_HELPER_DIR"
input=$(cat)
case "$1" in
  store) server=$(printf '%s' "$input" | sed 's/.*"ServerURL": *"\\([^"]*\\)".*/\\1/')
         printf '%s' "$input" > "$dir/$(printf '%s' "$server" | tr ':/' '__')" ;;
  get)   file="$dir/$(printf '%s' "$input" | tr ':/' '__')"
         [ -f "$file" ] || { echo "credentials not found in native keychain"; exit 1; }
         cat "$file" ;;
  erase) rm -f "$dir/$(printf '%s' "$input" | tr ':/' '__')" ;;
esac
"""


def test_login_through_a_credential_helper(daemon: Daemon, auth_registry: Registry,
                                           docker_config: Path, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir, store = tmp_path / "bin", tmp_path / "store"
    bin_dir.mkdir()
    store.mkdir()
    helper = bin_dir / "docker-credential-fake"
    helper.write_text(_FAKE_HELPER)
    helper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_HELPER_DIR", str(store))
    (docker_config / "config.json").write_text(json.dumps({"credsStore": "fake"}))
    login = subprocess.run([str(Path(os.sys.executable).parent / "dockyard"), "-H",
                            daemon.host, "login", "-u", "alice", "--password-stdin",
                            auth_registry.host], input="s3cret\n", capture_output=True,
                           text=True, timeout=60)
    assert login.returncode == 0, login.stderr
    config = json.loads((docker_config / "config.json").read_text())
    assert config["auths"] == {auth_registry.host: {}}
    kept = json.loads((store / auth_registry.host.replace(":", "_")).read_text())
    assert (kept["Username"], kept["Secret"]) == ("alice", "s3cret")
    name = _name(auth_registry, "helper")
    daemon.docker("tag", FIXTURE, f"{name}:1", check=True)
    assert "digest: sha256:" in daemon.dockyard("push", f"{name}:1", check=True).stdout
    daemon.dockyard("logout", auth_registry.host, check=True)
    assert not list(store.iterdir())
    assert json.loads((docker_config / "config.json").read_text())["auths"] == {}
    daemon.docker("rmi", f"{name}:1")


def test_import_from_a_url(daemon: Daemon, tmp_path: Path) -> None:
    import http.server
    import io
    import tarfile
    import threading

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        busybox = Path("/bin/busybox").read_bytes()
        info = tarfile.TarInfo("bin/busybox")
        info.size, info.mode = len(busybox), 0o755
        tar.addfile(info, io.BytesIO(busybox))
        note = b"imported over http\n"
        info = tarfile.TarInfo("note.txt")
        info.size = len(note)
        tar.addfile(info, io.BytesIO(note))
    (tmp_path / "rootfs.tar").write_bytes(buffer.getvalue())

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, directory=str(tmp_path), **kwargs)  # type: ignore[misc]

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    name = f"imported-{uuid.uuid4().hex[:8]}"
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/rootfs.tar"
        done = daemon.docker("import", url, f"{name}:1", check=True)
        assert done.stdout.strip().startswith("sha256:")
        run = daemon.docker("run", "--rm", f"{name}:1", "/bin/busybox", "cat", "/note.txt",
                            check=True)
        assert run.stdout == "imported over http\n"
        missing = daemon.dockyard("import", url.replace("rootfs", "nothing"), f"{name}:2")
        assert missing.returncode != 0 and "404" in missing.stderr
    finally:
        server.shutdown()
        server.server_close()
        daemon.docker("rmi", f"{name}:1")


def test_pull_progress_on_a_terminal(daemon: Daemon, registry: Registry,
                                     tmp_path: Path) -> None:
    from tests.host import run_in_terminal

    name = _name(registry, "tty")
    layout = make_oci_layout(tmp_path / "oci", "v1", [{"data/big": os.urandom(3 << 20)}],
                             gzip_layers=True)
    _skopeo("copy", "--dest-tls-verify=false", f"oci:{layout}:v1", f"docker://{name}:v1")
    done = run_in_terminal([str(Path(os.sys.executable).parent / "dockyard"), "-H",
                            daemon.host, "pull", f"{name}:v1"])
    assert done.returncode == 0, done.stdout
    assert "\x1b[2K" in done.stdout  # per-layer lines rewritten in place
    assert "Pull complete" in done.stdout and "Downloading" in done.stdout
    assert f"Status: Downloaded newer image for {name}:v1" in done.stdout
    daemon.docker("rmi", f"{name}:v1")


@pytest.mark.parametrize("archive", ["fixture-oci-zstd.tar", "fixture-oci.tar"])
def test_pull_zstd_and_gzip_layers(daemon: Daemon, tmp_path: Path, archive: str) -> None:
    # A registry of its own: skopeo would otherwise reuse the blobs of the other
    # compression that it remembers being in the shared one.
    with running_registry(tmp_path / "registry") as registry:
        _pull_compressed(daemon, registry, archive)


def _pull_compressed(daemon: Daemon, registry: Registry, archive: str) -> None:
    name = _name(registry, "compressed")
    suffix = "zstd" if "zstd" in archive else "gzip"
    _skopeo("copy", "--dest-tls-verify=false", f"oci-archive:{FIXTURES / archive}",
            f"docker://{name}:1")
    raw = subprocess.run(["skopeo", "inspect", "--tls-verify=false", "--raw",
                          f"docker://{name}:1"], capture_output=True, check=True).stdout
    assert all(layer["mediaType"].endswith(suffix) for layer in json.loads(raw)["layers"])
    daemon.dockyard("pull", f"{name}:1", check=True)
    run = daemon.docker("run", "--rm", f"{name}:1", "cat", "/data/sub/c", check=True)
    assert run.stdout == "three\n"
    daemon.docker("rmi", f"{name}:1")


def test_pull_killed_midway_resumes_after_restart(registry: Registry, tmp_path: Path) -> None:
    import http.client
    import socket

    name = _name(registry, "killed")
    layout = make_oci_layout(tmp_path / "oci", "v1", [
        {f"data/part{i}": os.urandom(16 << 20)} for i in range(4)])
    _skopeo("copy", "--dest-tls-verify=false", f"oci:{layout}:v1", f"docker://{name}:v1")
    own = Daemon(tmp_path / "daemon")
    own.root.mkdir()
    try:
        own.start()

        class UnixConnection(http.client.HTTPConnection):
            def connect(self) -> None:
                self.sock = socket.socket(socket.AF_UNIX)
                self.sock.connect(str(own.socket))

        connection = UnixConnection("localhost", timeout=60)
        repo, tag = name, "v1"
        connection.request("POST", f"/images/create?fromImage={repo}&tag={tag}")
        response = connection.getresponse()
        completed = []
        for line in response:
            message = json.loads(line)
            if message.get("status") == "Download complete":
                completed.append(message["id"])
                break  # one layer is in: the daemon dies now
        own.stop(kill=True)
        connection.close()
        own.start()
        ingest = own.data_root / "image" / "content" / "ingest"
        assert not list(ingest.iterdir())  # half-written blobs were dropped
        # Layers being unpacked (concurrently, in staging) at the kill are gone; the ones
        # published are complete.
        snapshot = own.data_root / "snapshot"
        assert not list((snapshot / "tmp").iterdir())
        for layer in (snapshot / "layers").iterdir():
            record = json.loads((layer / "layer.json").read_text())
            assert (layer / "diff").is_dir() and record["chain_id"].startswith("sha256:")
        assert own.docker("image", "inspect", f"{name}:v1").returncode != 0
        resumed = own.dockyard("pull", f"{name}:v1", check=True).stdout
        downloaded = {line.split(":")[0] for line in resumed.splitlines()
                      if line.endswith("Verifying Checksum")}
        assert completed[0] not in downloaded  # kept from before the kill
        run = own.docker("run", "--rm", f"{name}:v1", "busybox", "ls", "/data", check=True)
        assert run.stdout.split() == ["part0", "part1", "part2", "part3"]
    finally:
        own.cleanup()


def test_docker_py_login_checks_the_credentials(daemon: Daemon, auth_registry: Registry,
                                                docker_config: Path) -> None:
    import docker

    client = docker.DockerClient(base_url=daemon.host)
    try:
        with pytest.raises(docker.errors.APIError) as refused:
            client.login("alice", "wrong", registry=auth_registry.host, reauth=True)
        assert refused.value.status_code == 401
        assert "401 Unauthorized" in str(refused.value)
        answer = client.login("alice", "s3cret", registry=auth_registry.host, reauth=True)
        assert answer["Status"] == "Login Succeeded"
    finally:
        client.close()


def test_pull_of_many_layers_unpacked_concurrently(daemon: Daemon, registry: Registry,
                                                   tmp_path: Path) -> None:
    # More layers than unpack at once (MAX_CONCURRENT_UNPACKS), gzip and plain, each
    # replacing a file of the ones below: the merged view shows the topmost.
    name = _name(registry, "many")
    for gzip_layers, tag in ((True, "gz"), (False, "plain")):
        layout = make_oci_layout(tmp_path / f"oci-{tag}", tag, [
            {"data/common": f"{i}\n".encode(), f"data/only{i}": os.urandom(200_000)}
            for i in range(9)], gzip_layers=gzip_layers)
        _skopeo("copy", "--dest-tls-verify=false", f"oci:{layout}:{tag}",
                f"docker://{name}:{tag}")
        pulled = daemon.dockyard("pull", f"{name}:{tag}", check=True).stdout
        assert pulled.count("Pull complete") + pulled.count("Already exists") == 10
        run = daemon.docker("run", "--rm", f"{name}:{tag}", "busybox", "sh", "-c",
                            "cat /data/common; ls /data", check=True)
        assert run.stdout.split() == ["8", "common", *(f"only{i}" for i in range(9))]
        daemon.docker("rmi", f"{name}:{tag}", check=True)
    assert not list((daemon.data_root / "snapshot" / "tmp").iterdir())
