"""A subset of Go's text/template, as docker's --format uses it.

Supported: text, `{{.Field.Sub}}`, `{{.}}`, `$` and `$var` (`range $i, $v := ...`),
pipelines (`{{.Names | upper}}`), parentheses, string/number/bool literals, `if`/`else
if`/`else`/`end`, `range` (with `else`), `with`, trim markers `{{-`/`-}}`, and the functions
docker adds (json, join, lower, upper, split, title, truncate, pad, println) plus Go's
builtins index, len, print, printf, eq, ne, lt, le, gt, ge, and, or, not.

Values print as Go's %v does: booleans as true/false, lists as [a b], maps as map[k:v], a
missing map key as <no value>, nil as <nil>.
"""

from __future__ import annotations

from ..gostrings import go_quote

TYPE_CHECKING = False
if TYPE_CHECKING:   # typing costs ~10 ms at start-up
    from collections.abc import Callable
    from typing import Any



class TemplateError(Exception):
    pass


class _Missing:
    def __repr__(self) -> str:
        return "<no value>"


MISSING = _Missing()


# -- values -----------------------------------------------------------------------------------

def to_text(value: Any) -> str:
    """Go's fmt %v."""
    if value is MISSING:
        return "<no value>"
    if value is None:
        return "<nil>"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        return _go_float(value)
    if isinstance(value, list | tuple):
        return "[" + " ".join(to_text(v) for v in value) + "]"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{to_text(value[k])}" for k in sorted(value)) + "]"
    as_text = getattr(value, "to_text", None)
    if as_text is not None:
        return as_text()
    return str(value)


def _go_float(value: float) -> str:
    """Go's %v of a float64: shortest digits, exponent form below 1e-4 and from 1e6."""
    if value != value or value in (float("inf"), float("-inf")):
        return {"nan": "NaN", "inf": "+Inf", "-inf": "-Inf"}[repr(value)]
    text = repr(abs(value))
    mantissa, _, exponent = text.partition("e")
    whole, _, fraction = mantissa.partition(".")
    fraction = fraction.rstrip("0")
    digits = (whole + fraction).strip("0")
    if whole.strip("0"):
        exp = len(whole.lstrip("0")) - 1
    else:
        exp = -(len(fraction) - len(fraction.lstrip("0")) + 1)
    exp += int(exponent or 0)
    sign = "-" if value < 0 else ""
    if not digits:
        return sign + "0"
    if exp < -4 or exp >= 6:
        rest = digits[1:]
        mantissa = digits[0] + ("." + rest if rest else "")
        return f"{sign}{mantissa}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    if exp >= len(digits) - 1:
        return sign + digits + "0" * (exp - len(digits) + 1)
    if exp >= 0:
        return f"{sign}{digits[:exp + 1]}.{digits[exp + 1:]}"
    return f"{sign}0.{'0' * (-exp - 1)}{digits}"


def _truthy(value: Any) -> bool:
    if value is MISSING or value is None:
        return False
    if isinstance(value, bool | int | float | str | list | tuple | dict):
        return bool(value)
    return True


def _json(value: Any) -> str:
    """docker's `json`: an encoder without HTML escaping, except that its table rows
    (ps, images...) marshal themselves with Go's json.Marshal, which escapes <, > and &."""
    from ._jsonlite import dumps, dumps_go

    as_json = getattr(value, "to_json", None)
    if as_json is not None:
        return dumps_go(as_json())
    if value is MISSING:
        value = None
    return dumps(value)


def _title(text: Any) -> str:
    words = to_text(text).split(" ")
    return " ".join(w[:1].upper() + w[1:] for w in words)


def _truncate(text: Any, length: int) -> str:
    s = to_text(text)
    return s[:length] if len(s) > length else s


def _index(value: Any, *keys: Any) -> Any:
    for key in keys:
        if isinstance(value, dict):
            value = value.get(key, MISSING)
        elif isinstance(value, list | tuple | str):
            try:
                value = value[int(key)]
            except (IndexError, ValueError):
                raise TemplateError(f"error calling index: index out of range: {key}") \
                    from None
        elif value is None or value is MISSING:
            return MISSING
        else:
            raise TemplateError(f"can't index item of type {type(value).__name__}")
    return value


def _printf(fmt: str, *args: Any) -> str:
    out = []
    index = 0
    position = 0
    while position < len(fmt):
        char = fmt[position]
        if char != "%" or position + 1 >= len(fmt):
            out.append(char)
            position += 1
            continue
        verb = fmt[position + 1]
        position += 2
        if verb == "%":
            out.append("%")
            continue
        arg = args[index] if index < len(args) else MISSING
        index += 1
        if verb == "q":
            out.append(go_quote(to_text(arg)))
        elif verb == "d" and isinstance(arg, int | float):
            out.append(str(int(arg)))
        else:
            out.append(to_text(arg))
    return "".join(out)


def _compare(op: Callable[[Any, Any], bool]) -> Callable[..., bool]:
    def compare(a: Any, *others: Any) -> bool:
        return any(op(a, b) for b in others) if op is _eq else all(op(a, b) for b in others)
    return compare


def _eq(a: Any, b: Any) -> bool:
    return bool(a == b)


def _and(*args: Any) -> Any:
    for arg in args:
        if not _truthy(arg):
            return arg
    return args[-1]


def _or(*args: Any) -> Any:
    for arg in args:
        if _truthy(arg):
            return arg
    return args[-1]


def _len(value: Any) -> int:
    if value is None or value is MISSING:
        return 0
    try:
        return len(value)
    except TypeError:
        raise TemplateError(f"error calling len: len of type {type(value).__name__}") \
            from None


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "json": _json,
    "join": lambda items, sep: sep.join(to_text(i) for i in (items or [])),
    "lower": lambda s: to_text(s).lower(),
    "upper": lambda s: to_text(s).upper(),
    "split": lambda s, sep: to_text(s).split(sep),
    "title": _title,
    "truncate": _truncate,
    "pad": lambda s, left, right: " " * int(left) + to_text(s) + " " * int(right),
    "println": lambda *a: " ".join(to_text(v) for v in a) + "\n",
    "print": lambda *a: "".join(to_text(v) for v in a),
    "printf": _printf,
    "index": _index,
    "len": _len,
    "eq": _compare(_eq),
    "ne": _compare(lambda a, b: a != b),
    "lt": _compare(lambda a, b: a < b),
    "le": _compare(lambda a, b: a <= b),
    "gt": _compare(lambda a, b: a > b),
    "ge": _compare(lambda a, b: a >= b),
    "and": _and,
    "or": _or,
    "not": lambda v: not _truthy(v),
}


# -- lexing -----------------------------------------------------------------------------------

def _tokens(source: str) -> list[str]:
    tokens: list[str] = []
    i = 0
    n = len(source)
    while i < n:
        char = source[i]
        if char in " \t\r\n":
            i += 1
        elif char in "|(),":
            tokens.append(char)
            i += 1
        elif source.startswith(":=", i):
            tokens.append(":=")
            i += 2
        elif char == "=":
            tokens.append("=")
            i += 1
        elif char == '"':
            j = i + 1
            while j < n and source[j] != '"':
                j += 2 if source[j] == "\\" else 1
            if j >= n:
                raise TemplateError("unterminated quoted string")
            tokens.append(source[i:j + 1])
            i = j + 1
        elif char == "`":
            j = source.find("`", i + 1)
            if j < 0:
                raise TemplateError("unterminated raw quoted string")
            tokens.append(source[i:j + 1])
            i = j + 1
        else:
            j = i
            while j < n and source[j] not in " \t\r\n|(),\"`" and not source.startswith(":=", j):
                j += 1
            if j < n and source[j] == "(" and j == i:
                j += 1
            tokens.append(source[i:j])
            i = j
    return tokens


def _unquote(token: str) -> str:
    if token[0] == "`":
        return token[1:-1]
    body = token[1:-1]
    if "\\" not in body:
        return body
    out = []
    i = 0
    escapes = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'", "0": "\0"}
    while i < len(body):
        if body[i] == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            if nxt in "xuU":
                width = {"x": 2, "u": 4, "U": 8}[nxt]
                out.append(chr(int(body[i + 2:i + 2 + width], 16)))
                i += 2 + width
                continue
            out.append(escapes.get(nxt, nxt))
            i += 2
        else:
            out.append(body[i])
            i += 1
    return "".join(out)


# -- parsing ----------------------------------------------------------------------------------

# Nodes: ("text", str) | ("action", pipe) | ("if", pipe, body, else_body)
#        | ("range", pipe, body, else_body) | ("with", pipe, body, else_body)
# pipe: (declared variable names, [command]), command: [operand], operand: tuple


def _split_actions(template: str) -> list[tuple[str, str]]:
    parts: list[tuple[str, str]] = []
    position = 0
    while True:
        start = template.find("{{", position)
        if start < 0:
            parts.append(("text", template[position:]))
            break
        text = template[position:start]
        end = template.find("}}", start + 2)
        if end < 0:
            raise TemplateError("unclosed action")
        inner = template[start + 2:end]
        if inner.startswith("- ") or inner == "-":
            text = text.rstrip(" \t\r\n")
            inner = inner[1:]
        position = end + 2
        if inner.endswith(" -"):
            inner = inner[:-1]
            while position < len(template) and template[position] in " \t\r\n":
                position += 1
        parts.append(("text", text))
        parts.append(("action", inner.strip()))
    return [p for p in parts if p != ("text", "")]


class _Parser:
    def __init__(self, template: str) -> None:
        self.parts = _split_actions(template)
        self.position = 0

    def parse(self) -> list[Any]:
        nodes, stop = self._list()
        if stop is not None:
            raise TemplateError(f"unexpected {{{{{stop}}}}}")
        return nodes

    def _list(self) -> tuple[list[Any], str | None]:
        nodes: list[Any] = []
        while self.position < len(self.parts):
            kind, value = self.parts[self.position]
            self.position += 1
            if kind == "text":
                nodes.append(("text", value))
                continue
            if value.startswith("/*"):
                continue
            keyword, _, rest = value.partition(" ")
            if keyword in ("end", "else"):
                return nodes, value
            if keyword in ("if", "range", "with"):
                nodes.append(self._control(keyword, rest))
            else:
                nodes.append(("action", _pipeline(_tokens(value))))
        return nodes, None

    def _control(self, keyword: str, rest: str) -> tuple[Any, ...]:
        pipe = _pipeline(_tokens(rest))
        body, stop = self._list()
        else_body: list[Any] = []
        if stop is None:
            raise TemplateError(f"unexpected EOF in {keyword}")
        if stop.startswith("else"):
            tail = stop[4:].strip()
            if tail.startswith("if ") and keyword == "if":
                else_body = [self._control("if", tail[3:])]
                return (keyword, pipe, body, else_body)
            else_body, stop = self._list()
            if stop != "end":
                raise TemplateError(f"expected end in {keyword}")
        return (keyword, pipe, body, else_body)


def _pipeline(tokens: list[str]) -> tuple[list[str], list[list[Any]]]:
    declared: list[str] = []
    if ":=" in tokens or "=" in tokens:
        marker = tokens.index(":=") if ":=" in tokens else tokens.index("=")
        declared = [t for t in tokens[:marker] if t != ","]
        tokens = tokens[marker + 1:]
    commands: list[list[Any]] = []
    position = 0
    current: list[Any] = []
    while position < len(tokens):
        token = tokens[position]
        if token == "|":
            if not current:
                raise TemplateError("missing command before |")
            commands.append(current)
            current = []
            position += 1
            continue
        operand, position = _operand(tokens, position)
        current.append(operand)
    if current:
        commands.append(current)
    if not commands:
        raise TemplateError("missing value for command")
    return declared, commands


def _operand(tokens: list[str], position: int) -> tuple[Any, int]:
    token = tokens[position]
    if token == "(":
        depth = 0
        end = position
        while end < len(tokens):
            if tokens[end] == "(":
                depth += 1
            elif tokens[end] == ")":
                depth -= 1
                if depth == 0:
                    break
            end += 1
        if end >= len(tokens):
            raise TemplateError("unclosed left paren")
        inner = _pipeline(tokens[position + 1:end])
        return ("pipe", inner), end + 1
    if token[0] in "\"`":
        return ("const", _unquote(token)), position + 1
    if token == ".":
        return ("field", None, ()), position + 1
    if token.startswith("."):
        return ("field", None, tuple(token[1:].split("."))), position + 1
    if token.startswith("$"):
        name, _, path = token.partition(".")
        return ("field", name, tuple(path.split(".")) if path else ()), position + 1
    if token in ("true", "false"):
        return ("const", token == "true"), position + 1
    if token == "nil":
        return ("const", None), position + 1
    if token[0].isdigit() or (token[0] in "+-" and len(token) > 1):
        try:
            return ("const", int(token, 0)), position + 1
        except ValueError:
            try:
                return ("const", float(token)), position + 1
            except ValueError:
                raise TemplateError(f"bad number syntax: {token}") from None
    if token in FUNCTIONS:
        return ("func", token), position + 1
    raise TemplateError(f'function "{token}" not defined')


# -- execution --------------------------------------------------------------------------------

def _field(value: Any, name: str, header: bool) -> Any:
    if isinstance(value, dict):
        return value.get(name, "" if header else MISSING)
    if value is None or value is MISSING:
        return MISSING
    attribute = getattr(value, "field", None)
    if attribute is not None:
        return attribute(name)
    raise TemplateError(f"can't evaluate field {name} in type {type(value).__name__}")


class Template:
    def __init__(self, source: str) -> None:
        self.source = source
        self.nodes = _Parser(source).parse()

    def render(self, dot: Any, header: bool = False) -> str:
        out: list[str] = []
        self._run(self.nodes, dot, {"$": dot}, out, header)
        return "".join(out)

    def _run(self, nodes: list[Any], dot: Any, variables: dict[str, Any], out: list[str],
             header: bool) -> None:
        for node in nodes:
            kind = node[0]
            if kind == "text":
                out.append(node[1])
            elif kind == "action":
                declared, _ = node[1]
                value = self._pipe(node[1], dot, variables, header)
                if declared:
                    variables[declared[0]] = value
                else:
                    out.append(to_text(value))
            elif kind == "if":
                branch = node[2] if _truthy(self._pipe(node[1], dot, variables, header)) \
                    else node[3]
                self._run(branch, dot, variables, out, header)
            elif kind == "with":
                value = self._pipe(node[1], dot, variables, header)
                if _truthy(value):
                    self._run(node[2], value, variables, out, header)
                else:
                    self._run(node[3], dot, variables, out, header)
            elif kind == "range":
                self._range(node, dot, variables, out, header)

    def _range(self, node: tuple[Any, ...], dot: Any, variables: dict[str, Any],
               out: list[str], header: bool) -> None:
        declared = node[1][0]
        value = self._pipe(([], node[1][1]), dot, variables, header)
        if isinstance(value, dict):
            items = [(k, value[k]) for k in sorted(value)]
        elif isinstance(value, list | tuple):
            items = list(enumerate(value))
        elif isinstance(value, int) and not isinstance(value, bool):
            items = [(i, i) for i in range(value)]
        elif value is None or value is MISSING:
            items = []
        else:
            raise TemplateError(f"range can't iterate over {to_text(value)}")
        if not items:
            self._run(node[3], dot, variables, out, header)
            return
        for key, item in items:
            scope = dict(variables)
            if len(declared) == 1:
                scope[declared[0]] = item
            elif len(declared) >= 2:
                scope[declared[0]] = key
                scope[declared[1]] = item
            self._run(node[2], item, scope, out, header)

    def _pipe(self, pipe: tuple[list[str], list[list[Any]]], dot: Any,
              variables: dict[str, Any], header: bool) -> Any:
        result: Any = MISSING
        for index, command in enumerate(pipe[1]):
            extra = [result] if index > 0 else []
            result = self._command(command, dot, variables, header, extra)
        return result

    def _command(self, command: list[Any], dot: Any, variables: dict[str, Any], header: bool,
                 extra: list[Any]) -> Any:
        first = command[0]
        if first[0] == "func":
            args = [self._value(op, dot, variables, header) for op in command[1:]] + extra
            try:
                return FUNCTIONS[first[1]](*args)
            except TemplateError:
                raise
            except (TypeError, ValueError, AttributeError) as err:
                raise TemplateError(f"error calling {first[1]}: {err}") from None
        if first[0] == "field" and len(command) > 1 or extra:
            # A method with arguments: {{.Label "com.example"}}.
            args = [self._value(op, dot, variables, header) for op in command[1:]] + extra
            target = self._value(("field", first[1], first[2][:-1]), dot, variables, header)
            method = getattr(target, "call", None)
            if method is None or not first[2]:
                raise TemplateError(f"can't give argument to non-function {first}")
            return method(first[2][-1], *args)
        return self._value(first, dot, variables, header)

    def _value(self, operand: tuple[Any, ...], dot: Any, variables: dict[str, Any],
               header: bool) -> Any:
        kind = operand[0]
        if kind == "const":
            return operand[1]
        if kind == "pipe":
            return self._pipe(operand[1], dot, variables, header)
        if kind == "func":
            return FUNCTIONS[operand[1]]()
        _, variable, path = operand
        if variable is None:
            value = dot
        else:
            if variable not in variables:
                raise TemplateError(f'undefined variable "{variable}"')
            value = variables[variable]
        for name in path:
            value = _field(value, name, header)
        return value


def render_one(template: Template, value: Any) -> str:
    return template.render(value)
