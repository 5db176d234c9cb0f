"""What remote commands print: lists and objects in the format ``-o`` asks for, tables, a
task's per-node summary, and the live view of a running task (a progress bar counting running,
done and failed nodes, node output as it comes unless ``--quiet`` (a workflow's steps' output
prefixed ``[step/node]``), a workflow's steps and the approvals it waits for, nodes as they
finish).

Results go to stdout: on a terminal as rich tables, elsewhere (a pipe, a file) as plain columns
kubectl-style, for ``awk`` and ``cut``; ``terminal()`` is the one place that tells them apart.
The live view goes to stderr, and only when stderr is a terminal. rich and PyYAML are imported
when something is printed, not when a command's parser is built.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import msgspec

from knm.cli.remote.session import as_sent, emit_json, output_format

if TYPE_CHECKING:
    import argparse

    from rich.console import Console
    from rich.live import Live
    from rich.table import Table
    from rich.text import Text

    from knm.client.models import Event, TaskStatus

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


@contextlib.contextmanager
def interrupts_deferred() -> Iterator[None]:
    """A Ctrl-C inside the block is raised when it ends, not in the middle of it.

    rich's ``Live.start`` and ``stop`` swap the console's hooks and start or stop a refresh
    thread; interrupted half-way, the thread kept drawing the view over the Ctrl-C prompt. Only
    the main thread receives signals, so elsewhere the block runs as it is."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught:
        raise KeyboardInterrupt


class LiveView:
    """The view of a running task, fed one event at a time."""

    def __init__(self, task_id: str, follow: bool, steps: dict[str, str] | None = None) -> None:
        from rich.progress import (
            BarColumn,
            Progress,
            TaskProgressColumn,
            TextColumn,
            TimeElapsedColumn,
        )
        from rich.table import Table
        from rich.text import Text

        self.follow = follow
        self.console = err()
        self.interactive = self.console.is_terminal
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TaskProgressColumn(),
            TimeElapsedColumn(),
            console=self.console,
        )
        self.bar = self.progress.add_task(task_id, total=100)
        self.nodes = Table(show_edge=False, header_style="bold")
        for name in ("NODE", "STATUS", "REASON", "MESSAGE"):
            self.nodes.add_column(name)
        self.message = Text("")
        self.live: Live | None = None
        self._partial: dict[tuple[str, str], str] = {}
        self.task_id = task_id
        #: Nodes started and not yet finished, and those finished each way, from the first
        #: ``node`` event: the bar's percentage moves only as nodes end.
        self.running: set[str] = set()
        self.done = 0
        self.failed = 0
        self._asked: set[tuple[str, int]] = set()
        #: A workflow's step tasks, by task id, to the step each runs: their output is
        #: prefixed ``[step/node]``. Given by the caller so that a view made again after a
        #: Ctrl-C ("keep watching") still knows the steps already announced.
        self.steps: dict[str, str] = {} if steps is None else steps

    def __enter__(self) -> LiveView:
        if self.interactive:
            from rich.console import Group
            from rich.live import Live

            self.live = Live(
                Group(self.progress, self.message, self.nodes),
                console=self.console,
                refresh_per_second=8,
                transient=True,
            )
            try:
                with interrupts_deferred():
                    self.live.start(refresh=True)
            except KeyboardInterrupt:
                # Started whole, then interrupted: a ``with`` calls no ``__exit__`` when
                # ``__enter__`` raises, so the view is stopped here.
                self._stop()
                raise
        return self

    def __exit__(self, *exc: Any) -> None:
        self.flush_output()
        self._stop()

    def _stop(self) -> None:
        if self.live is not None:
            with interrupts_deferred():
                self.live.stop()
                self.live = None

    def update(self, event: Event) -> None:
        if event.task_id != self.task_id:
            self.step_event(event)
            return
        self.progress.update(self.bar, completed=event.progress)
        if event.type == "output":
            if self.follow:
                self.output(
                    event.data.get("node", ""),
                    event.data.get("stream", ""),
                    event.data.get("text", ""),
                )
            return
        if event.type == "step":
            self.step(event)
        elif event.type == "progress" and event.message:
            self.message.plain = event.message
            if event.data.get("node"):
                # A node's own news (a drain's evictions, the budget that blocks one): kept
                # in the scrollback, not only shown until the next message.
                self.note(event.message)
        if event.type == "node":
            self.count(event)

    def count(self, event: Event) -> None:
        node, state = event.data.get("node", ""), event.data.get("status")
        if state == "running":
            self.running.add(node)
        elif state in ("success", "failed"):
            self.running.discard(node)
            if state == "success":
                self.done += 1
            else:
                self.failed += 1
            reason = event.data.get("reason") or ""
            self.nodes.add_row(node, styled(state), reason, event.message)
            if not self.interactive:
                print(f"{node}: {state}{f' ({reason})' if reason else ''}", file=sys.stderr)
        else:
            return
        self.progress.update(
            self.bar,
            description=f"{self.task_id}  {len(self.running)} running · {self.done} done · "
            f"{self.failed} failed",
        )

    def step(self, event: Event) -> None:
        """A workflow step moved: a line per change, and the command that answers an approval
        the workflow waits for."""
        data = event.data
        step_id, batch = str(data.get("step_id", "")), int(data.get("batch") or 0)
        if data.get("task_id"):
            self.steps[str(data["task_id"])] = step_id
        if data.get("step_type") == "approval" and data.get("status") == "running":
            if (step_id, batch) not in self._asked:
                self._asked.add((step_id, batch))
                self.message.plain = f"waiting for approval of step {step_id}"
                self.note(
                    f"waiting for approval — knm workflow approve {self.task_id} {step_id}"
                    f" (or: knm workflow reject {self.task_id} {step_id} --comment WHY)"
                )
            return
        if event.message:
            self.message.plain = event.message
            error = data.get("error")
            self.note(f"{event.message}{f': {error}' if error else ''}")

    def step_event(self, event: Event) -> None:
        """An event of a workflow step's task: only its node output shows, as
        ``[step/node] line``; its bar, nodes and end belong to the step's own lines."""
        if event.type != "output" or not self.follow:
            return
        step = self.steps.get(event.task_id, event.task_id)
        node = event.data.get("node", "")
        self.output(f"{step}/{node}", event.data.get("stream", ""), event.data.get("text", ""))

    def note(self, line: str) -> None:
        """A line above the live view (on stderr): what happened, kept in the scrollback."""
        if self.live is not None:
            self.live.console.print(line, markup=False, highlight=False)
        else:
            print(line, file=sys.stderr, flush=True)

    def output(self, node: str, stream: str, text: str) -> None:
        # Whole lines only, each prefixed with its node; a partial line waits for the rest.
        key = (node, stream)
        text = self._partial.pop(key, "") + text
        lines = text.split("\n")
        if lines[-1]:
            self._partial[key] = lines[-1]
        target = sys.stderr if stream == "stderr" else sys.stdout
        for line in lines[:-1]:
            self.write(f"[{node}] {line}", target)

    def flush_output(self) -> None:
        for (node, stream), rest in self._partial.items():
            self.write(f"[{node}] {rest}", sys.stderr if stream == "stderr" else sys.stdout)
        self._partial.clear()

    def write(self, line: str, target: Any) -> None:
        if self.live is not None and (target is sys.stderr or terminal()):
            self.live.console.print(line, markup=False, highlight=False)
        else:
            print(line, file=target, flush=True)
