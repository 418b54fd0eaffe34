"""Listening sockets made inside another network namespace.

A socket belongs to the network namespace of the thread that created it, for its whole
life, whichever thread uses it later. So a short-lived thread enters the container's
namespace with setns(2) (which moves only the calling thread), creates and binds the
sockets, and ends; the DNS thread then serves them while staying in the host's namespace,
from where it reaches the upstream servers.
"""

from __future__ import annotations

import os
import socket
import threading

from dockyard.runtime.linux import CLONE_NEWNET
from dockyard.runtime.syscalls import LinuxSyscall


def netns_identity(netns_path: str) -> tuple[int, int]:
    """What tells two paths to the same network namespace apart from others (its inode)."""
    try:
        found = os.stat(netns_path)
    except OSError as error:
        raise OSError(error.errno, f"network namespace {netns_path}: {error.strerror}") \
            from error
    return found.st_dev, found.st_ino


def listening_sockets(netns_path: str, address: str,
                      port: int) -> tuple[socket.socket, socket.socket]:
    """A UDP socket and a listening TCP socket on address:port inside netns_path."""
    made: list[tuple[socket.socket, socket.socket]] = []
    failed: list[BaseException] = []

    def in_namespace() -> None:
        try:
            fd = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                LinuxSyscall().setns(fd, CLONE_NEWNET)
            finally:
                os.close(fd)
            made.append(_bind(address, port))
        except BaseException as error:  # handed to the caller's thread below
            failed.append(error)

    thread = threading.Thread(target=in_namespace, name="dockyard-dns-setns", daemon=True)
    thread.start()
    thread.join()
    if failed:
        error = failed[0]
        if isinstance(error, OSError):
            raise OSError(error.errno, f"cannot listen on {address}:{port} in network "
                                       f"namespace {netns_path}: {error.strerror}") from error
        raise error
    return made[0]


def _bind(address: str, port: int) -> tuple[socket.socket, socket.socket]:
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        for sock in (udp, tcp):
            # Not SO_REUSEPORT: two sockets on one address would split the queries.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((address, port))
            sock.setblocking(False)
        tcp.listen(128)
    except BaseException:
        udp.close()
        tcp.close()
        raise
    return udp, tcp
