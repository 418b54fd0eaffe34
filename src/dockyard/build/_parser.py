"""The Dockerfile's syntax: parser directives, comments, line continuations, heredocs,
and each instruction's name, flags and arguments (not yet their meaning: see
_instructions.py)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ._errors import DockerfileError

_DIRECTIVE = re.compile(r"^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$")
_KNOWN_DIRECTIVES = ("escape", "syntax", "check")
_HEREDOC = re.compile(r"<<(-?)\s*(['\"]?)([A-Za-z_][A-Za-z0-9_]*)\2")
# Instructions whose arguments may carry heredocs (BuildKit's syntax, ours too).
_HEREDOC_COMMANDS = frozenset({"run", "copy", "add"})
# Instructions that take --flags before their arguments.
_FLAG_COMMANDS = frozenset({"from", "run", "copy", "add", "healthcheck"})


@dataclass(frozen=True)
class Heredoc:
    name: str
    content: str
    expand: bool  # an unquoted terminator: variables in the content are substituted


@dataclass
class RawInstruction:
    """One instruction as written: `command` in lower case, the text after the flags in
    `rest`, `original` as Docker shows it in "Step 1/5 : ..."."""

    command: str
    rest: str
    original: str
    line: int
    flags: list[tuple[str, str | None]] = field(default_factory=list)
    heredocs: list[Heredoc] = field(default_factory=list)


@dataclass
class ParsedFile:
    instructions: list[RawInstruction]
    escape: str = "\\"
    syntax: str = ""


def parse_text(text: str) -> ParsedFile:
    lines = text.splitlines()
    escape, syntax, index = _directives(lines)
    continuation = re.compile(re.escape(escape) + r"[ \t]*$")
    instructions: list[RawInstruction] = []
    while index < len(lines):
        start = index
        line = lines[index].lstrip(" \t")
        index += 1
        if not line or line.startswith("#"):
            continue
        logical = line
        while continuation.search(logical):
            logical = continuation.sub("", logical)
            # Comment and empty lines inside a continued instruction are skipped.
            while index < len(lines) and (not lines[index].strip()
                                          or lines[index].lstrip().startswith("#")):
                index += 1
            if index >= len(lines):
                break
            logical += lines[index].lstrip(" \t")
            index += 1
        command, _, rest = logical.partition(" ")
        if "\t" in command:
            command, _, tail = command.partition("\t")
            rest = tail + " " + rest
        name = command.lower()
        instruction = RawInstruction(name, rest.strip(), logical.rstrip(), start + 1)
        if name in _HEREDOC_COMMANDS:
            index = _read_heredocs(instruction, lines, index)
        if name in _FLAG_COMMANDS:
            instruction.flags, instruction.rest = _split_flags(instruction.rest)
        instructions.append(instruction)
    return ParsedFile(instructions, escape, syntax)


def _directives(lines: list[str]) -> tuple[str, str, int]:
    """The parser directives at the top of the file; where the instructions start."""
    found: dict[str, str] = {}
    index = 0
    while index < len(lines):
        match = _DIRECTIVE.match(lines[index])
        if not match or match.group(1).lower() not in _KNOWN_DIRECTIVES:
            break
        key = match.group(1).lower()
        if key in found:
            raise DockerfileError(f"only one {key} parser directive can be used", index + 1)
        found[key] = match.group(2)
        index += 1
    escape = found.get("escape", "\\")
    if escape not in ("\\", "`"):
        raise DockerfileError(f"invalid escape token '{escape}' does not match ` or \\", 1)
    return escape, found.get("syntax", ""), index


def _read_heredocs(instruction: RawInstruction, lines: list[str], index: int) -> int:
    for match in _HEREDOC.finditer(instruction.rest):
        strip_tabs, quote, name = match.group(1), match.group(2), match.group(3)
        body: list[str] = []
        while True:
            if index >= len(lines):
                raise DockerfileError(f"unterminated heredoc {name}", instruction.line)
            text = lines[index]
            index += 1
            if strip_tabs:
                text = text.lstrip("\t")
            if text == name:
                break
            body.append(text)
        content = "\n".join(body) + "\n" if body else ""
        instruction.heredocs.append(Heredoc(name, content, expand=not quote))
    return index


def _split_flags(rest: str) -> tuple[list[tuple[str, str | None]], str]:
    flags: list[tuple[str, str | None]] = []
    while rest.startswith("--"):
        word, _, tail = rest.partition(" ")
        if word == "--":
            break
        name, has_value, value = word[2:].partition("=")
        flags.append((name, value if has_value else None))
        rest = tail.lstrip()
    return flags, rest
