"""A layer handed to the unpacker while it downloads.

The download thread feeds each chunk it receives to the layer's Spool as well as to the
content store. Until the unpacker comes for the layer the chunks wait in memory, up to a
cap; past it the spool gives up and the unpacker reads the blob from the store once it
is complete. Once attached, the unpacker reads the chunks as they come, and the download
waits when it is more than the cap ahead.

The end of the stream is only given after the download verified the blob's digest, and
a failed download is an error in the stream: the unpacker never finishes a layer from
unverified bytes (and the snapshotter checks the uncompressed digest as well).
"""

from __future__ import annotations

import collections
import threading

SPOOL_CAP = 32 << 20  # bytes held in memory for one layer at most


class SpoolAbandoned(Exception):
    """The layer outgrew the memory cap before the unpacker came: read it from the store."""


class SpoolClosed(Exception):
    """The pull gave up on this layer while its unpacker was still reading."""


class Spool:
    def __init__(self, cap: int = SPOOL_CAP) -> None:
        self._cap = cap
        self._chunks: collections.deque[bytes] = collections.deque()
        self._held = 0
        self._condition = threading.Condition()
        self._attached = False
        self._abandoned = False
        self._finished = False
        self._closed = False
        self._error: BaseException | None = None
        self._current = memoryview(b"")

    # -- the download side ------------------------------------------------------------------

    def feed(self, chunk: bytes) -> None:
        with self._condition:
            if self._abandoned:
                return
            if not self._attached and self._held + len(chunk) > self._cap:
                self._abandoned = True
                self._chunks.clear()
                self._held = 0
                self._condition.notify_all()
                return
            while self._attached and self._held > self._cap:
                self._condition.wait()
            if self._abandoned:
                return  # the unpacker closed meanwhile
            self._chunks.append(chunk)
            self._held += len(chunk)
            self._condition.notify_all()

    def finish(self, error: BaseException | None = None) -> None:
        """The download ended: verified (no error), or failed. Nobody reading yet: the
        unpacker will find the blob in the store, the memory is given back now."""
        with self._condition:
            self._finished = True
            self._error = error
            if not self._attached:
                self._abandoned = True
                self._chunks.clear()
                self._held = 0
            self._condition.notify_all()

    # -- the unpacker side ------------------------------------------------------------------

    def attach(self) -> bool:
        """Start reading from the spool; False if it was abandoned (read the store)."""
        with self._condition:
            if self._abandoned:
                return False
            self._attached = True
            return True

    def read(self, size: int = -1, /) -> bytes:
        if not self._current:
            with self._condition:
                while not self._chunks and not self._finished and not self._closed:
                    self._condition.wait()
                if self._closed:
                    raise SpoolClosed("the pull was cancelled")
                if self._chunks:
                    chunk = self._chunks.popleft()
                    self._held -= len(chunk)
                    self._condition.notify_all()
                    if size < 0 or size >= len(chunk):
                        return chunk  # whole: no copy
                    self._current = memoryview(chunk)
                elif self._error is not None:
                    raise self._error
                else:
                    return b""
        if size < 0 or size >= len(self._current):
            data, self._current = bytes(self._current), memoryview(b"")
            return data
        data, self._current = bytes(self._current[:size]), self._current[size:]
        return data

    def close(self) -> None:
        """The unpacker is done (or failed), or the pull gave up (an unpacker still reading
        gets SpoolClosed): stop holding the download back."""
        with self._condition:
            self._closed = True
            self._abandoned = True
            self._attached = False
            self._chunks.clear()
            self._held = 0
            self._condition.notify_all()
