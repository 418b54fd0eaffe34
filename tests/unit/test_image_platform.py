"""Platforms: containerd's normalisation, parsing, matching and manifest selection."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest

from dockyard.image import (
    Descriptor,
    Index,
    NoMatchingPlatformError,
    Platform,
    PlatformError,
    host_platform,
    mediatypes,
    normalize_arch,
    only,
    only_strict,
    parse_index,
    parse_platform,
    select_manifest,
    sha256_of,
)

FIXTURES = Path("/work/shared/fixtures")
AMD64_MANIFEST = "sha256:3e1ecbadee19754cb18135a36873f8a843aeb5f186275bbf47d7142c5c79b2cc"
ARM64_MANIFEST = "sha256:abc27a4849ca063f31340057d9a944569236f9851f84dcdcf4900b91d1d3499f"


@pytest.mark.parametrize(("arch", "variant", "expected"), [
    ("x86_64", "", ("amd64", "")),
    ("x86-64", "", ("amd64", "")),
    ("AMD64", "", ("amd64", "")),
    ("amd64", "v1", ("amd64", "")),
    ("amd64", "v3", ("amd64", "v3")),
    ("aarch64", "", ("arm64", "")),
    ("arm64", "v8", ("arm64", "")),
    ("arm64", "8", ("arm64", "")),
    ("arm64", "v8.0", ("arm64", "")),
    ("arm64", "9", ("arm64", "v9")),
    ("arm64", "v8.2", ("arm64", "v8.2")),
    ("armhf", "", ("arm", "v7")),
    ("armel", "", ("arm", "v6")),
    ("arm", "", ("arm", "v7")),
    ("arm", "7", ("arm", "v7")),
    ("arm", "6", ("arm", "v6")),
    ("arm", "v5", ("arm", "v5")),
    ("i386", "", ("386", "")),
    ("s390x", "", ("s390x", "")),
    ("ppc64le", "", ("ppc64le", "")),
])
def test_normalize_arch(arch: str, variant: str, expected: tuple[str, str]) -> None:
    assert normalize_arch(arch, variant) == expected


def test_normalized_platform() -> None:
    assert Platform("Linux", "aarch64", "v8").normalized() == Platform("linux", "arm64")
    assert Platform("macos", "x86_64").normalized() == Platform("darwin", "amd64")
    assert Platform("", "amd64").normalized().os == "linux"


@pytest.mark.parametrize(("text", "expected"), [
    ("linux/amd64", Platform("linux", "amd64")),
    ("linux/x86_64", Platform("linux", "amd64")),
    ("linux/arm64", Platform("linux", "arm64")),
    ("linux/aarch64", Platform("linux", "arm64")),
    # containerd keeps an explicit v8 for arm64 (matching normalises it away).
    ("linux/arm64/v8", Platform("linux", "arm64", "v8")),
    ("linux/arm", Platform("linux", "arm")),
    ("linux/arm/v7", Platform("linux", "arm", "v7")),
    ("linux/arm/v6", Platform("linux", "arm", "v6")),
    ("linux/armhf", Platform("linux", "arm")),  # v7 is implied for arm, as containerd does
    ("linux/386", Platform("linux", "386")),
    ("Linux/AMD64", Platform("linux", "amd64")),
    ("windows(10.0.17763)/amd64", Platform("windows", "amd64", os_version="10.0.17763")),
    ("s390x", Platform("linux", "s390x")),
    ("aarch64", Platform("linux", "arm64")),
])
def test_parse_platform(text: str, expected: Platform) -> None:
    assert parse_platform(text) == expected


def test_parse_os_only_uses_host_architecture() -> None:
    host = host_platform()
    parsed = parse_platform("linux")
    assert (parsed.os, parsed.architecture) == ("linux", host.architecture)


@pytest.mark.parametrize(("text", "message"), [
    ("linux/*", "wildcards not yet supported"),
    ("bogus", "unknown operating system or architecture"),
    ("linux/arm/v7/extra", "cannot parse platform specifier"),
    ("linux/am d64", "invalid component"),
    ("", "invalid OS component"),
])
def test_parse_platform_errors(text: str, message: str) -> None:
    with pytest.raises(PlatformError, match=message):
        parse_platform(text)


def test_platform_format_and_json() -> None:
    assert str(Platform("linux", "arm64", "v8")) == "linux/arm64/v8"
    assert str(Platform("linux", "amd64")) == "linux/amd64"
    assert str(Platform("", "amd64")) == "unknown"
    assert json.dumps(Platform("linux", "arm", "v7").to_json()) == \
        '{"architecture": "arm", "os": "linux", "variant": "v7"}'


def test_host_platform_is_normalised() -> None:
    host = host_platform()
    assert host == host.normalized()
    assert host.os == "linux"


def test_matcher_rules() -> None:
    arm64 = only(parse_platform("linux/arm64"))
    assert arm64.match(Platform("linux", "arm64", "v8"))
    assert arm64.match(Platform("linux", "aarch64"))
    assert arm64.match(Platform("linux", "arm", "v7"))  # 32-bit arm runs on arm64
    assert not arm64.match(Platform("linux", "amd64"))
    assert arm64.less(Platform("linux", "arm64"), Platform("linux", "arm", "v8"))
    assert arm64.less(Platform("linux", "arm", "v8"), Platform("linux", "arm", "v7"))

    amd64 = only(Platform("linux", "amd64"))
    assert amd64.match(Platform("linux", "x86_64"))
    assert not amd64.match(Platform("linux", "arm64"))
    assert not amd64.match(Platform("windows", "amd64"))
    assert amd64.match(Platform("linux", "386"))  # containerd's Only: amd64 runs 386
    assert not only_strict(Platform("linux", "amd64")).match(Platform("linux", "386"))
    assert not amd64.match(Platform("linux", "amd64", "v2"))  # a v2 image needs a v2 CPU
    assert only(Platform("linux", "amd64", "v3")).match(Platform("linux", "amd64", "v2"))

    armv7 = only(parse_platform("linux/arm/v7"))
    assert armv7.match(Platform("linux", "arm", "v6"))
    assert armv7.match(Platform("linux", "armhf"))
    assert not armv7.match(Platform("linux", "arm", "v8"))
    assert not only(parse_platform("linux/arm/v6")).match(Platform("linux", "arm", "v7"))


def _entry(platform: Platform | None, tag: str) -> Descriptor:
    return Descriptor(mediatypes.OCI_MANIFEST, sha256_of(tag.encode()), 1, platform=platform)


def test_select_prefers_exact_then_compatible() -> None:
    entries = [
        _entry(Platform("linux", "386"), "386"),
        _entry(None, "unknown"),
        _entry(Platform("linux", "arm", "v6"), "armv6"),
        _entry(Platform("linux", "arm", "v7"), "armv7"),
        _entry(Platform("linux", "amd64"), "amd64"),
        _entry(Platform("linux", "arm64", "v8"), "arm64"),
    ]
    index = Index(tuple(entries))

    def pick(wanted: str, entries: list[Descriptor] = entries) -> Descriptor:
        return select_manifest(Index(tuple(entries)), parse_platform(wanted))

    assert pick("linux/amd64") == entries[4]  # exact first, though 386 comes earlier
    assert pick("linux/arm64") == entries[5]
    assert pick("linux/arm64/v8") == entries[5]
    assert pick("linux/arm/v7") == entries[3]
    assert pick("linux/arm/v6") == entries[2]
    # Fallbacks: arm64 runs 32-bit arm, amd64 runs 386, arm/v7 runs v6.
    assert pick("linux/arm64", [entries[2], entries[3]]) == entries[3]
    assert pick("linux/amd64", entries[:2]) == entries[0]
    assert pick("linux/arm/v7", [entries[2]]) == entries[2]
    # An entry without a platform is a candidate of last resort.
    assert pick("linux/s390x", entries[:2]) == entries[1]
    with pytest.raises(NoMatchingPlatformError):
        select_manifest(Index((entries[0],)), Platform("linux", "amd64"), strict=True)
    # The host platform is the default.
    assert select_manifest(index) in entries


def test_select_reports_wanted_and_available() -> None:
    index = Index((_entry(Platform("linux", "amd64"), "a"),
                   _entry(Platform("linux", "arm64", "v8"), "b")))
    with pytest.raises(NoMatchingPlatformError) as caught:
        select_manifest(index, parse_platform("linux/s390x"))
    assert str(caught.value) == ("no matching manifest for linux/s390x in the manifest list "
                                 "entries (available: linux/amd64, linux/arm64/v8)")
    assert isinstance(caught.value, LookupError)


def _multiarch_index() -> Index:
    with tarfile.open(FIXTURES / "fixture-multiarch-oci.tar") as tar:
        top = json.loads(tar.extractfile("index.json").read())  # type: ignore[union-attr]
        digest = top["manifests"][0]["digest"].partition(":")[2]
        data = tar.extractfile(f"blobs/sha256/{digest}").read()  # type: ignore[union-attr]
    return parse_index(data, mediatypes.OCI_INDEX)


@pytest.mark.parametrize(("wanted", "digest"), [
    ("linux/amd64", AMD64_MANIFEST),
    ("linux/x86_64", AMD64_MANIFEST),
    ("linux/arm64", ARM64_MANIFEST),
    ("linux/arm64/v8", ARM64_MANIFEST),
    ("linux/aarch64", ARM64_MANIFEST),
])
def test_select_from_multiarch_fixture(wanted: str, digest: str) -> None:
    assert select_manifest(_multiarch_index(), parse_platform(wanted)).digest == digest


def test_multiarch_fixture_has_no_arm32_or_386() -> None:
    index = _multiarch_index()
    # arm/v7 cannot run arm64 code, and nothing in the index is 32-bit.
    for wanted in ("linux/arm/v7", "linux/386", "linux/s390x", "windows/amd64"):
        with pytest.raises(NoMatchingPlatformError, match="linux/amd64, linux/arm64/v8"):
            select_manifest(index, parse_platform(wanted))


def test_select_from_multiarch_fixture_for_host() -> None:
    host = host_platform()
    chosen = select_manifest(_multiarch_index())
    if host.architecture == "amd64":
        assert chosen.digest == AMD64_MANIFEST
    elif host.architecture == "arm64":
        assert chosen.digest == ARM64_MANIFEST
