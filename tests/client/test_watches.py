"""``Client.watch_many`` (and ``AsyncClient``'s) on a real server: several tasks on one
connection, each task's events whole and in order, tasks added while iterating (a workflow's
steps), polling without a WebSocket, and carrying on after the loop was left."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pytest

from knm.client import AsyncClient, Client, Event
from knm.testing.database import TEST_ADMIN_PASSWORD
from knm.testing.process import KnmProcess


def start(client: Client, **body: object) -> str:
    payload = {"cluster_name": "lab", "target_nodes": ["n1", "n2"], **body}
    return client.executor("test").start(payload).task_id


def by_task(events: list[Event]) -> dict[str, list[Event]]:
    found: dict[str, list[Event]] = defaultdict(list)
    for event in events:
        found[event.task_id].append(event)
    return found


def assert_whole(events: list[Event]) -> None:
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert [e.type for e in events].count("complete") == 1
    assert events[-1].type == "complete"


@pytest.mark.parametrize("websocket", [True, False], ids=["websocket", "polling"])
def test_watch_many_yields_each_tasks_events_whole_and_ends_when_all_are_complete(
    admin: Client, lab: str, websocket: bool
) -> None:
    first = start(admin, sleep=0.3, events=3, echo="one {node}")
    second = start(admin, sleep=0.6, events=2, echo="two {node}")
    with admin.watch_many([first, second], websocket=websocket, interval=0.1) as watches:
        events = list(watches)
    found = by_task(events)
    assert set(found) == {first, second}
    for task_events in found.values():
        assert_whole(task_events)
    assert watches.done and watches.last_seq(first) == found[first][-1].seq


def test_a_workflows_step_tasks_added_while_iterating_are_followed_from_their_first_event(
    admin: Client, lab: str
) -> None:
    flow = admin.workflows.create(
        "watched-steps",
        {
            "steps": [
                {"id": "first", "type": "test", "echo": "first on {node}"},
                {"id": "second", "type": "test", "depends_on": ["first"],
                 "echo": "second on {node}", "sleep": 0.2},
            ]
        },
    )  # fmt: skip
    task_id = admin.workflows.execute(flow.id, "lab", target_nodes=["n1", "n2"]).task_id
    steps: dict[str, str] = {}
    with admin.watch_many([task_id]) as watches:
        events = []
        for event in watches:
            events.append(event)
            child = event.data.get("task_id") if event.type == "step" else None
            if child and event.task_id == task_id:
                steps[child] = event.data["step_id"]
                watches.add(child)
    found = by_task(events)
    assert set(found) == {task_id, *steps}
    assert sorted(steps.values()) == ["first", "second"]
    for task_events in found.values():
        assert_whole(task_events)
    for child, step in steps.items():
        texts = sorted(e.data["text"] for e in found[child] if e.type == "output")
        assert texts == [f"{step} on n1\n", f"{step} on n2\n"]


def test_iterating_again_after_leaving_the_loop_carries_on_where_each_task_stopped(
    admin: Client, lab: str
) -> None:
    task_id = start(admin, sleep=0.3, events=4, echo="hi {node}")
    seen: list[Any] = []
    with admin.watch_many([task_id]) as watches:
        for event in watches:
            seen.append(event.seq)
            if len(seen) == 2:
                break
        seen += [event.seq for event in watches]
    assert seen == list(range(1, len(seen) + 1))
    assert watches.done


def test_a_discarded_task_is_no_longer_waited_for(admin: Client, lab: str) -> None:
    slow = start(admin, sleep=60)
    quick = start(admin, events=2)
    with admin.watch_many([slow, quick]) as watches:
        assert watches.following() == [slow, quick]
        watches.discard(slow)
        events = list(watches)
    assert {e.task_id for e in events} == {quick} and watches.done
    admin.cancel(slow)


@pytest.mark.parametrize("websocket", [True, False], ids=["websocket", "polling"])
async def test_the_async_client_follows_tasks_added_while_iterating_too(
    server: KnmProcess, lab: str, websocket: bool
) -> None:
    async with AsyncClient(server.base_url) as client:
        await client.login("admin", TEST_ADMIN_PASSWORD)
        tester = client.executor("test")
        first = (await tester.start({"cluster_name": "lab", "target_nodes": ["n1"],
                                     "events": 2, "sleep": 0.3})).task_id  # fmt: skip
        second = (await tester.start({"cluster_name": "lab", "target_nodes": ["n2"],
                                      "echo": "two {node}"})).task_id  # fmt: skip
        events = []
        async with client.watch_many([first], websocket=websocket, interval=0.1) as watches:
            async for event in watches:
                events.append(event)
                watches.add(second)
    found = by_task(events)
    assert set(found) == {first, second}
    for task_events in found.values():
        assert_whole(task_events)
