"""Image references: Docker's grammar, normalisation and messages (distribution/reference)."""

from __future__ import annotations

import pytest

from dockyard.image import Reference, ReferenceError, is_image_id_like, parse_reference

HEX = "a" * 64


@pytest.mark.parametrize(("text", "full", "familiar"), [
    ("busybox", "docker.io/library/busybox", "busybox"),
    ("busybox:latest", "docker.io/library/busybox:latest", "busybox:latest"),
    ("busybox:1.36.1-musl", "docker.io/library/busybox:1.36.1-musl", "busybox:1.36.1-musl"),
    ("library/busybox", "docker.io/library/busybox", "busybox"),
    ("docker.io/busybox", "docker.io/library/busybox", "busybox"),
    ("docker.io/library/busybox:latest", "docker.io/library/busybox:latest", "busybox:latest"),
    ("index.docker.io/busybox", "docker.io/library/busybox", "busybox"),
    ("index.docker.io/user/repo:tag", "docker.io/user/repo:tag", "user/repo:tag"),
    ("user/repo:tag", "docker.io/user/repo:tag", "user/repo:tag"),
    ("user/repo/sub", "docker.io/user/repo/sub", "user/repo/sub"),
    # Only a single component under library/ is shortened.
    ("library/a/b", "docker.io/library/a/b", "library/a/b"),
    ("myhost:5000/a/b:tag", "myhost:5000/a/b:tag", "myhost:5000/a/b:tag"),
    ("myhost.example.com/repo", "myhost.example.com/repo", "myhost.example.com/repo"),
    ("localhost/repo", "localhost/repo", "localhost/repo"),
    ("localhost:5000/repo:1", "localhost:5000/repo:1", "localhost:5000/repo:1"),
    ("127.0.0.1:5000/x", "127.0.0.1:5000/x", "127.0.0.1:5000/x"),
    ("[::1]:5000/x:y", "[::1]:5000/x:y", "[::1]:5000/x:y"),
    ("ghcr.io/owner/image:v1", "ghcr.io/owner/image:v1", "ghcr.io/owner/image:v1"),
    # A first component without '.' or ':' that is not localhost is a path, not a host.
    ("myhost/repo", "docker.io/myhost/repo", "myhost/repo"),
    # ... unless it has uppercase letters, which only a host name may have.
    ("Myhost/repo", "Myhost/repo", "Myhost/repo"),
    ("foo__bar", "docker.io/library/foo__bar", "foo__bar"),
    ("foo--bar.baz_qux", "docker.io/library/foo--bar.baz_qux", "foo--bar.baz_qux"),
    ("busybox:TAG_with.dots-1", "docker.io/library/busybox:TAG_with.dots-1",
     "busybox:TAG_with.dots-1"),
    (f"busybox@sha256:{HEX}", f"docker.io/library/busybox@sha256:{HEX}",
     f"busybox@sha256:{HEX}"),
    (f"busybox:1@sha256:{HEX}", f"docker.io/library/busybox:1@sha256:{HEX}",
     f"busybox:1@sha256:{HEX}"),
    # "sha256:<64 hex>" alone is a name with a tag to Docker as well.
    (f"sha256:{HEX}", f"docker.io/library/sha256:{HEX}", f"sha256:{HEX}"),
])
def test_valid_references(text: str, full: str, familiar: str) -> None:
    reference = parse_reference(text)
    assert str(reference) == full
    assert reference.familiar() == familiar
    # Normalising is idempotent: the full form parses to the same reference.
    assert parse_reference(full) == reference


def test_fields_and_name() -> None:
    reference = parse_reference("myhost:5000/a/b:tag")
    assert reference == Reference("myhost:5000", "a/b", "tag", None)
    assert reference.name == "myhost:5000/a/b"
    assert reference.familiar_name == "myhost:5000/a/b"
    busybox = parse_reference("busybox")
    assert (busybox.domain, busybox.path, busybox.tag, busybox.digest) == (
        "docker.io", "library/busybox", None, None)
    assert busybox.name == "docker.io/library/busybox"
    assert busybox.familiar_name == "busybox"


def test_default_tag() -> None:
    assert str(parse_reference("busybox").with_default_tag()) == "docker.io/library/busybox:latest"
    assert parse_reference("busybox").with_default_tag().familiar() == "busybox:latest"
    assert parse_reference("busybox:1").with_default_tag().tag == "1"
    digested = parse_reference(f"busybox@sha256:{HEX}")
    assert digested.with_default_tag() == digested  # a digest needs no tag
    assert parse_reference("busybox:1").with_tag("2").familiar() == "busybox:2"
    with pytest.raises(ReferenceError, match="invalid tag format"):
        parse_reference("busybox").with_tag("-bad")


@pytest.mark.parametrize(("text", "message"), [
    ("", "invalid reference format"),
    ("Busybox", "invalid reference format: repository name (library/Busybox) must be lowercase"),
    ("docker.io/library/Busybox",
     "invalid reference format: repository name (library/Busybox) must be lowercase"),
    ("user/Repo:tag", "invalid reference format: repository name (user/Repo) must be lowercase"),
    ("localhost:5000/Foo", "invalid reference format: repository name (Foo) must be lowercase"),
    ("-busybox", "invalid reference format"),
    ("busybox-", "invalid reference format"),
    ("foo___bar", "invalid reference format"),
    ("foo..bar", "invalid reference format"),
    ("a//b", "invalid reference format"),
    ("busybox:", "invalid reference format"),
    (":tag", "invalid reference format"),
    ("busybox:-tag", "invalid reference format"),
    ("busybox:" + "t" * 129, "invalid reference format"),
    ("busybox@sha256:abc", "invalid reference format"),  # fewer than 32 hex digits
    ("busybox@sha256:" + "a" * 40, "invalid checksum digest length"),
    ("busybox@sha256:" + "A" * 64, "invalid checksum digest format"),
    ("busybox@md5:" + "a" * 32, "unsupported digest algorithm"),
    ("my host/repo", "invalid reference format"),
    ("ba\u00e9/x", "invalid reference format"),
    ("busybox:t\u00e9", "invalid reference format"),  # \w is ASCII-only in Go
    (HEX, f"invalid repository name ({HEX}), cannot specify 64-byte hexadecimal strings"),
    ("a" * 256, "repository name must not be more than 255 characters"),
])
def test_invalid_references(text: str, message: str) -> None:
    with pytest.raises(ReferenceError) as caught:
        parse_reference(text)
    assert str(caught.value) == message
    assert isinstance(caught.value, ValueError)


def test_name_length_counts_the_domain() -> None:
    # 255 characters in all, "docker.io/library/" included, is the limit.
    fits = "a" * (255 - len("docker.io/library/"))
    assert parse_reference(fits).name == f"docker.io/library/{fits}"
    with pytest.raises(ReferenceError, match="must not be more than 255"):
        parse_reference(fits + "a")


@pytest.mark.parametrize(("text", "expected"), [
    (HEX, True),
    (f"sha256:{HEX}", True),
    ("5b1", True),
    ("c05f65ccdd32", True),
    ("sha256:c05f", True),
    ("busybox", False),
    ("C05F65", False),  # IDs are lowercase
    ("a" * 65, False),
    ("sha512:abc", False),
    ("", False),
])
def test_image_id_like(text: str, expected: bool) -> None:
    assert is_image_id_like(text) is expected
