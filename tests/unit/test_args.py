"""runc's command line: single-dash long flags and positional handling."""

from __future__ import annotations

import pytest

from dockyard.runtime.args import Options, parse_args
from dockyard.runtime.delete import parse_signal
from dockyard.runtime.errors import RuntimeFailure


def parse(argv: list[str]) -> Options:
    return parse_args(argv)


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


def test_ps_arguments_and_bool_values() -> None:
    o = parse(["ps", "c1", "-ef"])
    assert o.id == "c1" and o.ps_args == ["-ef"]
    assert parse(["run", "--detach=false", "c1"]).detach is False


def test_unknown_flag_and_missing_value() -> None:
    with pytest.raises(RuntimeFailure, match="flag provided but not defined: -bogus"):
        parse(["create", "--bogus", "c1"])
    with pytest.raises(RuntimeFailure, match="flag needs an argument"):
        parse(["create", "--bundle"])
    with pytest.raises(RuntimeFailure, match="invalid value"):
        parse(["create", "--preserve-fds", "x", "c1"])


def test_state_prints_json_indented_as_json_module() -> None:
    import json

    from dockyard.runtime.jsonio import dumps_indented

    for value in ({}, [], [[]], 5, "é", {"a": [1, {"b": None, "c": []}, "x"], "d": {}},
                  {"k": [True, False, 1.5]}):
        assert dumps_indented(value) == json.dumps(value, indent=2, ensure_ascii=False)


def test_root_is_made_absolute(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    from dockyard.runtime.state import StateStore

    monkeypatch.chdir(str(tmp_path))
    assert StateStore("relative/").root == f"{tmp_path}/relative"
    assert StateStore("/run/x/").root == "/run/x"
