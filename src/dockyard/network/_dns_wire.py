"""The DNS wire format (RFC 1035, EDNS from RFC 6891): just what the embedded server needs.

Pure functions over bytes, no I/O: parse one query, build answers and error replies, read the
header of an upstream's reply and turn reverse-lookup names into addresses.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

HEADER = struct.Struct("!HHHHHH")
HEADER_SIZE = HEADER.size

TYPE_A = 1
TYPE_PTR = 12
TYPE_AAAA = 28
TYPE_OPT = 41
CLASS_IN = 1

RCODE_NOERROR = 0
RCODE_FORMERR = 1
RCODE_SERVFAIL = 2
RCODE_NXDOMAIN = 3
RCODE_NOTIMP = 4
RCODE_REFUSED = 5

OPCODE_QUERY = 0

_FLAG_QR = 0x8000
_FLAG_AA = 0x0400
_FLAG_TC = 0x0200
_FLAG_RD = 0x0100
_FLAG_RA = 0x0080
_OPCODE_MASK = 0x7800

MAX_UDP_PLAIN = 512          # a client without EDNS accepts no more over UDP
MAX_UDP_ADVERTISED = 1232    # our EDNS payload size (the DNS flag day 2020 figure)
_MAX_NAME = 255
_MAX_LABEL = 63
_POINTER = 0xC0


class WireError(ValueError):
    """The packet is not a DNS message we accept; `rcode` says how to answer, if at all."""

    def __init__(self, message: str, rcode: int | None = RCODE_FORMERR) -> None:
        super().__init__(message)
        self.rcode = rcode


@dataclass(frozen=True)
class Query:
    """One parsed question, and what is needed to answer it."""

    id: int
    flags: int
    qname_wire: bytes          # the name exactly as asked, uncompressed, for echoing back
    labels: tuple[bytes, ...]  # its labels, case preserved
    qtype: int
    qclass: int
    edns_size: int | None      # the client's UDP payload size if it sent an OPT record

    @property
    def recursion_desired(self) -> bool:
        return bool(self.flags & _FLAG_RD)

    def name(self) -> str | None:
        """The name lowercased, without the trailing dot; None if it cannot be a host name.

        Only printable ASCII without a dot inside a label can name one of our containers;
        anything else is left to the upstream servers.
        """
        parts = []
        for label in self.labels:
            if any(b <= 0x20 or b >= 0x7F or b == 0x2E for b in label):
                return None
            parts.append(label.decode("ascii").lower())
        return ".".join(parts)

    def max_udp_size(self) -> int:
        if self.edns_size is None:
            return MAX_UDP_PLAIN
        return max(MAX_UDP_PLAIN, min(self.edns_size, MAX_UDP_ADVERTISED))


@dataclass(frozen=True)
class Record:
    """An answer record for the question's own name (so its name is a pointer to it)."""

    rtype: int
    ttl: int
    rdata: bytes


def parse_query(data: bytes) -> Query:
    """Parses a query with exactly one question; raises WireError otherwise.

    The checks follow what Docker's resolver library accepts: a reply (QR set) is ignored,
    a non-QUERY opcode gets NOTIMP, anything but one question or answer/authority records
    gets FORMERR. Trailing bytes after the message are tolerated.
    """
    if len(data) < HEADER_SIZE:
        raise WireError("shorter than a DNS header", rcode=None)
    ident, flags, qdcount, ancount, nscount, arcount = HEADER.unpack_from(data)
    if flags & _FLAG_QR:
        raise WireError("a response, not a query", rcode=None)
    if (flags & _OPCODE_MASK) >> 11 != OPCODE_QUERY:
        raise WireError("opcode not implemented", rcode=RCODE_NOTIMP)
    if qdcount != 1:
        raise WireError(f"{qdcount} questions, expected 1")
    if ancount or nscount:
        raise WireError("a query with answer or authority records")
    labels, offset = read_name(data, HEADER_SIZE)
    qname_wire = encode_name(labels)
    if offset + 4 > len(data):
        raise WireError("question cut short")
    qtype, qclass = struct.unpack_from("!HH", data, offset)
    offset += 4
    edns_size = None
    for _ in range(arcount):
        _, offset = read_name(data, offset)
        if offset + 10 > len(data):
            raise WireError("additional record cut short")
        rtype, rclass, _ttl, rdlength = struct.unpack_from("!HHIH", data, offset)
        offset += 10 + rdlength
        if offset > len(data):
            raise WireError("additional record data cut short")
        if rtype == TYPE_OPT:
            edns_size = rclass    # an OPT record's class field is the payload size
    return Query(ident, flags, qname_wire, tuple(labels), qtype, qclass, edns_size)


def read_name(data: bytes, offset: int) -> tuple[list[bytes], int]:
    """Reads a possibly compressed name at offset; returns its labels and the offset after it."""
    labels: list[bytes] = []
    length = 1
    end = -1          # where reading resumes once the first pointer has been followed
    jumps = 0
    while True:
        if offset >= len(data):
            raise WireError("name runs past the end of the message")
        size = data[offset]
        if size & _POINTER == _POINTER:
            if offset + 1 >= len(data):
                raise WireError("compression pointer cut short")
            target = ((size & ~_POINTER) << 8) | data[offset + 1]
            if end < 0:
                end = offset + 2
            jumps += 1
            # A pointer must point backwards; that alone rules out loops, the count is a
            # second guard.
            if target >= offset or jumps > 64:
                raise WireError("compression pointer loop")
            offset = target
            continue
        if size & _POINTER:
            raise WireError("unknown label type")
        offset += 1
        if size == 0:
            return labels, (end if end >= 0 else offset)
        if offset + size > len(data):
            raise WireError("label runs past the end of the message")
        length += size + 1
        if length > _MAX_NAME:
            raise WireError("name longer than 255 bytes")
        labels.append(bytes(data[offset:offset + size]))
        offset += size


def encode_name(labels: list[bytes] | tuple[bytes, ...]) -> bytes:
    out = bytearray()
    for label in labels:
        if not 0 < len(label) <= _MAX_LABEL:
            raise WireError("label empty or longer than 63 bytes")
        out.append(len(label))
        out += label
    out.append(0)
    if len(out) > _MAX_NAME:
        raise WireError("name longer than 255 bytes")
    return bytes(out)


def encode_text_name(name: str) -> bytes:
    """A dotted host name (trailing dot optional) in wire form."""
    stripped = name.rstrip(".")
    labels = [part.encode("ascii") for part in stripped.split(".")] if stripped else []
    return encode_name(labels)


def address_record(qtype: int, address: str, ttl: int) -> Record:
    ip = ipaddress.ip_address(address)
    if (qtype == TYPE_A) != (ip.version == 4):
        raise ValueError(f"{address} is not an address for query type {qtype}")
    return Record(qtype, ttl, ip.packed)


def ptr_record(name: str, ttl: int) -> Record:
    return Record(TYPE_PTR, ttl, encode_text_name(name))


def build_answer(query: Query, records: list[Record], limit: int,
                 rcode: int = RCODE_NOERROR) -> bytes:
    """A reply to query with records for its name; truncated (TC, no records) past limit.

    Like Docker's resolver: recursion available, not authoritative, RD copied. An OPT record
    is added when the query had one (RFC 6891 says a responder that speaks EDNS does so).
    """
    flags = _FLAG_QR | _FLAG_RA | (query.flags & _FLAG_RD) | rcode
    question = query.qname_wire + struct.pack("!HH", query.qtype, query.qclass)
    opt = b""
    if query.edns_size is not None:
        opt = b"\x00" + struct.pack("!HHIH", TYPE_OPT, MAX_UDP_ADVERTISED, 0, 0)
    body = bytearray()
    for record in records:
        # 0xC00C: a pointer to the question's name, right after the 12-byte header.
        body += struct.pack("!HHHIH", 0xC00C, record.rtype, CLASS_IN, record.ttl,
                            len(record.rdata))
        body += record.rdata
    count = len(records)
    if HEADER_SIZE + len(question) + len(body) + len(opt) > limit:
        flags |= _FLAG_TC
        body = bytearray()
        count = 0
    header = HEADER.pack(query.id, flags, 1, count, 0, 1 if opt else 0)
    return header + question + bytes(body) + opt


def build_error(data: bytes, rcode: int) -> bytes | None:
    """A header-only reply with rcode to a packet we could not use; None if it has no header."""
    if len(data) < HEADER_SIZE:
        return None
    ident, flags = struct.unpack_from("!HH", data)
    flags = _FLAG_QR | _FLAG_RA | (flags & (_OPCODE_MASK | _FLAG_RD)) | rcode
    return HEADER.pack(ident, flags, 0, 0, 0, 0)


def take_tcp_message(buffer: bytearray) -> bytes | None:
    """Removes the first whole length-prefixed message (DNS over TCP) from buffer."""
    if len(buffer) < 2:
        return None
    size = struct.unpack_from("!H", buffer)[0]
    if len(buffer) < 2 + size:
        return None
    message = bytes(buffer[2:2 + size])
    del buffer[:2 + size]
    return message


@dataclass(frozen=True)
class ReplyHeader:
    id: int
    rcode: int
    truncated: bool
    qname_wire: bytes | None   # the echoed question's name, lowercased for comparing
    qtype: int | None


def parse_reply(data: bytes) -> ReplyHeader:
    """The parts of an upstream's reply needed to match it to our query and judge it."""
    if len(data) < HEADER_SIZE:
        raise WireError("shorter than a DNS header", rcode=None)
    ident, flags, qdcount, _, _, _ = HEADER.unpack_from(data)
    if not flags & _FLAG_QR:
        raise WireError("a query, not a reply", rcode=None)
    qname = qtype = None
    if qdcount >= 1:
        labels, offset = read_name(data, HEADER_SIZE)
        if offset + 4 > len(data):
            raise WireError("question cut short", rcode=None)
        qname = encode_name([label.lower() for label in labels])
        qtype = struct.unpack_from("!H", data, offset)[0]
    return ReplyHeader(ident, flags & 0x000F, bool(flags & _FLAG_TC), qname, qtype)


def matches(reply: ReplyHeader, query: Query) -> bool:
    """Whether reply answers query (same id and, when echoed, the same question)."""
    if reply.id != query.id:
        return False
    if reply.qname_wire is None:
        return True   # some servers leave the question out of error replies
    asked = encode_name([label.lower() for label in query.labels])
    return reply.qname_wire == asked and reply.qtype == query.qtype


def reverse_address(name: str) -> str | None:
    """The address a PTR name (x.x.x.x.in-addr.arpa, 32 nibbles.ip6.arpa) stands for.

    None for anything else, including partial names such as 10.in-addr.arpa.
    """
    if name.endswith(".in-addr.arpa"):
        parts = name[:-len(".in-addr.arpa")].split(".")
        if len(parts) != 4 or not all(p.isdigit() and len(p) <= 3 for p in parts):
            return None
        if any(int(p) > 255 or (len(p) > 1 and p[0] == "0") for p in parts):
            return None
        return ".".join(reversed(parts))
    if name.endswith(".ip6.arpa"):
        nibbles = name[:-len(".ip6.arpa")].split(".")
        if len(nibbles) != 32 or not all(len(n) == 1 and n in "0123456789abcdef"
                                         for n in nibbles):
            return None
        packed = bytes.fromhex("".join(reversed(nibbles)))
        return str(ipaddress.IPv6Address(packed))
    return None


def build_query(ident: int, name: str, qtype: int, *, edns_size: int | None = None,
                recursion_desired: bool = True) -> bytes:
    """A query for one name, as a stub resolver sends it."""
    flags = _FLAG_RD if recursion_desired else 0
    opt = b""
    if edns_size is not None:
        opt = b"\x00" + struct.pack("!HHIH", TYPE_OPT, edns_size, 0, 0)
    header = HEADER.pack(ident, flags, 1, 0, 0, 1 if opt else 0)
    return header + encode_text_name(name) + struct.pack("!HH", qtype, CLASS_IN) + opt


@dataclass(frozen=True)
class Message:
    """A whole reply, read the way a stub resolver reads it (answers only, data decoded)."""

    id: int
    rcode: int
    truncated: bool
    authoritative: bool
    recursion_available: bool
    questions: list[tuple[str, int]]
    answers: list[tuple[str, int, int, str]]   # name, type, ttl, value (address or name)
    has_opt: bool


def parse_message(data: bytes) -> Message:
    if len(data) < HEADER_SIZE:
        raise WireError("shorter than a DNS header", rcode=None)
    ident, flags, qdcount, ancount, nscount, arcount = HEADER.unpack_from(data)
    offset = HEADER_SIZE
    questions = []
    for _ in range(qdcount):
        labels, offset = read_name(data, offset)
        if offset + 4 > len(data):
            raise WireError("question cut short")
        questions.append((_text(labels), struct.unpack_from("!H", data, offset)[0]))
        offset += 4
    answers = []
    has_opt = False
    for index in range(ancount + nscount + arcount):
        labels, offset = read_name(data, offset)
        if offset + 10 > len(data):
            raise WireError("record cut short")
        rtype, _, ttl, rdlength = struct.unpack_from("!HHIH", data, offset)
        offset += 10
        if offset + rdlength > len(data):
            raise WireError("record data cut short")
        rdata = data[offset:offset + rdlength]
        if index < ancount:
            if rtype in (TYPE_A, TYPE_AAAA):
                value = str(ipaddress.ip_address(rdata))
            elif rtype == TYPE_PTR:
                value = _text(read_name(data, offset)[0])
            else:
                value = rdata.hex()
            answers.append((_text(labels), rtype, ttl, value))
        elif rtype == TYPE_OPT:
            has_opt = True
        offset += rdlength
    return Message(ident, flags & 0x000F, bool(flags & _FLAG_TC), bool(flags & _FLAG_AA),
                   bool(flags & _FLAG_RA), questions, answers, has_opt)


def _text(labels: list[bytes]) -> str:
    return ".".join(label.decode("latin-1") for label in labels) + "."
