""".dockerignore: Docker's pattern rules.

Each non-comment line is a pattern over slash-separated paths relative to the context
root (a leading "/" is dropped, the pattern is cleaned like Go's filepath.Clean). `*`
matches within one path element, `?` one character, `[...]` a class, `**` any number of
elements. A pattern that matches a directory excludes everything below it. Lines that
start with `!` re-include what earlier lines excluded; the last matching line wins.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass


@dataclass(frozen=True)
class _Pattern:
    text: str
    regex: re.Pattern[str]
    exclusion: bool
    dirs: int  # how many path elements the pattern has (to match parents)


def read_dockerignore(text: str) -> list[str]:
    """The patterns of a .dockerignore file, in order (comments and blanks dropped)."""
    patterns = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        exclusion = line.startswith("!")
        body = line[1:].strip() if exclusion else line
        body = posixpath.normpath(body) if body else body
        if body.startswith("/"):
            body = body.lstrip("/") or "."
        if body in ("", "."):
            continue
        patterns.append(("!" if exclusion else "") + body)
    return patterns


def _compile(pattern: str) -> re.Pattern[str]:
    out = ["^"]
    index = 0
    length = len(pattern)
    while index < length:
        char = pattern[index]
        if char == "*":
            if pattern.startswith("**", index):
                index += 2
                if index < length and pattern[index] == "/":
                    index += 1
                    out.append("(?:.*/)?")
                else:
                    out.append(".*")
                continue
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[":
            end = pattern.find("]", index + 1)
            if end < 0:
                out.append(re.escape(char))
            else:
                body = pattern[index + 1:end]
                if body.startswith("^") or body.startswith("!"):
                    body = "^" + body[1:]
                out.append("[" + body.replace("\\", "\\\\") + "]")
                index = end
        elif char == "\\" and index + 1 < length:
            index += 1
            out.append(re.escape(pattern[index]))
        else:
            out.append(re.escape(char))
        index += 1
    out.append("$")
    return re.compile("".join(out))


class DockerIgnore:
    """Decides which context paths a build sees."""

    def __init__(self, patterns: list[str]) -> None:
        self._patterns = []
        for text in patterns:
            exclusion = text.startswith("!")
            body = text[1:] if exclusion else text
            self._patterns.append(_Pattern(body, _compile(body), exclusion,
                                           body.count("/") + 1))
        self.has_exclusions = any(p.exclusion for p in self._patterns)

    @classmethod
    def from_text(cls, text: str) -> DockerIgnore:
        return cls(read_dockerignore(text))

    def __bool__(self) -> bool:
        return bool(self._patterns)

    def excluded(self, path: str) -> bool:
        """Is this relative path (slash-separated) left out of the context?"""
        path = posixpath.normpath(path).lstrip("/")
        parents = path.split("/")
        result = False
        for pattern in self._patterns:
            matched = bool(pattern.regex.match(path))
            if not matched:
                # A pattern matching a parent directory matches everything below it.
                for depth in range(1, len(parents)):
                    if pattern.regex.match("/".join(parents[:depth])):
                        matched = True
                        break
            if matched:
                result = not pattern.exclusion
        return result

    def may_include_below(self, directory: str) -> bool:
        """Could anything below an excluded directory be re-included by a `!` line?"""
        if not self.has_exclusions:
            return False
        directory = directory.rstrip("/")
        for pattern in self._patterns:
            if pattern.exclusion and (pattern.text == directory
                                      or pattern.text.startswith(directory + "/")
                                      or "*" in pattern.text
                                      or "?" in pattern.text or "[" in pattern.text):
                return True
        return False
