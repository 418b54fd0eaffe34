"""Errors raised by the image layer.

Every error derives from `ImageError`, so the engine can catch the layer's failures in one
place and map them to Docker's status codes; each also derives from the builtin that fits
(`ValueError` for bad input, `LookupError` for something missing) so plain Python callers
need not know this module.
"""

from __future__ import annotations


class ImageError(Exception):
    """Base class of every error raised by dockyard.image."""


# Shadows the builtin ReferenceError (weakref) on purpose: it is the name Docker-facing code
# expects; import it qualified (`image.ReferenceError`) where the builtin matters.
class ReferenceError(ImageError, ValueError):
    """A malformed image reference; the message is Docker's ("invalid reference format")."""


class DigestError(ImageError, ValueError):
    """A malformed digest string (go-digest's messages)."""


class ManifestError(ImageError, ValueError):
    """A malformed manifest, index or image config; the message names the field."""


class PlatformError(ImageError, ValueError):
    """A malformed platform specifier such as "linux/arm64/v8"."""


class NoMatchingPlatformError(ImageError, LookupError):
    """No manifest in an index matches the wanted platform."""


class BlobNotFoundError(ImageError, LookupError):
    """A blob is not in the content store."""

    def __init__(self, digest: str, what: str = "blob") -> None:
        super().__init__(f"{what} {digest} not found")
        self.digest = digest
        self.what = what


class DigestMismatchError(ImageError, ValueError):
    """Content did not hash to the digest (or size) it was expected to have."""


class ArchiveError(ImageError, ValueError):
    """An image archive that cannot be loaded; the message names the member at fault."""
