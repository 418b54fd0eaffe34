"""JSON for the runtime's start-up path, through CPython's C accelerator.

`import json` pulls in `re`, `enum` and more: about 8 ms before a single container could
start, more than the rest of a `run`. The `_json` scanner and encoder that `json` itself
uses do the same work without those imports. Where `_json` is missing (another Python),
the standard module is used.
"""

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

try:
    import _json
except ImportError:  # pragma: no cover - CPython always has it
    _json = None


class JSONError(ValueError):
    pass


def _constant(name: str) -> float:
    return {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}[name]


class _DecoderContext:
    """The attributes _json.make_scanner reads from a json.JSONDecoder."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = staticmethod(_constant)
    memo: dict[str, str] = {}


_scanner = _json.make_scanner(_DecoderContext()) if _json else None
_encoder = (_json.make_encoder(None, None, _json.encode_basestring, None, ": ", ", ", False,
                               False, True) if _json else None)
_WHITESPACE = " \t\n\r"


def loads(text: str | bytes) -> "Any":
    if isinstance(text, bytes):
        text = text.decode()
    if _scanner is None:
        import json

        return json.loads(text)
    start = len(text) - len(text.lstrip(_WHITESPACE))
    try:
        value, end = _scanner(text, start)
    except StopIteration as e:
        raise JSONError(f"Expecting value: char {e.value}") from None
    except ValueError as e:  # json's own error type subclasses ValueError
        raise JSONError(str(e)) from None
    if text[end:].strip(_WHITESPACE):
        raise JSONError(f"Extra data: char {end}")
    return value


_sorted_encoder = (_json.make_encoder(None, None, _json.encode_basestring, None, ": ", ", ",
                                      True, False, True) if _json else None)


def dumps_sorted(value: "Any") -> str:
    """Canonical form (sorted keys): for hashing a document."""
    if _sorted_encoder is None:
        import json

        return json.dumps(value, sort_keys=True)
    return "".join(_sorted_encoder(value, 0))


def dumps(value: "Any") -> str:
    if _encoder is None:
        import json

        return json.dumps(value)
    return "".join(_encoder(value, 0))


def dumps_indented(value: "Any", indent: int = 2, level: int = 0) -> str:
    """json.dumps(value, indent=indent): the form `state` and `features` print, as runc."""
    if not value or not isinstance(value, dict | list):
        return dumps(value)
    inner = "\n" + " " * (indent * (level + 1))
    if isinstance(value, dict):
        items = [f"{dumps(str(key))}: {dumps_indented(item, indent, level + 1)}"
                 for key, item in value.items()]
    else:
        items = [dumps_indented(item, indent, level + 1) for item in value]
    opening, closing = ("{", "}") if isinstance(value, dict) else ("[", "]")
    return opening + inner + ("," + inner).join(items) + "\n" + " " * (indent * level) + closing
