"""Rendering of pull/push progress by the CLI (docker's jsonmessage): a line per status
without a terminal, per-layer lines rewritten in place on one."""

from __future__ import annotations

import io
from typing import Any

import pytest

from dockyard.cli.image import ProgressError, display_progress
from dockyard.engine.distribution import _message


class FakeResponse:
    def __init__(self, messages: list[dict[str, Any]]) -> None:
        self.messages = messages

    def iter_json(self) -> Any:
        return iter(self.messages)


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True

    def fileno(self) -> int:
        raise OSError("no real terminal")


PULL = [
    {"status": "Pulling from library/x", "id": "1.0"},
    _message("aaa", "Pulling fs layer"),
    _message("bbb", "Pulling fs layer"),
    _message("aaa", "Downloading", 100, 200),
    _message("aaa", "Verifying Checksum"),
    _message("aaa", "Download complete"),
    _message("aaa", "Extracting", 200, 200),
    _message("aaa", "Pull complete"),
    _message("bbb", "Already exists"),
    {"status": "Digest: sha256:" + "1" * 64},
    {"status": "Status: Downloaded newer image for x:1.0"},
]


def test_without_a_terminal_one_line_per_status_and_no_bars() -> None:
    out = io.StringIO()
    display_progress(FakeResponse(PULL), out)
    assert out.getvalue().splitlines() == [
        "1.0: Pulling from library/x",
        "aaa: Pulling fs layer",
        "bbb: Pulling fs layer",
        "aaa: Verifying Checksum",
        "aaa: Download complete",
        "aaa: Pull complete",
        "bbb: Already exists",
        "Digest: sha256:" + "1" * 64,
        "Status: Downloaded newer image for x:1.0",
    ]


def test_on_a_terminal_layer_lines_are_rewritten_in_place() -> None:
    out = Terminal()
    display_progress(FakeResponse(PULL), out)
    text = out.getvalue()
    assert "\033[2K\r" in text  # a layer's line cleared and written again
    assert "aaa: Downloading [" in text and "100B/200B" in text
    # Moving up to the layer's line and back down, as docker does.
    assert "\033[2A" in text and "\033[2B" in text
    assert text.endswith("Status: Downloaded newer image for x:1.0\n")


def test_an_error_message_ends_the_stream() -> None:
    with pytest.raises(ProgressError, match="filesystem layer verification failed"):
        display_progress(FakeResponse([
            _message("aaa", "Pulling fs layer"),
            {"errorDetail": {"message": "filesystem layer verification failed for digest x"},
             "error": "filesystem layer verification failed for digest x"}]), io.StringIO())
