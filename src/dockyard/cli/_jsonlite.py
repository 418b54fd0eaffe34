"""JSON on the C accelerator alone: `json` imports `re` (about 5 ms) for what the CLI's hot
path never needs. `loads` and `dumps` here give the same results as `json.loads` and
`json.dumps(obj, separators=(",", ":"))`; pretty printing (`inspect`) uses `json` itself."""

from __future__ import annotations

import _json

TYPE_CHECKING = False
if TYPE_CHECKING:   # typing costs ~10 ms at start-up
    from typing import Any


class _Context:
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = float   # NaN, Infinity, -Infinity
    memo: dict[str, str] = {}


_scan = _json.make_scanner(_Context())
_encode = _json.make_encoder(None, None, _json.encode_basestring, None, ":", ",",
                             False, False, True)
_WHITESPACE = " \t\r\n"


class JSONDecodeError(ValueError):
    pass


def raw_decode(text: str, index: int = 0) -> tuple[Any, int]:
    """Decodes one JSON value starting at index (after whitespace); returns it and its end."""
    length = len(text)
    while index < length and text[index] in _WHITESPACE:
        index += 1
    try:
        return _scan(text, index)
    except StopIteration as err:
        raise JSONDecodeError(f"invalid JSON at offset {err.value}") from None


def loads(data: str | bytes) -> Any:
    text = data.decode() if isinstance(data, bytes | bytearray) else data
    value, end = raw_decode(text)
    if text[end:].strip(_WHITESPACE):
        raise JSONDecodeError(f"extra data at offset {end}")
    return value


def dumps(value: Any) -> str:
    return "".join(_encode(value, 0))


def dumps_go(value: Any) -> str:
    """As Go's json.Marshal writes it: <, > and & escaped (only strings can hold them)."""
    text = dumps(value)
    if "<" in text or ">" in text or "&" in text:
        text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return text
