"""The API layer's pure pieces: versions, routing, query/filters/auth parsing, framing."""

from __future__ import annotations

import asyncio
import base64
import json

import pytest

from dockyard.api import (
    MULTIPLEXED_STREAM,
    RAW_STREAM,
    STDERR,
    STDOUT,
    AuthConfig,
    Body,
    FrameDecoder,
    Headers,
    InvalidParameter,
    Query,
    Request,
    Response,
    Router,
    compare_versions,
    decode_registry_auth,
    demultiplex,
    encode_registry_auth,
    frame,
    json_response,
    parse_bool,
    parse_filters,
    stream_content_type,
)
from dockyard.api._versions import check_version, split_version_prefix


def test_compare_versions_is_numeric_per_part() -> None:
    assert compare_versions("1.9", "1.10") == -1
    assert compare_versions("1.45", "1.45") == 0
    assert compare_versions("1.45.0", "1.45") == 0
    assert compare_versions("2", "1.99") == 1


def test_version_prefix() -> None:
    assert split_version_prefix("/v1.45/containers/json") == ("1.45", "/containers/json")
    assert split_version_prefix("/containers/json") == (None, "/containers/json")
    assert split_version_prefix("/volumes/v1/x") == (None, "/volumes/v1/x")


def test_version_errors_use_dockers_messages() -> None:
    with pytest.raises(InvalidParameter, match=r"^client version 1.99 is too new. Maximum "
                       r"supported API version is 1.45$"):
        check_version("1.99", "1.24", "1.45")
    with pytest.raises(InvalidParameter) as raised:
        check_version("1.12", "1.24", "1.45")
    assert str(raised.value) == ("client version 1.12 is too old. Minimum supported API "
                                 "version is 1.24, please upgrade your client to a newer "
                                 "version")
    check_version("1.24", "1.24", "1.45")


async def _noop(request: Request) -> Response:
    return json_response(None)


def test_router_segment_and_path_parameters() -> None:
    router = Router()
    router.add("GET", "/containers/{id}/json", _noop)
    router.add("GET", "/images/{name:path}/json", _noop)
    router.add("GET", "/images/json", _noop)
    assert router.resolve("GET", "/containers/abc/json") == (_noop, {"id": "abc"})
    assert router.resolve("GET", "/containers/a/b/json") is None
    assert router.resolve("GET", "/images/docker.io/library/busybox:latest/json") == (
        _noop, {"name": "docker.io/library/busybox:latest"})
    # The fixed suffix picks the route; the parameter takes the rest.
    assert router.resolve("GET", "/images/x/json/json") == (_noop, {"name": "x/json"})
    assert router.resolve("GET", "/images/json") == (_noop, {})
    assert router.resolve("POST", "/images/json") is None


def test_router_prefers_literal_routes_and_rejects_duplicates() -> None:
    router = Router()

    async def by_name(request: Request) -> Response:
        return json_response("by name")

    async def search(request: Request) -> Response:
        return json_response("search")

    router.route("GET", "/images/{name:path}")(by_name)
    router.route("GET", "/images/search")(search)
    resolved = router.resolve("GET", "/images/search")
    assert resolved is not None and resolved[0] is search
    with pytest.raises(ValueError, match="already registered"):
        router.add("get", "/images/search", search)
    with pytest.raises(ValueError):
        router.add("GET", "/bad/{x", search)


@pytest.mark.parametrize("value", ["1", "true", "True", "yes", " TRUE "])
def test_bool_true(value: str) -> None:
    assert parse_bool(value)


@pytest.mark.parametrize("value", ["", "0", "false", "False", "no", "none"])
def test_bool_false(value: str) -> None:
    assert not parse_bool(value)


def test_query_times_in_seconds_or_rfc3339() -> None:
    query = Query.parse("since=1700000000.5&until=2023-11-14T22:13:21Z&empty=")
    assert query.get_time("since") == 1700000000.5
    assert query.get_time("until") == 1700000001.0
    assert query.get_time("empty") == query.get_time("absent") == 0.0


def test_query_helpers() -> None:
    query = Query.parse("all=1&limit=5&name=a&name=b&empty=&size=x&q=a+b")
    assert query.get_bool("all") is True
    assert query.get_bool("missing", default=True) is True
    assert query.get_bool("empty", default=True) is False
    assert query.get_int("limit") == 5
    assert query.get_int("missing", -1) == -1
    assert query["name"] == ["a", "b"]
    assert query.first("name") == "a"
    assert query.get_str("q") == "a b"
    with pytest.raises(InvalidParameter):
        query.get_int("size")


def test_filters_both_encodings() -> None:
    current = parse_filters(json.dumps({"label": {"a=b": True, "c": True},
                                        "dangling": {"true": True}}))
    legacy = parse_filters(json.dumps({"label": ["a=b", "c"], "dangling": ["true"]}))
    assert dict(current) == dict(legacy) == {"label": ["a=b", "c"], "dangling": ["true"]}
    assert current.get_bool("dangling", False) is True
    assert current.match_kv_list("label", {"a": "b", "c": "x"})
    assert not current.match_kv_list("label", {"a": "z", "c": "x"})
    assert current.exact_match("name", "anything")
    assert parse_filters("") == {}
    assert parse_filters(current.to_json()) == current


def test_filter_errors() -> None:
    filters = parse_filters('{"bogus": ["x"], "label": ["a"]}')
    with pytest.raises(InvalidParameter, match=r"^invalid filter 'bogus'$"):
        filters.validate({"label"})
    with pytest.raises(InvalidParameter, match=r"^invalid filter 'dangling=maybe'$"):
        parse_filters('{"dangling": ["maybe"]}').get_bool("dangling", False)
    for text in ("not json", "[1]", '{"a": 1}', '{"a": [1]}'):
        with pytest.raises(InvalidParameter, match="^invalid filter$"):
            parse_filters(text)
    assert Query.parse("").filters() == {}


def test_registry_auth_round_trip_and_leniency() -> None:
    auth = AuthConfig(username="me", password="p+/w", serveraddress="r.example")
    assert decode_registry_auth(encode_registry_auth(auth)) == auth
    raw = json.dumps({"Username": "me", "Password": "s3cret"}).encode()
    unpadded = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    assert decode_registry_auth(unpadded) == AuthConfig(username="me", password="s3cret")
    assert decode_registry_auth(base64.b64encode(raw).decode()).username == "me"
    assert decode_registry_auth(None) == AuthConfig()
    with pytest.raises(InvalidParameter, match="^invalid X-Registry-Auth header"):
        decode_registry_auth("!!!not base64!!!")


def test_frame_and_demultiplex() -> None:
    data = frame(STDOUT, b"out") + frame(STDERR, b"err!") + frame(STDOUT, b"")
    assert data[:8] == b"\x01\x00\x00\x00\x00\x00\x00\x03"
    assert demultiplex(data) == (b"out", b"err!")
    decoder = FrameDecoder()
    assert decoder.feed(data[:5]) == []
    assert decoder.feed(data[5:13]) == [(1, b"out")]
    assert decoder.feed(data[13:]) == [(2, b"err!"), (1, b"")]
    with pytest.raises(ValueError, match="truncated"):
        demultiplex(data[:-1] + frame(STDOUT, b"abc")[:9])


def test_stream_content_type_depends_on_version() -> None:
    assert stream_content_type("1.42", True) == MULTIPLEXED_STREAM
    assert stream_content_type("1.41", True) == RAW_STREAM
    assert stream_content_type("1.45", False) == RAW_STREAM


def _request(body: bytes, content_type: str | None = "application/json") -> Request:
    chunks = [body[i:i + 3] for i in range(0, len(body), 3)]

    async def receive() -> bytes | None:
        return chunks.pop(0) if chunks else None

    headers = Headers([("Content-Type", content_type)] if content_type else [])
    return Request(method="POST", path="/x", target="/x", version="1.45", params={},
                   query=Query.parse(""), headers=headers, body=Body(receive))


def test_json_body() -> None:
    assert asyncio.run(_request(b'{"Image": "busybox"}').json()) == {"Image": "busybox"}
    assert asyncio.run(_request(b"", None).json()) is None
    with pytest.raises(InvalidParameter, match="^invalid JSON: "):
        asyncio.run(_request(b'{"Image": ').json())
    with pytest.raises(InvalidParameter, match="^unexpected content after JSON$"):
        asyncio.run(_request(b'{} {}').json())
    with pytest.raises(InvalidParameter, match="must be 'application/json'"):
        asyncio.run(_request(b"{}", "text/plain").json())


def test_headers_case_insensitive() -> None:
    headers = Headers([("X-Registry-Auth", "abc"), ("Accept", "a"), ("accept", "b")])
    assert headers.get("x-registry-auth") == "abc"
    assert headers.get_all("ACCEPT") == ["a", "b"]
    assert "x-registry-auth" in headers and "missing" not in headers
