"""The embedded DNS server on real network namespaces (root): queries from inside the
namespace at 127.0.0.11, by a Python client and by busybox, forwarding to fake upstream
servers on 127.0.0.1."""

from __future__ import annotations

import os
import random
import socket
import socketserver
import struct
import subprocess
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import pytest

from dockyard.network._dns_wire import (
    RCODE_FORMERR,
    RCODE_NOERROR,
    RCODE_SERVFAIL,
    TYPE_A,
    TYPE_AAAA,
    TYPE_PTR,
    Message,
    address_record,
    build_answer,
    build_query,
    parse_message,
    parse_query,
)
from dockyard.network.dns import EmbeddedDNS
from dockyard.runtime.linux import CLONE_NEWNET
from dockyard.runtime.syscalls import LinuxSyscall
from tests.conftest import require_root

PREFIX = "dy-dnstest-"
TYPE_MX = 15
T = TypeVar("T")


# -- network namespaces --------------------------------------------------------------

class Namespaces:
    """Creates named network namespaces with loopback up; removes them all at the end."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def new(self) -> str:
        name = f"{PREFIX}{uuid.uuid4().hex[:10]}"
        self.names.append(name)
        subprocess.run(["ip", "netns", "add", name], check=True)
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        return f"/run/netns/{name}"

    def cleanup(self) -> None:
        for name in self.names:
            subprocess.run(["ip", "netns", "del", name], check=False)
            etc = Path("/etc/netns") / name
            if etc.exists():
                for child in etc.iterdir():
                    child.unlink()
                etc.rmdir()


@pytest.fixture
def namespaces() -> Iterator[Namespaces]:
    require_root()
    made = Namespaces()
    yield made
    made.cleanup()
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    mounts = Path("/proc/self/mountinfo").read_text()
    for name in made.names:
        assert name not in listed, f"netns {name} left behind"
        assert f"/run/netns/{name}" not in mounts, f"netns mount {name} left behind"
        assert not (Path("/etc/netns") / name).exists()


def in_netns(path: str, work: Callable[[], T]) -> T:
    """Runs work in a thread that entered the network namespace at path."""
    result: list[T] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            fd = os.open(path, os.O_RDONLY)
            try:
                LinuxSyscall().setns(fd, CLONE_NEWNET)
            finally:
                os.close(fd)
            result.append(work())
        except BaseException as error:
            failure.append(error)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    return result[0]


def exchange(path: str, data: bytes, tcp: bool = False, timeout: float = 5.0) -> bytes | None:
    """Sends data to 127.0.0.11:53 inside the namespace; the reply, None if none came."""
    def work() -> bytes | None:
        try:
            if tcp:
                with socket.create_connection(("127.0.0.11", 53), timeout=timeout) as conn:
                    conn.sendall(struct.pack("!H", len(data)) + data)
                    size = struct.unpack("!H", recv_exactly(conn, 2))[0]
                    return recv_exactly(conn, size)
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                udp.settimeout(timeout)
                udp.sendto(data, ("127.0.0.11", 53))
                return udp.recv(65535)
        except (TimeoutError, ConnectionRefusedError):
            return None
    return in_netns(path, work)


def recv_exactly(conn: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            raise ConnectionError("closed early")
        data += chunk
    return data


def ask(path: str, name: str, qtype: int = TYPE_A, tcp: bool = False,
        edns_size: int | None = None, timeout: float = 5.0) -> Message:
    ident = random.randrange(65536)
    reply = exchange(path, build_query(ident, name, qtype, edns_size=edns_size), tcp, timeout)
    assert reply is not None, f"no answer for {name}"
    message = parse_message(reply)
    assert message.id == ident
    return message


def values(message: Message) -> list[str]:
    return sorted(answer[3] for answer in message.answers)


# -- fake upstream servers on 127.0.0.1 --------------------------------------------------

class FakeUpstream:
    """A DNS server on 127.0.0.1 (UDP and TCP, same port) with fixed answers.

    Every A query gets 192.0.2.53; "fail.example" gets SERVFAIL; "big.example" has 40
    addresses, truncated over UDP. Queries are recorded as (name, type, transport).
    """

    def __init__(self, address: str = "192.0.2.53") -> None:
        self.address = address
        self.queries: list[tuple[str, int, str]] = []
        upstream = self

        class Udp(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                data, sock = self.request
                reply = upstream.answer(data, "udp")
                if reply is not None and reply[12:26] == b"\x05spoof\x07example":
                    # A stray reply first: another id, then another question.
                    sock.sendto(bytes([reply[0] ^ 1]) + reply[1:], self.client_address)
                    other = build_answer(parse_query(build_query(
                        int.from_bytes(reply[:2], "big"), "other.example", TYPE_A)), [], 512)
                    sock.sendto(other, self.client_address)
                if reply is not None:
                    sock.sendto(reply, self.client_address)

        class Tcp(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                conn = self.request
                try:
                    while True:
                        size = struct.unpack("!H", recv_exactly(conn, 2))[0]
                        reply = upstream.answer(recv_exactly(conn, size), "tcp")
                        if reply is not None:
                            conn.sendall(struct.pack("!H", len(reply)) + reply)
                except (ConnectionError, OSError):
                    pass

        for _ in range(20):
            self.udp = socketserver.ThreadingUDPServer(("127.0.0.1", 0), Udp)
            port = self.udp.server_address[1]
            try:
                self.tcp = socketserver.ThreadingTCPServer(("127.0.0.1", port), Tcp)
                break
            except OSError:
                self.udp.server_close()
        else:
            raise RuntimeError("no free port for both UDP and TCP")
        self.udp.daemon_threads = self.tcp.daemon_threads = True
        self.port = port
        self.threads = [threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.05})
                        for s in (self.udp, self.tcp)]
        for thread in self.threads:
            thread.start()

    @property
    def server(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    def answer(self, data: bytes, transport: str) -> bytes | None:
        query = parse_query(data)
        name = query.name() or ""
        self.queries.append((name, query.qtype, transport))
        if name == "fail.example":
            return build_answer(query, [], 65535, RCODE_SERVFAIL)
        if query.qtype != TYPE_A:
            return build_answer(query, [], 65535)
        count = 40 if name == "big.example" else 1
        records = [address_record(TYPE_A, f"192.0.2.{i + 1}" if count > 1 else self.address,
                                  30) for i in range(count)]
        limit = query.max_udp_size() if transport == "udp" else 65535
        return build_answer(query, records, limit)

    def close(self) -> None:
        for server in (self.udp, self.tcp):
            server.shutdown()
            server.server_close()
        for thread in self.threads:
            thread.join()


class SilentUpstream:
    """Receives queries and never answers (a UDP socket nobody reads, a TCP backlog)."""

    def __init__(self) -> None:
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", 0))
        self.port = self.udp.getsockname()[1]
        self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.tcp.bind(("127.0.0.1", self.port))
        self.tcp.listen(8)
        self.server = ("127.0.0.1", self.port)

    def close(self) -> None:
        self.udp.close()
        self.tcp.close()


def dead_server() -> tuple[str, int]:
    """An address on 127.0.0.1 where nothing listens (UDP and TCP are refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return ("127.0.0.1", probe.getsockname()[1])


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    server = FakeUpstream()
    yield server
    server.close()


@pytest.fixture
def silent() -> Iterator[SilentUpstream]:
    server = SilentUpstream()
    yield server
    server.close()


# -- the server under test -------------------------------------------------------------

NAMES: dict[str, dict[int, list[str]]] = {
    "web": {TYPE_A: ["10.89.0.2"]},
    "web.mynet": {TYPE_A: ["10.89.0.2"]},
    "db": {TYPE_A: ["10.89.0.3"], TYPE_AAAA: ["fd00:89::3"]},
    "replicas": {TYPE_A: ["10.89.0.4", "10.89.0.5", "10.89.0.6"]},
    "v6only": {TYPE_AAAA: ["fd00:89::7"]},
}
PTRS = {"10.89.0.2": "web.mynet", "fd00:89::3": "db.mynet"}


class Lookups:
    """The network layer's side, as EmbeddedDNS sees it; records what it was asked."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, str, int]] = []
        self.per_container: dict[str, dict[str, str]] = {}

    def resolve(self, container_id: str, name: str, qtype: int) -> list[str]:
        self.asked.append((container_id, name, qtype))
        if name == "explode":
            raise RuntimeError("the network layer failed")
        own = self.per_container.get(container_id, {})
        if name in own:
            return [own[name]] if qtype == TYPE_A else []
        return NAMES.get(name, {}).get(qtype, [])

    def reverse(self, container_id: str, ip: str) -> str | None:
        return PTRS.get(ip)


@pytest.fixture
def lookups() -> Lookups:
    return Lookups()


@pytest.fixture
def dns(lookups: Lookups) -> Iterator[EmbeddedDNS]:
    require_root()
    fds_before = len(os.listdir("/proc/self/fd"))
    server = EmbeddedDNS(lookups.resolve, lookups.reverse, upstream_timeout=0.3)
    server.start()
    yield server
    server.close()
    assert not [t for t in threading.enumerate() if t.name.startswith("dockyard-dns")]
    # Every socket the server made is closed (a small slack for fds others opened).
    assert len(os.listdir("/proc/self/fd")) <= fds_before + 2


# -- tests ------------------------------------------------------------------------------

def test_known_names_answered_case_insensitively(namespaces: Namespaces, dns: EmbeddedDNS,
                                                 lookups: Lookups,
                                                 upstream: FakeUpstream) -> None:
    ns = namespaces.new()
    dns.attach("c1", ns, [upstream.server])
    for name in ("web", "WEB", "Web.", "web.MyNet", "web.mynet."):
        message = ask(ns, name)
        assert message.rcode == RCODE_NOERROR
        assert message.recursion_available and not message.authoritative
        assert [(a[1], a[2], a[3]) for a in message.answers] == [(TYPE_A, 600, "10.89.0.2")]
        assert message.answers[0][0] == name.rstrip(".") + "."   # echoed as asked
    assert ("c1", "web.mynet", TYPE_A) in lookups.asked      # lowercased, no trailing dot
    assert values(ask(ns, "db", TYPE_AAAA)) == ["fd00:89::3"]
    assert values(ask(ns, "replicas")) == ["10.89.0.4", "10.89.0.5", "10.89.0.6"]
    assert upstream.queries == []


def test_known_name_other_type_is_noerror_without_records(namespaces: Namespaces,
                                                          dns: EmbeddedDNS,
                                                          upstream: FakeUpstream) -> None:
    ns = namespaces.new()
    dns.attach("c1", ns, [upstream.server])
    for name, qtype in (("web", TYPE_AAAA), ("v6only", TYPE_A)):
        message = ask(ns, name, qtype)
        assert message.rcode == RCODE_NOERROR and message.answers == []
    assert upstream.queries == []


def test_ptr_queries(namespaces: Namespaces, dns: EmbeddedDNS,
                     upstream: FakeUpstream) -> None:
    ns = namespaces.new()
    dns.attach("c1", ns, [upstream.server])
    message = ask(ns, "2.0.89.10.in-addr.arpa", TYPE_PTR)
    assert message.answers == [("2.0.89.10.in-addr.arpa.", TYPE_PTR, 600, "web.mynet.")]
    v6 = ".".join(reversed("fd000089000000000000000000000003")) + ".IP6.ARPA"
    assert values(ask(ns, v6, TYPE_PTR)) == ["db.mynet."]
    # Not ours: forwarded.
    assert ask(ns, "9.9.89.10.in-addr.arpa", TYPE_PTR).rcode == RCODE_NOERROR
    assert upstream.queries == [("9.9.89.10.in-addr.arpa", TYPE_PTR, "udp")]


def test_unknown_names_and_other_types_forwarded(namespaces: Namespaces, dns: EmbeddedDNS,
                                                 upstream: FakeUpstream) -> None:
    ns = namespaces.new()
    dns.attach("c1", ns, [upstream.server])
    message = ask(ns, "Example.ORG")
    assert message.rcode == RCODE_NOERROR
    assert message.answers == [("Example.ORG.", TYPE_A, 30, "192.0.2.53")]
    assert values(ask(ns, "example.org", tcp=True)) == ["192.0.2.53"]
    assert ask(ns, "web", TYPE_MX).rcode == RCODE_NOERROR    # a known name, another type
    assert upstream.queries == [("example.org", TYPE_A, "udp"), ("example.org", TYPE_A, "tcp"),
                                ("web", TYPE_MX, "udp")]


def test_tcp_queries_answered_locally(namespaces: Namespaces, dns: EmbeddedDNS,
                                      upstream: FakeUpstream) -> None:
    ns = namespaces.new()
    dns.attach("c1", ns, [upstream.server])
    assert values(ask(ns, "db", tcp=True)) == ["10.89.0.3"]

    def two_on_one_connection() -> list[Message]:
        with socket.create_connection(("127.0.0.11", 53), timeout=5) as conn:
            conn.sendall(b"".join(struct.pack("!H", len(q)) + q for q in
                                  (build_query(1, "web", TYPE_A),
                                   build_query(2, "db", TYPE_AAAA))))
            replies = []
            for _ in range(2):
                size = struct.unpack("!H", recv_exactly(conn, 2))[0]
                replies.append(parse_message(recv_exactly(conn, size)))
            return replies

    first, second = in_netns(ns, two_on_one_connection)
    assert (first.id, values(first)) == (1, ["10.89.0.2"])
    assert (second.id, values(second)) == (2, ["fd00:89::3"])


def test_stray_upstream_replies_ignored(namespaces: Namespaces, dns: EmbeddedDNS,
                                        upstream: FakeUpstream) -> None:
    ns = namespaces.new()
    dns.attach("c1", ns, [upstream.server])
    message = ask(ns, "spoof.example")
    assert message.answers == [("spoof.example.", TYPE_A, 30, "192.0.2.53")]


def test_idle_tcp_connection_closed(namespaces: Namespaces, dns: EmbeddedDNS,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("dockyard.network.dns._TCP_IDLE", 0.2)
    ns = namespaces.new()
    dns.attach("c1", ns, [])

    def idle_client() -> bytes:
        with socket.create_connection(("127.0.0.11", 53), timeout=10) as conn:
            conn.sendall(struct.pack("!H", 0))    # an empty message: dropped
            return conn.recv(10)
    assert in_netns(ns, idle_client) == b""      # closed by the server, no answer sent
    assert values(ask(ns, "web", tcp=True)) == ["10.89.0.2"]


def test_truncated_upstream_answer_relayed_then_asked_over_tcp(
        namespaces: Namespaces, dns: EmbeddedDNS, upstream: FakeUpstream) -> None:
    ns = namespaces.new()
    dns.attach("c1", ns, [upstream.server])
    message = ask(ns, "big.example")
    assert message.truncated and message.answers == []
    assert len(ask(ns, "big.example", tcp=True).answers) == 40
    assert [q[2] for q in upstream.queries] == ["udp", "tcp"]


def test_local_answer_too_big_for_udp_is_truncated(namespaces: Namespaces, dns: EmbeddedDNS,
                                                   lookups: Lookups) -> None:
    ns = namespaces.new()
    NAMES["many"] = {TYPE_A: [f"10.89.1.{i}" for i in range(1, 61)]}
    try:
        dns.attach("c1", ns, [])
        message = ask(ns, "many")
        assert message.truncated and message.answers == []
        assert len(ask(ns, "many", edns_size=1232).answers) == 60   # fits 1232 bytes
        assert len(ask(ns, "many", tcp=True).answers) == 60
    finally:
        del NAMES["many"]


def test_next_upstream_tried_in_order(namespaces: Namespaces, dns: EmbeddedDNS,
                                      upstream: FakeUpstream, silent: SilentUpstream) -> None:
    ns = namespaces.new()
    failing = FakeUpstream(address="192.0.2.99")
    try:
        # Refused, then silent (times out), then answering.
        dns.attach("c1", ns, [dead_server(), silent.server, upstream.server])
        assert values(ask(ns, "example.org")) == ["192.0.2.53"]
        assert values(ask(ns, "example.org", tcp=True)) == ["192.0.2.53"]
        # A SERVFAIL from one upstream sends the query on to the next one; when all fail,
        # the client gets SERVFAIL.
        dns.attach("c1", ns, [failing.server, upstream.server])
        assert values(ask(ns, "example.org")) == ["192.0.2.99"]
        assert ask(ns, "fail.example").rcode == RCODE_SERVFAIL
        assert [q for q in upstream.queries if q[0] == "fail.example"] == \
            [("fail.example", TYPE_A, "udp")]
        assert [q for q in failing.queries if q[0] == "fail.example"] == \
            [("fail.example", TYPE_A, "udp")]
    finally:
        failing.close()


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
def test_servfail_when_no_upstream_answers(namespaces: Namespaces, dns: EmbeddedDNS,
                                           silent: SilentUpstream, tcp: bool) -> None:
    ns = namespaces.new()
    dns.attach("c1", ns, [dead_server()])
    assert ask(ns, "example.org", tcp=tcp).rcode == RCODE_SERVFAIL
    dns.attach("c1", ns, [silent.server, dead_server()])
    message = ask(ns, "example.org", tcp=tcp)
    assert message.rcode == RCODE_SERVFAIL
    assert message.questions == [("example.org.", TYPE_A)]
    dns.attach("c1", ns, [])     # no upstream at all: SERVFAIL, as Docker
    assert ask(ns, "example.org", tcp=tcp).rcode == RCODE_SERVFAIL
    assert values(ask(ns, "web", tcp=tcp)) == ["10.89.0.2"]


def test_lookup_error_is_servfail(namespaces: Namespaces, dns: EmbeddedDNS) -> None:
    ns = namespaces.new()
    dns.attach("c1", ns, [])
    assert ask(ns, "explode").rcode == RCODE_SERVFAIL
    assert values(ask(ns, "web")) == ["10.89.0.2"]


def test_malformed_packets_never_stop_the_server(namespaces: Namespaces, dns: EmbeddedDNS,
                                                 upstream: FakeUpstream) -> None:
    ns = namespaces.new()
    dns.attach("c1", ns, [upstream.server])
    query = build_query(0x4242, "web", TYPE_A)
    two_questions = query[:4] + b"\x00\x02" + query[6:] + query[12:]
    reply = exchange(ns, two_questions)
    assert reply is not None
    assert (parse_message(reply).id, parse_message(reply).rcode) == (0x4242, RCODE_FORMERR)
    # Dropped, or answered FORMERR when there is a header to answer to.
    for junk in (b"", b"\x01", query[:14], os.urandom(3), b"\xff" * 40):
        reply = exchange(ns, junk, timeout=0.3)
        assert reply is None or parse_message(reply).rcode == RCODE_FORMERR
    assert exchange(ns, b"\x42\x42\x81\x80" + query[4:], timeout=0.3) is None  # a response
    for _ in range(200):
        exchange(ns, os.urandom(random.randrange(1, 80)), timeout=0.01)

    def junk_over_tcp() -> None:
        with socket.create_connection(("127.0.0.11", 53), timeout=5) as conn:
            conn.sendall(b"\x00\x05abcde\x00\x03\x00")
    in_netns(ns, junk_over_tcp)
    assert values(ask(ns, "web")) == ["10.89.0.2"]
    assert values(ask(ns, "web", tcp=True)) == ["10.89.0.2"]
    assert upstream.queries == []


def test_busybox_nslookup_and_ping(namespaces: Namespaces, dns: EmbeddedDNS,
                                   lookups: Lookups, upstream: FakeUpstream) -> None:
    ns = namespaces.new()
    name = Path(ns).name
    lookups.per_container["c1"] = {"pingme": "127.0.0.1"}
    dns.attach("c1", ns, [upstream.server])

    def run(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["ip", "netns", "exec", name, "/bin/busybox", *argv],
                              capture_output=True, text=True, timeout=30)

    found = run("nslookup", "WEB", "127.0.0.11")
    assert found.returncode == 0, found.stdout + found.stderr
    assert "Address: 10.89.0.2" in found.stdout
    found = run("nslookup", "db", "127.0.0.11")
    assert "fd00:89::3" in found.stdout and "10.89.0.3" in found.stdout
    found = run("nslookup", "10.89.0.2", "127.0.0.11")
    assert "name = web.mynet" in found.stdout, found.stdout
    found = run("nslookup", "example.org", "127.0.0.11")
    assert "192.0.2.53" in found.stdout, found.stdout
    # ip netns exec mounts /etc/netns/<name>/resolv.conf over /etc/resolv.conf: the libc
    # resolver of busybox's ping then asks 127.0.0.11, as in a container.
    etc = Path("/etc/netns") / name
    etc.mkdir(parents=True)
    (etc / "resolv.conf").write_text("nameserver 127.0.0.11\n")
    pinged = run("ping", "-c1", "-W2", "pingme")
    assert pinged.returncode == 0, pinged.stdout + pinged.stderr
    assert "PING pingme (127.0.0.1)" in pinged.stdout


def test_detach_stops_answering_and_attach_replaces(namespaces: Namespaces, dns: EmbeddedDNS,
                                                    upstream: FakeUpstream) -> None:
    ns = namespaces.new()
    other = FakeUpstream(address="192.0.2.77")
    try:
        dns.attach("c1", ns, [upstream.server])
        assert values(ask(ns, "example.org")) == ["192.0.2.53"]
        dns.attach("c1", ns, [other.server])       # the same id again: replaces
        assert values(ask(ns, "example.org")) == ["192.0.2.77"]
        assert values(ask(ns, "example.org", tcp=True)) == ["192.0.2.77"]
        dns.detach("c1")
        query = build_query(1, "web", TYPE_A)
        assert exchange(ns, query, timeout=0.5) is None
        assert exchange(ns, query, tcp=True, timeout=0.5) is None
        dns.detach("c1")                           # unknown now: a no-op
        dns.detach("never-attached")
        dns.attach("c1", ns, [upstream.server])    # and back
        assert values(ask(ns, "web")) == ["10.89.0.2"]
    finally:
        other.close()


def test_reattach_at_once_and_move_to_another_namespace(namespaces: Namespaces,
                                                       dns: EmbeddedDNS) -> None:
    first, second = namespaces.new(), namespaces.new()
    dns.attach("c1", first, [])
    for _ in range(20):
        # The detached sockets may still be open when attach binds again: it waits.
        dns.detach("c1")
        dns.attach("c1", first, [])
    assert values(ask(first, "web")) == ["10.89.0.2"]
    dns.attach("c1", second, [])     # a new namespace for the same container (restart)
    assert values(ask(second, "web")) == ["10.89.0.2"]
    assert exchange(first, build_query(1, "web", TYPE_A), timeout=0.3) is None


def test_many_containers_at_once(namespaces: Namespaces, dns: EmbeddedDNS, lookups: Lookups,
                                 upstream: FakeUpstream) -> None:
    count = 100
    paths = [namespaces.new() for _ in range(count)]
    for index in range(count):
        lookups.per_container[f"c{index}"] = {"me": f"10.90.{index // 200}.{index % 200 + 1}"}
    # Attached from several threads at once, while the server already serves.
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: dns.attach(f"c{i}", paths[i], [upstream.server]),
                      range(count)))

    def check(index: int) -> tuple[list[str], list[str]]:
        return (values(ask(paths[index], "me")), values(ask(paths[index], "example.org")))

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(check, range(count)))
    for index, (own, forwarded) in enumerate(results):
        assert own == [f"10.90.{index // 200}.{index % 200 + 1}"]
        assert forwarded == ["192.0.2.53"]
    # Half of them go; the rest keep being served.
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: dns.detach(f"c{i}"), range(0, count, 2)))
    for index in range(1, count, 2):
        assert values(ask(paths[index], "me")) == [f"10.90.0.{index + 1}"]
    assert exchange(paths[0], build_query(1, "me", TYPE_A), timeout=0.3) is None


def test_attach_errors(namespaces: Namespaces, dns: EmbeddedDNS, tmp_path: Path) -> None:
    with pytest.raises(OSError, match="network namespace"):
        dns.attach("c1", str(tmp_path / "missing"), [])
    not_a_netns = tmp_path / "file"
    not_a_netns.write_text("")
    with pytest.raises(OSError, match="network namespace"):
        dns.attach("c1", str(not_a_netns), [])
    ns = namespaces.new()
    with pytest.raises(ValueError, match="not an IP address"):
        dns.attach("c1", ns, [("dns.example", 53)])
    with pytest.raises(ValueError, match="port"):
        dns.attach("c1", ns, [("127.0.0.1", 0)])


def test_close_and_attach_before_start(namespaces: Namespaces, lookups: Lookups) -> None:
    require_root()
    ns = namespaces.new()
    server = EmbeddedDNS(lookups.resolve, lookups.reverse)
    try:
        server.attach("c1", ns, [])       # queued until the thread runs
        server.start()
        server.start()                    # idempotent
        assert values(ask(ns, "web")) == ["10.89.0.2"]
    finally:
        server.close()
    server.close()
    assert exchange(ns, build_query(1, "web", TYPE_A), timeout=0.3) is None
    with pytest.raises(RuntimeError):
        server.attach("c1", ns, [])
    with pytest.raises(RuntimeError):
        server.start()

