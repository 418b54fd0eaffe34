"""The build context as dockyardd receives it: compressed or not, unpacked without any
member leading out of it, the Dockerfile found and hidden when .dockerignore says so."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import tarfile
from pathlib import Path

import pytest

from dockyard.engine.builds import _read_dockerfile, _unpack_context
from dockyard.engine.errors import InvalidParameter


def _tar(entries: list[tarfile.TarInfo], data: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for info in entries:
            payload = data.get(info.name)
            if payload is not None:
                info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload) if payload is not None else None)
    return out.getvalue()


def _file(name: str) -> tarfile.TarInfo:
    return tarfile.TarInfo(name)


@pytest.mark.parametrize("compress", [lambda b: b, gzip.compress, bz2.compress,
                                      lzma.compress])
def test_compressed_contexts(tmp_path: Path, compress: object) -> None:
    body = _tar([_file("Dockerfile"), _file("sub/a.txt")],
                {"Dockerfile": b"FROM x\n", "sub/a.txt": b"a"})
    _unpack_context(io.BytesIO(compress(body)), tmp_path)  # type: ignore[operator]
    assert (tmp_path / "sub" / "a.txt").read_bytes() == b"a"
    assert _read_dockerfile(tmp_path, "Dockerfile") == "FROM x\n"


def test_members_cannot_lead_out(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    context = tmp_path / "ctx"
    context.mkdir()
    link = tarfile.TarInfo("escape")
    link.type = tarfile.SYMTYPE
    link.linkname = str(outside)
    body = _tar([link, _file("escape/evil")], {"escape/evil": b"x"})
    with pytest.raises(InvalidParameter, match="leads out of it"):
        _unpack_context(io.BytesIO(body), context)
    assert not (outside / "evil").exists()
    with pytest.raises(InvalidParameter, match="invalid path"):
        _unpack_context(io.BytesIO(_tar([_file("../up")], {"../up": b"x"})), context)


def test_dockerfile_missing_and_ignored(tmp_path: Path) -> None:
    with pytest.raises(InvalidParameter, match="Cannot locate specified Dockerfile: Other"):
        _read_dockerfile(tmp_path, "Other")
    (tmp_path / "Dockerfile").write_text("FROM x\n")
    (tmp_path / ".dockerignore").write_text("Dockerfile\n.dockerignore\n")
    assert _read_dockerfile(tmp_path, "Dockerfile") == "FROM x\n"
    assert not (tmp_path / "Dockerfile").exists()
    assert not (tmp_path / ".dockerignore").exists()
