"""Words of a Dockerfile instruction: quote removal and variable substitution.

The rules are those of the Dockerfile reference ("Environment replacement"): `$var`,
`${var}`, `${var:-word}` / `${var-word}` (default when unset, or also when empty with
the colon), `${var:+word}` / `${var+word}` (alternative when set), `${var:?msg}` /
`${var?msg}` (an error when unset); single quotes keep everything literal, double quotes
keep spaces but still substitute, and the escape character (`\\` or the backtick chosen
with `# escape=`) makes the next character literal.
"""

from __future__ import annotations

from collections.abc import Mapping

from ._errors import DockerfileError


def _name_char(char: str) -> bool:
    return char.isalnum() or char == "_"


class _Scanner:
    def __init__(self, text: str, env: Mapping[str, str] | None, escape: str) -> None:
        self.text = text
        self.pos = 0
        self.env = env
        self.escape = escape
        self.used: set[str] = set()

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def next(self) -> str:
        char = self.peek()
        self.pos += 1 if char else 0
        return char

    # -- words ------------------------------------------------------------------------------

    def words(self) -> list[str]:
        """The text split on unquoted whitespace, each word processed."""
        result: list[str] = []
        current: list[str] = []
        in_word = False
        while self.peek():
            char = self.peek()
            if char in " \t\r\n":
                self.next()
                if in_word:
                    result.append("".join(current))
                    current, in_word = [], False
                continue
            if char == "$" and self.env is not None:
                # An unquoted substitution is split into words like the shell does
                # (EXPOSE $PORTS with PORTS="80 443" exposes two ports).
                for index, piece in enumerate(self._variable().split()):
                    if index:
                        result.append("".join(current))
                        current = []
                    current.append(piece)
                    in_word = True
                continue
            in_word = True
            current.append(self._one_unit(stop=""))
        if in_word:
            result.append("".join(current))
        return result

    def word(self, stop: str = "") -> str:
        """Everything up to an unquoted character of `stop` (or the end), processed."""
        parts: list[str] = []
        while self.peek() and self.peek() not in stop:
            parts.append(self._one_unit(stop))
        return "".join(parts)

    def _one_unit(self, stop: str) -> str:
        char = self.peek()
        if char == self.escape:
            self.next()
            following = self.next()
            return following if following else self.escape
        if char == "'":
            return self._single_quoted()
        if char == '"':
            return self._double_quoted()
        if char == "$":
            return self._variable()
        return self.next()

    def _single_quoted(self) -> str:
        self.next()
        start = self.pos
        end = self.text.find("'", start)
        if end < 0:
            raise DockerfileError("unexpected end of statement while looking for matching "
                                  "single-quote")
        self.pos = end + 1
        return self.text[start:end]

    def _double_quoted(self) -> str:
        self.next()
        parts: list[str] = []
        while True:
            char = self.peek()
            if not char:
                raise DockerfileError("unexpected end of statement while looking for "
                                      "matching double-quote")
            if char == '"':
                self.next()
                return "".join(parts)
            if char == "$":
                parts.append(self._variable())
            elif char == self.escape:
                self.next()
                following = self.next()
                if following in ('"', "$", self.escape):
                    parts.append(following)
                else:
                    parts.append(self.escape + following)
            else:
                parts.append(self.next())

    # -- variables --------------------------------------------------------------------------

    def _lookup(self, name: str) -> str | None:
        self.used.add(name)
        if self.env is None:
            return None
        return self.env.get(name)

    def _variable(self) -> str:
        self.next()  # the $
        if self.env is None:
            # Substitution is off for this instruction: keep the text as written.
            return "$"
        char = self.peek()
        if char == "{":
            return self._braced()
        if not char or not _name_char(char):
            return "$"
        start = self.pos
        while self.peek() and _name_char(self.peek()):
            self.next()
        return self._lookup(self.text[start:self.pos]) or ""

    def _braced(self) -> str:
        self.next()  # the {
        start = self.pos
        while self.peek() and _name_char(self.peek()):
            self.next()
        name = self.text[start:self.pos]
        if not name:
            raise DockerfileError(f"missing name in ${{...}}: {self.text}")
        char = self.next()
        if char == "}":
            return self._lookup(name) or ""
        colon = False
        if char == ":":
            colon = True
            char = self.next()
        if char not in ("-", "+", "?"):
            raise DockerfileError(f"unsupported modifier ({char}) in substitution: "
                                  f"{self.text}")
        word = self.word(stop="}")
        if self.next() != "}":
            raise DockerfileError(f"missing '}}' in substitution: {self.text}")
        value = self._lookup(name)
        unset = value is None or (colon and value == "")
        if char == "-":
            return word if unset else str(value)
        if char == "+":
            return "" if unset else word
        if unset:
            raise DockerfileError(f"{name}: {word or 'is not allowed to be unset'}")
        return str(value)


def expand_word(text: str, env: Mapping[str, str] | None, escape: str = "\\") -> str:
    """One word with quotes removed and variables substituted (env None: no
    substitution, quotes still removed)."""
    return _Scanner(text, env, escape).word()


def expand_words(text: str, env: Mapping[str, str] | None, escape: str = "\\") -> list[str]:
    """The text split into words on unquoted whitespace, each processed."""
    return _Scanner(text, env, escape).words()


def expand_variables(text: str, env: Mapping[str, str]) -> str:
    """Only the variables substituted, quotes and backslashes kept (a heredoc's body)."""
    scanner = _Scanner(text, env, "\0")
    parts: list[str] = []
    while scanner.peek():
        parts.append(scanner._variable() if scanner.peek() == "$" else scanner.next())
    return "".join(parts)


def referenced_names(text: str, escape: str = "\\") -> set[str]:
    """The variable names a text refers to (for build args that count as used)."""
    scanner = _Scanner(text, {}, escape)
    try:
        scanner.words()
    except DockerfileError:
        pass
    return scanner.used


def split_keeping_quotes(text: str, escape: str = "\\") -> list[str]:
    """Split on unquoted whitespace, keeping quotes and escapes in each word (the
    parser's first pass over ENV/LABEL/ARG pairs)."""
    words: list[str] = []
    current: list[str] = []
    quote = ""
    index = 0
    while index < len(text):
        char = text[index]
        if char == escape and quote != "'" and index + 1 < len(text):
            current.append(text[index:index + 2])
            index += 2
            continue
        if quote:
            if char == quote:
                quote = ""
            current.append(char)
        elif char in "'\"":
            quote = char
            current.append(char)
        elif char in " \t\r\n":
            if current:
                words.append("".join(current))
                current = []
        else:
            current.append(char)
        index += 1
    if current:
        words.append("".join(current))
    return words
