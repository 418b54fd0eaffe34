"""Container logs in Docker's json-file format, rotated by size, written off the event loop.

One JSON object per line, as Docker's json-file driver writes it:

    {"log":"hello\\n","stream":"stdout","time":"2026-11-28T09:15:00.123456789Z"}

Output is cut into lines as Docker's log copier cuts it: a line ends at "\\n" (kept in
"log"); a line longer than 16 KiB is written in 16 KiB pieces without "\\n"; what is left
without a newline when the stream ends is written as it is. A terminal's "\\r\\n" stays.

Unlike Docker's default (no max-size), a log never grows without bound: when the next
entry would take <log> past max_size it is renamed <log>.1 (<log>.1 to <log>.2, ...,
keeping max_files files in all) and a new <log> begins; max_files=1 truncates instead.

Writing. A regular file cannot be written without blocking, and a slow disk must not stop
the containers (their pipes fill, their writes block) nor the shim's event loop. So the
loop only formats entries and queues them; one thread (LogWriter) writes every log. Each
log's queue is bounded. Past SOFT_LIMIT queued bytes the shim stops reading that
container's output for a moment, as long as the disk takes the writes (a fast producer
simply outruns the thread, which shares the interpreter with the loop: it is slowed to
the writer's speed, as any pipe slows its writer). Once one write(2) has taken longer
than STALL_BUDGET (the disk is slow), the output is read on regardless, and entries past
HARD_LIMIT are dropped and counted (dropped_entries, dropped_bytes: `state` reports
them, the shim's log says so).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import deque
from collections.abc import Callable

MAX_LINE = 16 * 1024  # Docker's copier buffer: longer lines are cut into pieces
SOFT_LIMIT = 256 * 1024
HARD_LIMIT = 1024 * 1024
STALL_BUDGET = 0.05  # a write(2) slower than this means a slow disk: drop, do not wait

_GO_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028",
               "\u2029": "\\u2029"}


class LineSplitter:
    """Cuts one stream's output into log messages as Docker's copier does."""

    __slots__ = ("_pending",)

    def __init__(self) -> None:
        self._pending = b""

    def feed(self, data: bytes) -> list[bytes]:
        buffer = self._pending + data if self._pending else data
        pieces = []
        start = 0
        end = len(buffer)
        while start < end:
            newline = buffer.find(b"\n", start, start + MAX_LINE)
            if newline >= 0:
                pieces.append(buffer[start:newline + 1])
                start = newline + 1
            elif end - start >= MAX_LINE:
                pieces.append(buffer[start:start + MAX_LINE])
                start += MAX_LINE
            else:
                break
        self._pending = buffer[start:]
        return pieces

    def flush(self) -> bytes:
        """What is left without a newline (at the end of the stream)."""
        rest, self._pending = self._pending, b""
        return rest

    @property
    def pending(self) -> int:
        return len(self._pending)


def _json_string(text: str) -> str:
    # Go's encoder (Docker's) escapes <, >, & and the JS line separators; readers decode
    # either spelling, but byte-for-byte equal logs make comparisons with Docker easy.
    encoded = json.dumps(text, ensure_ascii=False)
    if any(c in encoded for c in _GO_ESCAPES):
        encoded = "".join(_GO_ESCAPES.get(c, c) for c in encoded)
    return encoded


_second_cache: list[object] = [None, ""]


def format_time(time_ns: int) -> str:
    """RFC 3339 with nanoseconds, UTC, always 9 digits (Docker's RFC3339NanoFixed)."""
    seconds, nanos = divmod(time_ns, 1_000_000_000)
    if _second_cache[0] != seconds:
        _second_cache[0] = seconds
        _second_cache[1] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    return f"{_second_cache[1]}.{nanos:09d}Z"


def now_rfc3339nano() -> str:
    return format_time(time.time_ns())


def format_entry(data: bytes, stream: str, time_ns: int) -> bytes:
    """One json-file line; invalid UTF-8 becomes U+FFFD, as Go's encoder makes it."""
    text = data.decode("utf-8", "replace")
    return (f'{{"log":{_json_string(text)},"stream":"{stream}",'
            f'"time":"{format_time(time_ns)}"}}\n').encode()


class RotatingFile:
    """A log file that rotates by size. Used by the writer thread only."""

    def __init__(self, path: str, max_size: int, max_files: int) -> None:
        self.path = path
        self.max_size = max_size if max_size > 0 else 0  # 0: no limit
        self.max_files = max(1, max_files)
        self._fd = -1
        self.size = 0
        self.writing_since = 0.0  # when the write(2) in progress began, or 0

    def _open(self) -> None:
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC,
                           0o640)
        self.size = os.fstat(self._fd).st_size

    def write_entries(self, entries: list[bytes]) -> None:
        if self._fd < 0:
            self._open()
        batch: list[bytes] = []
        batch_size = 0
        for entry in entries:
            if self.max_size and self.size + batch_size + len(entry) > self.max_size and \
                    self.size + batch_size > 0:
                self._write(batch)
                batch, batch_size = [], 0
                self.rotate()
            batch.append(entry)
            batch_size += len(entry)
        self._write(batch)

    def _write(self, batch: list[bytes]) -> None:
        if not batch:
            return
        data = memoryview(b"".join(batch))
        while data:
            self.writing_since = time.monotonic()
            try:
                written = os.write(self._fd, data)
            finally:
                self.writing_since = 0.0
            self.size += written
            data = data[written:]

    def rotate(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if self.max_files == 1:
            os.truncate(self.path, 0)
        else:
            for index in range(self.max_files - 1, 1, -1):
                try:
                    os.rename(f"{self.path}.{index - 1}", f"{self.path}.{index}")
                except FileNotFoundError:
                    pass
            os.rename(self.path, f"{self.path}.1")
        self._open()

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class JsonFileLog:
    """One container's (or exec's) log: entries are queued by the event loop and written
    by the LogWriter thread."""

    __slots__ = ("writer", "file", "_entries", "pending_bytes", "dropped_entries",
                 "dropped_bytes", "_queued", "_closing", "_on_closed", "last_error")

    def __init__(self, writer: LogWriter, path: str, max_size: int, max_files: int) -> None:
        self.writer = writer
        self.file = RotatingFile(path, max_size, max_files)
        self._entries: list[bytes] = []
        self.pending_bytes = 0
        self.dropped_entries = 0
        self.dropped_bytes = 0
        self._queued = False
        self._closing = False
        self._on_closed: Callable[[], None] | None = None
        self.last_error = ""

    def writer_stuck(self) -> bool:
        """Whether the writer has been in one write(2) for longer than STALL_BUDGET."""
        since = self.file.writing_since
        return since != 0.0 and time.monotonic() - since > STALL_BUDGET

    def write(self, data: bytes, stream: str, time_ns: int) -> None:
        entry = format_entry(data, stream, time_ns)
        with self.writer.lock:
            if self.pending_bytes + len(entry) > HARD_LIMIT and self.writer_stuck():
                self.dropped_entries += 1
                self.dropped_bytes += len(data)
                return
            self._entries.append(entry)
            self.pending_bytes += len(entry)
            self._queue()

    def close(self, on_closed: Callable[[], None]) -> None:
        """Writes what is queued, closes the file, then calls on_closed (in the writer's
        thread)."""
        with self.writer.lock:
            self._closing = True
            self._on_closed = on_closed
            self._queue()

    def _queue(self) -> None:  # with the writer's lock held
        if not self._queued:
            self._queued = True
            self.writer.ready(self)

    def take(self) -> tuple[list[bytes], bool]:  # writer thread, lock held
        entries, self._entries = self._entries, []
        self.pending_bytes = 0
        self._queued = False
        return entries, self._closing


class LogWriter:
    """The thread that writes every log (see the module's docstring for why a thread)."""

    def __init__(self, report: Callable[[str], None] | None = None) -> None:
        self.lock = threading.Lock()
        self._wake = threading.Condition(self.lock)
        self._ready: deque[JsonFileLog] = deque()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._report = report or (lambda message: None)

    def open(self, path: str, max_size: int, max_files: int) -> JsonFileLog:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="log-writer", daemon=True)
            self._thread.start()
        return JsonFileLog(self, path, max_size, max_files)

    def ready(self, log: JsonFileLog) -> None:  # lock held
        self._ready.append(log)
        self._wake.notify()

    def _run(self) -> None:
        while True:
            with self.lock:
                while not self._ready and not self._stopping:
                    self._wake.wait()
                if not self._ready:
                    return
                log = self._ready.popleft()
                entries, closing = log.take()
            self._write(log, entries)
            if closing:
                with self.lock:
                    more = bool(log._entries)
                if more:  # written after close() was asked: one more round
                    with self.lock:
                        log._queue()
                    continue
                try:
                    log.file.close()
                except OSError:
                    pass
                if log._on_closed is not None:
                    try:
                        log._on_closed()
                    except Exception as e:  # noqa: BLE001 - e.g. the loop is closed
                        self._report(f"log close callback failed: {e!r}")

    def _write(self, log: JsonFileLog, entries: list[bytes]) -> None:
        if not entries:
            return
        try:
            log.file.write_entries(entries)
        except Exception as e:  # noqa: BLE001 - the thread must live: drop and tell
            dropped = sum(len(entry) for entry in entries)
            with self.lock:
                log.dropped_entries += len(entries)
                log.dropped_bytes += dropped
            message = f"{log.file.path}: {getattr(e, 'strerror', None) or e}"
            if message != log.last_error:
                log.last_error = message
                self._report(f"log write failed, entries dropped: {message}")
            log.file.close()  # reopened on the next write

    def stop(self) -> None:
        """Writes what is queued and ends the thread."""
        with self.lock:
            self._stopping = True
            self._wake.notify()
        if self._thread is not None:
            self._thread.join(timeout=10)
