"""Registry server storage: blobs, links, manifests, tags, referrers, uploads, GC."""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import pytest

from dockyard.distribution.server import garbage_collect
from dockyard.distribution.server._storage import RegistryStorage
from dockyard.image import mediatypes
from dockyard.image.digest import Digest


def _digest(data: bytes) -> Digest:
    return Digest("sha256:" + hashlib.sha256(data).hexdigest())


def _upload_blob(storage: RegistryStorage, name: str, data: bytes) -> Digest:
    upload = storage.start_upload(name)
    fd = upload.open_for_append()
    try:
        upload.append(fd, [data[:3], data[3:]])
    finally:
        os.close(fd)
    digest = upload.digest("sha256")
    storage.commit_upload(upload, digest)
    return digest


def _image(storage: RegistryStorage, name: str, tag: str, layer: bytes) -> Digest:
    config = _upload_blob(storage, name, b'{"os":"linux"}')
    blob = _upload_blob(storage, name, layer)
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": mediatypes.OCI_MANIFEST,
        "config": {"mediaType": mediatypes.OCI_CONFIG, "digest": config, "size": 14},
        "layers": [{"mediaType": mediatypes.OCI_LAYER, "digest": blob,
                    "size": len(layer)}]}).encode()
    digest = _digest(manifest)
    storage.put_manifest(name, digest, mediatypes.OCI_MANIFEST, manifest, tag, None)
    return digest


def test_upload_hashes_while_writing_and_commits(tmp_path: Path) -> None:
    storage = RegistryStorage(tmp_path)
    data = b"hello registry"
    digest = _upload_blob(storage, "team/app", data)
    assert digest == _digest(data)
    assert storage.repository_blob_size("team/app", digest) == len(data)
    assert storage.repository_blob_size("other", digest) is None   # not linked there
    assert storage.blob_path(digest).read_bytes() == data
    assert list((tmp_path / "uploads").iterdir()) == []


def test_upload_digest_recomputed_after_restart(tmp_path: Path) -> None:
    storage = RegistryStorage(tmp_path)
    upload = storage.start_upload("a")
    fd = upload.open_for_append()
    upload.append(fd, [b"part one "])
    os.close(fd)
    # A new server process finds the session on disk, without the running hash.
    again = RegistryStorage(tmp_path).upload("a", upload.id)
    assert again is not None and again.size == 9
    fd = again.open_for_append()
    again.append(fd, [b"part two"])
    os.close(fd)
    assert again.digest("sha256") == _digest(b"part one part two")


def test_upload_belongs_to_its_repository(tmp_path: Path) -> None:
    storage = RegistryStorage(tmp_path)
    upload = storage.start_upload("a")
    assert storage.upload("b", upload.id) is None
    assert RegistryStorage(tmp_path).upload("b", upload.id) is None
    assert storage.upload("a", "../../etc") is None
    storage.cancel_upload(upload)
    assert storage.upload("a", upload.id) is None


def test_purge_removes_only_stale_uploads(tmp_path: Path) -> None:
    storage = RegistryStorage(tmp_path)
    old = storage.start_upload("a")
    fresh = storage.start_upload("a")
    past = time.time() - 7200
    for path in (old.directory, old.data):
        os.utime(path, (past, past))
    assert storage.purge_uploads(3600) == 1
    assert storage.upload("a", old.id) is None
    assert storage.upload("a", fresh.id) is not None


def test_manifests_tags_and_delete(tmp_path: Path) -> None:
    storage = RegistryStorage(tmp_path)
    digest = _image(storage, "app", "v1", b"layer")
    storage.put_manifest("app", digest, mediatypes.OCI_MANIFEST,
                         storage.blob_path(digest).read_bytes(), "latest", None)
    assert storage.tags("app") == ["latest", "v1"]
    assert storage.resolve_tag("app", "v1") == digest
    found = storage.manifest("app", digest)
    assert found is not None and found[0] == mediatypes.OCI_MANIFEST
    assert storage.repositories() == ["app"]
    assert storage.delete_tag("app", "latest") and not storage.delete_tag("app", "latest")
    assert storage.delete_manifest("app", digest)
    assert storage.tags("app") == [] and storage.manifest("app", digest) is None
    assert not storage.delete_manifest("app", digest)


def test_nested_repositories_are_listed(tmp_path: Path) -> None:
    storage = RegistryStorage(tmp_path)
    _upload_blob(storage, "a", b"1")
    _upload_blob(storage, "a/b", b"2")
    _upload_blob(storage, "a/b/c", b"3")
    assert storage.repositories() == ["a", "a/b", "a/b/c"]


def test_referrers(tmp_path: Path) -> None:
    storage = RegistryStorage(tmp_path)
    subject = _digest(b"subject")
    data = b'{"schemaVersion":2}'
    digest = _digest(data)
    descriptor = {"mediaType": mediatypes.OCI_MANIFEST, "digest": digest, "size": len(data),
                  "artifactType": "application/x-sig"}
    storage.put_manifest("app", digest, mediatypes.OCI_MANIFEST, data, None,
                         (subject, descriptor))
    assert storage.referrers("app", subject) == [descriptor]
    assert storage.referrers("other", subject) == []
    storage.delete_manifest("app", digest)
    assert storage.referrers("app", subject) == []


def test_unchecked_names_never_become_paths(tmp_path: Path) -> None:
    storage = RegistryStorage(tmp_path)
    with pytest.raises(ValueError):
        storage.tags("../escape")


def test_garbage_collect(tmp_path: Path) -> None:
    storage = RegistryStorage(tmp_path)
    kept = _image(storage, "app", "v1", b"kept layer")
    dropped = _image(storage, "app", "v2", b"dropped layer")
    orphan = _upload_blob(storage, "app", b"never referenced")
    storage.delete_manifest("app", dropped)
    dry = garbage_collect(tmp_path, dry_run=True)
    assert set(dry.removed) == {dropped, _digest(b"dropped layer"), orphan}
    assert storage.blob_path(orphan).exists()
    report = garbage_collect(tmp_path)
    assert set(report.removed) == set(dry.removed)
    assert not storage.blob_path(orphan).exists()
    assert storage.repository_blob_size("app", orphan) is None
    assert storage.blob_path(kept).exists()
    assert storage.repository_blob_size("app", _digest(b"kept layer")) == 10
    assert garbage_collect(tmp_path).removed == []


def test_garbage_collect_untagged(tmp_path: Path) -> None:
    storage = RegistryStorage(tmp_path)
    child = _image(storage, "app", "child-tag", b"child layer")
    storage.delete_tag("app", "child-tag")             # reached only through the index
    index = json.dumps({"schemaVersion": 2, "mediaType": mediatypes.OCI_INDEX, "manifests": [
        {"mediaType": mediatypes.OCI_MANIFEST, "digest": child, "size": 1}]}).encode()
    storage.put_manifest("app", _digest(index), mediatypes.OCI_INDEX, index, "multi", None)
    signature = b'{"schemaVersion":2,"signature":true}'
    storage.put_manifest("app", _digest(signature), mediatypes.OCI_MANIFEST, signature, None,
                         (_digest(index), {"digest": _digest(signature)}))
    orphan = _image(storage, "app", "old", b"old layer")
    storage.delete_tag("app", "old")
    dry = garbage_collect(tmp_path, dry_run=True, delete_untagged=True)
    assert dry.untagged == [("app", orphan)]
    assert storage.manifest("app", orphan) is not None
    report = garbage_collect(tmp_path, delete_untagged=True)
    assert report.untagged == [("app", orphan)]
    assert storage.manifest("app", orphan) is None
    assert _digest(b"old layer") in report.removed and orphan in report.removed
    for kept in (child, _digest(index), _digest(signature)):
        assert storage.manifest("app", kept) is not None
    assert storage.repository_blob_size("app", _digest(b"child layer")) == 11
