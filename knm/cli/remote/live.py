"""The live view of a running task, on stderr: a progress bar counting running, done and failed
nodes from the first event, node output as it comes unless ``--quiet`` (prefixed ``[node]``, a
workflow's steps' ``[step/node]``), a workflow's steps and the approval command it waits for,
and nodes as they finish. It draws only when stderr is a terminal; elsewhere (a CI log) the
same news comes as plain lines. rich is imported when a view is made.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from knm.cli.remote import render

if TYPE_CHECKING:
    from rich.live import Live

    from knm.client.models import Event


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
        self.console = render.err()
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
        self._step_said: dict[tuple[str, int, str], str] = {}
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
            self.nodes.add_row(node, render.styled(state), reason, event.message)
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
        # The engine says a step runs twice (the second time with its task's id): one line.
        said = (step_id, batch, str(data.get("node", "")))
        status = str(data.get("status", ""))
        if status and self._step_said.get(said) == status:
            return
        self._step_said[said] = status
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
        if self.live is not None and (target is sys.stderr or render.terminal()):
            self.live.console.print(line, markup=False, highlight=False)
        else:
            print(line, file=target, flush=True)
