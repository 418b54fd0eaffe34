"""The `filters` query parameter: a JSON object of filter name -> accepted values.

Two encodings reach the daemon and both must work: the current one, a map of sets
(`{"label": {"a=b": true}}`, sent by the docker CLI), and the legacy one, a map of lists
(`{"label": ["a=b"]}`, still sent by docker-py). Both become the same `Filters`.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterator, Mapping

from ._errors import InvalidParameter


def _invalid_filter(name: str = "", values: list[str] | None = None) -> InvalidParameter:
    # moby's filters.invalidFilter message: "invalid filter 'name=v1,v2'".
    message = "invalid filter"
    if name:
        message += f" '{name}"
        if values is not None:
            message += "=" + ",".join(values)
        message += "'"
    return InvalidParameter(message)


class Filters(Mapping[str, list[str]]):
    """Filter name -> its values (sorted, without duplicates)."""

    def __init__(self, fields: Mapping[str, Collection[str]] | None = None) -> None:
        self._fields = {name: sorted(set(values)) for name, values in (fields or {}).items()}

    def __getitem__(self, name: str) -> list[str]:
        return self._fields[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._fields)

    def __len__(self) -> int:
        return len(self._fields)

    def values_of(self, name: str) -> list[str]:
        """The values given for `name`, [] when the filter is absent."""
        return list(self._fields.get(name, ()))

    def validate(self, accepted: Collection[str]) -> None:
        """400 "invalid filter 'x'" for a filter name the endpoint does not know."""
        for name in self._fields:
            if name not in accepted:
                raise _invalid_filter(name)

    def exact_match(self, name: str, value: str) -> bool:
        """True when `name` is absent or `value` is one of its values."""
        values = self._fields.get(name)
        return not values or value in values

    def get_bool(self, name: str, default: bool) -> bool:
        """A boolean filter (e.g. dangling=true); 400 when empty, unknown or both ways."""
        if name not in self._fields:
            return default
        values = self._fields[name]
        is_false = "0" in values or "false" in values
        is_true = "1" in values or "true" in values
        if is_false == is_true:
            raise _invalid_filter(name, values)
        return is_true

    def match_kv_list(self, name: str, labels: Mapping[str, str] | None) -> bool:
        """Label-style matching: every "k" must exist and every "k=v" must equal v."""
        wanted = self._fields.get(name)
        if not wanted:
            return True
        if not labels:
            return False
        for item in wanted:
            key, sep, value = item.partition("=")
            if key not in labels or (sep and labels[key] != value):
                return False
        return True

    def to_json(self) -> str:
        """The current (map of sets) encoding, as the docker CLI sends it."""
        return json.dumps({name: dict.fromkeys(values, True)
                           for name, values in self._fields.items()})


def parse_filters(text: str) -> Filters:
    """Decode a `filters` parameter in either encoding; 400 "invalid filter" otherwise."""
    if not text:
        return Filters()
    try:
        decoded = json.loads(text)
    except ValueError:
        raise _invalid_filter() from None
    if not isinstance(decoded, dict):
        raise _invalid_filter()
    fields: dict[str, list[str]] = {}
    for name, values in decoded.items():
        if values is None:
            fields[name] = []
        elif isinstance(values, dict) and all(isinstance(v, bool) for v in values.values()):
            # {"value": true}: moby keeps the key whatever the boolean says.
            fields[name] = list(values)
        elif isinstance(values, list) and all(isinstance(v, str) for v in values):
            fields[name] = values
        else:
            raise _invalid_filter()
    return Filters(fields)
