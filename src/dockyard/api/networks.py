"""/networks: list, inspect, create, remove, connect, disconnect, prune."""

from __future__ import annotations

from typing import Any

from ..engine.engine import Engine
from ..engine.networks import PREDEFINED
from . import Request, Response, Router, empty_response, json_response
from ._errors import InvalidParameter
from .engine_calls import call

_LIST_FILTERS = ("dangling", "driver", "id", "label", "name", "scope", "type")


def register(router: Router, engine: Engine) -> None:
    networks = engine.networks

    @router.route("GET", "/networks")
    async def list_networks(request: Request) -> Response:
        filters = request.query.filters()
        filters.validate(_LIST_FILTERS)
        records = sorted(networks.all(), key=lambda r: r["Name"])
        used = _used_networks(engine) if "dangling" in filters else set()
        return json_response([networks.view(r, verbose=False) for r in records
                              if network_matches(r, filters, used)])

    @router.route("GET", "/networks/{id}")
    async def inspect(request: Request) -> Response:
        record = await call(networks.find, request.params["id"])
        return json_response(networks.view(record))

    @router.route("POST", "/networks/create")
    async def create(request: Request) -> Response:
        body = await request.json() or {}
        if not isinstance(body, dict):
            raise InvalidParameter("invalid JSON: the body must be an object")
        record = await call(networks.create, body)
        return json_response({"Id": record["Id"], "Warning": ""}, status=201)

    @router.route("DELETE", "/networks/{id}")
    async def remove(request: Request) -> Response:
        await call(networks.remove, request.params["id"])
        return empty_response(204)

    @router.route("POST", "/networks/{id}/connect")
    async def connect(request: Request) -> Response:
        body = await request.json() or {}
        if not body.get("Container"):
            raise InvalidParameter("a container is required")
        await call(networks.connect, request.params["id"], str(body["Container"]),
                   body.get("EndpointConfig") or {})
        return empty_response(200)

    @router.route("POST", "/networks/{id}/disconnect")
    async def disconnect(request: Request) -> Response:
        body = await request.json() or {}
        if not body.get("Container"):
            raise InvalidParameter("a container is required")
        await call(networks.disconnect, request.params["id"], str(body["Container"]),
                   bool(body.get("Force")))
        return empty_response(200)

    @router.route("POST", "/networks/prune")
    async def prune(request: Request) -> Response:
        filters = request.query.filters()
        filters.validate(("label", "label!", "until"))

        def keep(record: dict[str, Any]) -> bool:
            labels = record.get("Labels") or {}
            if not filters.match_kv_list("label", labels):
                return False
            return not any(_label_matches(item, labels)
                           for item in filters.values_of("label!"))

        removed = await call(networks.prune, keep)
        return json_response({"NetworksDeleted": removed})


def _label_matches(item: str, labels: dict[str, str]) -> bool:
    key, sep, value = item.partition("=")
    return key in labels and (not sep or labels[key] == value)


def _used_networks(engine: Engine) -> set[str]:
    used: set[str] = set()
    for container in engine.containers.store.all():
        used.update((container.get("NetworkSettings") or {}).get("Networks") or {})
    return used


def network_matches(record: dict[str, Any], filters: Any, used: set[str]) -> bool:
    """Docker's network list filters: name and id match substrings and prefixes."""
    names = filters.values_of("name")
    if names and not any(n in record["Name"] for n in names):
        return False
    ids = filters.values_of("id")
    if ids and not any(record["Id"].startswith(i) for i in ids):
        return False
    if not filters.exact_match("driver", record["Driver"]):
        return False
    if not filters.exact_match("scope", record["Scope"]):
        return False
    kinds = filters.values_of("type")
    if kinds:
        kind = "builtin" if record["Name"] in PREDEFINED else "custom"
        if any(k not in ("builtin", "custom") for k in kinds):
            raise InvalidParameter(f"invalid filter: 'type'='{kinds[0]}'")
        if kind not in kinds:
            return False
    if not filters.match_kv_list("label", record.get("Labels")):
        return False
    if "dangling" in filters:
        dangling = filters.get_bool("dangling", False)
        is_dangling = record["Name"] not in PREDEFINED and record["Name"] not in used
        if dangling != is_dangling:
            return False
    return True
