"""runc's command line: single-dash long flags and positional handling."""

from __future__ import annotations

from dockyard.runtime.args import build_parser, normalize_argv
from dockyard.runtime.delete import parse_signal


def parse(argv: list[str]):  # noqa: ANN201 - argparse.Namespace
    return build_parser().parse_args(normalize_argv(argv))


def test_containerd_style_create() -> None:
    o = parse(["--root", "/run/x", "--log", "/tmp/log.json", "--log-format", "json", "create",
               "--bundle", "/b", "--pid-file", "/p", "c1"])
    assert (o.root, o.log, o.log_format, o.command) == ("/run/x", "/tmp/log.json", "json",
                                                        "create")
    assert (o.bundle, o.pid_file, o.id) == ("/b", "/p", "c1")


def test_single_dash_long_flags() -> None:
    o = parse(["-root", "/r", "create", "-bundle", "/b", "-pid-file=/p", "c1"])
    assert (o.root, o.bundle, o.pid_file, o.id) == ("/r", "/b", "/p", "c1")


def test_exec_arguments_after_id_belong_to_the_process() -> None:
    o = parse(["exec", "-t", "--env", "A=1", "-u", "1000:1000", "c1", "sh", "-c", "ls -la",
               "--tty"])
    assert o.tty and o.env == ["A=1"] and o.user == "1000:1000" and o.id == "c1"
    assert o.args == ["sh", "-c", "ls -la", "--tty"]


def test_kill_with_signal_and_delete_force() -> None:
    o = parse(["kill", "--all", "c1", "KILL"])
    assert o.all and o.signal == "KILL"
    assert parse(["delete", "-f", "c1"]).force


def test_signal_names_and_numbers() -> None:
    assert parse_signal("9") == 9
    assert parse_signal("KILL") == 9
    assert parse_signal("SIGTERM") == 15
    assert parse_signal("sigusr1") == 10
    assert parse_signal("SIGRTMIN+1") == 35
