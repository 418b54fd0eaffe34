"""Typed field access for JSON documents, with errors that name the field.

Manifests, indexes and configs come from archives and registries, so every field is
checked for its type before use; the error says where ("layers[2].size: expected an
integer") so that a user can find the fault in the document.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from dockyard.image.digest import Digest
from dockyard.image.errors import DigestError, ManifestError

JSONObject = Mapping[str, Any]


def load_object(data: bytes, what: str) -> JSONObject:
    """Decode `data` as a JSON object, or raise ManifestError naming `what`."""
    try:
        value = json.loads(data)
    except (UnicodeDecodeError, ValueError) as error:
        raise ManifestError(f"{what}: invalid JSON: {error}") from None
    if not isinstance(value, dict):
        raise ManifestError(f"{what}: expected a JSON object")
    return value


def join(where: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{where}[{key}]"
    return f"{where}.{key}" if where else key


def _fail(where: str, message: str) -> ManifestError:
    return ManifestError(f"{where}: {message}")


def obj(doc: JSONObject, key: str, where: str, *, required: bool = False) -> JSONObject | None:
    value = doc.get(key)
    if value is None:
        if required:
            raise _fail(join(where, key), "missing")
        return None
    if not isinstance(value, dict):
        raise _fail(join(where, key), "expected an object")
    return value


def string(doc: JSONObject, key: str, where: str, *, required: bool = False,
           default: str = "") -> str:
    value = doc.get(key)
    if value is None:
        if required:
            raise _fail(join(where, key), "missing")
        return default
    if not isinstance(value, str):
        raise _fail(join(where, key), "expected a string")
    return value


def integer(doc: JSONObject, key: str, where: str, *, required: bool = False,
            default: int = 0) -> int:
    value = doc.get(key)
    if value is None:
        if required:
            raise _fail(join(where, key), "missing")
        return default
    # bool is an int in Python but not in JSON's sense.
    if not isinstance(value, int) or isinstance(value, bool):
        raise _fail(join(where, key), "expected an integer")
    return value


def boolean(doc: JSONObject, key: str, where: str) -> bool:
    value = doc.get(key)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise _fail(join(where, key), "expected true or false")
    return value


def digest(doc: JSONObject, key: str, where: str) -> Digest:
    return digest_value(doc.get(key), join(where, key))


def digest_value(value: Any, where: str) -> Digest:
    if value is None:
        raise _fail(where, "missing")
    if not isinstance(value, str):
        raise _fail(where, "expected a string")
    try:
        return Digest(value)
    except DigestError as error:
        raise _fail(where, str(error)) from None


def array(doc: JSONObject, key: str, where: str, *, required: bool = False) -> list[Any] | None:
    value = doc.get(key)
    if value is None:
        if required:
            raise _fail(join(where, key), "missing")
        return None
    if not isinstance(value, list):
        raise _fail(join(where, key), "expected an array")
    return value


def strings(doc: JSONObject, key: str, where: str) -> tuple[str, ...] | None:
    """An optional array of strings; None when absent or null (Docker keeps the two apart
    from an empty list: a null Cmd inherits, an empty one clears)."""
    values = array(doc, key, where)
    if values is None:
        return None
    for index, item in enumerate(values):
        if not isinstance(item, str):
            raise _fail(join(join(where, key), index), "expected a string")
    return tuple(values)


def string_map(doc: JSONObject, key: str, where: str) -> dict[str, str]:
    value = obj(doc, key, where)
    if value is None:
        return {}
    for name, item in value.items():
        if not isinstance(item, str):
            raise _fail(f"{join(where, key)}[{name}]", "expected a string")
    return dict(value)


def key_set(doc: JSONObject, key: str, where: str) -> tuple[str, ...]:
    """The keys of an object used as a set ({"8080/tcp": {}}), as Docker encodes them."""
    value = obj(doc, key, where)
    return tuple(value) if value is not None else ()
