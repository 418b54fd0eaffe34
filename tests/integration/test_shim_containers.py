"""dockyard-shim with real containers (as root): logs, exits, attach, terminals, exec, the
daemon's side going away, shutdown and idling out, and the shim's memory per container."""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from dockyard.shim import FrameDecoder, ShimClient, ShimError
from tests.conftest import require_root
from tests.integration.conftest import RUNTIME, leftover_cgroups

SHIM_ARGV = [sys.executable, "-m", "dockyard.shim.main"]
RUNC = shutil.which("runc", path=f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin") or "runc"
RUNTIMES = {"dockyard-runc": RUNTIME, "runc": RUNC}
TIME_FORMAT = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$")


def wait_until(condition: Callable[[], object], timeout: float = 10,
               message: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {message}"
        time.sleep(0.02)


def process_gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")


class ShimHarness:
    """A shim on a temporary exec root, and the containers a test makes with it."""

    def __init__(self, exec_root: str, workdir: Path, rootfs: Path,
                 base_config: dict[str, Any], shim_argv: list[str] | None = None) -> None:
        self.exec_root = exec_root
        self.workdir = workdir
        self.rootfs = rootfs
        self.base_config = base_config
        self.runtime_root = str(workdir / "rt")
        self.prefix = f"s{uuid.uuid4().hex[:8]}"
        self.shim_argv = shim_argv or SHIM_ARGV
        self._count = 0
        self.created: list[tuple[str, str]] = []  # (container id, runtime binary)
        self.events: list[dict[str, Any]] = []  # received, not yet waited for
        self.client = ShimClient.connect_or_start(exec_root, self.shim_argv)
        self.shim_pid = self.client.hello()["pid"]

    def config(self, args: list[str], terminal: bool = False) -> dict[str, Any]:
        config = copy.deepcopy(self.base_config)
        config["root"]["path"] = str(self.rootfs)
        config["process"]["args"] = args
        config["process"]["terminal"] = terminal
        return config

    def create(self, args: list[str], runtime: str = RUNTIME, terminal: bool = False,
               config: dict[str, Any] | None = None, log: bool = True,
               **params: Any) -> str:
        self._count += 1
        container_id = f"{self.prefix}-{self._count}"
        config = copy.deepcopy(config or self.config(args, terminal))
        config["linux"]["cgroupsPath"] = f"/dockyard-test/{container_id}"
        bundle = self.workdir / f"bundle-{container_id}"
        bundle.mkdir()
        (bundle / "config.json").write_text(json.dumps(config))
        self.created.append((container_id, runtime))
        self.client.create(container_id, str(bundle), runtime, self.runtime_root,
                           log_path=str(self.log_path(container_id)) if log else None,
                           terminal=terminal, **params)
        return container_id

    def log_path(self, container_id: str) -> Path:
        return self.workdir / "logs" / f"{container_id}-json.log"

    def log_entries(self, container_id: str) -> list[dict[str, Any]]:
        text = self.log_path(container_id).read_text()
        return [json.loads(line) for line in text.splitlines()]

    def process_args(self, args: list[str]) -> dict[str, Any]:
        process = copy.deepcopy(self.base_config["process"])
        process["args"] = args
        return process

    def wait_exit(self, container_id: str, exec_id: str | None = None,
                  timeout: float = 15, client: ShimClient | None = None) -> dict[str, Any]:
        def matches(event: dict[str, Any]) -> bool:
            return (event.get("event") == "exit" and event.get("id") == container_id and
                    event.get("exec_id") == exec_id)

        for event in self.events:
            if matches(event):
                self.events.remove(event)
                return event
        client = client or self.client
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"no exit event for {container_id} {exec_id or ''}"
            event = client.next_event(remaining)
            assert event is not None, f"no exit event for {container_id} {exec_id or ''}"
            if matches(event):
                return event
            self.events.append(event)

    def exit_record(self, container_id: str) -> dict[str, Any]:
        return json.loads(Path(self.exec_root, f"{container_id}.exit.json").read_text())

    def stop_shim(self) -> None:
        """Deletes every container, then shuts the shim down and waits for it to exit."""
        try:
            client = ShimClient.connect(self.exec_root)
        except OSError:
            return  # not running (idled out)
        with client:
            pid = client.hello()["pid"]
            for doc in client.list()["containers"]:
                try:
                    client.delete(doc["id"], force=True)
                except ShimError:
                    pass
            deadline = time.monotonic() + 10
            while True:
                try:
                    client.shutdown()
                    break
                except ShimError:
                    assert time.monotonic() < deadline, "the shim refuses to shut down"
                    time.sleep(0.1)
        wait_until(lambda: process_gone(pid), 10, "the shim to exit")

    def cleanup(self) -> None:
        try:
            self.client.close()
        except OSError:
            pass
        for container_id, runtime in self.created:
            subprocess.run([runtime, "--root", self.runtime_root, "delete", "--force",
                            container_id], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, check=False)
        self.stop_shim()


@pytest.fixture
def make_shim(tmp_path: Path, busybox_bundle_template: Path
              ) -> Iterator[Callable[..., ShimHarness]]:
    require_root()
    base = json.loads((busybox_bundle_template / "config.json").read_text())
    made: list[tuple[ShimHarness, str]] = []

    def make(shim_argv: list[str] | None = None) -> ShimHarness:
        # Short: the exec root holds unix sockets (at most 107 bytes of path).
        exec_root = tempfile.mkdtemp(prefix="dy-shim-", dir="/tmp")
        workdir = tmp_path / f"w{len(made)}"
        workdir.mkdir()
        harness = ShimHarness(exec_root, workdir, busybox_bundle_template / "rootfs", base,
                              shim_argv)
        made.append((harness, exec_root))
        return harness

    yield make
    for harness, exec_root in made:
        harness.cleanup()
        assert leftover_cgroups(harness.prefix) == [], "a cgroup was left behind"
        assert not Path(exec_root, "shim.sock").exists(), "the shim's socket was left"
        leftovers = [name for name in os.listdir(exec_root) if name not in
                     ("shim.log", "shim.pid", "shim.start.lock")]
        assert leftovers == [], f"files left in the exec root: {leftovers}"
        runtime_root = Path(harness.runtime_root)
        assert not runtime_root.exists() or not list(runtime_root.iterdir()), \
            "runtime state was left behind"
        shutil.rmtree(exec_root)
    assert str(tmp_path) not in Path("/proc/self/mountinfo").read_text(), "a mount was left"


@pytest.fixture
def shim(make_shim: Callable[..., ShimHarness]) -> ShimHarness:
    return make_shim()


@pytest.fixture(params=sorted(RUNTIMES))
def runtime(request: pytest.FixtureRequest) -> str:
    return RUNTIMES[request.param]


def read_frames(sock: socket.socket, until: Callable[[dict[int, bytes]], bool],
                timeout: float = 10) -> dict[int, bytes]:
    """Demultiplexes an attach stream until `until(received)` or the end of the stream."""
    decoder = FrameDecoder()
    received: dict[int, bytes] = {1: b"", 2: b""}
    sock.settimeout(timeout)
    while not until(received):
        data = sock.recv(65536)
        if not data:
            break
        for stream, payload in decoder.feed(data):
            received[stream] = received.get(stream, b"") + payload
    return received


def read_raw(sock: socket.socket, until: Callable[[bytes], bool],
             timeout: float = 10) -> bytes:
    received = b""
    sock.settimeout(timeout)
    while not until(received):
        data = sock.recv(65536)
        if not data:
            break
        received += data
    return received


def test_log_has_streams_and_timestamps(shim: ShimHarness, runtime: str) -> None:
    before = time.time()
    container_id = shim.create(["sh", "-c", "echo out; echo err >&2; printf partial"],
                               runtime)
    shim.client.start(container_id)
    event = shim.wait_exit(container_id)
    after = time.time()
    assert event["exit_code"] == 0 and event["pid"] > 0
    assert TIME_FORMAT.match(event["finished_at"])
    lines = shim.log_path(container_id).read_text().splitlines()
    assert all(line.startswith('{"log":') for line in lines)
    entries = shim.log_entries(container_id)
    assert [e["log"] for e in entries if e["stream"] == "stdout"] == ["out\n", "partial"]
    assert [e["log"] for e in entries if e["stream"] == "stderr"] == ["err\n"]
    for entry in entries:
        assert set(entry) == {"log", "stream", "time"}
        assert TIME_FORMAT.match(entry["time"]), entry["time"]
        stamp = time.mktime(time.strptime(entry["time"][:19], "%Y-%m-%dT%H:%M:%S"))
        stamp -= time.timezone  # mktime read it as local time; it is UTC
        assert before - 1 <= stamp <= after + 1
    shim.client.delete(container_id)


def test_exit_codes_are_recorded_and_evented(shim: ShimHarness, runtime: str) -> None:
    zero = shim.create(["true"], runtime)
    three = shim.create(["sh", "-c", "exit 3"], runtime)
    killed = shim.create(["sleep", "60"], runtime)
    for container_id in (zero, three, killed):
        shim.client.start(container_id)
    assert shim.client.state(killed)["status"] == "running"
    shim.client.kill(killed, signal.SIGKILL)
    expected = {zero: 0, three: 3, killed: 137}
    for container_id, code in expected.items():
        event = shim.wait_exit(container_id)
        assert event["exit_code"] == code
        record = shim.exit_record(container_id)
        assert record["exit_code"] == code and record["pid"] == event["pid"]
        assert record["finished_at"] == event["finished_at"]
        state = shim.client.state(container_id)
        assert state["status"] == "stopped" and state["exit_code"] == code
    for container_id in expected:
        shim.client.delete(container_id)
        assert not Path(shim.exec_root, f"{container_id}.exit.json").exists()
    assert shim.client.list()["containers"] == []


def test_log_rotation_respects_size_and_file_count(shim: ShimHarness) -> None:
    limit = 32 * 1024
    container_id = shim.create(["seq", "1", "30000"], log_max_size=limit, log_max_files=3)
    shim.client.start(container_id)
    assert shim.wait_exit(container_id)["exit_code"] == 0
    path = shim.log_path(container_id)
    names = sorted(p.name for p in path.parent.iterdir() if p.name.startswith(path.name))
    assert names == [path.name, f"{path.name}.1", f"{path.name}.2"]
    numbers = []
    for name in (f"{path.name}.2", f"{path.name}.1", path.name):
        file = path.parent / name
        assert 0 < file.stat().st_size <= limit
        numbers += [int(json.loads(line)["log"]) for line in file.read_text().splitlines()]
    # The newest lines, none missing between the files.
    assert numbers[-1] == 30000
    assert numbers == list(range(numbers[0], 30001))
    assert len(numbers) > 900  # three files of 32 KiB of ~76-byte lines
    state = shim.client.state(container_id)
    assert state["log_dropped_entries"] == 0
    shim.client.delete(container_id)


def test_attach_receives_live_output_and_writes_stdin(shim: ShimHarness) -> None:
    container_id = shim.create(["cat"], stdin_open=True)
    writer = shim.client.attach(container_id, stdin=True, stdin_once=True)
    watcher = shim.client.attach(container_id)
    try:
        shim.client.start(container_id)
        writer.sendall(b"hello\n")
        for sock in (writer, watcher):
            got = read_frames(sock, lambda r: b"hello\n" in r[1])
            assert got[1] == b"hello\n"
        writer.sendall(b"second\n")
        writer.shutdown(socket.SHUT_WR)  # stdin_once: the container's stdin ends
        assert read_frames(writer, lambda r: False)[1] == b"second\n"  # until EOF
        assert read_frames(watcher, lambda r: False)[1] == b"second\n"
        assert shim.wait_exit(container_id)["exit_code"] == 0
    finally:
        writer.close()
        watcher.close()
    assert [(e["log"], e["stream"]) for e in shim.log_entries(container_id)] == \
        [("hello\n", "stdout"), ("second\n", "stdout")]
    shim.client.delete(container_id)


def test_attach_gets_only_what_comes_after_it(shim: ShimHarness) -> None:
    container_id = shim.create(["sh", "-c", "echo early; read x; echo late $x >&2"],
                               stdin_open=True)
    shim.client.start(container_id)
    wait_until(lambda: shim.log_path(container_id).exists() and
               "early" in shim.log_path(container_id).read_text(), message="early output")
    with shim.client.attach(container_id, stdin=True) as sock:
        sock.sendall(b"now\n")
        got = read_frames(sock, lambda r: False)
    assert got == {1: b"", 2: b"late now\n"}
    assert shim.wait_exit(container_id)["exit_code"] == 0
    shim.client.delete(container_id)


def test_terminal_output_and_resize(shim: ShimHarness, runtime: str) -> None:
    container_id = shim.create(["sh", "-c", "stty size; read x; stty size; echo got $x"],
                               runtime, terminal=True, stdin_open=True,
                               console_size={"height": 24, "width": 80})
    with shim.client.attach(container_id, stdin=True) as sock:
        shim.client.start(container_id)
        assert read_raw(sock, lambda r: b"24 80\r\n" in r) == b"24 80\r\n"
        shim.client.resize(container_id, height=40, width=100)
        sock.sendall(b"go\r")
        output = read_raw(sock, lambda r: b"got go\r\n" in r)
    assert output == b"go\r\n40 100\r\ngot go\r\n"  # the terminal echoes the input
    assert shim.wait_exit(container_id)["exit_code"] == 0
    entries = shim.log_entries(container_id)
    assert {e["stream"] for e in entries} == {"stdout"}
    assert "".join(e["log"] for e in entries) == "24 80\r\ngo\r\n40 100\r\ngot go\r\n"
    shim.client.delete(container_id)


def test_exec_output_and_exit_code(shim: ShimHarness, runtime: str) -> None:
    container_id = shim.create(["sleep", "60"], runtime)
    shim.client.start(container_id)
    process = shim.process_args(["sh", "-c", "echo in-exec; echo oops >&2; exit 5"])
    shim.client.exec(container_id, "e1", process, start=False)
    with shim.client.attach(container_id, "e1") as sock:
        pid = shim.client.start(container_id, "e1")["pid"]
        got = read_frames(sock, lambda r: False)
    assert got == {1: b"in-exec\n", 2: b"oops\n"}
    event = shim.wait_exit(container_id, "e1")
    assert event["exit_code"] == 5 and event["pid"] == pid and event["exec_id"] == "e1"
    assert shim.client.state(container_id, "e1")["exit_code"] == 5
    # Started at once, with a terminal and input.
    shim.client.exec(container_id, "e2", shim.process_args(["sh", "-c", "read x; echo $x"]),
                     terminal=True, stdin_open=True, start=False)
    with shim.client.attach(container_id, "e2", stdin=True) as sock:
        shim.client.start(container_id, "e2")
        sock.sendall(b"typed\r")
        output = read_raw(sock, lambda r: False)
    assert output == b"typed\r\ntyped\r\n"
    assert shim.wait_exit(container_id, "e2")["exit_code"] == 0
    shim.client.exec(container_id, "e3", shim.process_args(["true"]))
    assert shim.wait_exit(container_id, "e3")["exit_code"] == 0
    # The exec's output is not in the container's log.
    assert not shim.log_path(container_id).exists() or \
        "in-exec" not in shim.log_path(container_id).read_text()
    shim.client.delete(container_id, exec_id="e1")
    assert [e["exec_id"] for e in shim.client.state(container_id)["execs"]] == ["e2", "e3"]
    shim.client.kill(container_id, signal.SIGKILL)
    assert shim.wait_exit(container_id)["exit_code"] == 137
    shim.client.delete(container_id)


def test_runtime_errors_are_reported(shim: ShimHarness, runtime: str) -> None:
    with pytest.raises(ShimError) as failed:
        container_id = shim.create(["/no/such/program"], runtime)
        shim.client.start(container_id)  # runtimes that look the program up at start
    message = str(failed.value).lower()
    assert "no such file" in message or "not found" in message, message
    assert failed.value.kind == "runtime"
    with pytest.raises(ShimError) as missing:
        shim.client.start("no-such-container")
    assert missing.value.kind == "not_found"


def test_container_outlives_its_client(shim: ShimHarness) -> None:
    ticking = shim.create(["sh", "-c", "trap 'exit 7' TERM; "
                                       "while true; do echo tick; sleep 0.05; done"])
    sleeper = shim.create(["sleep", "60"])
    shim.client.start(ticking)
    pid = shim.client.state(ticking)["pid"]
    shim.client.start(sleeper)
    sleeper_pid = shim.client.state(sleeper)["pid"]
    shim.client.close()  # the daemon goes away
    size = shim.log_path(ticking).stat().st_size if shim.log_path(ticking).exists() else 0
    # While nobody is connected, the sleeper is killed behind the shim's back.
    subprocess.run([RUNTIME, "--root", shim.runtime_root, "kill", sleeper, "KILL"],
                   check=True)
    wait_until(lambda: Path(shim.exec_root, f"{sleeper}.exit.json").exists(),
               message="the exit record")
    wait_until(lambda: shim.log_path(ticking).stat().st_size > size + 200, 5,
               "the log to grow while no client is connected")
    assert not process_gone(pid)
    # The daemon comes back: the same shim, everything listed.
    shim.client = ShimClient.connect_or_start(shim.exec_root, SHIM_ARGV)
    assert shim.client.hello()["pid"] == shim.shim_pid
    listing = {c["id"]: c for c in shim.client.list()["containers"]}
    assert listing[ticking]["status"] == "running" and listing[ticking]["pid"] == pid
    assert listing[sleeper]["status"] == "stopped"
    assert listing[sleeper]["exit_code"] == 137 and listing[sleeper]["pid"] == sleeper_pid
    shim.client.kill(ticking, signal.SIGTERM)
    assert shim.wait_exit(ticking)["exit_code"] == 7
    for container_id in (ticking, sleeper):
        shim.client.delete(container_id)


def test_shutdown_waits_for_containers(shim: ShimHarness) -> None:
    container_id = shim.create(["sleep", "60"])
    shim.client.start(container_id)
    with pytest.raises(ShimError) as refused:
        shim.client.shutdown()
    assert refused.value.kind == "conflict"
    shim.client.delete(container_id, force=True)
    assert shim.client.list()["containers"] == []
    shim.client.shutdown()
    wait_until(lambda: process_gone(shim.shim_pid), message="the shim to exit")
    assert not Path(shim.exec_root, "shim.sock").exists()


def test_shim_idles_out_and_a_new_one_lists_exit_records(
        make_shim: Callable[..., ShimHarness]) -> None:
    shim = make_shim([*SHIM_ARGV, "--idle-timeout", "0.5"])
    container_id = shim.create(["sleep", "1.5"])
    shim.client.start(container_id)
    shim.client.close()
    time.sleep(1)
    assert not process_gone(shim.shim_pid), "idled out while a container ran"
    wait_until(lambda: process_gone(shim.shim_pid), 10, "the shim to idle out")
    assert not Path(shim.exec_root, "shim.sock").exists()
    # The next daemon connection starts a new shim, which knows the exit.
    shim.client = ShimClient.connect_or_start(shim.exec_root, SHIM_ARGV)
    assert shim.client.hello()["pid"] != shim.shim_pid
    (record,) = shim.client.list()["containers"]
    assert record["id"] == container_id and record["status"] == "stopped"
    assert record["exit_code"] == 0
    shim.client.delete(container_id)


def test_two_clients_start_one_shim(make_shim: Callable[..., ShimHarness]) -> None:
    shim = make_shim()
    shim.stop_shim()
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(4) as pool:
        clients = list(pool.map(
            lambda _: ShimClient.connect_or_start(shim.exec_root, SHIM_ARGV), range(4)))
    pids = {client.hello()["pid"] for client in clients}
    for client in clients:
        client.close()
    assert len(pids) == 1
    shim.client = ShimClient.connect(shim.exec_root)


def test_oom_kill_is_reported(shim: ShimHarness) -> None:
    config = shim.config(["sh", "-c", "x=$(head -c 200000000 /dev/zero | tr '\\0' a)"])
    config["linux"]["resources"]["memory"] = {"limit": 16 * 1024 * 1024}
    container_id = shim.create([], config=config)
    shim.client.start(container_id)
    event = shim.wait_exit(container_id)
    assert event["exit_code"] == 137
    assert {"event": "oom", "id": container_id} in shim.events
    assert shim.exit_record(container_id)["oom_killed"] is True
    shim.client.delete(container_id)


def _memory(pid: int) -> dict[str, int]:
    values = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, value = line.split(":")
        values[name] = int(value.split()[0])
    return values


def test_memory_per_container(shim: ShimHarness, capsys: pytest.CaptureFixture[str]) -> None:
    """The shim's resident memory grows by far less than 1 MiB per container."""
    ids = [shim.create(["sleep", "600"])]
    shim.client.start(ids[0])
    time.sleep(0.3)
    one = _memory(shim.shim_pid)
    for _ in range(29):
        ids.append(shim.create(["sleep", "600"]))
        shim.client.start(ids[-1])
    time.sleep(0.3)
    thirty = _memory(shim.shim_pid)
    rss_growth = (thirty["Rss"] - one["Rss"]) / 29
    pss_growth = (thirty["Pss"] - one["Pss"]) / 29
    with capsys.disabled():
        print(f"\nshim memory: 1 container Rss {one['Rss']} KiB Pss {one['Pss']} KiB; "
              f"30 containers Rss {thirty['Rss']} KiB Pss {thirty['Pss']} KiB; "
              f"per container Rss {rss_growth:.1f} KiB Pss {pss_growth:.1f} KiB")
    assert rss_growth < 1024 and pss_growth < 1024
    for container_id in ids:
        shim.client.kill(container_id, signal.SIGKILL)
    for container_id in ids:
        shim.wait_exit(container_id)
        shim.client.delete(container_id)
