"""Variable substitution and quote removal, .dockerignore matching, the config and
history formats, and cache keys."""

from __future__ import annotations

import pytest

from dockyard.build import DockerfileError, DockerIgnore, read_dockerignore
from dockyard.build._cache import BuildCache, step_key
from dockyard.build._config import full_config, go_duration, healthcheck_comment, parse_duration
from dockyard.build._lexer import (
    expand_variables,
    expand_word,
    expand_words,
    referenced_names,
)

ENV = {"A": "1", "EMPTY": "", "SP": "a b"}


@pytest.mark.parametrize(("text", "expected"), [
    ("$A", "1"), ("${A}", "1"), ("x${A}y", "x1y"), ("$MISSING", ""),
    ("${MISSING:-def}", "def"), ("${EMPTY:-def}", "def"), ("${EMPTY-def}", ""),
    ("${MISSING-def}", "def"), ("${A:+alt}", "alt"), ("${EMPTY:+alt}", ""),
    ("${EMPTY+alt}", "alt"), ("${MISSING+alt}", ""), ("${MISSING:-$A}", "1"),
    ("'$A'", "$A"), ('"$A"', "1"), ("\\$A", "$A"), ('"a \\"q\\" b"', 'a "q" b'),
    ("$", "$"), ("a$-b", "a$-b"), ('"${SP}"', "a b"),
])
def test_expand_word(text: str, expected: str) -> None:
    assert expand_word(text, ENV) == expected


def test_expand_words_splits_on_unquoted_space() -> None:
    assert expand_words('a "b c" d\\ e $SP', ENV) == ["a", "b c", "d e", "a", "b"]


def test_heredoc_bodies_keep_quotes() -> None:
    assert expand_variables('echo "$A" \'x\' \\n ${MISSING:-d}\n', ENV) == \
        'echo "1" \'x\' \\n d\n'


def test_backtick_escape() -> None:
    assert expand_word("C:`$A", ENV, "`") == "C:$A"
    assert expand_word("C:\\dir", ENV, "`") == "C:\\dir"


def test_required_variable_error() -> None:
    with pytest.raises(DockerfileError, match="MISSING: needed"):
        expand_word("${MISSING:?needed}", ENV)


def test_referenced_names() -> None:
    assert referenced_names("$A ${B:-x} '$C'") == {"A", "B"}


# -- .dockerignore ------------------------------------------------------------------------------

def test_dockerignore_rules() -> None:
    ignore = DockerIgnore.from_text("# comment\n*.log\n/build\n**/tmp\n!keep.log\n"
                                    "docs/**/*.md\n!docs/README.md\n")
    assert ignore.excluded("a.log")
    assert not ignore.excluded("keep.log")
    assert not ignore.excluded("sub/a.log")       # * stays within one element
    assert ignore.excluded("build/x/y")           # a matched directory covers its contents
    assert ignore.excluded("tmp") and ignore.excluded("a/b/tmp/c")
    assert ignore.excluded("docs/a/b/c.md") and ignore.excluded("docs/c.md")
    assert not ignore.excluded("docs/README.md")
    assert not ignore.excluded("src/main.py")


def test_dockerignore_last_match_wins_and_cleaning() -> None:
    assert read_dockerignore(" ./a/../b/ \n\n!/c\n") == ["b", "!c"]
    ignore = DockerIgnore.from_text("*\n!src\nsrc/*.tmp\n")
    assert ignore.excluded("Dockerfile")
    assert not ignore.excluded("src/x.py")
    assert ignore.excluded("src/x.tmp")
    assert ignore.may_include_below("src")


# -- configs and history --------------------------------------------------------------------------

def test_full_config_order_and_omitempty() -> None:
    config = full_config({"Env": ["A=1"], "Cmd": ["sh"], "Labels": {"a": "b"}})
    assert list(config)[:4] == ["Hostname", "Domainname", "User", "AttachStdin"]
    assert "ExposedPorts" not in config and "Healthcheck" not in config
    assert config["Volumes"] is None and config["Entrypoint"] is None
    assert config["Image"] == ""


def test_durations_and_healthcheck_comment() -> None:
    assert parse_duration("1m30s") == 90_000_000_000
    assert parse_duration("500ms") == 500_000_000
    assert go_duration(90_000_000_000) == "1m30s"
    assert go_duration(0) == "0s"
    assert go_duration(1_500_000_000) == "1.5s"
    assert healthcheck_comment({"Test": ["CMD-SHELL", "echo ok"], "Interval": 5_000_000_000,
                                "Retries": 3}) == \
        'HEALTHCHECK &{["CMD-SHELL" "echo ok"] "5s" "0s" "0s" \'\\x03\'}'


# -- the cache index -------------------------------------------------------------------------------

def test_step_keys_depend_on_parent_config_and_content() -> None:
    probe = full_config({"Cmd": ["/bin/sh", "-c", "true"]})
    base = step_key("sha256:a", probe, "")
    assert step_key("sha256:a", dict(probe), "") == base
    assert step_key("sha256:b", probe, "") != base
    assert step_key("sha256:a", {**probe, "Env": ["X=1"]}, "") != base
    assert step_key("sha256:a", probe, "file:1") != base


def test_cache_index_persists_and_forgets(tmp_path) -> None:  # type: ignore[no-untyped-def]
    cache = BuildCache(tmp_path / "cache.json")
    assert cache.get("k") is None
    cache.put("k", "sha256:1")
    cache.put("j", "sha256:2")
    again = BuildCache(tmp_path / "cache.json")
    assert again.get("k") == "sha256:1"
    assert again.forget({"sha256:1"}) == 1
    assert BuildCache(tmp_path / "cache.json").image_ids() == {"sha256:2"}
    (tmp_path / "cache.json").write_text("{broken")
    assert BuildCache(tmp_path / "cache.json").get("j") is None
