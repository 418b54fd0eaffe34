"""Registry server: names, tags, byte ranges, scopes and pushed manifests."""

from __future__ import annotations

import json

import pytest

from dockyard.distribution.server._errors import RegistryError
from dockyard.distribution.server._manifests import inspect_manifest
from dockyard.distribution.server._names import check_name, is_valid_name, is_valid_tag
from dockyard.distribution.server._ranges import (
    UnsatisfiableRange,
    parse_range,
    parse_upload_range,
)
from dockyard.distribution.server._tokens import Scope
from dockyard.image import mediatypes

D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64


@pytest.mark.parametrize("name", ["a", "busybox", "library/busybox", "a.b_c__d-e---f/g0",
                                  "x/y/z", "a" * 255])
def test_valid_names(name: str) -> None:
    assert is_valid_name(name)


@pytest.mark.parametrize("name", ["", "A", "Busybox", "a/", "/a", "a//b", "-a", "a-", "a._b",
                                  "a___b", "_a", "a/_layers", "a:b", "a" * 256, "a/../b",
                                  "a b"])
def test_invalid_names(name: str) -> None:
    assert not is_valid_name(name)
    with pytest.raises(RegistryError) as info:
        check_name(name)
    assert info.value.code == "NAME_INVALID" and info.value.status == 400


def test_tags() -> None:
    assert is_valid_tag("latest") and is_valid_tag("_x") and is_valid_tag("V1.0-rc_2")
    assert is_valid_tag("a" * 128)
    assert not is_valid_tag("a" * 129)
    assert not is_valid_tag(".hidden") and not is_valid_tag("-x") and not is_valid_tag("a/b")
    assert not is_valid_tag("")


@pytest.mark.parametrize(("header", "expected"), [
    (None, None), ("bytes=0-9", (0, 9)), ("bytes=5-", (5, 99)), ("bytes=-10", (90, 99)),
    ("bytes=90-200", (90, 99)), ("bytes=-500", (0, 99)), ("bytes=0-0", (0, 0)),
    ("items=0-5", None), ("bytes=0-1,5-6", None), ("bytes=9-3", None), ("bytes=x-y", None),
    ("bytes=-", None),
])
def test_parse_range(header: str | None, expected: tuple[int, int] | None) -> None:
    assert parse_range(header, 100) == expected


@pytest.mark.parametrize("header", ["bytes=100-", "bytes=150-160", "bytes=-0"])
def test_unsatisfiable_range(header: str) -> None:
    with pytest.raises(UnsatisfiableRange):
        parse_range(header, 100)


def test_range_of_empty_blob() -> None:
    with pytest.raises(UnsatisfiableRange):
        parse_range("bytes=0-", 0)
    assert parse_range("bytes=0-", 1) == (0, 0)


def test_parse_upload_range() -> None:
    assert parse_upload_range("0-99") == (0, 99)
    assert parse_upload_range("100-199") == (100, 199)
    assert parse_upload_range("bytes 5-6") == (5, 6)
    assert parse_upload_range("5-4") is None
    assert parse_upload_range("abc") is None
    assert parse_upload_range("0-") is None


def test_scope_parse_and_format() -> None:
    scope = Scope.parse("repository:team/app:push,pull")
    assert scope == Scope("repository", "team/app", frozenset({"pull", "push"}))
    assert str(scope) == "repository:team/app:pull,push"
    assert Scope.parse("registry:catalog:*") == Scope("registry", "catalog", frozenset("*"))
    assert Scope.parse("nonsense") is None
    assert Scope.parse("repository::pull") is None


def _manifest(**extra: object) -> bytes:
    doc = {"schemaVersion": 2, "mediaType": mediatypes.OCI_MANIFEST,
           "config": {"mediaType": mediatypes.OCI_CONFIG, "digest": D1, "size": 2},
           "layers": [{"mediaType": mediatypes.OCI_LAYER_GZIP, "digest": D2, "size": 3}]}
    doc.update(extra)
    return json.dumps(doc).encode()


def test_inspect_image_manifest() -> None:
    pushed = inspect_manifest(_manifest(), mediatypes.OCI_MANIFEST)
    assert pushed.media_type == mediatypes.OCI_MANIFEST
    assert [b.digest for b in pushed.blobs] == [D1, D2]
    assert pushed.subject is None


def test_inspect_takes_the_type_from_the_document_when_content_type_is_generic() -> None:
    assert inspect_manifest(_manifest(), "").media_type == mediatypes.OCI_MANIFEST
    doc = json.loads(_manifest())
    del doc["mediaType"]
    assert inspect_manifest(json.dumps(doc).encode(),
                            "application/json").media_type == mediatypes.OCI_MANIFEST


def test_inspect_skips_foreign_layers() -> None:
    data = _manifest(layers=[{"mediaType": mediatypes.DOCKER_FOREIGN_LAYER, "digest": D2,
                              "size": 3, "urls": ["http://example.invalid/x"]}])
    assert [b.digest for b in inspect_manifest(data, "").blobs] == [D1]


def test_inspect_index_lists_children() -> None:
    data = json.dumps({"schemaVersion": 2, "mediaType": mediatypes.DOCKER_MANIFEST_LIST,
                       "manifests": [{"mediaType": mediatypes.DOCKER_MANIFEST,
                                      "digest": D1, "size": 10}]}).encode()
    pushed = inspect_manifest(data, mediatypes.DOCKER_MANIFEST_LIST)
    assert [m.digest for m in pushed.manifests] == [D1] and pushed.blobs == []


def test_inspect_referrer_descriptor() -> None:
    data = _manifest(subject={"mediaType": mediatypes.OCI_MANIFEST, "digest": D2, "size": 5},
                     annotations={"k": "v"})
    pushed = inspect_manifest(data, mediatypes.OCI_MANIFEST)
    assert pushed.subject is not None and pushed.subject.digest == D2
    # No artifactType: the config's media type stands for it.
    assert pushed.referrer_descriptor(D1, 7) == {
        "mediaType": mediatypes.OCI_MANIFEST, "digest": D1, "size": 7,
        "artifactType": mediatypes.OCI_CONFIG, "annotations": {"k": "v"}}
    with_type = inspect_manifest(_manifest(artifactType="application/x-sbom"), "")
    assert with_type.referrer_descriptor(D1, 1)["artifactType"] == "application/x-sbom"


@pytest.mark.parametrize(("data", "content_type"), [
    (b"not json", mediatypes.OCI_MANIFEST),
    (b"[]", mediatypes.OCI_MANIFEST),
    (_manifest(), mediatypes.DOCKER_MANIFEST),          # mediaType disagrees
    (_manifest(), "application/vnd.example+json"),       # not a manifest type
    (_manifest(), mediatypes.DOCKER_MANIFEST_V1_SIGNED),  # schema 1
    (_manifest(schemaVersion=1), mediatypes.OCI_MANIFEST),
    (_manifest(config={"digest": "sha256:zz"}), mediatypes.OCI_MANIFEST),
])
def test_inspect_rejects(data: bytes, content_type: str) -> None:
    with pytest.raises(RegistryError) as info:
        inspect_manifest(data, content_type)
    assert info.value.code == "MANIFEST_INVALID" and info.value.status == 400


def test_error_body_is_the_spec_shape() -> None:
    error = RegistryError("BLOB_UNKNOWN", detail={"digest": D1})
    assert error.status == 404
    assert json.loads(error.body()) == {"errors": [{
        "code": "BLOB_UNKNOWN", "message": "blob unknown to registry",
        "detail": {"digest": D1}}]}
