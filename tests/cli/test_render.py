"""How the CLI prints a task."""

from __future__ import annotations

import io
import os
import signal
import threading

import pytest
import rich.live as live_module
from rich.console import Console
from rich.live import Live

from knm.cli.remote import render
from knm.wire.tasks import NodeResult, TaskStatus


def test_a_task_with_a_skipped_node_says_how_many_were_skipped(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status = TaskStatus(
        task_id="workflow-exec-1-abcdef",
        status="completed",
        success_count=2,
        failed_count=1,
        results=[
            NodeResult(node="node1", status="success"),
            NodeResult(node="node2", status="failed", reason="skipped",
                       message="node node2 was cordoned by hand"),
            NodeResult(node="node3", status="success"),
        ],
    )  # fmt: skip
    render.print_task(status)
    printed = capsys.readouterr().out
    assert "2 succeeded, 1 failed (1 skipped)" in printed
    assert "cordoned by hand" in printed


def refresh_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if isinstance(t, live_module._RefreshThread)]


def still_drawing() -> list[threading.Thread]:
    """Refresh threads that go on drawing: a stopped one ends within its next tick (1/8 s)."""
    for thread in refresh_threads():
        thread.join(2)
    return refresh_threads()


@pytest.fixture
def terminal(monkeypatch: pytest.MonkeyPatch) -> Console:
    """The live view's console, taken for a terminal (the view draws only on one)."""
    console = Console(file=io.StringIO(), force_terminal=True, width=80)
    monkeypatch.setattr(render, "err", lambda: console)
    return console


@pytest.mark.timeout(30)
def test_a_ctrl_c_while_the_live_view_starts_leaves_nothing_drawing(
    monkeypatch: pytest.MonkeyPatch, terminal: Console
) -> None:
    started = live_module._RefreshThread.start

    def start_then_ctrl_c(thread: threading.Thread) -> None:
        # The moment that went wrong: the refresh thread runs, Live.start has not returned.
        started(thread)
        os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(live_module._RefreshThread, "start", start_then_ctrl_c)
    view = render.LiveView("ssh-exec-1-abcdef", follow=False)
    with pytest.raises(KeyboardInterrupt), view:
        pytest.fail("the view's body ran although Ctrl-C came while it started")
    assert view.live is None
    assert still_drawing() == []
    # The console is free for the Ctrl-C prompt: no live display is registered on it.
    assert terminal.set_live(Live(console=terminal))
    terminal.clear_live()


@pytest.mark.timeout(30)
def test_a_ctrl_c_while_the_live_view_stops_still_stops_it(
    monkeypatch: pytest.MonkeyPatch, terminal: Console
) -> None:
    stop = Live.stop

    def ctrl_c_then_stop(live: Live) -> None:
        os.kill(os.getpid(), signal.SIGINT)
        stop(live)

    monkeypatch.setattr(Live, "stop", ctrl_c_then_stop)
    view = render.LiveView("ssh-exec-1-abcdef", follow=False)
    with pytest.raises(KeyboardInterrupt), view:
        assert refresh_threads()
    assert view.live is None
    assert still_drawing() == []
