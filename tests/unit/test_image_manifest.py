"""Manifests, indexes, configs and digests: parsing, validation messages, serialisation."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from dockyard.image import (
    Descriptor,
    Digest,
    DigestError,
    ManifestError,
    Platform,
    build_index,
    build_manifest,
    chain_ids,
    describe,
    document_kind,
    image_id,
    mediatypes,
    parse_config,
    parse_digest,
    parse_index,
    parse_manifest,
    sha256_of,
)

D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64


def _manifest(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": mediatypes.OCI_MANIFEST,
        "config": {"mediaType": mediatypes.OCI_CONFIG, "digest": D1, "size": 10},
        "layers": [{"mediaType": mediatypes.OCI_LAYER_GZIP, "digest": D2, "size": 20}],
    }
    doc.update(changes)
    return doc


def _bytes(doc: Any) -> bytes:
    return json.dumps(doc).encode()


def test_digest_validation() -> None:
    digest = parse_digest(D1)
    assert (digest.algorithm, digest.hex) == ("sha256", "1" * 64)
    assert isinstance(digest, str) and digest == D1
    assert Digest("sha512:" + "a" * 128).algorithm == "sha512"
    assert sha256_of(b"") == ("sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852"
                              "b855")
    for text, message in [("sha256", "invalid checksum digest format"),
                          ("sha256:", "invalid checksum digest format"),
                          ("sha256:abc", "invalid checksum digest length"),
                          ("sha256:" + "G" * 64, "invalid checksum digest format"),
                          ("sha512:" + "a" * 64, "invalid checksum digest length"),
                          ("md5:" + "a" * 32, "unsupported digest algorithm"),
                          ("sha256:../../" + "a" * 58, "invalid checksum digest format")]:
        with pytest.raises(DigestError, match=message):
            parse_digest(text)


def test_parse_manifest() -> None:
    doc = _manifest(annotations={"a": "b"})
    doc["layers"][0]["annotations"] = {"x": "y"}
    manifest = parse_manifest(_bytes(doc), mediatypes.OCI_MANIFEST)
    assert manifest.media_type == mediatypes.OCI_MANIFEST
    assert manifest.config == Descriptor(mediatypes.OCI_CONFIG, Digest(D1), 10)
    assert manifest.layers[0].digest == D2 and manifest.layers[0].annotations == {"x": "y"}
    assert manifest.annotations == {"a": "b"}
    # OCI allows the mediaType field to be absent; Docker schema 2 is accepted too.
    del doc["mediaType"]
    assert parse_manifest(_bytes(doc)).media_type == ""
    docker = _manifest(mediaType=mediatypes.DOCKER_MANIFEST)
    assert parse_manifest(_bytes(docker), mediatypes.DOCKER_MANIFEST).media_type == \
        mediatypes.DOCKER_MANIFEST


@pytest.mark.parametrize(("doc", "message"), [
    (b"{not json", "manifest: invalid JSON"),
    (b"[]", "manifest: expected a JSON object"),
    (_manifest(schemaVersion=1), "Docker schema 1 manifests are not supported"),
    (_manifest(schemaVersion=3), "manifest: schemaVersion: expected 2, got 3"),
    (_manifest(schemaVersion="2"), "manifest.schemaVersion: expected an integer"),
    (_manifest(mediaType="text/plain"), "manifest: mediaType: unexpected 'text/plain'"),
    (_manifest(mediaType=mediatypes.DOCKER_MANIFEST), "does not match the descriptor's"),
    (_manifest(config=None), "manifest.config: missing"),
    (_manifest(config=[]), "manifest.config: expected an object"),
    (_manifest(layers=None), "manifest.layers: missing"),
    (_manifest(layers={}), "manifest.layers: expected an array"),
    (_manifest(layers=[{"mediaType": mediatypes.OCI_LAYER, "digest": "sha256:x", "size": 1}]),
     "manifest.layers[0].digest: invalid checksum digest length"),
    (_manifest(layers=[{"mediaType": mediatypes.OCI_LAYER, "digest": D2, "size": -1}]),
     "manifest.layers[0].size: must not be negative"),
    (_manifest(layers=[{"mediaType": mediatypes.OCI_LAYER, "digest": D2, "size": True}]),
     "manifest.layers[0].size: expected an integer"),
    (_manifest(layers=[{"digest": D2, "size": 1}]), "manifest.layers[0].mediaType: missing"),
    (_manifest(layers=["x"]), "manifest.layers[0]: expected an object"),
    (_manifest(annotations={"a": 1}), "manifest.annotations[a]: expected a string"),
    (_manifest(manifests=[]), "is an index, not a manifest"),
])
def test_manifest_errors_name_the_field(doc: Any, message: str) -> None:
    data = doc if isinstance(doc, bytes) else _bytes(doc)
    with pytest.raises(ManifestError) as caught:
        parse_manifest(data, mediatypes.OCI_MANIFEST)
    assert message in str(caught.value)


def test_parse_index_with_platforms() -> None:
    doc = {"schemaVersion": 2, "mediaType": mediatypes.OCI_INDEX, "manifests": [
        {"mediaType": mediatypes.OCI_MANIFEST, "digest": D1, "size": 1,
         "platform": {"architecture": "arm64", "os": "linux", "variant": "v8"}},
        {"mediaType": mediatypes.OCI_MANIFEST, "digest": D2, "size": 2},
    ]}
    index = parse_index(_bytes(doc))
    assert index.manifests[0].platform == Platform("linux", "arm64", "v8")
    assert index.manifests[1].platform is None
    bad = json.loads(json.dumps(doc))
    bad["manifests"][0]["platform"] = {"os": "linux"}
    with pytest.raises(ManifestError, match=r"index\.manifests\[0\]\.platform\.architecture: "
                                            "missing"):
        parse_index(_bytes(bad))
    with pytest.raises(ManifestError, match="index.manifests: missing"):
        parse_index(_bytes({"schemaVersion": 2}))
    with pytest.raises(ManifestError, match="mediaType: unexpected"):
        parse_index(_bytes({**doc, "mediaType": mediatypes.OCI_MANIFEST}))


def test_document_kind_sniffs_unknown_media_types() -> None:
    index = _bytes({"schemaVersion": 2, "manifests": []})
    assert document_kind(index, mediatypes.OCI_MANIFEST) == "manifest"  # trusts the type
    assert document_kind(index, "application/octet-stream") == "index"
    assert document_kind(_bytes(_manifest()), "") == "manifest"
    with pytest.raises(ManifestError, match="neither a manifest nor an index"):
        document_kind(b'{"hello": 1}', "")


def test_built_documents_match_go_encoding() -> None:
    config = Descriptor(mediatypes.OCI_CONFIG, Digest(D1), 10)
    layer = Descriptor(mediatypes.OCI_LAYER, Digest(D2), 20, annotations={"b": "<&>", "a": "1"})
    data = build_manifest(config, [layer])
    assert data == (
        b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",'
        b'"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"' +
        D1.encode() + b'","size":10},"layers":[{"mediaType":'
        b'"application/vnd.oci.image.layer.v1.tar","digest":"' + D2.encode() +
        b'","size":20,"annotations":{"a":"1","b":"\\u003c\\u0026\\u003e"}}]}')
    assert parse_manifest(data).layers[0] == layer
    entry = describe(data, mediatypes.OCI_MANIFEST, platform=Platform("linux", "amd64"))
    assert entry.digest == sha256_of(data) and entry.size == len(data)
    index = parse_index(build_index([entry]))
    assert index.manifests == (entry,)


CONFIG = {
    "architecture": "arm64", "variant": "v8", "os": "linux", "created": "2026-01-01T00:00:00Z",
    "config": {
        "User": "1000:1000", "ExposedPorts": {"8080/tcp": {}, "53/udp": {}},
        "Env": ["PATH=/bin", "A=b"], "Entrypoint": ["/init"], "Cmd": None,
        "WorkingDir": "/app", "Labels": {"k": "v"}, "Volumes": {"/data": {}},
        "StopSignal": "SIGINT", "OnBuild": ["RUN true"], "Shell": ["/bin/sh", "-c"],
        "Healthcheck": {"Test": ["CMD", "true"], "Interval": 1000000000, "Retries": 3},
    },
    "rootfs": {"type": "layers", "diff_ids": [D1, D2]},
    "history": [{"created_by": "x", "empty_layer": True}, {"comment": "y"}],
    "container_config": {"Hostname": "abc"},
}


def test_parse_config() -> None:
    data = _bytes(CONFIG)
    config = parse_config(data)
    assert config.platform == Platform("linux", "arm64", "v8")
    assert config.diff_ids == (D1, D2)
    assert config.created == "2026-01-01T00:00:00Z"
    container = config.config
    assert container.user == "1000:1000"
    assert container.exposed_ports == ("8080/tcp", "53/udp")
    assert container.env == ("PATH=/bin", "A=b")
    assert container.entrypoint == ("/init",) and container.cmd is None
    assert container.working_dir == "/app" and container.labels == {"k": "v"}
    assert container.volumes == ("/data",) and container.stop_signal == "SIGINT"
    assert container.on_build == ("RUN true",) and container.shell == ("/bin/sh", "-c")
    assert container.healthcheck is not None and container.healthcheck.retries == 3
    assert container.healthcheck.test == ("CMD", "true")
    assert [h.empty_layer for h in config.history] == [True, False]
    assert config.raw["container_config"] == {"Hostname": "abc"}  # Docker extras are kept
    assert image_id(data) == sha256_of(data)


@pytest.mark.parametrize(("change", "message"), [
    ({"rootfs": None}, "config.rootfs: missing"),
    ({"rootfs": {"type": "other", "diff_ids": []}}, 'config.rootfs.type: expected "layers"'),
    ({"rootfs": {"type": "layers", "diff_ids": ["nope"]}},
     r"config.rootfs.diff_ids\[0\]: invalid checksum digest format"),
    ({"rootfs": {"type": "layers", "diff_ids": [1]}},
     r"config.rootfs.diff_ids\[0\]: expected a string"),
    ({"config": {"Env": ["A=1", 2]}}, r"config.config.Env\[1\]: expected a string"),
    ({"config": {"Cmd": "sh"}}, "config.config.Cmd: expected an array"),
    ({"config": {"Labels": {"a": 1}}}, r"config.config.Labels\[a\]: expected a string"),
    ({"config": {"ExposedPorts": ["80"]}}, "config.config.ExposedPorts: expected an object"),
    ({"config": {"Healthcheck": {"Retries": "3"}}},
     "config.config.Healthcheck.Retries: expected an integer"),
    ({"history": [{"empty_layer": "yes"}]}, r"config.history\[0\].empty_layer: expected true"),
    ({"architecture": 64}, "config.architecture: expected a string"),
    ({"created": 5}, "config.created: expected a string"),
])
def test_config_errors_name_the_field(change: dict[str, Any], message: str) -> None:
    doc = {**CONFIG, **change}
    if doc.get("rootfs") is None:
        del doc["rootfs"]
    with pytest.raises(ManifestError, match=message):
        parse_config(_bytes(doc))


def test_chain_ids() -> None:
    diff_ids = [D1, D2, "sha256:" + "3" * 64]
    chain = chain_ids(diff_ids)
    second = "sha256:" + hashlib.sha256(f"{D1} {D2}".encode()).hexdigest()
    third = "sha256:" + hashlib.sha256(f"{second} {diff_ids[2]}".encode()).hexdigest()
    assert chain == [D1, second, third]
    assert chain_ids([]) == []
    assert parse_config(_bytes(CONFIG)).chain_ids == chain[:2]
