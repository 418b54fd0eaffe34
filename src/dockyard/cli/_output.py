"""Docker's output formatting: --format templates, `table` layouts and Go's tabwriter."""

from __future__ import annotations

import sys

from ._context import CommandFailed
from ._template import Template, TemplateError

TYPE_CHECKING = False
if TYPE_CHECKING:   # typing costs ~10 ms at start-up
    from collections.abc import Iterable
    from typing import Any


def tabwrite(text: str, minwidth: int = 10, padding: int = 3) -> str:
    """Go's text/tabwriter (minwidth 10, tabwidth 1, padding 3, ' ', flags 0), as docker
    configures it: tab-terminated cells are aligned in column blocks, the last cell of a
    line is not."""
    lines = [line.split("\t") for line in text.split("\n")]
    out: list[str] = []
    widths: list[int] = []

    def write_lines(first: int, last: int) -> None:
        for row in lines[first:last]:
            parts = []
            for index, cell in enumerate(row):
                if index < len(widths):
                    parts.append(cell + " " * (widths[index] - len(cell)))
                else:
                    parts.append(cell)
            out.append("".join(parts))

    def format_block(line0: int, line1: int) -> None:
        column = len(widths)
        this = line0
        while this < line1:
            if column >= len(lines[this]) - 1:
                this += 1
                continue
            write_lines(line0, this)
            line0 = this
            width = minwidth
            while this < line1 and column < len(lines[this]) - 1:
                width = max(width, len(lines[this][column]) + padding)
                this += 1
            widths.append(width)
            format_block(line0, this)
            widths.pop()
            line0 = this
        write_lines(line0, line1)

    format_block(0, len(lines))
    return "\n".join(out)


def parse_format(fmt: str | None, default: str) -> tuple[bool, str]:
    """(is_table, template text) as docker's formatter.Context prepares them."""
    if not fmt or fmt == "table":
        fmt = default
    elif fmt == "json":
        fmt = "{{json .}}"
    table = fmt.startswith("table")
    if table:
        fmt = fmt[5:]
    fmt = fmt.strip(" ").replace("\\t", "\t").replace("\\n", "\n")
    return table, fmt


def compile_template(text: str) -> Template:
    try:
        return Template(text)
    except TemplateError as err:
        raise FormatError(f"template parsing error: template: :1: {err}") from None


class FormatError(CommandFailed):
    pass


def write_rows(fmt: str | None, default: str, rows: Iterable[Any], headers: dict[str, str],
               out: Any = None) -> None:
    """Renders rows (dicts, or objects with a `field(name)` method) as docker does."""
    out = out or sys.stdout
    table, text = parse_format(fmt, default)
    template = compile_template(text)
    try:
        if table:
            buffer = [template.render(headers, header=True)]
            buffer += [template.render(row) for row in rows]
            out.write(tabwrite("\n".join(buffer) + "\n"))
        else:
            for row in rows:
                out.write(template.render(row) + "\n")
    except TemplateError as err:
        raise FormatError(f"template: :1: executing \"\" {err}") from None


def render_single(fmt: str, value: Any) -> str:
    """One object through a --format (inspect, version, info)."""
    text = fmt.replace("\\t", "\t").replace("\\n", "\n")
    if text == "json":
        text = "{{json .}}"
    template = compile_template(text)
    try:
        return template.render(value)
    except TemplateError as err:
        raise FormatError(f"template: :1: executing \"\" {err}") from None
