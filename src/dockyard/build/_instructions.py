"""A Dockerfile checked as a whole before anything runs: known instructions, known flags,
the right number of arguments, stages and their names. Values that depend on variables
are substituted later, step by step, by the builder (their environment grows)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from ._errors import DockerfileError
from ._lexer import split_keeping_quotes
from ._parser import Heredoc, RawInstruction, parse_text

COMMANDS = frozenset({"add", "arg", "cmd", "copy", "entrypoint", "env", "expose", "from",
                      "healthcheck", "label", "maintainer", "onbuild", "run", "shell",
                      "stopsignal", "user", "volume", "workdir"})

_FLAGS: dict[str, frozenset[str]] = {
    "from": frozenset({"platform"}),
    "run": frozenset({"mount", "network", "security"}),
    "copy": frozenset({"from", "chown", "chmod", "link"}),
    "add": frozenset({"chown", "chmod", "link", "checksum", "keep-git-dir"}),
    "healthcheck": frozenset({"interval", "timeout", "start-period", "start-interval",
                              "retries"}),
}
_REPEATABLE_FLAGS = frozenset({"mount"})
_BOOL_FLAGS = frozenset({"link", "keep-git-dir"})
_JSON_FORMS = frozenset({"run", "cmd", "entrypoint", "shell", "volume", "copy", "add"})
# The proxy variables every build knows without an ARG (and keeps out of the history).
PROXY_ARGS = frozenset({"HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy",
                        "FTP_PROXY", "ftp_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY",
                        "all_proxy"})


@dataclass
class Instruction:
    """One instruction: `words` is the exec form's list (json=True) or the raw text
    split into words (quotes kept) for the rest; `text` the raw text after the flags."""

    command: str
    text: str
    original: str
    line: int
    flags: dict[str, str] = field(default_factory=dict)
    mounts: list[str] = field(default_factory=list)
    words: list[str] = field(default_factory=list)
    json: bool = False
    heredocs: list[Heredoc] = field(default_factory=list)
    escape: str = "\\"


@dataclass
class Stage:
    index: int
    base: str
    name: str
    platform: str
    from_instruction: Instruction
    instructions: list[Instruction] = field(default_factory=list)


@dataclass
class Dockerfile:
    stages: list[Stage]
    meta_args: list[Instruction]
    escape: str
    syntax: str

    @property
    def total_steps(self) -> int:
        return len(self.meta_args) + sum(1 + len(s.instructions) for s in self.stages)

    def stage_index(self, name: str) -> int | None:
        lowered = name.lower()
        for stage in self.stages:
            if stage.name and stage.name == lowered:
                return stage.index
        return None


def parse_dockerfile(text: str, name: str = "Dockerfile") -> Dockerfile:
    """The Dockerfile, checked; DockerfileError (naming the line) if it cannot be built."""
    parsed = parse_text(text)
    if not parsed.instructions:
        raise DockerfileError(f"the Dockerfile ({name}) cannot be empty")
    meta_args: list[Instruction] = []
    stages: list[Stage] = []
    for raw in parsed.instructions:
        instruction = _check(raw, parsed.escape)
        if instruction.command == "from":
            stages.append(_stage(instruction, len(stages), stages))
        elif not stages:
            if instruction.command != "arg":
                raise DockerfileError("no build stage in current context", raw.line)
            meta_args.append(instruction)
        else:
            stages[-1].instructions.append(instruction)
    if not stages:
        raise DockerfileError("no build stage in current context", parsed.instructions[-1].line)
    return Dockerfile(stages, meta_args, parsed.escape, parsed.syntax)


def _stage(instruction: Instruction, index: int, before: list[Stage]) -> Stage:
    words = instruction.words
    if len(words) not in (1, 3) or (len(words) == 3 and words[1].lower() != "as"):
        raise DockerfileError("FROM requires either one or three arguments", instruction.line)
    name = words[2].lower() if len(words) == 3 else ""
    if name:
        if not name[0].isalpha() or not all(c.isalnum() or c in "_.-" for c in name):
            raise DockerfileError(f"invalid name for build stage: \"{words[2]}\", name can't "
                                  "start with a number or contain symbols", instruction.line)
        if any(stage.name == name for stage in before):
            raise DockerfileError(f"duplicate name {words[2]}", instruction.line)
    return Stage(index, words[0], name, instruction.flags.get("platform", ""), instruction)


def _check(raw: RawInstruction, escape: str) -> Instruction:
    command = raw.command
    if command not in COMMANDS:
        raise DockerfileError(f"unknown instruction: {raw.original.split()[0].upper()}",
                              raw.line)
    instruction = Instruction(command, raw.rest, raw.original, raw.line,
                              heredocs=raw.heredocs, escape=escape)
    allowed = _FLAGS.get(command, frozenset())
    for flag, value in raw.flags:
        if flag not in allowed:
            raise DockerfileError(f"Unknown flag: {flag}", raw.line)
        if flag in _REPEATABLE_FLAGS:
            instruction.mounts.append(value or "")
            continue
        if flag in instruction.flags:
            raise DockerfileError(f"Duplicate flag specified: {flag}", raw.line)
        if value is None and flag not in _BOOL_FLAGS:
            raise DockerfileError(f"Missing a value on flag: {flag}", raw.line)
        instruction.flags[flag] = value if value is not None else "true"
    text = raw.rest
    if command in _JSON_FORMS and text.startswith("["):
        try:
            value = json.loads(text)
        except ValueError:
            value = None
        if isinstance(value, list) and all(isinstance(item, str) for item in value):
            instruction.words, instruction.json = value, True
    if not instruction.json:
        try:
            instruction.words = split_keeping_quotes(text, escape)
        except DockerfileError as e:
            raise e.at(raw.line) from None
    _check_arguments(instruction)
    return instruction


def _check_arguments(ins: Instruction) -> None:
    command, words, line = ins.command, ins.words, ins.line
    name = command.upper()

    def fail(message: str) -> None:
        raise DockerfileError(message, line)

    if command in ("run", "cmd", "entrypoint"):
        if command == "run" and not words and not ins.heredocs and not ins.json:
            fail("RUN requires at least one argument")
    elif command in ("copy", "add"):
        if len(words) + len(ins.heredocs) - _heredoc_words(ins) < 2:
            fail(f"{name} requires at least two arguments")
    elif command in ("workdir", "user", "stopsignal", "maintainer"):
        if not ins.text.strip():
            fail(f"{name} requires exactly one argument")
        if command in ("user", "stopsignal") and len(words) != 1:
            fail(f"{name} requires exactly one argument")
    elif command in ("expose", "volume", "label", "onbuild", "healthcheck"):
        if not words:
            fail(f"{name} requires at least one argument")
    elif command == "env":
        if not words:
            fail("ENV requires at least one argument")
        _pairs(ins, "ENV")
    elif command == "arg":
        if not words:
            fail("ARG requires at least one argument")
        for word in words:
            key = word.split("=", 1)[0]
            if not key:
                fail("ARG names can not be blank")
    elif command == "shell":
        if not ins.json:
            fail("SHELL requires the arguments to be in JSON form")
        if not words:
            fail("SHELL requires at least one argument")
    if command == "label":
        _pairs(ins, "LABEL")
    if command == "onbuild":
        trigger = words[0].upper()
        if trigger == "ONBUILD":
            fail("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
        if trigger in ("FROM", "MAINTAINER"):
            fail(f"{trigger} isn't allowed as an ONBUILD trigger")
        if trigger.lower() not in COMMANDS:
            fail(f"unknown instruction: {trigger}")
    if command == "healthcheck":
        kind = words[0].upper()
        if kind not in ("CMD", "NONE"):
            fail(f"Unknown type \"{kind}\" in HEALTHCHECK (try CMD)")
        if kind == "NONE" and len(words) > 1:
            fail("HEALTHCHECK NONE takes no arguments")
        if kind == "CMD" and len(words) < 2:
            fail("Missing command after HEALTHCHECK CMD")


def _heredoc_words(ins: Instruction) -> int:
    """How many words of a COPY/ADD are heredoc markers (counted once as sources)."""
    return sum(1 for word in ins.words if word.startswith("<<"))


def _pairs(ins: Instruction, what: str) -> list[tuple[str, str]]:
    """ENV/LABEL key=value words (raw), with the old one-pair form `ENV key value`."""
    words = ins.words
    if words and "=" not in words[0]:
        if what == "LABEL":
            raise DockerfileError("LABEL requires at least one argument" if not words else
                                  f"Syntax error - can't find = in \"{words[0]}\". Must be "
                                  "of the form: name=value", ins.line)
        if len(words) < 2:
            raise DockerfileError("ENV must have two arguments", ins.line)
        key, _, value = ins.text.strip().partition(" ")
        if not key.strip():
            raise DockerfileError("ENV names can not be blank", ins.line)
        return [(key, value.strip())]
    pairs = []
    for word in words:
        key, sep, value = word.partition("=")
        if not sep:
            raise DockerfileError(f"Syntax error - can't find = in \"{word}\". Must be of "
                                  "the form: name=value", ins.line)
        if not key:
            raise DockerfileError(f"{what} names can not be blank", ins.line)
        pairs.append((key, value))
    return pairs


def raw_pairs(ins: Instruction) -> list[tuple[str, str]]:
    """ENV/LABEL pairs with raw (unsubstituted) keys and values."""
    return _pairs(ins, ins.command.upper())
