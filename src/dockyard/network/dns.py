"""The embedded DNS server: Docker's resolver at 127.0.0.11 inside every attached container.

One daemon thread serves every container through one selector. Names the network layer
knows (`resolve`, `reverse`) are answered here; everything else goes to the container's
upstream servers, from the daemon's own network namespace, one upstream after another with
a short timeout each, tracked without blocking. See docs/dns.md.
"""

from __future__ import annotations

import errno
import heapq
import ipaddress
import itertools
import logging
import os
import random
import selectors
import socket
import struct
import threading
import time
from collections.abc import Callable
from functools import partial

from ._dns_netns import listening_sockets, netns_identity
from ._dns_state import Container, Forward, Peer, TcpClient, UdpPeer
from ._dns_wire import (
    CLASS_IN,
    RCODE_REFUSED,
    RCODE_SERVFAIL,
    TYPE_A,
    TYPE_AAAA,
    TYPE_PTR,
    Query,
    Record,
    WireError,
    address_record,
    build_answer,
    build_error,
    matches,
    parse_query,
    parse_reply,
    ptr_record,
    reverse_address,
    take_tcp_message,
)

__all__ = ["DNS_ADDRESS", "DNS_PORT", "TTL", "EmbeddedDNS", "Resolve", "Reverse"]

# (container_id, name, qtype 1=A or 28=AAAA) -> addresses; [] means not ours: forward.
# The name comes lowercased and without its trailing dot.
Resolve = Callable[[str, str, int], list[str]]
# (container_id, ip) -> the name for a PTR query, or None: forward.
Reverse = Callable[[str, str], str | None]

DNS_ADDRESS = "127.0.0.11"
DNS_PORT = 53
TTL = 600                     # what Docker's resolver gives its own answers

_MAX_FORWARDS = 1024          # queries in flight upstream at once; more are dropped
_MAX_TCP_CLIENTS = 64         # TCP connections per container
_MAX_TCP_OUTBUF = 256 * 1024  # a client that does not read its answers is cut off
_TCP_IDLE = 10.0              # seconds a TCP connection may sit idle
_BATCH = 64                   # datagrams or accepts per readiness event, for fairness

log = logging.getLogger(__name__)


class EmbeddedDNS:
    """Serves 127.0.0.11:53 (UDP and TCP) inside each attached container's netns."""

    def __init__(self, resolve: Resolve, reverse: Reverse, *,
                 upstream_timeout: float = 2.0) -> None:
        self._resolve = resolve
        self._reverse = reverse
        self._upstream_timeout = upstream_timeout
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, self._on_wake)
        # Guards _containers, _ops, _thread and _closed; held only briefly, never while
        # calling resolve or reverse, so that those may take the caller's own locks.
        self._lock = threading.Lock()
        # One attach at a time, so that two attaches of one namespace cannot race for its
        # address. The DNS thread never takes it.
        self._attach_lock = threading.Lock()
        self._containers: dict[str, Container] = {}
        self._ops: list[Callable[[], None]] = []   # selector work for the DNS thread
        self._timers: list[tuple[float, int, Forward | TcpClient]] = []
        self._seq = itertools.count()
        self._forwards = 0
        self._thread: threading.Thread | None = None
        self._closed = False

    # -- the public interface, called from any thread --

    def start(self) -> None:
        with self._lock:
            if self._closed:
                raise RuntimeError("the DNS server is closed")
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._run, name="dockyard-dns",
                                            daemon=True)
            self._thread.start()

    def attach(self, container_id: str, netns_path: str,
               upstream: list[tuple[str, int]]) -> None:
        """Serves the container from now on; replaces an earlier attach of the same id."""
        servers = _check_upstream(upstream)
        netns = netns_identity(netns_path)
        with self._attach_lock:
            self._attach(container_id, netns_path, netns, servers)

    def _attach(self, container_id: str, netns_path: str, netns: tuple[int, int],
                servers: list[tuple[str, int]]) -> None:
        with self._lock:
            if self._closed:
                raise RuntimeError("the DNS server is closed")
            old = self._containers.get(container_id)
            if old is not None and old.netns == netns:
                # The same namespace again: keep the sockets, take the new upstream list.
                old.upstream = servers
                return
        udp, tcp = self._listen(netns_path)
        container = Container(container_id, udp, tcp, servers, netns)
        with self._lock:
            if self._closed:
                udp.close()
                tcp.close()
                raise RuntimeError("the DNS server is closed")
            old = self._containers.get(container_id)
            if old is not None:
                old.closed = True
                self._ops.append(partial(self._drop, old))
            self._containers[container_id] = container
            self._ops.append(partial(self._register, container))
        self._wake()

    def _listen(self, netns_path: str) -> tuple[socket.socket, socket.socket]:
        try:
            return listening_sockets(netns_path, DNS_ADDRESS, DNS_PORT)
        except OSError as error:
            if error.errno != errno.EADDRINUSE:
                raise
        # A detach of this namespace may have left its sockets for the DNS thread to
        # close: let it catch up, then try once more.
        self._catch_up()
        return listening_sockets(netns_path, DNS_ADDRESS, DNS_PORT)

    def _catch_up(self) -> None:
        """Waits until the DNS thread has done the selector work queued so far."""
        with self._lock:
            running = self._thread is not None and self._thread is not threading.current_thread()
            done = threading.Event()
            self._ops.append(done.set)
        if not running:
            self._run_ops()
            return
        self._wake()
        done.wait(5.0)

    def detach(self, container_id: str) -> None:
        """Stops answering for the container at once; its sockets close soon after."""
        with self._lock:
            old = self._containers.pop(container_id, None)
            if old is None:
                return
            # Handlers check this flag before answering, so nothing is sent from here on
            # although the sockets are closed by the DNS thread (it owns the selector).
            old.closed = True
            self._ops.append(partial(self._drop, old))
        self._wake()

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            thread = self._thread
            for container in self._containers.values():
                container.closed = True
        self._wake()
        if thread is not None:
            thread.join()
        # The thread has ended (or never ran): tidy up here.
        self._run_ops()
        with self._lock:
            containers = list(self._containers.values())
            self._containers.clear()
        for container in containers:
            self._drop(container)
        self._selector.close()
        os.close(self._wake_r)
        os.close(self._wake_w)

    # -- the DNS thread --

    def _run(self) -> None:
        self._run_ops()
        while not self._closed:
            timeout = None
            if self._timers:
                timeout = max(0.0, self._timers[0][0] - time.monotonic())
            for key, mask in self._selector.select(timeout):
                try:
                    key.data(mask)
                except Exception:   # one bad packet or peer must not stop the server
                    log.exception("embedded DNS: error while serving")
            self._fire_timers()

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"x")
        except BlockingIOError:
            pass            # the pipe is full: the thread has wake-ups pending anyway
        except OSError:
            pass            # closed: nothing left to wake

    def _on_wake(self, mask: int) -> None:
        try:
            while os.read(self._wake_r, 4096):
                pass
        except BlockingIOError:
            pass
        self._run_ops()

    def _run_ops(self) -> None:
        with self._lock:
            ops, self._ops = self._ops, []
        for op in ops:
            try:
                op()
            except Exception:
                log.exception("embedded DNS: error while attaching or detaching")

    def _register(self, container: Container) -> None:
        if container.closed:
            self._drop(container)
            return
        self._selector.register(container.udp, selectors.EVENT_READ,
                                partial(self._on_udp, container))
        self._selector.register(container.tcp, selectors.EVENT_READ,
                                partial(self._on_accept, container))
        container.registered = True

    def _drop(self, container: Container) -> None:
        for forward in list(container.forwards):
            self._finish_forward(forward)
        for client in list(container.clients):
            self._close_client(client)
        for sock in (container.udp, container.tcp):
            if container.registered:
                self._selector.unregister(sock)
            sock.close()
        container.registered = False

    def _add_timer(self, item: Forward | TcpClient, deadline: float) -> None:
        item.deadline = deadline
        heapq.heappush(self._timers, (deadline, next(self._seq), item))

    def _fire_timers(self) -> None:
        now = time.monotonic()
        while self._timers and self._timers[0][0] <= now:
            deadline, _, item = heapq.heappop(self._timers)
            if item.done or item.deadline != deadline:
                continue    # finished, or its deadline was moved: a later entry holds it
            if isinstance(item, Forward):
                log.debug("embedded DNS: upstream timed out")
                self._next_upstream(item)
            else:
                self._close_client(item)

    # -- queries from containers --

    def _on_udp(self, container: Container, mask: int) -> None:
        for _ in range(_BATCH):
            if container.closed:
                return
            try:
                data, address = container.udp.recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            self._serve(container, data, UdpPeer(container, address, 0))

    def _on_accept(self, container: Container, mask: int) -> None:
        for _ in range(_BATCH):
            if container.closed:
                return
            try:
                conn, _ = container.tcp.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            if len(container.clients) >= _MAX_TCP_CLIENTS:
                conn.close()
                continue
            conn.setblocking(False)
            client = TcpClient(container, conn, events=selectors.EVENT_READ)
            container.clients.add(client)
            self._selector.register(conn, selectors.EVENT_READ,
                                    partial(self._on_client, client))
            self._add_timer(client, time.monotonic() + _TCP_IDLE)

    def _on_client(self, client: TcpClient, mask: int) -> None:
        if client.gone:
            return
        if mask & selectors.EVENT_WRITE:
            self._flush(client)
        if client.gone or not mask & selectors.EVENT_READ:
            return
        chunk = _receive(client.sock)
        if chunk is None:
            return
        if not chunk:
            self._close_client(client)
            return
        client.inbuf += chunk
        while (message := take_tcp_message(client.inbuf)) is not None:
            self._serve(client.container, message, client)
            if client.gone:
                return
        self._add_timer(client, time.monotonic() + _TCP_IDLE)

    def _close_client(self, client: TcpClient) -> None:
        if client.done:
            return
        client.done = True
        client.container.clients.discard(client)
        self._selector.unregister(client.sock)
        client.sock.close()

    def _send(self, peer: Peer, message: bytes) -> None:
        if peer.gone:
            return
        if isinstance(peer, UdpPeer):
            try:
                peer.container.udp.sendto(message, peer.address)
            except OSError:
                pass        # the client went away; UDP has no one to tell
            return
        if len(peer.outbuf) + len(message) > _MAX_TCP_OUTBUF:
            self._close_client(peer)
            return
        peer.outbuf += struct.pack("!H", len(message)) + message
        self._flush(peer)

    def _flush(self, client: TcpClient) -> None:
        try:
            sent = client.sock.send(client.outbuf) if client.outbuf else 0
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            self._close_client(client)
            return
        del client.outbuf[:sent]
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if client.outbuf else 0)
        if events != client.events:
            client.events = events
            self._selector.modify(client.sock, events, partial(self._on_client, client))

    def _serve(self, container: Container, data: bytes, peer: Peer) -> None:
        try:
            query = parse_query(data)
        except WireError as error:
            reply = build_error(data, error.rcode) if error.rcode is not None else None
            if reply is not None:
                self._send(peer, reply)
            return
        if isinstance(peer, UdpPeer):
            peer.limit = query.max_udp_size()
        try:
            answer = self._answer_locally(container.id, query, peer.limit)
        except Exception:
            log.exception("embedded DNS: name lookup failed")
            answer = build_answer(query, [], peer.limit, RCODE_SERVFAIL)
        if answer is not None:
            self._send(peer, answer)
        else:
            self._forward(container, query, data, peer)

    def _answer_locally(self, container_id: str, query: Query, limit: int) -> bytes | None:
        """Our answer, or None when the query is not about one of our names."""
        if query.qclass != CLASS_IN:
            return None
        name = query.name()
        if not name:
            return None
        if query.qtype in (TYPE_A, TYPE_AAAA):
            records = self._address_records(container_id, name, query.qtype)
            if records:
                random.shuffle(records)   # as Docker does, to spread load over replicas
                return build_answer(query, records, limit)
            other = TYPE_AAAA if query.qtype == TYPE_A else TYPE_A
            if self._address_records(container_id, name, other):
                # Known, but not with this type: no records, and no NXDOMAIN from upstream.
                return build_answer(query, [], limit)
            return None
        if query.qtype == TYPE_PTR:
            address = reverse_address(name)
            host = self._reverse(container_id, address) if address else None
            if not host:
                return None
            try:
                record = ptr_record(host, TTL)
            except (WireError, UnicodeError):
                log.warning("embedded DNS: %r is not a host name for a PTR answer", host)
                return None
            return build_answer(query, [record], limit)
        return None

    def _address_records(self, container_id: str, name: str, qtype: int) -> list[Record]:
        records = []
        for address in self._resolve(container_id, name, qtype):
            try:
                records.append(address_record(qtype, address, TTL))
            except ValueError:
                log.warning("embedded DNS: %r is not a type %d address for %s",
                            address, qtype, name)
        return records

    # -- queries forwarded upstream --

    def _forward(self, container: Container, query: Query, data: bytes, peer: Peer) -> None:
        if not container.upstream:
            # Docker answers SERVFAIL when it has nowhere to forward to.
            self._send(peer, build_answer(query, [], peer.limit, RCODE_SERVFAIL))
            return
        if self._forwards >= _MAX_FORWARDS:
            log.warning("embedded DNS: too many queries in flight, dropping one")
            return
        forward = Forward(container, query, data, peer, tcp=isinstance(peer, TcpClient))
        container.forwards.add(forward)
        self._forwards += 1
        self._try_upstream(forward)

    def _try_upstream(self, forward: Forward) -> None:
        servers = forward.container.upstream
        while forward.next_index < len(servers):
            host, port = servers[forward.next_index]
            forward.next_index += 1
            try:
                self._open_upstream(forward, host, port)
            except OSError as error:
                log.debug("embedded DNS: upstream %s:%d: %s", host, port, error)
                continue
            self._add_timer(forward, time.monotonic() + self._upstream_timeout)
            return
        query, peer = forward.query, forward.peer
        self._finish_forward(forward)
        self._send(peer, build_answer(query, [], peer.limit, RCODE_SERVFAIL))

    def _open_upstream(self, forward: Forward, host: str, port: int) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        kind = socket.SOCK_STREAM if forward.tcp else socket.SOCK_DGRAM
        sock = socket.socket(family, kind)
        try:
            sock.setblocking(False)
            if forward.tcp:
                code = sock.connect_ex((host, port))
                if code not in (0, errno.EINPROGRESS):
                    raise OSError(code, os.strerror(code))
                forward.out = struct.pack("!H", len(forward.data)) + forward.data
                forward.buf.clear()
                forward.connected = False
                events = selectors.EVENT_WRITE
            else:
                # Connected, so that only this server's replies arrive and an ICMP
                # "port unreachable" shows up as ECONNREFUSED at once.
                sock.connect((host, port))
                sock.send(forward.data)
                events = selectors.EVENT_READ
            self._selector.register(sock, events, partial(self._on_upstream, forward))
        except BaseException:
            sock.close()
            raise
        forward.sock = sock

    def _on_upstream(self, forward: Forward, mask: int) -> None:
        if forward.done or forward.sock is None:
            return
        sock = forward.sock
        if not forward.tcp:
            try:
                reply = sock.recv(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self._next_upstream(forward)
                return
            self._upstream_reply(forward, reply)
            return
        if forward.out:
            if not forward.connected:
                if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                    self._next_upstream(forward)
                    return
                forward.connected = True
            try:
                sent = sock.send(forward.out)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self._next_upstream(forward)
                return
            forward.out = forward.out[sent:]
            if not forward.out:
                self._selector.modify(sock, selectors.EVENT_READ,
                                      partial(self._on_upstream, forward))
            return
        chunk = _receive(sock)
        if chunk is None:
            return
        if not chunk:
            self._next_upstream(forward)
            return
        forward.buf += chunk
        reply = take_tcp_message(forward.buf)
        if reply is not None:
            self._upstream_reply(forward, reply)

    def _upstream_reply(self, forward: Forward, reply: bytes) -> None:
        try:
            header = parse_reply(reply)
        except WireError:
            header = None
        if header is None or not matches(header, forward.query):
            # Over UDP, a stray or forged datagram: keep waiting for the real one.
            if forward.tcp:
                self._next_upstream(forward)
            return
        if header.rcode in (RCODE_SERVFAIL, RCODE_REFUSED):
            # As Docker: these may be passing states of one server; ask the next.
            self._next_upstream(forward)
            return
        # A truncated UDP reply goes back as it is: the client then asks again over TCP,
        # which is forwarded over TCP (Docker does the same).
        peer = forward.peer
        self._finish_forward(forward)
        self._send(peer, reply)

    def _next_upstream(self, forward: Forward) -> None:
        self._close_upstream(forward)
        self._try_upstream(forward)

    def _close_upstream(self, forward: Forward) -> None:
        if forward.sock is not None:
            self._selector.unregister(forward.sock)
            forward.sock.close()
            forward.sock = None
        forward.deadline = 0.0

    def _finish_forward(self, forward: Forward) -> None:
        if forward.done:
            return
        forward.done = True
        self._close_upstream(forward)
        forward.container.forwards.discard(forward)
        self._forwards -= 1


def _receive(sock: socket.socket) -> bytes | None:
    """What a stream socket has: None if nothing yet, b"" at its end or on an error."""
    try:
        return sock.recv(65537)
    except (BlockingIOError, InterruptedError):
        return None
    except OSError:
        return b""


def _check_upstream(upstream: list[tuple[str, int]]) -> list[tuple[str, int]]:
    """Upstream servers must be address literals: resolving a name here would block."""
    servers = []
    for host, port in upstream:
        try:
            ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            raise ValueError(f"upstream DNS server {host!r} is not an IP address") from None
        if not 0 < port < 65536:
            raise ValueError(f"upstream DNS server port {port} is out of range")
        servers.append((host, port))
    return servers
