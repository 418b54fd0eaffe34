"""/volumes: list, create, inspect, remove, prune (the local driver)."""

from __future__ import annotations

import re
from typing import Any

from ..engine.engine import Engine
from . import Filters, Request, Response, Router, compare_versions, empty_response, json_response
from ._errors import InvalidParameter
from .engine_calls import call


def register(router: Router, engine: Engine) -> None:
    volumes = engine.volumes

    @router.route("GET", "/volumes")
    async def list_volumes(request: Request) -> Response:
        filters = request.query.filters()
        filters.validate({"dangling", "driver", "label", "name"})
        dangling = filters.get_bool("dangling", False) if "dangling" in filters else None
        used = await call(volumes.users)
        result = [volumes.view(v) for v in volumes.all()
                  if _matches(v, filters, dangling, bool(used.get(v["Name"])))]
        result.sort(key=lambda v: v["Name"])
        return json_response({"Volumes": result, "Warnings": None})

    @router.route("POST", "/volumes/create")
    async def create(request: Request) -> Response:
        body = await request.json() or {}
        if not isinstance(body, dict):
            raise InvalidParameter("invalid JSON: the body must be an object")
        for key in ("DriverOpts", "Labels"):
            value = body.get(key)
            if value is not None and (not isinstance(value, dict) or not all(
                    isinstance(v, str) for v in value.values())):
                raise InvalidParameter(f"invalid {key}: expected a map of strings")
        volume = await call(volumes.create, body.get("Name") or None,
                            body.get("Driver") or None, body.get("DriverOpts") or None,
                            body.get("Labels"))
        return json_response(volumes.view(volume), status=201)

    @router.route("GET", "/volumes/{name}")
    async def inspect(request: Request) -> Response:
        return json_response(await call(volumes.inspect, request.params["name"]))

    @router.route("DELETE", "/volumes/{name}")
    async def remove(request: Request) -> Response:
        await call(volumes.remove, request.params["name"],
                   request.query.get_bool("force", False))
        return empty_response(204)

    @router.route("POST", "/volumes/prune")
    async def prune(request: Request) -> Response:
        filters = request.query.filters()
        filters.validate({"label", "label!", "all"})
        # API 1.42 (Docker 23) made prune take only anonymous volumes unless all=true.
        everything = compare_versions(request.version, "1.42") < 0 or \
            filters.get_bool("all", False)

        def wanted(labels: dict[str, str]) -> bool:
            return filters.match_kv_list("label", labels) and _not_labelled(filters, labels)

        deleted, reclaimed = await call(volumes.prune, wanted, everything)
        return json_response({"VolumesDeleted": deleted, "SpaceReclaimed": reclaimed})


def _matches(volume: dict[str, Any], filters: Filters, dangling: bool | None,
             used: bool) -> bool:
    if dangling is not None and dangling == used:
        return False
    if not filters.exact_match("driver", volume["Driver"]):
        return False
    if not filters.match_kv_list("label", volume.get("Labels") or {}):
        return False
    names = filters.values_of("name")
    return not names or any(_name_matches(pattern, volume["Name"]) for pattern in names)


def _name_matches(pattern: str, name: str) -> bool:
    # moby's filters.Match: the value is a regular expression over the name.
    try:
        return re.search(pattern, name) is not None
    except re.error:
        return pattern in name


def _not_labelled(filters: Filters, labels: dict[str, str]) -> bool:
    """label!=k or label!=k=v: the volume must not carry it."""
    for item in filters.values_of("label!"):
        key, sep, value = item.partition("=")
        if key in labels and (not sep or labels[key] == value):
            return False
    return True
