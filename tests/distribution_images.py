"""Images made offline for the distribution tests and the benchmark: an OCI image layout
(busybox-static as the base layer, then layers of given files) that skopeo can copy into
a registry. Layers are uncompressed tars, or gzip when asked."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import shutil
import tarfile
from pathlib import Path

BUSYBOX = Path("/bin/busybox")


def _tar(files: dict[str, bytes], mode: int = 0o644) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        directories: set[str] = set()
        for name in sorted(files):
            parts = name.split("/")[:-1]
            for depth in range(1, len(parts) + 1):
                directory = "/".join(parts[:depth])
                if directory not in directories:
                    directories.add(directory)
                    info = tarfile.TarInfo(directory)
                    info.type, info.mode = tarfile.DIRTYPE, 0o755
                    tar.addfile(info)
            info = tarfile.TarInfo(name)
            info.size = len(files[name])
            info.mode = 0o755 if name == "bin/busybox" else mode
            tar.addfile(info, io.BytesIO(files[name]))
    return buffer.getvalue()


def _blob(blobs: Path, data: bytes) -> tuple[str, int]:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    (blobs / digest[7:]).write_bytes(data)
    return digest, len(data)


def busybox_layer() -> bytes:
    data = BUSYBOX.read_bytes()
    return _tar({"bin/busybox": data, "bin/sh": data})


def make_oci_layout(directory: Path, tag: str, layer_files: list[dict[str, bytes]],
                    gzip_layers: bool = False, cmd: list[str] | None = None) -> Path:
    """An OCI layout at `directory` holding one image, `tag`: busybox, then one layer per
    entry of `layer_files` ({path in the image: content})."""
    if directory.exists():
        shutil.rmtree(directory)
    blobs = directory / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    raw_layers = [busybox_layer()] + [_tar(files) for files in layer_files]
    diff_ids, descriptors = [], []
    for raw in raw_layers:
        diff_ids.append("sha256:" + hashlib.sha256(raw).hexdigest())
        data = gzip.compress(raw, compresslevel=1, mtime=0) if gzip_layers else raw
        digest, size = _blob(blobs, data)
        media_type = "application/vnd.oci.image.layer.v1.tar" + ("+gzip" if gzip_layers else "")
        descriptors.append({"mediaType": media_type, "digest": digest, "size": size})
    config = {"architecture": "amd64", "os": "linux",
              "created": "2026-01-01T00:00:00Z",
              "config": {"Env": ["PATH=/bin"], "Cmd": cmd or ["sh"]},
              "rootfs": {"type": "layers", "diff_ids": diff_ids},
              "history": [{"created": "2026-01-01T00:00:00Z", "created_by": "test"}
                          for _ in diff_ids]}
    config_digest, config_size = _blob(blobs, json.dumps(config).encode())
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                           "digest": config_digest, "size": config_size},
                "layers": descriptors}
    manifest_digest, manifest_size = _blob(blobs, json.dumps(manifest).encode())
    (directory / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    (directory / "index.json").write_text(json.dumps({
        "schemaVersion": 2,
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "digest": manifest_digest, "size": manifest_size,
                       "annotations": {"org.opencontainers.image.ref.name": tag}}]}))
    return directory
