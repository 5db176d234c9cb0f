"""What remote commands print: tables, a task's per-node summary, and the live view of a
running task (a progress bar counting running, done and failed nodes, node output as it comes
unless ``--quiet``, a workflow's steps and the approvals it waits for, nodes as they finish).

Results go to stdout; the live view goes to stderr, and only when stderr is a terminal. rich
is imported when something is printed, not when a command's parser is built.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console
    from rich.live import Live
    from rich.table import Table
    from rich.text import Text

    from knm.client.models import Event, NodeResult, TaskStatus

STATE_STYLE = {
    "completed": "green",
    "success": "green",
    "failed": "red",
    "cancelled": "yellow",
    "running": "cyan",
    "pending": "dim",
}


def out() -> Console:
    from rich.console import Console

    # Not a terminal (a pipe, a file): wide, so tables are not squeezed into 80 columns.
    tty = sys.stdout.isatty()
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
        values = [row.get(c) if isinstance(row, dict) else getattr(row, c, None) for c in columns]
        grid.add_row(
            *[
                styled(v) if c == "status" and isinstance(v, str) else cell(v)
                for c, v in zip(columns, values, strict=True)
            ]
        )
    return grid


def print_table(rows: Iterable[Any], columns: Sequence[str], total: int | None = None) -> None:
    rows = list(rows)
    console = out()
    if rows:
        console.print(table(rows, columns))
    if total is not None:
        console.print(f"{len(rows)} of {total}", style="dim")


def print_fields(values: dict[str, Any]) -> None:
    console = out()
    width = max((len(k) for k in values), default=0)
    for key, value in values.items():
        console.print(f"{key.ljust(width)}  {cell(value)}", markup=False)


def node_table(results: Sequence[NodeResult]) -> Table:
    grid = table(results, ["node", "status", "reason", "exit_code", "duration", "message"])
    return grid


def _skipped(status: TaskStatus) -> int:
    """Failed nodes that were skipped (a workflow leaving a node cordoned by hand alone)."""
    return sum(1 for r in status.results or [] if r.status == "failed" and r.reason == "skipped")


def print_task(status: TaskStatus, *, with_output: bool = False) -> None:
    """A finished (or running) task: its summary line and one row per node."""
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
        console.print(table(status.steps, ["id", "name", "status", "duration"]))
    if status.results:
        console.print(node_table(status.results))
    if with_output:
        for result in status.results:
            for stream in ("stdout", "stderr"):
                text = getattr(result, stream)
                if text:
                    console.rule(f"{result.node} {stream}", style="dim")
                    console.print(text.rstrip("\n"), markup=False, highlight=False)


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

    def __init__(self, task_id: str, follow: bool) -> None:
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
        if self.live is not None and (target is sys.stderr or sys.stdout.isatty()):
            self.live.console.print(line, markup=False, highlight=False)
        else:
            print(line, file=target, flush=True)
