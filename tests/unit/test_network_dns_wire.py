"""The embedded DNS server's wire format: parsing queries, building answers and errors."""

from __future__ import annotations

import struct

import pytest

from dockyard.network._dns_wire import (
    MAX_UDP_ADVERTISED,
    MAX_UDP_PLAIN,
    RCODE_FORMERR,
    RCODE_NOTIMP,
    RCODE_SERVFAIL,
    TYPE_A,
    TYPE_AAAA,
    TYPE_OPT,
    TYPE_PTR,
    WireError,
    address_record,
    build_answer,
    build_error,
    build_query,
    encode_text_name,
    matches,
    parse_message,
    parse_query,
    parse_reply,
    ptr_record,
    read_name,
    reverse_address,
    take_tcp_message,
)


def header(ident: int = 0x1234, flags: int = 0x0100, qd: int = 1, an: int = 0, ns: int = 0,
           ar: int = 0) -> bytes:
    return struct.pack("!HHHHHH", ident, flags, qd, an, ns, ar)


def question(name: bytes, qtype: int = TYPE_A) -> bytes:
    return name + struct.pack("!HH", qtype, 1)


def test_parse_simple_query() -> None:
    query = parse_query(build_query(7, "Web.Example.", TYPE_AAAA))
    assert query.id == 7
    assert query.qtype == TYPE_AAAA
    assert query.qclass == 1
    assert query.name() == "web.example"
    assert query.recursion_desired
    assert query.edns_size is None
    assert query.max_udp_size() == MAX_UDP_PLAIN


def test_name_without_trailing_dot_is_the_same() -> None:
    assert parse_query(build_query(1, "db", TYPE_A)).name() == "db"
    assert parse_query(build_query(1, "db.", TYPE_A)).name() == "db"


def test_query_name_with_compression_pointer() -> None:
    # Clients never compress a lone question, but a pointer must still be followed. The
    # only thing before the question is the header: an id of 0x0161 reads as the label
    # "a" and flags of 0 as the end of the name, so "web" + pointer to 0 is "web.a".
    data = header(ident=0x0161, flags=0) + b"\x03web\xc0\x00" + struct.pack("!HH", 1, 1)
    query = parse_query(data)
    assert query.name() == "web.a"
    assert query.qname_wire == b"\x03web\x01a\x00"   # echoed back uncompressed
    # A pointer forwards (past itself) is refused.
    forward = header() + b"\x03web\xc0\x14" + struct.pack("!HH", 1, 1) + b"\x01b\x00"
    with pytest.raises(WireError):
        parse_query(forward)
    labels, end = read_name(header() + b"\x01x\x00\x03web\xc0\x0c", 15)
    assert labels == [b"web", b"x"] and end == 21


def test_compression_pointer_loop_rejected() -> None:
    data = header() + b"\xc0\x0c"          # points at itself
    with pytest.raises(WireError):
        read_name(data, 12)


def test_multiple_questions_get_formerr() -> None:
    data = header(qd=2) + question(b"\x01a\x00") + question(b"\x01b\x00")
    with pytest.raises(WireError) as caught:
        parse_query(data)
    assert caught.value.rcode == RCODE_FORMERR
    reply = build_error(data, RCODE_FORMERR)
    assert reply is not None
    message = parse_message(reply)
    assert message.id == 0x1234 and message.rcode == RCODE_FORMERR


def test_no_question_gets_formerr() -> None:
    with pytest.raises(WireError) as caught:
        parse_query(header(qd=0))
    assert caught.value.rcode == RCODE_FORMERR


def test_query_with_answers_gets_formerr() -> None:
    with pytest.raises(WireError) as caught:
        parse_query(header(an=1) + question(b"\x01a\x00"))
    assert caught.value.rcode == RCODE_FORMERR


def test_other_opcode_gets_notimp() -> None:
    with pytest.raises(WireError) as caught:
        parse_query(header(flags=0x2800) + question(b"\x01a\x00"))   # opcode 5, UPDATE
    assert caught.value.rcode == RCODE_NOTIMP


def test_responses_and_short_packets_are_ignored() -> None:
    for data in (b"", b"\x12", header()[:11], header(flags=0x8000) + question(b"\x00")):
        with pytest.raises(WireError) as caught:
            parse_query(data)
        assert caught.value.rcode is None
    assert build_error(b"\x12\x34", RCODE_FORMERR) is None


@pytest.mark.parametrize("cut", range(12, 25))
def test_truncated_query_rejected(cut: int) -> None:
    data = build_query(1, "web.example", TYPE_A)
    assert len(data) == 29
    with pytest.raises(WireError):
        parse_query(data[:cut])


def test_label_past_end_and_bad_label_type() -> None:
    with pytest.raises(WireError):
        parse_query(header() + b"\x3fabc")
    with pytest.raises(WireError):
        parse_query(header() + b"\x40abc\x00\x00\x01\x00\x01")   # 0x40: extended label


def test_name_longer_than_255_rejected() -> None:
    name = (b"\x3f" + b"a" * 63) * 4 + b"\x00"   # 257 bytes
    with pytest.raises(WireError):
        parse_query(header() + question(name))


def test_edns_opt_record_tolerated_and_read() -> None:
    data = build_query(9, "web", TYPE_A, edns_size=4096)
    query = parse_query(data)
    assert query.edns_size == 4096
    assert query.max_udp_size() == MAX_UDP_ADVERTISED
    assert parse_query(build_query(9, "web", TYPE_A, edns_size=100)).max_udp_size() == 512
    # An OPT record with options (a cookie) is skipped over correctly.
    cookie = struct.pack("!HH", 10, 8) + b"12345678"
    opt = b"\x00" + struct.pack("!HHIH", TYPE_OPT, 1232, 0, len(cookie)) + cookie
    data = header(ar=1) + question(b"\x03web\x00") + opt
    assert parse_query(data).edns_size == 1232
    with pytest.raises(WireError):
        parse_query(data[:-3])


def test_trailing_bytes_tolerated() -> None:
    assert parse_query(build_query(1, "web", TYPE_A) + b"\0\0\0").name() == "web"


def test_odd_labels_are_not_host_names() -> None:
    data = header() + question(b"\x03a.b\x00")
    assert parse_query(data).name() is None
    data = header() + question(b"\x03\xffab\x00")
    assert parse_query(data).name() is None
    assert parse_query(header() + question(b"\x00")).name() == ""


def test_answer_with_addresses() -> None:
    query = parse_query(build_query(42, "Web.Example.", TYPE_A))
    records = [address_record(TYPE_A, "10.0.0.2", 600), address_record(TYPE_A, "10.0.0.3", 600)]
    reply = build_answer(query, records, 512)
    message = parse_message(reply)
    assert message.id == 42 and message.rcode == 0
    assert message.recursion_available and not message.authoritative
    assert not message.truncated
    assert message.questions == [("Web.Example.", TYPE_A)]
    # The answers point at the question's name, case preserved, as Docker echoes it.
    assert message.answers == [("Web.Example.", TYPE_A, 600, "10.0.0.2"),
                               ("Web.Example.", TYPE_A, 600, "10.0.0.3")]
    assert b"\xc0\x0c" in reply
    assert not message.has_opt


def test_answer_aaaa_and_wrong_family_refused() -> None:
    query = parse_query(build_query(1, "web", TYPE_AAAA))
    reply = build_answer(query, [address_record(TYPE_AAAA, "fd00::2", 600)], 512)
    assert parse_message(reply).answers == [("web.", TYPE_AAAA, 600, "fd00::2")]
    with pytest.raises(ValueError):
        address_record(TYPE_A, "fd00::2", 600)
    with pytest.raises(ValueError):
        address_record(TYPE_AAAA, "10.0.0.1", 600)
    with pytest.raises(ValueError):
        address_record(TYPE_A, "not-an-address", 600)


def test_empty_answer_and_servfail() -> None:
    query = parse_query(build_query(5, "web", TYPE_AAAA, edns_size=1232))
    message = parse_message(build_answer(query, [], 512))
    assert message.rcode == 0 and message.answers == []
    assert message.has_opt     # the client spoke EDNS, so do we
    message = parse_message(build_answer(query, [], 512, RCODE_SERVFAIL))
    assert message.rcode == RCODE_SERVFAIL and message.questions == [("web.", TYPE_AAAA)]


def test_answer_too_big_for_udp_is_truncated() -> None:
    query = parse_query(build_query(5, "web", TYPE_A))
    records = [address_record(TYPE_A, f"10.0.{i // 250}.{i % 250 + 1}", 600)
               for i in range(40)]
    reply = build_answer(query, records, 512)
    assert len(reply) <= 512
    message = parse_message(reply)
    assert message.truncated and message.answers == []
    assert len(parse_message(build_answer(query, records, 65535)).answers) == 40


def test_ptr_answer() -> None:
    query = parse_query(build_query(3, "2.0.0.10.in-addr.arpa", TYPE_PTR))
    reply = build_answer(query, [ptr_record("web.mynet", 600)], 512)
    assert parse_message(reply).answers == [("2.0.0.10.in-addr.arpa.", TYPE_PTR, 600,
                                             "web.mynet.")]


def test_reverse_address() -> None:
    assert reverse_address("2.0.0.10.in-addr.arpa") == "10.0.0.2"
    assert reverse_address("0.0.10.in-addr.arpa") is None
    assert reverse_address("300.0.0.10.in-addr.arpa") is None
    assert reverse_address("02.0.0.10.in-addr.arpa") is None
    assert reverse_address("x.0.0.10.in-addr.arpa") is None
    nibbles = ".".join(reversed("fd000000000000000000000000000002"))
    assert reverse_address(nibbles + ".ip6.arpa") == "fd00::2"
    assert reverse_address("2.0.ip6.arpa") is None
    assert reverse_address("web.example") is None


def test_encode_text_name() -> None:
    assert encode_text_name("web.mynet.") == b"\x03web\x05mynet\x00"
    assert encode_text_name(".") == b"\x00"
    with pytest.raises(WireError):
        encode_text_name("a" * 64)
    with pytest.raises(WireError):
        encode_text_name("a..b")


def test_reply_matching() -> None:
    query = parse_query(build_query(77, "Example.ORG", TYPE_A))
    upstream = build_answer(parse_query(build_query(77, "example.org", TYPE_A)),
                            [address_record(TYPE_A, "192.0.2.1", 60)], 512)
    assert matches(parse_reply(upstream), query)
    other_id = build_answer(parse_query(build_query(78, "example.org", TYPE_A)), [], 512)
    assert not matches(parse_reply(other_id), query)
    other_type = build_answer(parse_query(build_query(77, "example.org", TYPE_AAAA)), [], 512)
    assert not matches(parse_reply(other_type), query)
    bare = build_error(build_query(77, "example.org", TYPE_A), RCODE_SERVFAIL)
    assert bare is not None
    header_only = parse_reply(bare)
    assert header_only.rcode == RCODE_SERVFAIL and matches(header_only, query)
    with pytest.raises(WireError):
        parse_reply(build_query(77, "example.org", TYPE_A))   # a query, not a reply


def test_take_tcp_message() -> None:
    buffer = bytearray(b"\x00\x03abc\x00\x00\x00\x05de")
    assert take_tcp_message(buffer) == b"abc"
    assert take_tcp_message(buffer) == b""
    assert take_tcp_message(buffer) is None       # "de" of 5 bytes so far
    buffer += b"fgh"
    assert take_tcp_message(buffer) == b"defgh"
    assert buffer == bytearray()
    assert take_tcp_message(bytearray(b"\x00")) is None
