"""Image archives: every fixture loads as real tools wrote it, saves round-trip, and broken
or hostile archives are refused without leaving anything behind."""

from __future__ import annotations

import bz2
import copy
import gzip
import io
import json
import lzma
import os
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest
import zstandard

from dockyard.image import (
    ArchiveError,
    BlobNotFoundError,
    ContentStore,
    Descriptor,
    DigestMismatchError,
    LoadedImage,
    NoMatchingPlatformError,
    SaveImage,
    build_index,
    host_platform,
    load_archive,
    mediatypes,
    parse_manifest,
    parse_platform,
    save_archive,
    sha256_of,
)

FIXTURES = Path("/work/shared/fixtures")
DOCKER20 = FIXTURES / "fixture-docker20-save.tar"
OCI = FIXTURES / "fixture-oci.tar"
OCI_ZSTD = FIXTURES / "fixture-oci-zstd.tar"
MULTIARCH = FIXTURES / "fixture-multiarch-oci.tar"
SINGLE = [DOCKER20, OCI, OCI_ZSTD]
# The image ID `docker save` recorded (its config file is named after it).
DOCKER20_ID = "sha256:c05f65ccdd323ae206dc00d5cc0837e404b5b280b39105a75ff6dd79b8649eb4"
# skopeo rewrote that config in OCI form (no container_config, docker_version...), so the
# OCI fixtures carry another config, hence another image ID, with the same layers.
OCI_ID = "sha256:fb99efa9e60033babefb2934e61123045dfa267faf9b88fcefd688a5b22c9818"
DIFF_IDS = (
    "sha256:b601107d0115ff9e029810366c4e95bf4bc18e9a6994bd8390e6ee57ce39d8ae",
    "sha256:bb6cdb4168789f57c5ffb3081e6692af66f9c93be9b27b13536ef8e5bf6ead62",
    "sha256:8539f4a261515900fd9a7fee2d57467efb5e3c59d8f5f65a71ec9b0832cac1af",
    "sha256:7e92fc7ee2a5da19040483e6ee9438e732e1afcdb0c6ff6445ed735eb3718fdf",
    "sha256:eb0c56a2c5bc02b1b2a18e85ddf0ddf19e69c7660d1320699f1e82a66bffffc4",
)
MULTI_AMD64 = "sha256:3e1ecbadee19754cb18135a36873f8a843aeb5f186275bbf47d7142c5c79b2cc"
MULTI_ARM64 = "sha256:abc27a4849ca063f31340057d9a944569236f9851f84dcdcf4900b91d1d3499f"
MULTI_ARM64_CONFIG = "sha256:5a5dbe77b23119d146f690fc841fd298f4e7b4bd277119788c76bbe59ee9bda5"

Entry = tuple[tarfile.TarInfo, bytes]


# -- helpers to take archives apart and build variants ------------------------------------

def entries_of(source: Path | bytes) -> list[Entry]:
    data = source.read_bytes() if isinstance(source, Path) else source
    result = []
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for info in tar.getmembers():
            handle = tar.extractfile(info) if info.isreg() else None
            result.append((copy.copy(info), handle.read() if handle else b""))
    return result


def build(entries: list[Entry]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in entries:
            info = copy.copy(info)
            if info.isreg():
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.addfile(info)
    return out.getvalue()


def member(name: str, data: bytes = b"", kind: bytes = tarfile.REGTYPE,
           link: str = "") -> Entry:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    info.size = len(data)
    return info, data


def replaced(entries: list[Entry], name: str, data: bytes) -> list[Entry]:
    assert any(info.name == name for info, _ in entries), name
    return [(info, data if info.name == name else old) for info, old in entries]


def without(entries: list[Entry], name: str) -> list[Entry]:
    assert any(info.name == name for info, _ in entries), name
    return [(info, data) for info, data in entries if info.name != name]


def content(entries: list[Entry], name: str) -> bytes:
    return next(data for info, data in entries if info.name == name)


def snapshot(store: ContentStore) -> tuple[set[str], list[str]]:
    return set(store.digests()), sorted(os.listdir(store.root / "ingest"))


def load(source: Path | bytes, store: ContentStore, **kwargs: object) -> list[LoadedImage]:
    data = source.read_bytes() if isinstance(source, Path) else source
    return load_archive(io.BytesIO(data), store, **kwargs)  # type: ignore[arg-type]


def save(images: list[LoadedImage], store: ContentStore) -> bytes:
    out = io.BytesIO()
    save_archive([SaveImage.from_loaded(image) for image in images], out, store)
    return out.getvalue()


@pytest.fixture
def store(tmp_path: Path) -> ContentStore:
    return ContentStore(tmp_path / "content")


# -- loading the fixtures -----------------------------------------------------------------

@pytest.mark.parametrize("fixture", SINGLE, ids=lambda p: p.name)
def test_load_single_platform_fixtures(fixture: Path, store: ContentStore) -> None:
    [image] = load(fixture, store)
    assert [str(t) for t in image.repo_tags] == ["docker.io/library/dockyard-fixture:1.0"]
    assert [t.familiar() for t in image.repo_tags] == ["dockyard-fixture:1.0"]
    assert len(image.layers) == 5
    assert image.diff_ids == DIFF_IDS
    assert str(image.platform) == "linux/amd64"
    container = image.image_config.config
    assert container.labels == {"org.example.fixture": "dockyard"}
    assert container.exposed_ports == ("8080/tcp",)
    assert container.env == ("PATH=/bin", "GREETING=hello from fixture")
    assert container.cmd == ("sh", "-c", "echo $GREETING")
    assert container.working_dir == "/app"
    # Everything the image needs is in the store, verified, and nothing else was kept.
    assert set(store.digests()) == set(image.blobs)
    for digest in image.blobs:
        store.read_bytes(digest)
    assert parse_manifest(image.manifest_bytes).config == image.config
    assert sha256_of(image.manifest_bytes) == image.manifest_digest
    assert snapshot(store)[1] == []


def test_same_image_in_every_format(store: ContentStore) -> None:
    docker20, oci, zstd = (load(fixture, store)[0] for fixture in SINGLE)
    assert docker20.id == DOCKER20_ID  # the ID `docker load` would show
    assert oci.id == zstd.id == OCI_ID
    assert docker20.diff_ids == oci.diff_ids == zstd.diff_ids == DIFF_IDS
    assert [layer.media_type for layer in zstd.layers] == [mediatypes.OCI_LAYER_ZSTD] * 5
    assert [layer.media_type for layer in oci.layers] == [mediatypes.OCI_LAYER_GZIP] * 5
    assert oci.manifest_digest != zstd.manifest_digest  # different compressed layers


def test_legacy_layers_are_stored_uncompressed_with_a_manifest(store: ContentStore) -> None:
    [image] = load(DOCKER20, store)
    assert image.target == image.manifest
    assert image.manifest.media_type == mediatypes.OCI_MANIFEST
    assert image.config.media_type == mediatypes.OCI_CONFIG
    assert [layer.media_type for layer in image.layers] == [mediatypes.OCI_LAYER] * 5
    assert tuple(layer.digest for layer in image.layers) == DIFF_IDS
    expected = entries_of(DOCKER20)
    config_member = f"{DOCKER20_ID.partition(':')[2]}.json"
    assert store.read_bytes(image.config.digest) == content(expected, config_member)
    # Loading again gives the same manifest (it is derived deterministically).
    assert load(DOCKER20, store)[0].manifest_digest == image.manifest_digest


def test_multiarch_fixture(store: ContentStore) -> None:
    [image] = load(MULTIARCH, store)
    assert [t.familiar() for t in image.repo_tags] == ["multi:1.0"]
    assert image.target.media_type == mediatypes.OCI_INDEX
    assert {m.digest for m in image.manifests} == {MULTI_AMD64, MULTI_ARM64}
    if host_platform().architecture == "amd64":
        assert image.manifest_digest == MULTI_AMD64
    assert image.image_config.config.env == ("PATH=/bin",)
    assert image.image_config.config.cmd == ("uname", "-m")
    assert len(image.layers) == 1
    assert len(set(store.digests())) == 7  # both platforms are kept

    [arm] = load(MULTIARCH, store, platform=parse_platform("linux/arm64"))
    assert arm.manifest_digest == MULTI_ARM64
    assert arm.id == MULTI_ARM64_CONFIG
    assert str(arm.platform) == "linux/arm64/v8"


def test_unknown_platform_is_refused_and_nothing_kept(store: ContentStore) -> None:
    with pytest.raises(NoMatchingPlatformError, match="linux/s390x.*linux/amd64, linux/arm64"):
        load(MULTIARCH, store, platform=parse_platform("linux/s390x"))
    assert snapshot(store) == (set(), [])


def test_sparse_index_keeps_the_platforms_present(store: ContentStore) -> None:
    entries = without(entries_of(MULTIARCH), f"blobs/sha256/{MULTI_ARM64.partition(':')[2]}")
    [image] = load(build(entries), store)
    assert [m.digest for m in image.manifests] == [MULTI_AMD64]
    with pytest.raises(NoMatchingPlatformError):
        load(build(entries), store, platform=parse_platform("linux/arm64"))


def test_nested_index(store: ContentStore) -> None:
    entries = entries_of(MULTIARCH)
    inner = json.loads(content(entries, "index.json"))["manifests"][0]
    outer = build_index([Descriptor(mediatypes.OCI_INDEX, inner["digest"], inner["size"])])
    top = build_index([Descriptor(mediatypes.OCI_INDEX, sha256_of(outer), len(outer),
                                  annotations={mediatypes.ANNOTATION_REF_NAME: "multi:2.0"})])
    entries = replaced(entries, "index.json", top)
    entries.append(member(f"blobs/sha256/{sha256_of(outer).hex}", outer))
    [image] = load(build(entries), store, platform=parse_platform("linux/arm64"))
    assert image.target.digest == sha256_of(outer)
    assert image.manifest_digest == MULTI_ARM64
    assert {m.digest for m in image.manifests} == {MULTI_AMD64, MULTI_ARM64}
    assert [t.familiar() for t in image.repo_tags] == ["multi:2.0"]


def test_input_needs_only_read(store: ContentStore) -> None:
    class ReadOnly:  # a pipe or a socket: no seek, no tell, short reads
        def __init__(self, data: bytes) -> None:
            self._data = io.BytesIO(data)

        def read(self, size: int = -1) -> bytes:
            return self._data.read(min(size, 777) if size > 0 else size)

    for fixture in SINGLE:
        [image] = load_archive(ReadOnly(gzip.compress(fixture.read_bytes())), store)
        assert image.diff_ids == DIFF_IDS


@pytest.mark.parametrize("compression", ["gzip", "zstd", "xz", "bzip2"])
@pytest.mark.parametrize("fixture", [DOCKER20, OCI], ids=lambda p: p.name)
def test_compressed_archives(fixture: Path, compression: str, store: ContentStore) -> None:
    raw = fixture.read_bytes()
    data = {"gzip": gzip.compress, "xz": lzma.compress, "bzip2": bz2.compress,
            "zstd": zstandard.ZstdCompressor().compress}[compression](raw)
    [image] = load(data, store)
    assert image.id == load(raw, store)[0].id
    assert image.diff_ids == DIFF_IDS


def test_legacy_compressed_layer_file_is_stored_uncompressed(store: ContentStore) -> None:
    entries = entries_of(DOCKER20)
    name = next(info.name for info, _ in entries if info.name.endswith("/layer.tar"))
    entries = replaced(entries, name, gzip.compress(content(entries, name)))
    [image] = load(build(entries), store)
    assert image.diff_ids == DIFF_IDS
    assert tuple(layer.digest for layer in image.layers) == DIFF_IDS
    assert set(store.digests()) == set(image.blobs)  # the gzip copy was not kept


def test_legacy_layers_shared_through_symlinks(store: ContentStore) -> None:
    # docker save links a layer it already wrote: <id>/layer.tar -> ../<other>/layer.tar
    entries = entries_of(DOCKER20)
    manifest = json.loads(content(entries, "manifest.json"))
    first = manifest[0]["Layers"][0]
    manifest[0]["Layers"][0] = "alias/layer.tar"
    entries = replaced(entries, "manifest.json", json.dumps(manifest).encode())
    entries.append(member("alias", kind=tarfile.DIRTYPE))
    entries.append(member("alias/layer.tar", kind=tarfile.SYMTYPE, link=f"../{first}"))
    entries.append(member("hard.tar", kind=tarfile.LNKTYPE, link=first))
    [image] = load(build(entries), store)
    assert image.diff_ids == DIFF_IDS


def test_unreferenced_blobs_are_not_kept(store: ContentStore) -> None:
    junk = b"not part of any image"
    entries = entries_of(OCI) + [member(f"blobs/sha256/{sha256_of(junk).hex}", junk),
                                 member("big-junk", os.urandom(2 << 20))]
    [image] = load(build(entries), store)
    assert set(store.digests()) == set(image.blobs)


# -- names in OCI and Docker 25 archives ---------------------------------------------------

def _with_index(entries: list[Entry], annotations: dict[str, str] | None) -> list[Entry]:
    index = json.loads(content(entries, "index.json"))
    for descriptor in index["manifests"]:
        descriptor.pop("annotations", None)
        if annotations:
            descriptor["annotations"] = annotations
    return replaced(entries, "index.json", json.dumps(index).encode())


def test_docker25_names(store: ContentStore) -> None:
    saved = entries_of(save(load(OCI, store), store))
    # Docker 25 writes the bare tag as ref.name and the full name beside it.
    docker25 = _with_index(saved, {mediatypes.ANNOTATION_REF_NAME: "1.0",
                                   mediatypes.ANNOTATION_IMAGE_NAME:
                                   "docker.io/library/dockyard-fixture:1.0"})
    [image] = load(build(docker25), store)
    assert [t.familiar() for t in image.repo_tags] == ["dockyard-fixture:1.0"]
    # No annotations: the names come from manifest.json's RepoTags.
    [image] = load(build(_with_index(saved, None)), store)
    assert [t.familiar() for t in image.repo_tags] == ["dockyard-fixture:1.0"]
    # No names anywhere: an untagged image, as docker load reports it by ID.
    manifest = json.loads(content(saved, "manifest.json"))
    manifest[0]["RepoTags"] = None
    bare = replaced(_with_index(saved, None), "manifest.json", json.dumps(manifest).encode())
    [image] = load(build(bare), store)
    assert image.repo_tags == () and image.id == OCI_ID


# -- saving --------------------------------------------------------------------------------

@pytest.mark.parametrize("fixture", [*SINGLE, MULTIARCH], ids=lambda p: p.name)
def test_round_trip(fixture: Path, store: ContentStore, tmp_path: Path) -> None:
    images = load(fixture, store)
    data = save(images, store)
    names = [info.name for info, _ in entries_of(data)]
    assert {"oci-layout", "index.json", "manifest.json", "repositories"} <= set(names)
    again = load(data, ContentStore(tmp_path / "other"))
    assert [(i.id, i.manifest_digest, i.target, i.repo_tags, i.diff_ids) for i in again] == \
        [(i.id, i.manifest_digest, i.target, i.repo_tags, i.diff_ids) for i in images]
    assert save(again, ContentStore(tmp_path / "other")) == data  # deterministic


def test_saved_layout_is_docker25s(store: ContentStore) -> None:
    [image] = load(DOCKER20, store)
    entries = entries_of(save([image], store))
    assert json.loads(content(entries, "oci-layout")) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads(content(entries, "index.json"))
    assert index["manifests"] == [{
        "mediaType": mediatypes.OCI_MANIFEST, "digest": image.manifest_digest,
        "size": image.manifest.size, "annotations": {
            "io.containerd.image.name": "docker.io/library/dockyard-fixture:1.0",
            "org.opencontainers.image.ref.name": "dockyard-fixture:1.0"}}]
    assert json.loads(content(entries, "manifest.json")) == [{
        "Config": f"blobs/sha256/{image.id.hex}", "RepoTags": ["dockyard-fixture:1.0"],
        "Layers": [f"blobs/sha256/{d.partition(':')[2]}" for d in DIFF_IDS]}]
    assert json.loads(content(entries, "repositories")) == {
        "dockyard-fixture": {"1.0": DIFF_IDS[-1].partition(":")[2]}}
    for info, data in entries:
        if info.name.startswith("blobs/sha256/") and info.isreg():
            assert sha256_of(data).hex == info.name.rpartition("/")[2]


def test_save_refuses_missing_blobs(store: ContentStore) -> None:
    [image] = load(OCI, store)
    store.delete(image.layers[2].digest)
    with pytest.raises(BlobNotFoundError, match="layer 2"):
        save([image], store)
    missing = Descriptor(mediatypes.OCI_MANIFEST, sha256_of(b"nothing"), 7)
    with pytest.raises(BlobNotFoundError):
        save_archive([SaveImage(missing)], io.BytesIO(), store)


def test_save_verifies_blobs_as_it_writes(store: ContentStore) -> None:
    [image] = load(DOCKER20, store)
    path = store.path(image.layers[0].digest)
    path.chmod(0o644)
    data = bytearray(path.read_bytes())
    data[5000] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(DigestMismatchError, match=f"blob {image.layers[0].digest} is corrupt"):
        save([image], store)


# -- broken and hostile archives -----------------------------------------------------------

def _hex(digest: str) -> str:
    return digest.partition(":")[2]


def _legacy_layer(entries: list[Entry]) -> str:
    return json.loads(content(entries, "manifest.json"))[0]["Layers"][1]


def _first_oci_layer(entries: list[Entry]) -> str:
    index = json.loads(content(entries, "index.json"))
    manifest = json.loads(content(entries, f"blobs/sha256/{_hex(index['manifests'][0]['digest'])}"))
    return f"blobs/sha256/{_hex(manifest['layers'][0]['digest'])}"


def _truncated_at_boundary(data: bytes) -> bytes:
    """The archive cut right after its last member: no end-of-archive blocks."""
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        last = tar.getmembers()[-1]
    end = last.offset_data + (last.size + 511) // 512 * 512
    return data[:end]


Variant = Callable[[list[Entry], bytes], bytes]

HOSTILE: dict[str, tuple[Path, Variant, str]] = {
    "dotdot member": (OCI, lambda e, d: build(e + [member("../evil", b"x")]),
                      "member ../evil: '..' is not allowed"),
    "nested dotdot": (OCI, lambda e, d: build(e + [member("blobs/../../evil", b"x")]),
                      "'..' is not allowed"),
    "absolute member": (OCI, lambda e, d: build(e + [member("/etc/evil", b"x")]),
                        "member /etc/evil: absolute paths are not allowed"),
    "symlink escaping": (DOCKER20, lambda e, d: build(
        [(i, x) for i, x in e if i.name != _legacy_layer(e)]
        + [member(_legacy_layer(e), kind=tarfile.SYMTYPE, link="../../etc/passwd")]),
        "symlink to '../../etc/passwd' points outside the archive"),
    "absolute symlink": (DOCKER20, lambda e, d: build(
        e + [member("evil", kind=tarfile.SYMTYPE, link="/etc/passwd")]),
        "member evil: symlink to '/etc/passwd' points outside the archive"),
    "hardlink escaping": (OCI, lambda e, d: build(
        e + [member("evil", kind=tarfile.LNKTYPE, link="../outside")]),
        "member evil: hard link to '../outside' points outside the archive"),
    "device member": (OCI, lambda e, d: build(e + [member("dev", kind=tarfile.CHRTYPE)]),
                      "member dev: device, FIFO and other special files are not allowed"),
    "truncated in a member": (OCI, lambda e, d: d[:len(d) // 2],
                              "archive is truncated or corrupt (in member blobs/sha256/"),
    "truncated at a member boundary": (DOCKER20, lambda e, d: _truncated_at_boundary(d),
                                       "truncated or corrupt: no end-of-archive marker"),
    "corrupt header": (OCI, lambda e, d: d[:1024] + b"\xff" * 512 + d[1536:],
                       "truncated or corrupt: no end-of-archive marker (bad checksum)"),
    "truncated gzip": (OCI, lambda e, d: gzip.compress(d)[:-100], "truncated or corrupt (gzip)"),
    "wrong blob digest": (OCI, lambda e, d: build(replaced(
        e, _first_oci_layer(e), b"tampered" + content(e, _first_oci_layer(e))[8:])),
        "digest mismatch"),
    "missing blob": (OCI, lambda e, d: build(without(e, _first_oci_layer(e))),
                     "layer 0 sha256:9c4925423d9c5471c0afb868946799d856e839d821b8e708a833cfb2428"
                     "e100a is missing from the archive"),
    "missing legacy layer": (DOCKER20, lambda e, d: build(without(e, _legacy_layer(e))),
                             "not found in the archive"),
    "legacy diff_id mismatch": (DOCKER20, lambda e, d: build(replaced(
        e, _legacy_layer(e), content(e, _legacy_layer(e))[:-1024])),
        "but the config's diff_id for layer 1 is"),
    "legacy config not matching its name": (DOCKER20, lambda e, d: build(replaced(
        e, f"{_hex(DOCKER20_ID)}.json",
        content(e, f"{_hex(DOCKER20_ID)}.json").replace(b"dockyard", b"dockyarD"))),
        "not what its name says"),
    "malformed index.json": (OCI, lambda e, d: build(replaced(e, "index.json", b'{"sch')),
                             "index.json: invalid JSON"),
    "malformed manifest.json": (DOCKER20, lambda e, d: build(replaced(
        e, "manifest.json", b"[{]")), "manifest.json: invalid JSON"),
    "index.json not an index": (OCI, lambda e, d: build(replaced(
        e, "index.json", b'{"schemaVersion": 2, "manifests": [{"digest": 5}]}')),
        "index.json.manifests[0].size: missing"),
    "bad name annotation": (OCI, lambda e, d: build(_with_index(
        e, {mediatypes.ANNOTATION_REF_NAME: "Bad:Name"})), "must be lowercase"),
    "bad layout version": (OCI, lambda e, d: build(replaced(
        e, "oci-layout", b'{"imageLayoutVersion": "9.9"}')), "unsupported imageLayoutVersion"),
    "not an image archive": (OCI, lambda e, d: build([member("hello.txt", b"hi")]),
                             "neither index.json nor manifest.json"),
    "not a tar": (OCI, lambda e, d: b"this is not a tar file at all" * 40, "invalid tar archive"),
    "empty input": (OCI, lambda e, d: b"", "invalid tar archive"),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_broken_archives_are_refused_without_a_trace(case: str, store: ContentStore) -> None:
    fixture, variant, message = HOSTILE[case]
    # The store already holds an image sharing blobs with the archive: those must stay.
    load(MULTIARCH, store)
    load(OCI_ZSTD, store)
    before = snapshot(store)
    data = fixture.read_bytes()
    with pytest.raises(ArchiveError) as caught:
        load(variant(entries_of(data), data), store)
    assert message in str(caught.value)
    assert snapshot(store) == before


def test_refused_archive_into_an_empty_store_leaves_it_empty(store: ContentStore) -> None:
    entries = entries_of(DOCKER20)
    data = build(without(entries, _legacy_layer(entries)))
    with pytest.raises(ArchiveError):
        load(data, store)
    assert snapshot(store) == (set(), [])
