"""WWW-Authenticate challenges (RFC 7235), as registries send them:
`Bearer realm="https://auth.example/token",service="registry",scope="repository:a/b:pull"`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_QUOTED = r'"(?:[^"\\]|\\.)*"'
_PARAM = re.compile(rf"\s*({_TOKEN})\s*=\s*({_QUOTED}|{_TOKEN})\s*(?:,|$)")
_SCHEME = re.compile(rf"\s*({_TOKEN})(?:\s+|$)")


@dataclass(frozen=True)
class Challenge:
    scheme: str  # lower case: "basic", "bearer"
    params: dict[str, str] = field(default_factory=dict)

    @property
    def realm(self) -> str:
        return self.params.get("realm", "")


def parse_challenges(header: str) -> list[Challenge]:
    """Every challenge in one header value, schemes lower-cased, parameter names too;
    a part that does not parse ends the list (what came before it is kept)."""
    challenges: list[Challenge] = []
    position = 0
    text = header.strip()
    while position < len(text):
        scheme = _SCHEME.match(text, position)
        if scheme is None:
            break
        position = scheme.end()
        params: dict[str, str] = {}
        while position < len(text):
            param = _PARAM.match(text, position)
            if param is None:
                break
            name, value = param.group(1).lower(), param.group(2)
            if value.startswith('"'):
                value = re.sub(r"\\(.)", r"\1", value[1:-1])
            params[name] = value
            position = param.end()
            # The next challenge starts where a token is not followed by "=".
            if _SCHEME.match(text, position) and not _PARAM.match(text, position):
                break
        challenges.append(Challenge(scheme.group(1).lower(), params))
        while position < len(text) and text[position] in ", ":
            position += 1
    return challenges


def repository_scope(repository: str, actions: str) -> str:
    """The token scope for a repository: "repository:library/busybox:pull,push"."""
    return f"repository:{repository}:{actions}"
