"""Layer member names: Docker's normalisation, escape refusal, whiteout markers."""

from __future__ import annotations

import hashlib

import pytest

from dockyard.snapshot import LayerError, chain_id, chain_ids
from dockyard.snapshot._names import Marker, ancestors, classify, normalize_name


@pytest.mark.parametrize(("name", "expected"), [
    ("a", "a"),
    ("./a", "a"),
    ("a/", "a"),
    ("a//b/./c", "a/b/c"),
    ("a/b/../c", "a/c"),
    ("a/..", "."),
    ("./", "."),
    ("", "."),
    ("/", "."),
    # Docker joins the cleaned name to the layer dir: a leading '/' stays inside.
    ("/etc/x", "etc/x"),
    ("//etc//x", "etc/x"),
    ("/../x", "x"),
    ("/../../etc/passwd", "etc/passwd"),
])
def test_normalize_keeps_names_inside(name: str, expected: str) -> None:
    assert normalize_name(name) == expected


@pytest.mark.parametrize("name", ["..", "../x", "a/../../x", "./../x", "a/b/../../../etc",
                                  "..//x", "a\x00b"])
def test_normalize_refuses_escapes(name: str) -> None:
    with pytest.raises(LayerError):
        normalize_name(name)


def test_dotdot_inside_a_component_is_an_ordinary_name() -> None:
    assert normalize_name("a/..b/c..") == "a/..b/c.."


@pytest.mark.parametrize(("path", "marker", "target"), [
    ("a/b", Marker.CONTENT, "a/b"),
    (".", Marker.CONTENT, "."),
    ("data/.wh.gone", Marker.WHITEOUT, "data/gone"),
    (".wh.top", Marker.WHITEOUT, "top"),
    ("data/opaque/.wh..wh..opq", Marker.OPAQUE, "data/opaque"),
    (".wh..wh..opq", Marker.OPAQUE, "."),
    (".wh..wh.plnk", Marker.AUFS_META, ".wh..wh.plnk"),
    (".wh..wh.plnk/123.456", Marker.AUFS_META, ".wh..wh.plnk/123.456"),
    ("d/.wh..wh.aufs", Marker.AUFS_META, "d/.wh..wh.aufs"),
    ("a.wh.b", Marker.CONTENT, "a.wh.b"),
])
def test_classify(path: str, marker: Marker, target: str) -> None:
    assert classify(path) == (marker, target)


@pytest.mark.parametrize("path", ["d/.wh.", "d/.wh..", "d/.wh...", "d/.wh.x/y"])
def test_classify_refuses_invalid_whiteouts(path: str) -> None:
    with pytest.raises(LayerError):
        classify(path)


def test_ancestors() -> None:
    assert ancestors("a/b/c") == ["a", "a/b"]
    assert ancestors("a") == []


def test_chain_ids_follow_the_oci_formula() -> None:
    d1, d2, d3 = ("sha256:" + hashlib.sha256(s).hexdigest() for s in (b"1", b"2", b"3"))
    c2 = "sha256:" + hashlib.sha256(f"{d1} {d2}".encode()).hexdigest()
    c3 = "sha256:" + hashlib.sha256(f"{c2} {d3}".encode()).hexdigest()
    assert chain_ids([d1, d2, d3]) == [d1, c2, c3]
    assert chain_id(None, d1) == d1
    assert chain_id(c2, d3) == c3
    with pytest.raises(ValueError):
        chain_id(None, "sha256:XYZ")
