"""The shim and its clients against a stand-in OCI runtime: a short script with runc's
command line that runs the bundle's command as a plain process (no namespaces, no root),
so that the protocol's flows are tested fast and anywhere. Real runtimes and containers
are in tests/integration/test_shim_containers.py."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.shim import AsyncShimClient, FrameDecoder, ShimClient, ShimError
from dockyard.shim import protocol as p

SHIM_ARGV = [sys.executable, "-m", "dockyard.shim.main"]

FAKE_RUNTIME = r'''
import json, os, signal, sys
args = sys.argv[1:]
root = log = None
while args[0].startswith("--"):
    option, value = args.pop(0), args.pop(0)
    if option == "--root":
        root = value
    elif option == "--log":
        log = value
command = args.pop(0)
flags = {}
while args and args[0].startswith("--"):
    name = args.pop(0)
    flags[name] = True if name in ("--detach", "--force", "--all") else args.pop(0)
container = args.pop(0)
state_dir = os.path.join(root, container)

def fail(message):
    if log:
        with open(log, "a") as f:
            f.write(json.dumps({"level": "error", "msg": message}) + "\n")
    sys.stderr.write(message + "\n")
    sys.exit(1)

def spawn(argv, wait_fifo=None):
    pid = os.fork()
    if pid == 0:
        if wait_fifo:
            fd = os.open(wait_fifo, os.O_RDONLY)
            os.read(fd, 1)
            os.close(fd)
        try:
            os.execvp(argv[0], argv)
        finally:
            os._exit(127)
    with open(flags["--pid-file"], "w") as f:
        f.write(str(pid))
    return pid

if command == "create":
    try:
        with open(os.path.join(flags["--bundle"], "config.json")) as f:
            config = json.load(f)
    except OSError as e:
        fail(f"cannot read the bundle: {e.strerror}")
    if not os.path.exists(config["process"]["args"][0]):
        fail(f'exec: "{config["process"]["args"][0]}": no such file or directory')
    os.makedirs(state_dir)
    fifo = os.path.join(state_dir, "fifo")
    os.mkfifo(fifo)
    pid = spawn(config["process"]["args"], fifo)
    with open(os.path.join(state_dir, "pid"), "w") as f:
        f.write(str(pid))
elif not os.path.isdir(state_dir):
    fail("container does not exist")
elif command == "start":
    fd = os.open(os.path.join(state_dir, "fifo"), os.O_WRONLY)
    os.write(fd, b"x")
    os.close(fd)
    os.unlink(os.path.join(state_dir, "fifo"))
else:
    with open(os.path.join(state_dir, "pid")) as f:
        pid = int(f.read())
    if command == "exec":
        with open(flags["--process"]) as f:
            spawn(json.load(f)["args"])
    elif command == "kill":
        os.kill(pid, int(args[0]))
    elif command == "delete":
        if flags.get("--force"):
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
        for name in os.listdir(state_dir):
            os.unlink(os.path.join(state_dir, name))
        os.rmdir(state_dir)
'''


class Fake:
    def __init__(self, exec_root: str, workdir: Path) -> None:
        self.exec_root = exec_root
        self.workdir = workdir
        self.runtime = str(workdir / "fake-runtime")
        Path(self.runtime).write_text(f"#!{sys.executable}\n{FAKE_RUNTIME}")
        os.chmod(self.runtime, 0o755)
        self.root = str(workdir / "root")
        self._count = 0

    def bundle(self, args: list[str]) -> str:
        self._count += 1
        bundle = self.workdir / f"b{self._count}"
        bundle.mkdir()
        (bundle / "config.json").write_text(json.dumps({"process": {"args": args}}))
        return str(bundle)

    def log(self, container_id: str) -> Path:
        return self.workdir / f"{container_id}.log"


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[Fake]:
    exec_root = tempfile.mkdtemp(prefix="dy-unit-", dir="/tmp")
    yield Fake(exec_root, tmp_path)
    try:
        with ShimClient.connect(exec_root) as client:
            pid = client.hello()["pid"]
            for doc in client.list()["containers"]:
                try:
                    client.delete(doc["id"], force=True)
                except ShimError:
                    pass
            client.shutdown()
        deadline = time.monotonic() + 5
        while os.path.exists(f"/proc/{pid}") and \
                "Z" != Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]:
            assert time.monotonic() < deadline, "the shim did not exit"
            time.sleep(0.02)
    except OSError:
        pass
    import shutil

    shutil.rmtree(exec_root)


def test_lifecycle_with_the_blocking_client(fake: Fake) -> None:
    client = ShimClient.connect_or_start(fake.exec_root, SHIM_ARGV)
    assert client.hello()["version"] == p.PROTOCOL_VERSION
    bundle = fake.bundle(["/bin/sh", "-c", "echo hello; echo oops >&2; exit 3"])
    pid = client.create("c1", bundle, fake.runtime, fake.root,
                        log_path=str(fake.log("c1")))["pid"]
    assert client.state("c1")["status"] == "created" and client.state("c1")["pid"] == pid
    client.start("c1")
    event = client.next_event(10)
    assert event is not None
    assert (event["event"], event["id"], event["exit_code"], event["pid"]) == \
        ("exit", "c1", 3, pid)
    docs = [json.loads(line) for line in fake.log("c1").read_text().splitlines()]
    assert sorted((d["stream"], d["log"]) for d in docs) == [("stderr", "oops\n"),
                                                             ("stdout", "hello\n")]
    record = json.loads(Path(fake.exec_root, "c1.exit.json").read_text())
    assert record["exit_code"] == 3 and record["finished_at"] == event["finished_at"]
    (listed,) = client.list()["containers"]
    assert listed["id"] == "c1" and listed["status"] == "stopped" and listed["exit_code"] == 3
    client.delete("c1")
    assert client.list()["containers"] == []
    assert not Path(fake.exec_root, "c1.exit.json").exists()
    client.close()


def test_errors_name_their_kind(fake: Fake) -> None:
    client = ShimClient.connect_or_start(fake.exec_root, SHIM_ARGV)
    for call, kind in [
        (lambda: client.start("nope"), "not_found"),
        (lambda: client.create("../x", "/b", fake.runtime, fake.root), "invalid"),
        (lambda: client.create("bad", fake.bundle(["/no/such/program"]), fake.runtime,
                               fake.root), "runtime"),
        (lambda: client.request("fly"), "invalid"),
    ]:
        with pytest.raises(ShimError) as raised:
            call()
        assert raised.value.kind == kind, raised.value
    with pytest.raises(ShimError, match='exec: "/no/such/program": no such file'):
        client.create("bad", fake.bundle(["/no/such/program"]), fake.runtime, fake.root)
    client.create("c1", fake.bundle(["/bin/sleep", "30"]), fake.runtime, fake.root)
    with pytest.raises(ShimError) as duplicate:
        client.create("c1", fake.bundle(["/bin/true"]), fake.runtime, fake.root)
    assert duplicate.value.kind == "conflict"
    client.start("c1")
    for call in (lambda: client.start("c1"), lambda: client.delete("c1"),
                 lambda: client.shutdown(), lambda: client.resize("c1", 10, 10)):
        with pytest.raises(ShimError) as raised:
            call()
        assert raised.value.kind == "conflict", raised.value
    client.delete("c1", force=True)
    assert client.list()["containers"] == []
    client.close()


def test_exit_event_follows_the_start_response(fake: Fake) -> None:
    ShimClient.connect_or_start(fake.exec_root, SHIM_ARGV).close()
    sock = socket.socket(socket.AF_UNIX)
    sock.connect(os.path.join(fake.exec_root, p.SOCKET_NAME))
    stream = sock.makefile("rb")
    sock.sendall(p.encode_request(1, "create", {
        "id": "quick", "bundle": fake.bundle(["/bin/true"]), "runtime": fake.runtime,
        "runtime_root": fake.root}))
    assert json.loads(stream.readline())["id"] == 1
    sock.sendall(p.encode_request(2, "start", {"id": "quick"}))
    first, second = json.loads(stream.readline()), json.loads(stream.readline())
    assert first == {"id": 2, "result": {}}
    assert second["event"] == "exit" and second["exit_code"] == 0
    sock.close()


def test_exec_attach_before_start(fake: Fake) -> None:
    client = ShimClient.connect_or_start(fake.exec_root, SHIM_ARGV)
    client.create("c1", fake.bundle(["/bin/sleep", "30"]), fake.runtime, fake.root)
    client.start("c1")
    client.exec("c1", "e1", {"args": ["/bin/sh", "-c", "read x; echo got $x; exit 4"]},
                stdin_open=True, start=False)
    assert client.state("c1", "e1") == {"pid": 0, "status": "created", "terminal": False,
                                        "exec_id": "e1"}
    sock = client.attach("c1", "e1", stdin=True, stdin_once=True)
    sock.sendall(b"input\n")  # queued until the process starts
    sock.shutdown(socket.SHUT_WR)
    pid = client.start("c1", "e1")["pid"]
    decoder = FrameDecoder()
    received = []
    sock.settimeout(10)
    while data := sock.recv(65536):
        received += decoder.feed(data)
    sock.close()
    assert received == [(p.STDOUT, b"got input\n")]
    event = client.next_event(10)
    assert event == {"event": "exit", "id": "c1", "exec_id": "e1", "exit_code": 4,
                     "pid": pid, "finished_at": event and event["finished_at"]}
    with pytest.raises(ShimError) as exists:
        client.exec("c1", "e1", {"args": ["/bin/true"]})
    assert exists.value.kind == "conflict"
    client.delete("c1", exec_id="e1")
    assert client.state("c1")["execs"] == []
    client.delete("c1", force=True)
    client.close()


def test_async_client(fake: Fake) -> None:
    async def scenario() -> None:
        client = await AsyncShimClient.connect_or_start(fake.exec_root, SHIM_ARGV)
        events = client.events()
        bundle = fake.bundle(["/bin/sh", "-c", "echo $(cat) from stdin"])
        await client.create("a1", bundle, fake.runtime, fake.root, stdin_open=True)
        reader, writer = await client.attach("a1", stdin=True, stdin_once=True, stderr=False)
        # Requests run concurrently on one connection.
        states = await asyncio.gather(*(client.state("a1") for _ in range(5)),
                                      client.start("a1"))
        assert states[-1] == {}
        assert {s["status"] for s in states[:5]} <= {"created", "running", "stopped"}
        writer.write(b"words")
        writer.write_eof()
        output = await asyncio.wait_for(reader.read(), 10)
        assert FrameDecoder().feed(output) == [(p.STDOUT, b"words from stdin\n")]
        event = await asyncio.wait_for(events.__anext__(), 10)
        assert event["event"] == "exit" and event["id"] == "a1" and event["exit_code"] == 0
        writer.close()
        await client.delete("a1")
        assert (await client.list())["containers"] == []
        await client.close()

    asyncio.run(scenario())


def test_a_new_client_sees_what_happened_while_none_was_connected(fake: Fake) -> None:
    client = ShimClient.connect_or_start(fake.exec_root, SHIM_ARGV)
    shim_pid = client.hello()["pid"]
    client.create("c1", fake.bundle(["/bin/sleep", "0.2"]), fake.runtime, fake.root)
    client.create("c2", fake.bundle(["/bin/sleep", "30"]), fake.runtime, fake.root)
    client.start("c1")
    client.start("c2")
    client.close()
    time.sleep(0.5)
    client = ShimClient.connect_or_start(fake.exec_root, SHIM_ARGV)
    assert client.hello()["pid"] == shim_pid
    listed = {c["id"]: c for c in client.list()["containers"]}
    assert listed["c1"]["status"] == "stopped" and listed["c1"]["exit_code"] == 0
    assert listed["c2"]["status"] == "running"
    client.kill("c2", 9)
    assert client.next_event(10)["exit_code"] == 137  # type: ignore[index]
    client.close()
