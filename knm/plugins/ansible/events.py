"""ansible-runner's job events → the play's output, progress, and one result per node.

Events are read from ``artifacts/<ident>/job_events/<counter>-<uuid>.json`` (written whole, by
rename) in counter order. Node results are decided at the end, from ``playbook_on_stats`` and
the per-host events: a failed task may still be rescued, so no earlier event is final.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import msgspec

from knm.core.tasks import NodeResult

_EVENT_FILE = re.compile(r"^(\d+)-[0-9a-f-]+\.json$")
_MESSAGE_CAP = 1000
#: How long a hole in the counters is waited for before the events after it are read anyway.
GAP_WAIT = 2.0


class HostTally(msgspec.Struct, kw_only=True):
    ok: int = 0
    changed: int = 0
    failed: int = 0
    skipped: int = 0
    unreachable: int = 0
    rescued: int = 0
    ignored: int = 0
    last_error: str = ""
    failed_task: str = ""

    def counts(self) -> dict[str, int]:
        return {
            "ok": self.ok,
            "changed": self.changed,
            "failed": self.failed,
            "skipped": self.skipped,
            "unreachable": self.unreachable,
        }


class EventReader:
    """New events of a run directory, in counter order, each read once."""

    def __init__(self, events_dir: Path) -> None:
        self.dir = events_dir
        self.next = 1
        self._gap_since: float | None = None

    def read(self, now: float, *, final: bool = False) -> list[dict[str, Any]]:
        try:
            names = {
                int(m.group(1)): name
                for name in (p.name for p in self.dir.iterdir())
                if (m := _EVENT_FILE.match(name))
            }
        except FileNotFoundError:
            return []
        found: list[dict[str, Any]] = []
        for counter in sorted(c for c in names if c >= self.next):
            if counter != self.next and not final:
                # A hole: the event before may still be on its way.
                self._gap_since = self._gap_since or now
                if now - self._gap_since < GAP_WAIT:
                    break
            self._gap_since = None
            try:
                found.append(json.loads((self.dir / names[counter]).read_text()))
            except (OSError, ValueError):
                continue
            self.next = counter + 1
        return found


def _failure_text(res: Any) -> str:
    if not isinstance(res, dict):
        return str(res)[:_MESSAGE_CAP]
    parts = [str(res.get("msg") or "").strip()]
    for inner in (res.get("failed_modules") or {}).values():
        # Fact gathering reports each module's own failure inside.
        if isinstance(inner, dict) and inner.get("msg"):
            parts.append(_failure_text(inner))
            break
    for key in ("stderr", "module_stdout", "module_stderr", "stdout"):
        text = str(res.get(key) or "").strip()
        if text and not any(text in part for part in parts):
            parts.append(text)
    return ": ".join(part for part in parts if part)[:_MESSAGE_CAP]


class PlayState:
    """What the events said so far."""

    def __init__(self, hosts: list[str], expected_tasks: int) -> None:
        self.hosts = {host: HostTally() for host in hosts}
        self._targets = set(hosts)
        self.expected = max(1, expected_tasks)
        self.tasks_started = 0
        self.stats: dict[str, dict[str, int]] | None = None
        self.current_task = ""
        self.plays = 0

    def feed(self, event: dict[str, Any]) -> str:
        """Takes one event; returns its display text (may be "")."""
        kind = event.get("event", "")
        data = event.get("event_data") or {}
        host = data.get("host")
        # Hosts beyond the targets (an implicit localhost) are tallied too.
        tally = self.hosts.setdefault(host, HostTally()) if host else None
        if kind == "playbook_on_play_start":
            self.plays += 1
        elif kind == "playbook_on_task_start":
            self.tasks_started += 1
            self.current_task = str(data.get("task") or data.get("name") or "")
            self.expected = max(self.expected, self.tasks_started)
        elif kind == "playbook_on_stats":
            self.stats = {
                key: dict(data.get(key) or {})
                for key in ("ok", "changed", "failures", "dark", "skipped", "rescued", "ignored")
            }
        elif tally is not None:
            self._host_event(kind, data, tally)
        return str(event.get("stdout") or "")

    def _host_event(self, kind: str, data: dict[str, Any], tally: HostTally) -> None:
        res = data.get("res") or {}
        if kind == "runner_on_ok":
            tally.ok += 1
            if isinstance(res, dict) and res.get("changed"):
                tally.changed += 1
        elif kind == "runner_on_failed":
            if data.get("ignore_errors"):
                tally.ignored += 1
                return
            tally.failed += 1
            tally.failed_task = str(data.get("task") or "")
            tally.last_error = _failure_text(res)
        elif kind == "runner_on_skipped":
            tally.skipped += 1
        elif kind == "runner_on_unreachable":
            tally.unreachable += 1
            tally.last_error = _failure_text(res)

    @property
    def percent(self) -> float:
        # Each host runs each task; stay below 100 until the run has ended.
        return min(99.0, 100.0 * self.tasks_started / (self.expected + 1))

    def _final_tally(self, host: str) -> HostTally:
        tally = self.hosts[host]
        if self.stats is None:
            return tally
        stats = self.stats
        return msgspec.structs.replace(
            tally,
            ok=stats["ok"].get(host, 0),
            changed=stats["changed"].get(host, 0),
            failed=stats["failures"].get(host, 0),
            skipped=stats["skipped"].get(host, 0),
            unreachable=stats["dark"].get(host, 0),
            rescued=stats["rescued"].get(host, 0),
            ignored=stats["ignored"].get(host, 0),
        )

    def _other_failure(self, host: str) -> str:
        """Why a play on a host that is not a target (localhost) failed, if one did."""
        assert self.stats is not None
        for other, tally in self.hosts.items():
            if other in self._targets:
                continue
            if self.stats["failures"].get(other) or self.stats["dark"].get(other):
                return f"a play on {other} failed: {tally.last_error}"
        return ""

    def result(self, host: str, *, excluded: bool, run_error: str, pinned: bool) -> NodeResult:
        """The node's result once the run has ended."""
        if excluded:
            return NodeResult.failure("skipped", "excluded by --limit", exit_code=None)
        tally = self._final_tally(host)
        counts = tally.counts()
        if tally.unreachable:
            reason = _host_key_reason(tally.last_error, pinned) or "unreachable"
            return NodeResult.failure(reason, tally.last_error or "unreachable", **counts)
        if tally.failed:
            reason = _host_key_reason(tally.last_error, pinned)
            if reason and reason.startswith("host_key"):
                # With a password, ssh's host key refusal surfaces as a failed task.
                return NodeResult.failure(reason, tally.last_error, **counts)
            where = f"task {tally.failed_task!r} failed" if tally.failed_task else "a task failed"
            message = f"{where}: {tally.last_error}" if tally.last_error else where
            return NodeResult.failure("task_failed", message[:_MESSAGE_CAP], **counts)
        if self.stats is None:
            return NodeResult.failure("error", run_error or "the run ended early", **counts)
        if host not in self.stats["ok"] and not any(counts.values()):
            other = self._other_failure(host)
            if other:
                return NodeResult.failure("task_failed", other[:_MESSAGE_CAP], **counts)
            return NodeResult.success("no play targets this node", exit_code=None, **counts)
        summary = " ".join(f"{k}={v}" for k, v in counts.items())
        return NodeResult.success(summary, exit_code=None, **counts)


_HOST_KEY_SIGNS = (
    "host key verification failed",
    "remote host identification",
    "host key checking is enabled",
)


def _host_key_reason(message: str, pinned: bool) -> str | None:
    lowered = message.lower()
    if any(sign in lowered for sign in _HOST_KEY_SIGNS):
        return "host_key_changed" if pinned else "host_key_unknown"
    if "permission denied" in lowered or "authentication fail" in lowered:
        return "auth_failed"
    return None
