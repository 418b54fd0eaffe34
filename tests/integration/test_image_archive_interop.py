"""Archives saved by dockyard are read by the real tools (skopeo, podman), and archives
those tools write are loaded by dockyard, with the same image IDs and manifests."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.image import ContentStore, LoadedImage, SaveImage, load_archive, save_archive
from tests.conftest import require_root

FIXTURES = Path("/work/shared/fixtures")
SINGLE = ["fixture-docker20-save", "fixture-oci", "fixture-oci-zstd"]
CONTAINERS_DIR = Path("/var/lib/containers")
BLOB_CACHE = CONTAINERS_DIR / "cache" / "blob-info-cache-v1.boltdb"


def run(*args: str) -> str:
    result = subprocess.run(args, capture_output=True, text=True, timeout=180, check=False)
    assert result.returncode == 0, f"{args} failed ({result.returncode}): {result.stderr}"
    return result.stdout


@pytest.fixture(autouse=True)
def _remove_blob_info_cache() -> Iterator[None]:
    # skopeo and podman, as root, record blob digests in a cache under /var/lib/containers
    # whatever --root says; remove it if these tests are what created it.
    dir_existed, cache_existed = CONTAINERS_DIR.exists(), BLOB_CACHE.exists()
    yield
    if not dir_existed:
        shutil.rmtree(CONTAINERS_DIR, ignore_errors=True)
    elif not cache_existed:
        BLOB_CACHE.unlink(missing_ok=True)


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, LoadedImage]]:
    """Each fixture loaded into a store and saved again by dockyard."""
    directory = tmp_path_factory.mktemp("saved")
    store = ContentStore(directory / "content")
    result = {}
    for name in [*SINGLE, "fixture-multiarch-oci"]:
        with (FIXTURES / f"{name}.tar").open("rb") as source:
            [image] = load_archive(source, store)
        path = directory / f"{name}.tar"
        with path.open("wb") as out:
            save_archive([SaveImage.from_loaded(image)], out, store)
        result[name] = (path, image)
    return result


def sha256_file(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("name", SINGLE)
def test_skopeo_reads_the_docker_archive(name: str,
                                         saved: dict[str, tuple[Path, LoadedImage]]) -> None:
    path, image = saved[name]
    raw = json.loads(run("skopeo", "inspect", "--raw", f"docker-archive:{path}"))
    assert raw["config"]["digest"] == image.id
    config = json.loads(run("skopeo", "inspect", "--config", f"docker-archive:{path}"))
    assert config["config"]["Labels"] == {"org.example.fixture": "dockyard"}
    assert config["rootfs"]["diff_ids"] == list(image.diff_ids)
    inspect = json.loads(run("skopeo", "inspect", f"docker-archive:{path}"))
    assert inspect["Layers"] == list(image.diff_ids)  # docker-archive layers are the diffs
    assert inspect["Env"] == ["PATH=/bin", "GREETING=hello from fixture"]


@pytest.mark.parametrize("name", SINGLE)
def test_skopeo_copies_the_oci_archive(name: str, saved: dict[str, tuple[Path, LoadedImage]],
                                       tmp_path: Path) -> None:
    path, image = saved[name]
    destination = tmp_path / "dir"
    run("skopeo", "copy", "--quiet", f"oci-archive:{path}:dockyard-fixture:1.0",
        f"dir:{destination}")
    # The manifest is copied unchanged: same digest as dockyard's.
    assert sha256_file(destination / "manifest.json") == image.manifest_digest
    assert sha256_file(destination / image.id.hex) == image.id
    for layer in image.layers:
        assert sha256_file(destination / layer.digest.hex) == layer.digest


def test_skopeo_copies_the_multiarch_index(saved: dict[str, tuple[Path, LoadedImage]],
                                           tmp_path: Path) -> None:
    path, image = saved["fixture-multiarch-oci"]
    raw = run("skopeo", "inspect", "--raw", f"oci-archive:{path}:multi:1.0")
    assert "sha256:" + hashlib.sha256(raw.encode()).hexdigest() == image.target.digest
    run("skopeo", "copy", "--quiet", "--all", f"oci-archive:{path}:multi:1.0",
        f"dir:{tmp_path / 'dir'}")
    assert sha256_file(tmp_path / "dir" / "manifest.json") == image.target.digest


def test_dockyard_loads_what_skopeo_writes(tmp_path: Path) -> None:
    written = tmp_path / "skopeo-docker-archive.tar"
    run("skopeo", "copy", "--quiet", f"oci-archive:{FIXTURES / 'fixture-oci.tar'}"
        ":dockyard-fixture:1.0", f"docker-archive:{written}:dockyard-fixture:1.0")
    with written.open("rb") as source:
        [image] = load_archive(source, ContentStore(tmp_path / "content"))
    assert [t.familiar() for t in image.repo_tags] == ["dockyard-fixture:1.0"]
    assert len(image.layers) == 5
    assert image.image_config.config.working_dir == "/app"


class Podman:
    """podman on a private storage (vfs: no overlay mounts to leave behind)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.base = ["podman", "--root", str(root / "storage"), "--runroot", str(root / "run"),
                     "--storage-driver", "vfs"]

    def __call__(self, *args: str) -> str:
        return run(*self.base, *args)


@pytest.fixture
def podman() -> Iterator[Podman]:
    require_root()
    # Short: podman refuses a runroot path longer than 50 characters.
    instance = Podman(Path(tempfile.mkdtemp(prefix="dockyard-podman-")))
    yield instance
    subprocess.run([*instance.base, "rmi", "--all", "--force"], capture_output=True,
                   timeout=120, check=False)
    shutil.rmtree(instance.root, ignore_errors=True)
    assert str(instance.root) not in Path("/proc/self/mountinfo").read_text()


@pytest.mark.parametrize("name", [*SINGLE, "fixture-multiarch-oci"])
def test_podman_loads_the_archive(name: str, saved: dict[str, tuple[Path, LoadedImage]],
                                  podman: Podman, tmp_path: Path) -> None:
    path, image = saved[name]
    tag = "multi:1.0" if "multiarch" in name else "dockyard-fixture:1.0"
    output = podman("load", "--input", str(path))
    assert f"Loaded image: docker.io/library/{tag}" in output
    listing = podman("images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}")
    assert f"docker.io/library/{tag} {image.id.hex[:12]}" in listing.splitlines()

    # And back: what podman saves, in either format, dockyard loads as the same image.
    # (podman 4.3 cannot write zstd layers as a docker-archive: its limitation, not ours.)
    formats = ["oci-archive"] if "zstd" in name else ["oci-archive", "docker-archive"]
    for format_name in formats:
        out = tmp_path / f"podman-{format_name}.tar"
        podman("save", "--quiet", "--format", format_name, "--output", str(out), tag)
        with out.open("rb") as source:
            [again] = load_archive(source, ContentStore(tmp_path / f"content-{format_name}"))
        assert again.id == image.id
        assert again.diff_ids == image.diff_ids
        assert [t.familiar() for t in again.repo_tags] == [tag]


def test_saved_archive_streams_through_a_pipe(saved: dict[str, tuple[Path, LoadedImage]],
                                              tmp_path: Path) -> None:
    # `docker load < file` and `curl | docker load`: no seeking on the input.
    path, image = saved["fixture-oci-zstd"]
    with subprocess.Popen(["cat", str(path)], stdout=subprocess.PIPE) as cat:
        assert cat.stdout is not None
        [again] = load_archive(cat.stdout, ContentStore(tmp_path / "content"))
    assert again.manifest_digest == image.manifest_digest
    buffer = io.BytesIO()
    save_archive([SaveImage.from_loaded(again)], buffer, ContentStore(tmp_path / "content"))
    assert buffer.getvalue() == path.read_bytes()
