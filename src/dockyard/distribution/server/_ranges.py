"""The byte ranges of blob downloads (Range) and chunked uploads (Content-Range)."""

from __future__ import annotations

import re

_BYTES_RANGE = re.compile(r"bytes=(\d*)-(\d*)")
_UPLOAD_RANGE = re.compile(r"(?:bytes[ =])?(\d+)-(\d+)")


class UnsatisfiableRange(Exception):
    """The range lies outside the blob: answer 416 with `Content-Range: bytes */size`."""


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The (start, end inclusive) of a single `Range: bytes=...` header, or None to send
    the whole blob (no header, a unit other than bytes, several ranges or a malformed
    one: RFC 9110 lets a server ignore those)."""
    if header is None:
        return None
    match = _BYTES_RANGE.fullmatch(header.strip().replace(" ", ""))
    if match is None:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:
        # A suffix range: the last N bytes.
        length = int(last)
        if length == 0 or size == 0:
            raise UnsatisfiableRange()
        return max(0, size - length), size - 1
    start = int(first)
    if last and int(last) < start:
        return None  # invalid syntax: ignored, as RFC 9110 says
    if start >= size:
        raise UnsatisfiableRange()
    end = int(last) if last else size - 1
    return start, min(end, size - 1)


def parse_upload_range(header: str) -> tuple[int, int] | None:
    """The inclusive (start, end) of a chunk's `Content-Range: <start>-<end>`, or None
    when malformed. The spec's form has no unit; `bytes ` is tolerated."""
    match = _UPLOAD_RANGE.fullmatch(header.strip())
    if match is None:
        return None
    start, end = int(match.group(1)), int(match.group(2))
    if end < start:
        return None
    return start, end
