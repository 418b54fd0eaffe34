"""The Dockerfile parser: directives, continuations, heredocs, flags, stages, and errors
that name the line."""

from __future__ import annotations

import pytest

from dockyard.build import DockerfileError, parse_dockerfile
from dockyard.build._instructions import raw_pairs
from dockyard.build._parser import parse_text


def test_stages_meta_args_and_step_count() -> None:
    df = parse_dockerfile("ARG V=1\nFROM busybox:${V} AS Base\nRUN true\n"
                          "FROM base\nCOPY --from=base /a /b\n")
    assert [s.name for s in df.stages] == ["base", ""]
    assert df.stages[0].base == "busybox:${V}"
    assert [i.command for i in df.meta_args] == ["arg"]
    assert df.total_steps == 5
    assert df.stage_index("BASE") == 0
    assert df.stages[1].instructions[0].flags == {"from": "base"}


def test_continuations_comments_and_original_text() -> None:
    text = ("FROM busybox\n"
            "RUN echo a \\\n"
            "# a comment inside\n"
            "\n"
            "    && echo b\n"
            "  # indented comment\n"
            "run echo c\n")
    df = parse_dockerfile(text)
    run1, run2 = df.stages[0].instructions
    assert run1.original == "RUN echo a && echo b"
    assert run1.line == 2
    assert run2.command == "run" and run2.line == 7


def test_escape_directive_and_syntax() -> None:
    parsed = parse_text("# syntax=docker/dockerfile:1\n# escape=`\nFROM x\nRUN a `\n b\n")
    assert parsed.escape == "`" and parsed.syntax == "docker/dockerfile:1"
    assert parsed.instructions[1].rest == "a b"


def test_directive_after_instruction_is_a_comment() -> None:
    parsed = parse_text("FROM x\n# escape=`\nRUN a \\\n b\n")
    assert parsed.escape == "\\"
    assert parsed.instructions[1].rest == "a b"


def test_exec_and_shell_forms() -> None:
    df = parse_dockerfile('FROM x\nCMD ["sh", "-c", "echo"]\nCMD echo hi\nCMD [not json\n')
    cmd1, cmd2, cmd3 = df.stages[0].instructions
    assert cmd1.json and cmd1.words == ["sh", "-c", "echo"]
    assert not cmd2.json and cmd2.text == "echo hi"
    assert not cmd3.json and cmd3.text == "[not json"


def test_heredocs() -> None:
    df = parse_dockerfile("FROM x\nRUN <<EOF\necho one\necho two\nEOF\n"
                          "COPY <<-'END' /f\n\thello $X\n\tEND\nRUN true\n")
    run, copy, last = df.stages[0].instructions
    assert run.heredocs[0].content == "echo one\necho two\n"
    assert run.heredocs[0].expand
    assert copy.heredocs[0].content == "hello $X\n"
    assert not copy.heredocs[0].expand
    assert last.line == 9


def test_env_and_label_pairs() -> None:
    df = parse_dockerfile('FROM x\nENV A=1 B="two words" C=a\\ b\nENV OLD some value\n'
                          'LABEL "quoted key"=v k=v2\n')
    env1, env2, label = df.stages[0].instructions
    assert raw_pairs(env1) == [("A", "1"), ("B", '"two words"'), ("C", "a\\ b")]
    assert raw_pairs(env2) == [("OLD", "some value")]
    assert raw_pairs(label) == [('"quoted key"', "v"), ("k", "v2")]


def test_run_mount_flags_repeat() -> None:
    df = parse_dockerfile("FROM x\nRUN --mount=type=cache,target=/c --mount=type=tmpfs,"
                          "target=/t --network=none echo\n")
    run = df.stages[0].instructions[0]
    assert run.mounts == ["type=cache,target=/c", "type=tmpfs,target=/t"]
    assert run.flags == {"network": "none"}
    assert run.text == "echo"


@pytest.mark.parametrize(("text", "message"), [
    ("FROM busybox\nRUN true\nFORM x\n",
     "Dockerfile parse error line 3: unknown instruction: FORM"),
    ("RUN true\n", "Dockerfile parse error line 1: no build stage in current context"),
    ("FROM a b\n", "Dockerfile parse error line 1: FROM requires either one or three "
                   "arguments"),
    ("FROM x\nCOPY onlyone\n", "Dockerfile parse error line 2: COPY requires at least two "
                               "arguments"),
    ("FROM x\nCOPY --bogus=1 a b\n", "Dockerfile parse error line 2: Unknown flag: bogus"),
    ("FROM x\n\nENV\n", "Dockerfile parse error line 3: ENV requires at least one argument"),
    ("FROM x\nENV A\n", "Dockerfile parse error line 2: ENV must have two arguments"),
    ("FROM x\nLABEL nokey\n", "Dockerfile parse error line 2: Syntax error - can't find = "
                              "in \"nokey\". Must be of the form: name=value"),
    ("FROM x\nWORKDIR\n", "Dockerfile parse error line 2: WORKDIR requires exactly one "
                          "argument"),
    ("FROM x\nUSER a b\n", "Dockerfile parse error line 2: USER requires exactly one "
                           "argument"),
    ("FROM x\nONBUILD ONBUILD RUN x\n", "Dockerfile parse error line 2: Chaining ONBUILD "
                                        "via `ONBUILD ONBUILD` isn't allowed"),
    ("FROM x\nONBUILD FROM y\n", "Dockerfile parse error line 2: FROM isn't allowed as an "
                                 "ONBUILD trigger"),
    ("FROM x\nHEALTHCHECK BOGUS\n", "Dockerfile parse error line 2: Unknown type \"BOGUS\" "
                                    "in HEALTHCHECK (try CMD)"),
    ("FROM x\nSHELL /bin/sh\n", "Dockerfile parse error line 2: SHELL requires the arguments "
                                "to be in JSON form"),
    ("FROM x AS a\nFROM y AS a\n", "Dockerfile parse error line 2: duplicate name a"),
    ("FROM x\nRUN <<EOF\nnever ends\n", "Dockerfile parse error line 2: unterminated "
                                        "heredoc EOF"),
    ("# escape=x\nFROM y\n", "Dockerfile parse error line 1: invalid escape token 'x' does "
                             "not match ` or \\"),
    ("\n# just a comment\n", "the Dockerfile (Dockerfile) cannot be empty"),
])
def test_errors_name_the_line(text: str, message: str) -> None:
    with pytest.raises(DockerfileError) as caught:
        parse_dockerfile(text)
    assert str(caught.value) == message
