"""A small rtnetlink client: the few link, address and route requests the bridge driver
makes, in-process (no `ip` subprocess per step).

A netlink socket belongs to the network namespace it was opened in: open one from a
thread that has entered a container's namespace to configure that namespace.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
import struct

NETLINK_ROUTE = 0
RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK, RTM_SETLINK = 16, 17, 18, 19
RTM_NEWADDR = 20
RTM_NEWROUTE = 24
NLM_F_REQUEST, NLM_F_ACK, NLM_F_EXCL, NLM_F_CREATE = 0x1, 0x4, 0x200, 0x400
NLMSG_ERROR, NLMSG_DONE = 2, 3
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_MASTER = 1, 3, 4, 10
IFLA_PROTINFO, IFLA_LINKINFO, IFLA_NET_NS_FD = 12, 18, 28
IFLA_BRPORT_MODE = 4
AF_BRIDGE = 7
IFLA_INFO_KIND, IFLA_INFO_DATA = 1, 2
VETH_INFO_PEER = 1
IFA_ADDRESS, IFA_LOCAL, IFA_BROADCAST = 1, 2, 4
RTA_DST, RTA_OIF, RTA_GATEWAY = 1, 4, 5
IFF_UP = 0x1
NLA_F_NESTED = 0x8000
RT_TABLE_MAIN, RTPROT_BOOT, RTN_UNICAST = 254, 3, 1
IFA_F_NODAD = 0x02

_HEADER = struct.Struct("=IHHII")
_IFINFO = struct.Struct("=BxHiII")
_IFADDR = struct.Struct("=BBBBI")
_RTMSG = struct.Struct("=BBBBBBBBI")


class NetlinkError(OSError):
    pass


def _attr(kind: int, payload: bytes) -> bytes:
    length = 4 + len(payload)
    return struct.pack("=HH", length, kind) + payload + b"\0" * (-length % 4)


def _text(kind: int, value: str) -> bytes:
    return _attr(kind, value.encode() + b"\0")


def _u32(kind: int, value: int) -> bytes:
    return _attr(kind, struct.pack("=I", value))


def _ifinfo(index: int = 0, flags: int = 0, change: int = 0) -> bytes:
    return _IFINFO.pack(socket.AF_UNSPEC, 0, index, flags, change)


def mac_bytes(mac: str) -> bytes:
    return bytes(int(part, 16) for part in mac.split(":"))


class Netlink:
    """One NETLINK_ROUTE socket; each request waits for the kernel's acknowledgement."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC,
                                  NETLINK_ROUTE)
        self.sock.bind((0, 0))
        self._seq = 0

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Netlink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _request(self, kind: int, flags: int, body: bytes) -> list[tuple[int, bytes]]:
        self._seq += 1
        seq = self._seq
        message = _HEADER.pack(_HEADER.size + len(body), kind, flags | NLM_F_REQUEST | NLM_F_ACK,
                               seq, 0) + body
        self.sock.send(message)
        replies: list[tuple[int, bytes]] = []
        while True:
            data = self.sock.recv(65536)
            offset = 0
            while offset + _HEADER.size <= len(data):
                length, rtype, _flags, rseq, _pid = _HEADER.unpack_from(data, offset)
                payload = data[offset + _HEADER.size:offset + length]
                offset += (length + 3) & ~3
                if rseq != seq:
                    continue
                if rtype == NLMSG_ERROR:
                    code = -struct.unpack_from("=i", payload)[0]
                    if code:
                        raise NetlinkError(code, os.strerror(code))
                    return replies
                if rtype == NLMSG_DONE:
                    return replies
                replies.append((rtype, payload))

    # -- links ----------------------------------------------------------------------------

    def link_index(self, name: str) -> int | None:
        try:
            replies = self._request(RTM_GETLINK, 0, _ifinfo() + _text(IFLA_IFNAME, name))
        except NetlinkError as e:
            if e.errno in (errno.ENODEV, errno.ENOENT):
                return None
            raise
        for rtype, payload in replies:
            if rtype == RTM_NEWLINK:
                return int(_IFINFO.unpack_from(payload)[2])
        return None

    def add_bridge(self, name: str, mtu: int = 0) -> int:
        attrs = _text(IFLA_IFNAME, name) + _attr(IFLA_LINKINFO | NLA_F_NESTED,
                                                 _text(IFLA_INFO_KIND, "bridge"))
        if mtu:
            attrs += _u32(IFLA_MTU, mtu)
        self._request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, _ifinfo() + attrs)
        index = self.link_index(name)
        assert index is not None
        return index

    def add_veth(self, name: str, peer: str, peer_netns_fd: int, peer_mac: str,
                 master: int, mtu: int = 0) -> None:
        """A veth pair: `name` here, enslaved to the bridge `master`; `peer` created
        directly in the namespace of `peer_netns_fd` with the given MAC address."""
        peer_attrs = _text(IFLA_IFNAME, peer) + _u32(IFLA_NET_NS_FD, peer_netns_fd) + \
            _attr(IFLA_ADDRESS, mac_bytes(peer_mac))
        if mtu:
            peer_attrs += _u32(IFLA_MTU, mtu)
        info = _text(IFLA_INFO_KIND, "veth") + _attr(
            IFLA_INFO_DATA | NLA_F_NESTED,
            _attr(VETH_INFO_PEER | NLA_F_NESTED, _ifinfo() + peer_attrs))
        attrs = _text(IFLA_IFNAME, name) + _attr(IFLA_LINKINFO | NLA_F_NESTED, info) + \
            _u32(IFLA_MASTER, master)
        if mtu:
            attrs += _u32(IFLA_MTU, mtu)
        self._request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL,
                      _ifinfo(0, IFF_UP, IFF_UP) + attrs)

    def set_hairpin(self, name: str) -> None:
        """Hairpin mode on a bridge port: a container's packets to its own published port
        (DNATed back to it) may leave by the port they came in."""
        index = self.link_index(name)
        assert index is not None
        body = _IFINFO.pack(AF_BRIDGE, 0, index, 0, 0) + _attr(
            IFLA_PROTINFO | NLA_F_NESTED, _attr(IFLA_BRPORT_MODE, b"\1"))
        self._request(RTM_SETLINK, 0, body)

    def set_up(self, name: str) -> None:
        self._request(RTM_NEWLINK, 0, _ifinfo(0, IFF_UP, IFF_UP) + _text(IFLA_IFNAME, name))

    def delete_link(self, name: str) -> bool:
        """Removes a link (a veth takes its peer with it); False if there was none."""
        try:
            self._request(RTM_DELLINK, 0, _ifinfo() + _text(IFLA_IFNAME, name))
        except NetlinkError as e:
            if e.errno in (errno.ENODEV, errno.ENOENT):
                return False
            raise
        return True

    # -- addresses and routes -------------------------------------------------------------

    def add_address(self, index: int, interface: str) -> None:
        """interface: "172.18.0.2/16" or "fd00::2/64"."""
        network = ipaddress.ip_interface(interface)
        family = socket.AF_INET if network.version == 4 else socket.AF_INET6
        packed = network.ip.packed
        attrs = _attr(IFA_LOCAL, packed) + _attr(IFA_ADDRESS, packed)
        flags = 0
        if network.version == 4:
            attrs += _attr(IFA_BROADCAST, network.network.broadcast_address.packed)
        else:
            flags = IFA_F_NODAD  # usable at once: no duplicate detection delay
        body = _IFADDR.pack(family, network.network.prefixlen, flags, 0, index) + attrs
        self._request(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, body)

    def add_default_route(self, gateway: str, index: int) -> None:
        address = ipaddress.ip_address(gateway)
        family = socket.AF_INET if address.version == 4 else socket.AF_INET6
        body = _RTMSG.pack(family, 0, 0, 0, RT_TABLE_MAIN, RTPROT_BOOT, 0, RTN_UNICAST, 0) + \
            _attr(RTA_GATEWAY, address.packed) + _u32(RTA_OIF, index)
        self._request(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, body)
