"""The command line: pflag's parsing rules, docker's usage errors and exit codes, the
global options and the command table."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from dockyard.cli import main as cli_main
from dockyard.cli._args import HelpRequested, Spec, UsageError, help_text, parse, usage_error_text
from dockyard.cli._client import parse_host, resolve_host

SPEC = Spec("demo", "[OPTIONS] IMAGE [COMMAND]", "A demo", [
    ("a", "all", "bool", False, "All"),
    ("d", "detach", "bool", False, "Detach"),
    ("e", "env", "list", [], "Env"),
    ("n", "last", "int", -1, "Last"),
    ("", "name", "str", "", "Name"),
    ("", "sig-proxy", "bool", True, "Proxy"),
], 1, None, interspersed=False)


def test_pflag_forms() -> None:
    opts, args = parse(SPEC, ["-ad", "-eA=1", "-e", "B=2", "--env=C=3", "-e=D",
                              "--name", "x", "-n5", "--sig-proxy=false", "img", "-a", "cmd"])
    assert (opts.all, opts.detach, opts.name, opts.last, opts.sig_proxy) == \
        (True, True, "x", 5, False)
    assert opts.env == ["A=1", "B=2", "C=3", "D"]
    assert args == ["img", "-a", "cmd"]      # not interspersed: the rest is the command
    assert opts.given == {"all", "detach", "env", "name", "last", "sig_proxy"}


def test_defaults_and_double_dash() -> None:
    opts, args = parse(SPEC, ["--", "-img"])
    assert (opts.all, opts.last, opts.env, opts.sig_proxy) == (False, -1, [], True)
    assert args == ["-img"]


@pytest.mark.parametrize(("argv", "message"), [
    (["--bogus"], "unknown flag: --bogus"),
    (["-z"], "unknown shorthand flag: 'z' in -z"),
    (["-az"], "unknown shorthand flag: 'z' in -az"),
    (["-e"], "flag needs an argument: 'e' in -e"),
    (["--name"], "flag needs an argument: --name"),
    (["-n", "x", "img"], 'invalid argument "x" for "-n, --last" flag: strconv.ParseInt: '
                         'parsing "x": invalid syntax'),
    (["--all=maybe", "img"], 'invalid argument "maybe" for "-a, --all" flag: '
                             'strconv.ParseBool: parsing "maybe": invalid syntax'),
])
def test_flag_errors_exit_125(argv: list[str], message: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse(SPEC, argv)
    assert str(caught.value) == message
    assert caught.value.exit_code == 125
    assert usage_error_text(SPEC, caught.value) == (
        f"{message}\n\nUsage:  dockyard demo [OPTIONS] IMAGE [COMMAND]\n\n"
        "Run 'dockyard demo --help' for more information")


def test_argument_count_errors_exit_1() -> None:
    with pytest.raises(UsageError) as caught:
        parse(SPEC, [])
    assert caught.value.exit_code == 1
    assert usage_error_text(SPEC, caught.value).startswith(
        "dockyard: 'dockyard demo' requires at least 1 argument\n")
    exact = Spec("rename", "CONTAINER NEW_NAME", "", [], 2, 2)
    with pytest.raises(UsageError, match="'dockyard rename' requires 2 arguments"):
        parse(exact, ["a"])
    none = Spec("ps", "[OPTIONS]", "", [], 0, 0)
    with pytest.raises(UsageError, match="accepts no arguments"):
        parse(none, ["a"])


def test_help() -> None:
    with pytest.raises(HelpRequested):
        parse(SPEC, ["--help"])
    text = help_text(SPEC)
    assert "Usage:  dockyard demo [OPTIONS] IMAGE [COMMAND]" in text
    assert "  -e, --env list" in text and "      --name string" in text


def test_hosts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DOCKYARD_HOST", raising=False)
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    assert resolve_host() == "unix:///run/dockyard.sock"
    monkeypatch.setenv("DOCKER_HOST", "unix:///docker.sock")
    assert resolve_host() == "unix:///docker.sock"
    monkeypatch.setenv("DOCKYARD_HOST", "tcp://127.0.0.1:2375")
    assert resolve_host() == "tcp://127.0.0.1:2375"
    assert resolve_host("unix:///flag.sock") == "unix:///flag.sock"
    assert parse_host("tcp://10.0.0.1:1234")[1] == ("10.0.0.1", 1234)
    assert parse_host("tcp://[::1]:99")[1] == ("::1", 99)
    assert parse_host("unix:///x.sock")[1] == "/x.sock"


def test_every_command_resolves() -> None:
    targets = set(cli_main.COMMANDS.values())
    for group in cli_main.GROUPS.values():
        targets |= set(group.values())
    for module_name, function in targets:
        module = __import__(f"dockyard.cli.{module_name}", fromlist=["_"])
        assert callable(getattr(module, function)), (module_name, function)


def run_cli(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    src = str(Path(__file__).resolve().parents[2] / "src")
    return subprocess.run([sys.executable, "-m", "dockyard.cli.main", *argv],
                          env={**os.environ, "PYTHONPATH": src, **(env or {})},
                          capture_output=True, text=True, timeout=30, check=False)


def test_unknown_command_and_version() -> None:
    unknown = run_cli("frobnicate")
    assert unknown.returncode == 125
    assert unknown.stderr.startswith("dockyard: unknown command: dockyard frobnicate\n")
    assert run_cli("--version").stdout.startswith("Dockyard version ")
    assert run_cli("container", "nope").returncode == 125
    assert "Usage:  dockyard ps [OPTIONS]" in run_cli("ps", "--help").stdout


def test_no_daemon_message() -> None:
    result = run_cli("-H", "unix:///nonexistent/dockyard.sock", "ps")
    assert result.returncode == 1
    assert "Cannot connect to the Dockyard daemon at unix:///nonexistent/dockyard.sock" in \
        result.stderr


def test_ps_start_up_imports_only_what_it_needs() -> None:
    """`dockyard ps` must not import typing, re, json, argparse, http or email."""
    src = str(Path(__file__).resolve().parents[2] / "src")
    code = (f"import sys; sys.path.insert(0, {src!r}); from dockyard.cli.main import main; "
            "sys.argv = ['dockyard', '-H', 'unix:///nonexistent.sock', 'ps']; main(); "
            "print(' '.join(sorted(sys.modules)))")
    result = subprocess.run([sys.executable, "-IS", "-c", code], capture_output=True,
                            text=True, timeout=30, check=False)
    loaded = set(result.stdout.split())
    assert "dockyard.cli.container" in loaded
    heavy = {"typing", "re", "json", "argparse", "http.client", "email", "ssl", "enum",
             "socket", "datetime", "threading", "subprocess"}
    assert not loaded & heavy, loaded & heavy


def test_daemon_subcommand_is_dockyardd(capsys: pytest.CaptureFixture[str]) -> None:
    from dockyard.cli.main import main

    with pytest.raises(SystemExit) as info:
        main(["daemon", "--help"])
    assert info.value.code == 0
    assert "usage: dockyardd" in capsys.readouterr().out
