"""json-file logs: line cutting, the entry format, rotation, the writer thread and its
bound, and the stdio pump that feeds them (pipes, no root needed)."""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from pathlib import Path

import pytest

from dockyard.shim import jsonlog
from dockyard.shim._stdio import STDIN_LIMIT, Stdio
from dockyard.shim.jsonlog import (
    MAX_LINE,
    LineSplitter,
    LogWriter,
    RotatingFile,
    format_entry,
    format_time,
)
from dockyard.shim.protocol import STDERR, STDOUT, FrameDecoder


def test_lines_are_cut_as_docker_cuts_them() -> None:
    splitter = LineSplitter()
    assert splitter.feed(b"one\ntw") == [b"one\n"]
    assert splitter.feed(b"o\nthree\n\n") == [b"two\n", b"three\n", b"\n"]
    assert splitter.feed(b"no newline") == []
    assert splitter.flush() == b"no newline"
    assert splitter.flush() == b""
    long_line = b"x" * (MAX_LINE * 2 + 10) + b"\n"
    pieces = splitter.feed(long_line)
    assert pieces == [b"x" * MAX_LINE, b"x" * MAX_LINE, b"x" * 10 + b"\n"]
    assert splitter.feed(b"y" * (MAX_LINE - 1)) == []
    assert splitter.feed(b"y") == [b"y" * MAX_LINE]
    assert splitter.pending == 0
    assert splitter.feed(b"a\r\nb\r\n") == [b"a\r\n", b"b\r\n"]


def test_entry_format() -> None:
    stamp = 1795858496_123456789
    entry = format_entry(b"hello\n", "stdout", stamp)
    assert entry == (b'{"log":"hello\\n","stream":"stdout",'
                     b'"time":"2026-11-28T09:34:56.123456789Z"}\n')
    assert format_time(1795858496_000000005).endswith(":56.000000005Z")
    # As Go's encoder writes them: <, >, & escaped; bad UTF-8 becomes U+FFFD.
    escaped = format_entry(b"<a & b>\xff\t\"", "stderr", stamp)
    assert escaped.startswith(b'{"log":"\\u003ca \\u0026 b\\u003e\xef\xbf\xbd\\t\\"",'
                              b'"stream":"stderr"')
    assert json.loads(escaped)["log"] == "<a & b>\ufffd\t\""
    assert json.loads(format_entry("é ✓\n".encode(), "stdout", stamp))["log"] == "é ✓\n"


def _entries(path: Path) -> list[str]:
    return [json.loads(line)["log"] for line in path.read_text().splitlines()]


def test_rotation_keeps_max_files_each_under_max_size(tmp_path: Path) -> None:
    path = tmp_path / "c-json.log"
    entries = [format_entry(b"%04d\n" % i, "stdout", 0) for i in range(1000)]
    size = len(entries[0])
    rotating = RotatingFile(str(path), 10 * size + 5, 3)
    rotating.write_entries(entries[:25])
    rotating.write_entries(entries[25:])
    rotating.close()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["c-json.log", "c-json.log.1", "c-json.log.2"]
    assert all(p.stat().st_size <= 10 * size + 5 for p in tmp_path.iterdir())
    kept = _entries(tmp_path / "c-json.log.2") + _entries(tmp_path / "c-json.log.1") + \
        _entries(path)
    assert kept == [f"{i:04d}\n" for i in range(970, 1000)]


def test_one_file_is_truncated_and_an_existing_log_is_appended(tmp_path: Path) -> None:
    path = tmp_path / "c-json.log"
    path.write_bytes(format_entry(b"old\n", "stdout", 0))
    entry = format_entry(b"new\n", "stdout", 0)
    rotating = RotatingFile(str(path), 3 * len(entry), 1)
    rotating.write_entries([entry])
    assert _entries(path) == ["old\n", "new\n"]
    rotating.write_entries([entry, entry])
    rotating.close()
    assert [p.name for p in tmp_path.iterdir()] == ["c-json.log"]
    assert _entries(path) == ["new\n"]


def test_no_size_limit(tmp_path: Path) -> None:
    path = tmp_path / "log"
    rotating = RotatingFile(str(path), 0, 3)
    rotating.write_entries([format_entry(b"x" * 1000, "stdout", 0)] * 100)
    rotating.close()
    assert len(_entries(path)) == 100


def test_writer_thread_writes_then_reports_closed(tmp_path: Path) -> None:
    writer = LogWriter()
    log = writer.open(str(tmp_path / "logs" / "a.log"), 0, 1)
    for i in range(100):
        log.write(b"%d\n" % i, "stdout" if i % 2 else "stderr", time.time_ns())
    closed = threading.Event()
    log.close(closed.set)
    assert closed.wait(5)
    docs = [json.loads(line) for line in (tmp_path / "logs" / "a.log").read_text().splitlines()]
    assert [d["log"] for d in docs] == [f"{i}\n" for i in range(100)]
    assert [d["stream"] for d in docs[:2]] == ["stderr", "stdout"]
    writer.stop()


def test_a_stuck_disk_drops_and_counts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                       ) -> None:
    """While a write(2) hangs, entries past the bound are dropped, not queued."""
    release = threading.Event()
    real_write = os.write

    def slow_write(fd: int, data: bytes) -> int:
        release.wait(10)
        return real_write(fd, data)

    writer = LogWriter()
    log = writer.open(str(tmp_path / "a.log"), 0, 1)
    monkeypatch.setattr(jsonlog.os, "write", slow_write)
    log.write(b"first\n", "stdout", 0)
    deadline = time.monotonic() + 5
    while not log.writer_stuck():
        assert time.monotonic() < deadline
        time.sleep(0.01)
    line = b"x" * 1000 + b"\n"
    for _ in range(3000):  # 3 MB, three times the bound
        log.write(line, "stdout", 0)
    assert 0 < log.pending_bytes <= jsonlog.HARD_LIMIT
    assert log.dropped_entries > 1000 and log.dropped_bytes == log.dropped_entries * 1001
    release.set()
    closed = threading.Event()
    log.close(closed.set)
    assert closed.wait(5)
    kept = len((tmp_path / "a.log").read_text().splitlines())
    assert kept == 1 + 3000 - log.dropped_entries
    writer.stop()


def _run(coro: object) -> object:
    return asyncio.run(coro)  # type: ignore[arg-type]


def test_stdio_pump_to_log_and_attacher(tmp_path: Path) -> None:
    async def scenario() -> tuple[bytes, list[dict[str, str]]]:
        loop = asyncio.get_running_loop()
        writer = LogWriter()
        log = writer.open(str(tmp_path / "c.log"), 0, 1)
        stdio = Stdio(loop, False, False, log)
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        stdio.add_output(out_r, STDOUT)
        stdio.add_output(err_r, STDERR)
        # An attacher: one end of a socket pair as an asyncio stream.
        import socket

        from dockyard.shim._stdio import Attacher

        ours, theirs = socket.socketpair()
        reader, stream_writer = await asyncio.open_connection(sock=ours)
        stdio.attachers.append(Attacher(stream_writer, True, True))
        os.write(out_w, b"line one\npart")
        os.write(err_w, b"oops\n")
        await asyncio.sleep(0.05)
        os.write(out_w, b"ial\n")
        os.close(out_w)
        os.write(err_w, b"no newline at the end")
        os.close(err_w)
        await stdio.wait_output_end(2)
        closed = loop.create_future()
        log.close(lambda: loop.call_soon_threadsafe(closed.set_result, None))
        await closed
        stdio.close()
        theirs.settimeout(2)
        received = b""
        while chunk := await loop.run_in_executor(None, theirs.recv, 65536):
            received += chunk
        theirs.close()
        writer.stop()
        lines = (tmp_path / "c.log").read_text().splitlines()
        return received, [json.loads(line) for line in lines]

    received, docs = _run(scenario())  # type: ignore[misc]
    frames = FrameDecoder().feed(received)
    assert b"".join(d for s, d in frames if s == STDOUT) == b"line one\npartial\n"
    assert b"".join(d for s, d in frames if s == STDERR) == b"oops\nno newline at the end"
    by_stream = {s: [d["log"] for d in docs if d["stream"] == s] for s in ("stdout", "stderr")}
    assert by_stream == {"stdout": ["line one\n", "partial\n"],
                         "stderr": ["oops\n", "no newline at the end"]}


def test_stdin_is_queued_until_the_process_starts(tmp_path: Path) -> None:
    async def scenario() -> bytes:
        loop = asyncio.get_running_loop()
        stdio = Stdio(loop, False, True, None)
        await stdio.write_stdin(b"early ")
        stdio.close_stdin()  # end of input, asked before the process exists
        read_end, write_end = os.pipe()
        stdio.add_stdin_pipe(write_end)
        data = b""
        os.set_blocking(read_end, False)
        deadline = time.monotonic() + 5
        while True:
            await asyncio.sleep(0.01)
            try:
                chunk = os.read(read_end, 65536)
            except BlockingIOError:
                assert time.monotonic() < deadline
                continue
            if not chunk:
                break
            data += chunk
        os.close(read_end)
        stdio.close()
        return data

    assert _run(scenario()) == b"early "


def test_stdin_waits_for_a_slow_reader() -> None:
    async def scenario() -> int:
        loop = asyncio.get_running_loop()
        stdio = Stdio(loop, False, True, None)
        read_end, write_end = os.pipe()
        stdio.add_stdin_pipe(write_end)
        big = b"z" * (STDIN_LIMIT * 2)
        writing = loop.create_task(stdio.write_stdin(big))
        await asyncio.sleep(0.05)
        assert not writing.done()  # the process reads nothing: the attacher waits
        os.set_blocking(read_end, False)
        total = 0
        while total < len(big):
            try:
                total += len(os.read(read_end, 65536))
            except BlockingIOError:
                await asyncio.sleep(0.005)
        await asyncio.wait_for(writing, 5)
        stdio.close()
        os.close(read_end)
        return total

    assert _run(scenario()) == STDIN_LIMIT * 2
