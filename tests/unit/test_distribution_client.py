"""The registry client's pure parts: challenges, scopes, endpoints and insecure
registries, error messages, credentials, progress messages, platform choice."""

from __future__ import annotations

import base64

import pytest

from dockyard.distribution import (
    Credentials,
    NotFoundError,
    UnauthorizedError,
    endpoints,
    is_insecure,
    parse_challenges,
    registry_host,
    repository_scope,
)
from dockyard.distribution._errors import error_from_response
from dockyard.engine.distribution import (
    _message,
    _server_domain,
    credentials_from,
    progress_bar,
)
from dockyard.engine.errors import InvalidParameter


def test_bearer_challenge_with_quoted_parameters() -> None:
    [challenge] = parse_challenges(
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
        'scope="repository:library/busybox:pull"')
    assert challenge.scheme == "bearer"
    assert challenge.realm == "https://auth.docker.io/token"
    assert challenge.params["service"] == "registry.docker.io"
    assert challenge.params["scope"] == "repository:library/busybox:pull"


def test_basic_challenge_and_several_in_one_header() -> None:
    assert parse_challenges('Basic realm="Registry Realm"')[0].params == {
        "realm": "Registry Realm"}
    both = parse_challenges('Basic realm="a b", Bearer realm="https://x/t",service=svc')
    assert [c.scheme for c in both] == ["basic", "bearer"]
    assert both[1].params == {"realm": "https://x/t", "service": "svc"}
    assert parse_challenges('Bearer realm="with \\"quote\\""')[0].realm == 'with "quote"'
    assert parse_challenges("") == []


def test_repository_scope() -> None:
    assert repository_scope("library/busybox", "pull") == "repository:library/busybox:pull"
    assert repository_scope("a/b", "pull,push") == "repository:a/b:pull,push"


@pytest.mark.parametrize(("host", "insecure"), [
    ("127.0.0.1:5000", True), ("127.1.2.3", True), ("localhost:5000", True),
    ("[::1]:5000", True), ("registry.example.com", False), ("10.0.0.5:5000", False),
    ("192.168.1.10:5000", False),
])
def test_loopback_is_insecure_by_default(host: str, insecure: bool) -> None:
    assert is_insecure(host, []) is insecure


def test_insecure_registries_by_name_and_by_cidr() -> None:
    assert is_insecure("myregistry:5000", ["myregistry:5000"])
    assert is_insecure("myregistry:5000", ["myregistry"])
    assert is_insecure("10.0.0.5:5000", ["10.0.0.0/8"])
    assert not is_insecure("10.0.0.5:5000", ["192.168.0.0/16"])
    assert not is_insecure("other:5000", ["myregistry:5000"])


def test_endpoint_order_mirrors_then_https_then_http() -> None:
    found = endpoints("127.0.0.1:5000", [], ["http://127.0.0.1:6000", "mirror.example"])
    assert [(e.url, e.verify, e.mirror) for e in found] == [
        ("http://127.0.0.1:6000", True, True),
        ("https://mirror.example", True, True),
        ("https://127.0.0.1:5000", False, False),
        ("http://127.0.0.1:5000", True, False)]
    assert [e.url for e in endpoints("registry.example.com", [], ["http://m:1"], push=True)] \
        == ["https://registry.example.com"]
    assert registry_host("docker.io") == "registry-1.docker.io"
    assert endpoints("docker.io", [], [])[0].url == "https://registry-1.docker.io"


def test_registry_errors_formatted_as_docker_does() -> None:
    error = error_from_response(404, b'{"errors":[{"code":"MANIFEST_UNKNOWN","message":'
                                     b'"manifest unknown","detail":{"Tag":"x"}}]}', "fallback")
    assert isinstance(error, NotFoundError)
    assert str(error) == "manifest unknown: manifest unknown"
    assert error.codes == ("MANIFEST_UNKNOWN",)
    unauthorized = error_from_response(
        401, b'{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}', "")
    assert isinstance(unauthorized, UnauthorizedError)
    assert str(unauthorized) == "unauthorized: authentication required"
    two = error_from_response(400, b'{"errors":[{"code":"A_B","message":"m1"},'
                                   b'{"code":"C","message":"m2"}]}', "")
    assert str(two) == "errors:\na b: m1\nc: m2\n"
    assert str(error_from_response(502, b"<html>", "bad gateway")) == "bad gateway"


def test_credentials_from_the_auth_config() -> None:
    assert credentials_from("u", "p") == Credentials("u", "p")
    encoded = base64.b64encode(b"alice:pa:ss").decode()
    assert credentials_from(auth=encoded) == Credentials("alice", "pa:ss")
    assert credentials_from(identitytoken="tok") == Credentials(identity_token="tok")
    assert not Credentials()
    with pytest.raises(InvalidParameter):
        credentials_from(auth="!!!not base64")


@pytest.mark.parametrize(("server", "domain"), [
    ("https://index.docker.io/v1/", "docker.io"), ("", "docker.io"),
    ("http://127.0.0.1:5000", "127.0.0.1:5000"), ("127.0.0.1:5000/", "127.0.0.1:5000"),
    ("registry.example.com", "registry.example.com"),
])
def test_login_server_to_domain(server: str, domain: str) -> None:
    assert _server_domain(server) == domain


def test_progress_messages_have_docker_fields() -> None:
    assert _message("abc", "Pulling fs layer") == {
        "status": "Pulling fs layer", "progressDetail": {}, "id": "abc"}
    downloading = _message("abc", "Downloading", 512, 1024)
    assert downloading["progressDetail"] == {"current": 512, "total": 1024}
    assert downloading["progress"].startswith("[" + "=" * 25 + ">")
    assert downloading["progress"].endswith("512B/1.024kB")
    assert progress_bar(0, 0) == ""


def test_registry_config_of_info() -> None:
    from dockyard.engine.distribution import registry_config

    config = registry_config(["10.1.0.0/16", "myreg:5000", "127.0.0.0/8"], ["http://m:1"])
    assert config["InsecureRegistryCIDRs"] == ["127.0.0.0/8", "10.1.0.0/16"]
    assert config["IndexConfigs"]["myreg:5000"]["Secure"] is False
    assert config["IndexConfigs"]["docker.io"] == {
        "Name": "docker.io", "Mirrors": ["http://m:1"], "Secure": True, "Official": True}
    assert config["Mirrors"] == ["http://m:1"]
