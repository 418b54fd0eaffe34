"""Query-string parameters with Docker's conventions."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from urllib.parse import parse_qs

from ._errors import InvalidParameter
from ._filters import Filters, parse_filters

# moby's httputils.BoolValue: these (trimmed, any case) are false, anything else is true,
# so "1", "true", "True", "yes" and even "on" all enable a flag, as they do with dockerd.
_FALSE_WORDS = frozenset({"", "0", "no", "false", "none"})


def parse_bool(value: str) -> bool:
    """Docker's reading of a boolean query value."""
    return value.strip().lower() not in _FALSE_WORDS


class Query(Mapping[str, list[str]]):
    """The parsed query string: each name maps to all its values, in order."""

    def __init__(self, values: dict[str, list[str]]) -> None:
        self._values = values

    @classmethod
    def parse(cls, query: str) -> Query:
        # Go's url.ParseQuery: '+' is a space, blank values are kept ("?all=" is present).
        return cls(parse_qs(query, keep_blank_values=True))

    def __getitem__(self, name: str) -> list[str]:
        return self._values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def first(self, name: str, default: str | None = None) -> str | None:
        """The first value of `name` (Go's FormValue), or `default` when absent."""
        values = self._values.get(name)
        return values[0] if values else default

    def get_str(self, name: str, default: str = "") -> str:
        """The first value of `name`, or `default` ("" like Go) when absent."""
        value = self.first(name)
        return default if value is None else value

    def get_bool(self, name: str, default: bool = False) -> bool:
        """A flag: `default` when absent, else Docker's lenient boolean reading."""
        value = self.first(name)
        return default if value is None else parse_bool(value)

    def get_int(self, name: str, default: int = 0) -> int:
        """An integer: `default` when absent or empty, 400 when not a number."""
        value = self.first(name)
        if value is None or value == "":
            return default
        try:
            return int(value, 10)
        except ValueError:
            raise InvalidParameter(
                f'strconv.ParseInt: parsing "{value}": invalid syntax') from None

    def get_time(self, name: str) -> float:
        """A point in time, as logs and events take `since`/`until`: seconds since the
        epoch (with a fraction) or RFC 3339; 0 when absent."""
        value = self.get_str(name)
        if not value:
            return 0.0
        try:
            return float(value)
        except ValueError:
            from ..engine.timefmt import parse_rfc3339

            return parse_rfc3339(value)

    def filters(self, name: str = "filters") -> Filters:
        """The JSON `filters` parameter (empty when absent); 400 when malformed."""
        return parse_filters(self.get_str(name))
