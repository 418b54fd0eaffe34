"""Image references, parsed and normalised exactly as Docker does.

The grammar and the normalisation rules are those of github.com/distribution/reference
(`ParseNormalizedNamed`, `FamiliarString`, `TagNameOnly`), which the docker CLI and dockerd
both use, so that a name typed by a user means the same image here as in Docker:

    busybox                  -> docker.io/library/busybox        (familiar: busybox)
    user/repo:tag            -> docker.io/user/repo:tag          (familiar: user/repo:tag)
    myhost:5000/a/b:tag      -> myhost:5000/a/b:tag
    localhost/x@sha256:...   -> localhost/x@sha256:...
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from dockyard.image.digest import Digest
from dockyard.image.errors import DigestError, ReferenceError

DEFAULT_DOMAIN = "docker.io"
LEGACY_DEFAULT_DOMAIN = "index.docker.io"
OFFICIAL_REPO_PREFIX = "library/"
DEFAULT_TAG = "latest"
NAME_TOTAL_LENGTH_MAX = 255

# The grammar of distribution/reference's regexp.go, built from the same pieces.
_ALPHANUMERIC = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = rf"{_ALPHANUMERIC}(?:{_SEPARATOR}{_ALPHANUMERIC})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_IPV6 = r"\[(?:[a-fA-F0-9:]+)\]"
_HOST = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|{_IPV6})"
_DOMAIN = rf"{_HOST}(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][0-9a-fA-F]{32,}"
_NAME = rf"(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"

# re.ASCII: Go's \w is [0-9A-Za-z_]; Python's would also accept any Unicode letter.
_REFERENCE_RE = re.compile(rf"({_NAME})(?::({_TAG}))?(?:@({_DIGEST}))?", re.ASCII)
_NAME_RE = re.compile(rf"(?:({_DOMAIN})/)?({_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*)", re.ASCII)
_TAG_RE = re.compile(_TAG, re.ASCII)
_IDENTIFIER_RE = re.compile(r"[a-f0-9]{64}")
_ID_LIKE_RE = re.compile(r"(?:sha256:)?[a-f0-9]{1,64}")


@dataclass(frozen=True)
class Reference:
    """A normalised reference: always a domain and a path; tag and digest optional."""

    domain: str
    path: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        """The full repository name, e.g. "docker.io/library/busybox"."""
        return f"{self.domain}/{self.path}"

    @property
    def familiar_name(self) -> str:
        """The repository as Docker shows it: "busybox", "user/repo", "myhost:5000/a/b"."""
        if self.domain != DEFAULT_DOMAIN:
            return self.name
        path = self.path
        # Only a single component under library/ is shortened (FamiliarName's rule).
        if path.startswith(OFFICIAL_REPO_PREFIX):
            rest = path[len(OFFICIAL_REPO_PREFIX):]
            if "/" not in rest:
                path = rest
        return path

    def familiar(self) -> str:
        """The short form Docker prints ("busybox:latest", "user/repo@sha256:...")."""
        return self._with_suffixes(self.familiar_name)

    def with_default_tag(self) -> Reference:
        """This reference, tagged "latest" if it has neither tag nor digest (TagNameOnly)."""
        if self.tag is None and self.digest is None:
            return replace(self, tag=DEFAULT_TAG)
        return self

    def with_tag(self, tag: str) -> Reference:
        """The same repository with `tag` (and no digest), as `docker tag` makes it."""
        if not _TAG_RE.fullmatch(tag):
            raise ReferenceError("invalid tag format")
        return Reference(self.domain, self.path, tag, None)

    def _with_suffixes(self, name: str) -> str:
        text = name
        if self.tag is not None:
            text += f":{self.tag}"
        if self.digest is not None:
            text += f"@{self.digest}"
        return text

    def __str__(self) -> str:
        return self._with_suffixes(self.name)


def _split_docker_domain(name: str) -> tuple[str, str]:
    """splitDockerDomain: decide whether the first component is a registry host."""
    first, sep, rest = name.partition("/")
    if not sep:
        # A single component ("ubuntu", "ubuntu:latest") is never a host: "host:port"
        # would otherwise be ambiguous with "name:tag".
        return DEFAULT_DOMAIN, OFFICIAL_REPO_PREFIX + name
    if first == "localhost" or any(c in first for c in ".:") or first.lower() != first:
        # localhost, anything with a dot or a port, or uppercase (not allowed in a
        # repository path, so it can only be a host name) is a domain.
        domain, remainder = first, rest
    else:
        domain, remainder = DEFAULT_DOMAIN, name
    if domain == LEGACY_DEFAULT_DOMAIN:  # the old name of Docker Hub
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in remainder:
        remainder = OFFICIAL_REPO_PREFIX + remainder
    return domain, remainder


def _parse(text: str) -> Reference:
    """reference.Parse on an already domain-qualified string."""
    match = _REFERENCE_RE.fullmatch(text)
    if match is None:
        if not text:
            raise ReferenceError("repository name must have at least one component")
        if _REFERENCE_RE.fullmatch(text.lower()):
            raise ReferenceError("repository name must be lowercase")
        raise ReferenceError("invalid reference format")
    name, tag, digest = match.group(1, 2, 3)
    if len(name) > NAME_TOTAL_LENGTH_MAX:
        raise ReferenceError(
            f"repository name must not be more than {NAME_TOTAL_LENGTH_MAX} characters")
    name_match = _NAME_RE.fullmatch(name)
    assert name_match is not None  # the full pattern already matched this part
    domain, path = name_match.group(1, 2)
    if digest is not None:
        try:
            digest = Digest(digest)
        except DigestError as error:
            raise ReferenceError(str(error)) from None
    return Reference(domain or "", path, tag, digest)


def parse_reference(text: str) -> Reference:
    """Parse `text` as Docker's ParseNormalizedNamed does (no default tag is added).

    Raises ReferenceError with Docker's message, e.g. "invalid reference format" or
    "invalid reference format: repository name (library/Busybox) must be lowercase".
    """
    if _IDENTIFIER_RE.fullmatch(text):
        raise ReferenceError(
            f"invalid repository name ({text}), cannot specify 64-byte hexadecimal strings")
    domain, remainder = _split_docker_domain(text)
    remote = remainder.partition(":")[0]
    if remote.lower() != remote:
        raise ReferenceError(
            f"invalid reference format: repository name ({remote}) must be lowercase")
    return _parse(f"{domain}/{remainder}")


def is_image_id_like(text: str) -> bool:
    """True if `text` could be an image ID or a prefix of one ("sha256:" optional).

    Only the shape is checked: whether a prefix names exactly one image is for the image
    store to resolve, as `docker image inspect 5b1` does.
    """
    return _ID_LIKE_RE.fullmatch(text) is not None
