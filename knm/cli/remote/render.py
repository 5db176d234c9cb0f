"""What remote commands print: lists and objects in the format ``-o`` asks for, tables, and a
task's per-node summary (the live view of a running one is ``knm.cli.remote.live``'s).

Results go to stdout: on a terminal as rich tables, elsewhere (a pipe, a file) as plain columns
kubectl-style, for ``awk`` and ``cut``; ``terminal()`` is the one place that tells them apart.
rich and PyYAML are imported when something is printed, not when a command's parser is built.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import msgspec

from knm.cli.remote.session import as_sent, emit_json, output_format

if TYPE_CHECKING:
    import argparse

    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from knm.client.models import TaskStatus

STATE_STYLE = {
    "completed": "green",
    "success": "green",
    "failed": "red",
    "cancelled": "yellow",
    "running": "cyan",
    "pending": "dim",
}


#: Between plain columns, as kubectl: a value with a single space inside stays one column.
GAP = "   "
NODE_COLUMNS = ("node", "status", "reason", "exit_code", "duration", "message")
#: What ``-o wide`` adds to a task's node table.
NODE_WIDE = ("address", "start_time", "end_time")


class Kind(msgspec.Struct, frozen=True):
    """How one noun prints: ``-o name`` lines are ``name/<key field>`` (``task/<task_id>``), the
    table has ``columns``, and ``-o wide`` adds ``wide`` to them."""

    name: str
    key: str
    columns: tuple[str, ...]
    wide: tuple[str, ...] = ()


def terminal() -> bool:
    """Whether results go to a terminal (rich tables) or elsewhere (plain columns)."""
    return sys.stdout.isatty()


def out() -> Console:
    from rich.console import Console

    # Not a terminal (a pipe, a file): wide, so tables are not squeezed into 80 columns.
    tty = terminal()
    return Console(width=None if tty else 200, highlight=False, soft_wrap=not tty)


def err() -> Console:
    from rich.console import Console

    return Console(stderr=True, highlight=False)


def cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(cell(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k}={cell(v)}" for k, v in value.items())
    return str(value)


def field(row: Any, name: str) -> Any:
    """A field of a struct or a dict."""
    return row.get(name) if isinstance(row, dict) else getattr(row, name, None)


def styled(state: str) -> Text:
    from rich.text import Text

    return Text(state, style=STATE_STYLE.get(state, ""))


def table(rows: Iterable[Any], columns: Sequence[str], title: str | None = None) -> Table:
    """A table of ``rows`` (structs or dicts), one column per name."""
    from rich.table import Table

    grid = Table(title=title, show_edge=False, header_style="bold")
    for name in columns:
        grid.add_column(name.upper().replace("_", " "))
    for row in rows:
        values = [field(row, c) for c in columns]
        grid.add_row(
            *[
                styled(v) if c == "status" and isinstance(v, str) else cell(v)
                for c, v in zip(columns, values, strict=True)
            ]
        )
    return grid


def plain_cell(value: Any) -> str:
    """A value in a plain column, as kubectl prints it: lists and mappings joined by bare commas
    (``a=1,b=2``) and an empty value as ``<none>``, so that ``awk`` finds the same number of
    fields on every line; a newline would split its row in two, so it becomes a space."""
    if isinstance(value, list | tuple):
        text = ",".join(cell(item) for item in value)
    elif isinstance(value, dict):
        text = ",".join(f"{key}={cell(item)}" for key, item in value.items())
    else:
        text = cell(value)
    return " ".join(text.splitlines()) or "<none>"


def plain_table(rows: Iterable[Any], columns: Sequence[str]) -> str:
    """``rows`` as kubectl prints them into a pipe: upper-case headers, columns padded to their
    widest value and ``GAP`` apart, one line per row, nothing cut or wrapped."""
    lines = [[name.upper().replace("_", " ") for name in columns]]
    for row in rows:
        lines.append([plain_cell(field(row, c)) for c in columns])
    widths = [max(len(line[i]) for line in lines) for i in range(len(columns))]
    return "".join(
        GAP.join(value.ljust(width) for value, width in zip(line, widths, strict=True)).rstrip()
        + "\n"
        for line in lines
    )


def print_table(rows: Iterable[Any], columns: Sequence[str], total: int | None = None) -> None:
    """A table on stdout (none when there are no rows), then ``N of TOTAL``: on stdout on a
    terminal, on stderr otherwise, where it would read as one more row."""
    rows = list(rows)
    if not terminal():
        if rows:
            sys.stdout.write(plain_table(rows, columns))
            sys.stdout.flush()
        if total is not None:
            print(f"{len(rows)} of {total}", file=sys.stderr)
        return
    console = out()
    if rows:
        console.print(table(rows, columns))
    if total is not None:
        console.print(f"{len(rows)} of {total}", style="dim")


def print_fields(values: dict[str, Any]) -> None:
    width = max((len(k) for k in values), default=0)
    lines = [f"{key.ljust(width)}  {cell(value)}".rstrip() for key, value in values.items()]
    if not terminal():
        print("\n".join(lines), flush=True)
        return
    console = out()
    for line in lines:
        console.print(line, markup=False)


def rule(title: str = "") -> None:
    """A line between parts of an object's view; ``---`` (a title in it) when not a terminal."""
    if terminal():
        out().rule(title, style="dim")
    else:
        print(f"--- {title} ---" if title else "---", flush=True)


def emit_yaml(value: Any) -> None:
    """One YAML document on stdout: the data ``--json`` prints, keys in the API's order."""
    import yaml

    data = msgspec.to_builtins(as_sent(value))
    sys.stdout.write(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    sys.stdout.flush()


def print_names(kind: Kind, items: Iterable[Any]) -> None:
    """One ``kind/key`` line per item, for ``xargs``."""
    sys.stdout.write("".join(f"{kind.name}/{field(item, kind.key)}\n" for item in items))
    sys.stdout.flush()


def print_list(
    args: argparse.Namespace,
    kind: Kind,
    items: Sequence[Any],
    document: Any,
    total: int | None = None,
) -> None:
    """A list command's answer in the format asked for: ``document`` (the API's page, as
    ``--json`` has always printed it) for json and yaml, ``items`` for the others."""
    chosen = output_format(args)
    if chosen == "json":
        emit_json(document)
    elif chosen == "yaml":
        emit_yaml(document)
    elif chosen == "name":
        print_names(kind, items)
    else:
        wide = kind.wide if chosen == "wide" else ()
        print_table(items, [*kind.columns, *wide], total)


def print_page(args: argparse.Namespace, kind: Kind, page: Any, noun: str) -> None:
    """A list command's answer from one page of the API, whose items ``--json`` shows under
    ``noun`` (the API's own key)."""
    print_list(args, kind, page.items, {"total": page.total, noun: page.items}, page.total)


def print_object(
    args: argparse.Namespace, kind: Kind, item: Any, view: Callable[[bool], None]
) -> None:
    """A show command's answer: ``item`` as the API sent it for json and yaml, its ``kind/key``
    line for name, else the command's own ``view`` (told whether ``-o wide`` asked)."""
    chosen = output_format(args)
    if chosen == "json":
        emit_json(item)
    elif chosen == "yaml":
        emit_yaml(item)
    elif chosen == "name":
        print_names(kind, [item])
    else:
        view(chosen == "wide")


def _skipped(status: TaskStatus) -> int:
    """Failed nodes that were skipped (a workflow leaving a node cordoned by hand alone)."""
    return sum(1 for r in status.results or [] if r.status == "failed" and r.reason == "skipped")


def print_task(status: TaskStatus, *, with_output: bool = False, wide: bool = False) -> None:
    """A finished (or running) task: its summary line and one row per node (``wide``: with
    each node's address and times)."""
    from rich.text import Text

    console = out()
    line = Text.assemble(
        (status.task_id, "bold"),
        "  ",
        styled(status.status),
        f"  {status.success_count} succeeded, {status.failed_count} failed",
        f" ({skipped} skipped)" if (skipped := _skipped(status)) else "",
        f"  ({status.duration}s)" if status.duration is not None else "",
    )
    console.print(line)
    if status.error:
        console.print(f"error: {status.error}", style="red", markup=False)
    if status.steps:
        print_table(status.steps, ["id", "name", "status", "duration"])
    if status.results:
        print_table(status.results, [*NODE_COLUMNS, *(NODE_WIDE if wide else ())])
    if with_output:
        for result in status.results:
            for stream in ("stdout", "stderr"):
                text = getattr(result, stream)
                if text:
                    rule(f"{result.node} {stream}")
                    out().print(text.rstrip("\n"), markup=False, highlight=False)
