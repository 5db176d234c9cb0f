"""The live view of a running task (``live.LiveView``) fed the events a server sends, on a
console that is not a terminal (what an operator reads in a CI log), and on a terminal, a
Ctrl-C while it starts or stops leaving nothing drawing."""

from __future__ import annotations

import io
import os
import signal
import threading
from datetime import UTC, datetime
from typing import Any

import pytest
import rich.live as live_module
from rich.console import Console
from rich.live import Live

from knm.cli.remote import render
from knm.cli.remote.live import LiveView
from knm.wire.events import NodeEvent, OutputEvent, ProgressEvent, StepEvent

TASK = "workflow-exec-7-abcdef"
_seq = iter(range(1, 10_000))


def event(cls: type[Any], message: str = "", progress: int = 0, **data: Any) -> Any:
    return cls(
        task_id=TASK, seq=next(_seq), progress=progress, message=message, data=data,
        timestamp=datetime.now(UTC),
    )  # fmt: skip


def description(view: LiveView) -> str:
    return str(view.progress.tasks[0].description)


def test_the_bar_counts_running_done_and_failed_nodes_from_the_first_event() -> None:
    view = LiveView(TASK, follow=True)
    view.update(event(NodeEvent, node="n1", status="running"))
    view.update(event(NodeEvent, node="n2", status="running"))
    assert description(view) == f"{TASK}  2 running · 0 done · 0 failed"
    view.update(event(NodeEvent, progress=50, node="n1", status="success"))
    view.update(event(NodeEvent, progress=100, node="n2", status="failed", reason="timeout"))
    assert description(view) == f"{TASK}  0 running · 1 done · 1 failed"


def test_node_output_is_printed_by_default_prefixed_by_its_node_and_quiet_hides_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with LiveView(TASK, follow=True) as view:
        view.update(event(OutputEvent, node="n1", stream="stdout", text="up 3 days\npartial"))
    assert capsys.readouterr().out == "[n1] up 3 days\n[n1] partial\n"
    with LiveView(TASK, follow=False) as view:
        view.update(event(OutputEvent, node="n1", stream="stdout", text="up 3 days\n"))
    assert capsys.readouterr().out == ""


def test_a_workflow_waiting_for_approval_says_which_command_answers_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    view = LiveView(TASK, follow=True)
    gate = {"step_id": "gate", "step_type": "approval", "status": "running", "batch": 1}
    view.update(event(StepEvent, "step gate running (batch 2)", **gate))
    view.update(event(StepEvent, "step gate running (batch 2)", **gate))  # a repeat: said once
    err = capsys.readouterr().err
    assert err.count(f"waiting for approval — knm workflow approve {TASK} gate") == 1
    assert f"knm workflow reject {TASK} gate" in err
    view.update(event(StepEvent, "step drain completed", step_id="drain", step_type="k8s",
                      status="completed", batch=0))  # fmt: skip
    view.update(event(StepEvent, "step upgrade failed", step_id="upgrade", step_type="ssh",
                      status="failed", batch=0, error="exit code 1 on node3"))  # fmt: skip
    lines = capsys.readouterr().err.splitlines()
    assert lines == ["step drain completed", "step upgrade failed: exit code 1 on node3"]


def test_a_nodes_progress_such_as_a_drains_evictions_is_kept_as_a_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    view = LiveView(TASK, follow=True)
    view.update(event(ProgressEvent, "w1: evicted default/web-1", node="w1",
                      evicted=["default/web-1"]))  # fmt: skip
    view.update(event(ProgressEvent, "w1: eviction blocked: default/web-2 by budget "
                      "default/web-pdb; retrying", node="w1"))  # fmt: skip
    view.update(event(ProgressEvent, "40% of the batch", progress=40))  # the task's: not kept
    assert capsys.readouterr().err.splitlines() == [
        "w1: evicted default/web-1",
        "w1: eviction blocked: default/web-2 by budget default/web-pdb; retrying",
    ]


def child(task_id: str, **data: Any) -> OutputEvent:
    return OutputEvent(
        task_id=task_id, seq=next(_seq), progress=0, message="", data=data,
        timestamp=datetime.now(UTC),
    )  # fmt: skip


def test_a_steps_node_output_is_prefixed_by_step_and_node_and_steps_interleave_by_whole_lines(
    capsys: pytest.CaptureFixture[str],
) -> None:
    steps: dict[str, str] = {}
    with LiveView(TASK, follow=True, steps=steps) as view:
        for step_id, child_id in (("upgrade", "ssh-exec-1"), ("check", "script-exec-2")):
            view.update(event(StepEvent, f"step {step_id} running", step_id=step_id,
                              step_type="ssh", status="running", batch=0, task_id=child_id))  # fmt: skip
        # Two steps running at once, their chunks cut mid-line: each line comes out whole,
        # once its end has come, under its own step and node.
        view.update(child("ssh-exec-1", node="node3", stream="stdout", text="Reading pack"))
        view.update(child("script-exec-2", node="node3", stream="stdout", text="port 22 open\n"))
        view.update(child("ssh-exec-1", node="node3", stream="stdout", text="age lists...\nDone"))
        view.update(child("ssh-exec-1", node="node4", stream="stdout", text="Reading\n"))
        view.update(child("ssh-exec-1", node="node3", stream="stderr", text="W: no key\n"))
    captured = capsys.readouterr()
    assert captured.out.splitlines() == [
        "[check/node3] port 22 open",
        "[upgrade/node3] Reading package lists...",
        "[upgrade/node4] Reading",
        "[upgrade/node3] Done",  # the partial line, flushed as the view ends
    ]
    assert "[upgrade/node3] W: no key" in captured.err
    assert steps == {"ssh-exec-1": "upgrade", "script-exec-2": "check"}


def test_a_steps_own_progress_and_end_leave_the_workflows_bar_alone_and_quiet_hides_its_output(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with LiveView(TASK, follow=False, steps={"ssh-exec-1": "upgrade"}) as view:
        view.update(event(ProgressEvent, "a third", progress=33))
        view.update(NodeEvent(task_id="ssh-exec-1", seq=1, progress=100, data={"node": "n1",
                              "status": "success"}, timestamp=datetime.now(UTC)))  # fmt: skip
        view.update(child("ssh-exec-1", node="n1", stream="stdout", text="hidden\n"))
        assert view.progress.tasks[0].completed == 33 and view.done == 0
    assert capsys.readouterr().out == ""


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
    view = LiveView("ssh-exec-1-abcdef", follow=False)
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
    view = LiveView("ssh-exec-1-abcdef", follow=False)
    with pytest.raises(KeyboardInterrupt), view:
        assert refresh_threads()
    assert view.live is None
    assert still_drawing() == []


def test_a_step_said_running_twice_by_the_engine_is_one_line_and_its_end_another(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with LiveView(TASK, follow=True) as view:
        view.update(event(StepEvent, "step upgrade running", step_id="upgrade", step_type="ssh",
                          status="running", batch=0))  # fmt: skip
        view.update(event(StepEvent, "step upgrade running", step_id="upgrade", step_type="ssh",
                          status="running", batch=0, task_id="ssh-exec-1"))  # fmt: skip
        view.update(event(StepEvent, "step upgrade running", step_id="upgrade", step_type="ssh",
                          status="running", batch=1))  # fmt: skip
        view.update(event(StepEvent, "step upgrade succeeded", step_id="upgrade",
                          step_type="ssh", status="success", batch=1))  # fmt: skip
    assert capsys.readouterr().err.splitlines() == [
        "step upgrade running",
        "step upgrade running",
        "step upgrade succeeded",
    ]
