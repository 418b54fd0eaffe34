"""The shim's control protocol: encoding, request checking, Docker's stream frames."""

from __future__ import annotations

import json
import os
import signal

import pytest

from dockyard.shim import protocol as p
from dockyard.shim._runtime import Runtime, error_message, is_not_found
from dockyard.shim.main import parse_args


def test_request_round_trip() -> None:
    line = p.encode_request(7, "start", {"id": "c1"})
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert p.parse_request(line) == (7, "start", {"id": "c1"})


def test_responses_and_events() -> None:
    assert json.loads(p.encode_result(3, {"pid": 42})) == {"id": 3, "result": {"pid": 42}}
    error = json.loads(p.encode_error(3, "no such container: x", p.NOT_FOUND))
    assert error == {"id": 3, "error": {"message": "no such container: x", "kind": "not_found"}}
    with pytest.raises(p.ShimError) as raised:
        p.response_result(error)
    assert raised.value.kind == "not_found" and str(raised.value) == "no such container: x"
    assert p.response_result({"id": 3, "result": {"pid": 42}}) == {"pid": 42}
    event = json.loads(p.encode_event("exit", id="c1", exit_code=137, pid=9,
                                      finished_at="2026-01-01T00:00:00.000000000Z"))
    assert event == {"event": "exit", "id": "c1", "exit_code": 137, "pid": 9,
                     "finished_at": "2026-01-01T00:00:00.000000000Z"}


@pytest.mark.parametrize(("line", "message"), [
    (b"not json", "not JSON"),
    (b"[1]", "must be a JSON object"),
    (b'{"id":1}', "method: missing"),
    (b'{"id":1,"method":"fly"}', "unknown method"),
    (b'{"id":1,"method":"start","params":{}}', "start: id is required"),
    (b'{"id":1,"method":"start","params":{"id":""}}', "start: id is required"),
    (b'{"id":1,"method":"start","params":{"id":"c","bogus":1}}', "unknown parameter 'bogus'"),
    (b'{"id":1,"method":"kill","params":{"id":"c","signal":"KILL"}}', "signal must be int"),
    (b'{"id":1,"method":"kill","params":{"id":"c","signal":true}}', "signal must be int"),
    (b'{"id":1,"method":"create","params":{"id":"c","bundle":"/b","runtime":"runc",'
     b'"runtime_root":"/r","terminal":1}}', "terminal must be bool"),
    (b'{"id":1,"method":"start","params":[]}', "params: must be an object"),
])
def test_bad_requests_are_refused(line: bytes, message: str) -> None:
    with pytest.raises(p.ProtocolError) as raised:
        p.parse_request(line)
    assert message in str(raised.value)
    assert raised.value.kind == p.INVALID


def test_every_method_has_a_schema() -> None:
    assert set(p.METHODS) == {"hello", "create", "start", "kill", "state", "list", "exec",
                              "resize", "close_stdin", "delete", "attach", "shutdown"}
    request_id, method, params = p.parse_request(p.encode_request(1, "list"))
    assert (request_id, method, params) == (1, "list", {})


def test_frames_as_docker_writes_them() -> None:
    assert p.frame(p.STDOUT, b"hi\n") == b"\x01\x00\x00\x00\x00\x00\x00\x03hi\n"
    assert p.frame(p.STDERR, b"") == b"\x02\x00\x00\x00\x00\x00\x00\x00"
    stream = p.frame(1, b"out") + p.frame(2, b"err" * 100) + p.frame(1, b"x")
    decoder = p.FrameDecoder()
    frames = []
    for i in range(0, len(stream), 5):  # in arbitrary pieces
        frames += decoder.feed(stream[i:i + 5])
    assert frames == [(1, b"out"), (2, b"err" * 100), (1, b"x")]
    assert decoder.pending == 0


def test_exit_codes_as_the_shell_reports_them() -> None:
    assert p.exit_code_of(3 << 8) == 3
    assert p.exit_code_of(signal.SIGKILL) == 137
    assert p.exit_code_of(signal.SIGTERM) == 143


def test_runtime_command_lines() -> None:
    runtime = Runtime("/usr/bin/runc", "/run/r", ["--systemd-cgroup"])
    assert runtime.create("c1", "/b", "/x/pid", None, "/x/log") == [
        "/usr/bin/runc", "--root", "/run/r", "--systemd-cgroup", "--log", "/x/log",
        "--log-format", "json", "create", "--bundle", "/b", "--pid-file", "/x/pid", "c1"]
    assert runtime.create("c1", "/b", "/x/pid", "/x/sock")[-3:] == [
        "--console-socket", "/x/sock", "c1"]
    assert runtime.exec("c1", "/x/p.json", "/x/pid", None) == [
        "/usr/bin/runc", "--root", "/run/r", "--systemd-cgroup", "exec", "--detach",
        "--pid-file", "/x/pid", "--process", "/x/p.json", "c1"]
    assert runtime.argv("kill", "c1", "9") == [
        "/usr/bin/runc", "--root", "/run/r", "--systemd-cgroup", "kill", "c1", "9"]


def test_runtime_errors_in_its_own_words() -> None:
    log = (b'{"level":"warning","msg":"something","time":"t"}\n'
           b'{"level":"error","msg":"runc create failed: unable to start container process: '
           b'exec: \\"nope\\": executable file not found in $PATH","time":"t"}\n')
    assert error_message(log, b"other words\n", 1).endswith(
        'exec: "nope": executable file not found in $PATH')
    assert error_message(b"", b"\nfirst\nlast words\n\n", 1 << 8) == "last words"
    assert error_message(b"garbage", b"", 2 << 8) == "runtime exited with status 2"
    assert error_message(b"", b"", signal.SIGKILL) == "runtime killed by signal 9"
    assert is_not_found("container does not exist")
    assert is_not_found("error opening file `/run/crun/x/status`: No such file or directory")
    assert not is_not_found("container is running")


def test_shim_command_line(tmp_path: os.PathLike[str]) -> None:
    options = parse_args(["--exec-root", str(tmp_path), "--idle-timeout=2.5", "--foreground"])
    assert options.exec_root == str(tmp_path)
    assert options.idle_timeout == 2.5 and options.foreground
    assert parse_args(["--exec-root=rel"]).exec_root == os.path.abspath("rel")
    with pytest.raises(ValueError, match="required"):
        parse_args([])
    with pytest.raises(ValueError, match="unknown argument"):
        parse_args(["--exec-root", "/x", "--bogus"])
    with pytest.raises(ValueError, match="too long"):
        parse_args(["--exec-root", "/" + "x" * 100])
