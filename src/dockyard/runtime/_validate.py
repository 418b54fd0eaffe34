"""Small typed readers for JSON documents that name the offending field on error."""

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, NoReturn


class ConfigError(ValueError):
    """config.json (or process.json) is invalid; the message names the field."""


def fail(path: str, message: str) -> "NoReturn":
    raise ConfigError(f"{path}: {message}")


_TYPE_NAMES = {str: "a string", int: "an integer", bool: "a boolean", list: "an array",
               dict: "an object"}


def _typed(doc: "dict[str, Any]", key: str, path: str, kind: type, default: "Any") -> "Any":
    value = doc.get(key, default)
    if value is default and key not in doc:
        return default
    if value is None:
        return default
    # bool is an int subclass in Python; JSON keeps them apart, so do we.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        fail(f"{path}.{key}" if path else key, f"must be {_TYPE_NAMES[kind]}, "
             f"got {type(value).__name__} {value!r:.60}")
    return value


def get_str(doc: "dict[str, Any]", key: str, path: str, default: str | None = None) -> "Any":
    return _typed(doc, key, path, str, default)


def get_int(doc: "dict[str, Any]", key: str, path: str, default: int | None = None) -> "Any":
    return _typed(doc, key, path, int, default)


def get_bool(doc: "dict[str, Any]", key: str, path: str, default: bool = False) -> bool:
    return bool(_typed(doc, key, path, bool, default))


def get_obj(doc: "dict[str, Any]", key: str, path: str) -> "dict[str, Any] | None":
    return _typed(doc, key, path, dict, None)


def get_list(doc: "dict[str, Any]", key: str, path: str) -> "list[Any]":
    return _typed(doc, key, path, list, []) or []


def get_str_list(doc: "dict[str, Any]", key: str, path: str) -> list[str]:
    items = get_list(doc, key, path)
    for i, item in enumerate(items):
        if not isinstance(item, str):
            fail(f"{path}.{key}[{i}]", f"must be a string, got {type(item).__name__}")
    return items


def get_str_map(doc: "dict[str, Any]", key: str, path: str) -> dict[str, str]:
    items = _typed(doc, key, path, dict, None) or {}
    for k, v in items.items():
        if not isinstance(v, str):
            fail(f"{path}.{key}.{k}", f"must be a string, got {type(v).__name__}")
    return items


def require_abs(value: str, path: str) -> str:
    if not value.startswith("/"):
        fail(path, f"must be an absolute path, got {value!r}")
    return value
