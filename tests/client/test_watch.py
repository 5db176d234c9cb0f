"""``wait`` and ``watch`` on a real server: live events in order, resuming after the API process
restarts mid-watch, and polling when no WebSocket can be had. The API and the worker are
separate processes here, so the API can be restarted while the task keeps running."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from knm.client import Client, NotFound, Unauthorized
from knm.client import watch as watch_module
from knm.testing.database import TEST_ADMIN_PASSWORD
from knm.testing.process import KnmProcess

PLUGIN = "knm.testing.executor:TestExecutorPlugin"


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory, knm_database_url: str) -> Iterator[KnmProcess]:
    env = {"KNM_PLUGINS": PLUGIN}
    base = tmp_path_factory.mktemp("watch")
    server = KnmProcess(base / "api", knm_database_url, ["serve", "--no-runner"], env)
    worker = KnmProcess(base / "worker", knm_database_url, ["worker"], env)
    server.start()
    worker.start()
    yield server
    server.stop()
    worker.stop()


@pytest.fixture(scope="module")
def client(api: KnmProcess) -> Iterator[Client]:
    with Client(api.base_url) as client:
        client.login("admin", TEST_ADMIN_PASSWORD)
        yield client


def start(client: Client, **body: object) -> str:
    payload = {"cluster_name": "lab", "target_nodes": ["n1", "n2"], **body}
    return client.executor("test").start(payload).task_id


def assert_whole(events: list, task_id: str, status: str = "completed") -> None:
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert all(e.task_id == task_id for e in events)
    assert [e.type for e in events].count("complete") == 1
    assert events[-1].type == "complete" and events[-1].data["status"] == status


def test_watch_yields_every_event_in_order_and_ends_at_complete(client: Client) -> None:
    task_id = start(client, sleep=0.3, events=5, echo="hi {node}")
    events = list(client.watch(task_id))
    assert_whole(events, task_id)
    assert {e.type for e in events} >= {"progress", "node", "output", "complete"}
    assert client.wait(task_id).status == "completed"


def test_watch_since_skips_what_the_caller_has(client: Client) -> None:
    task_id = start(client, events=4)
    everything = list(client.watch(task_id))
    rest = list(client.watch(task_id, since=3))
    assert [e.seq for e in rest] == [e.seq for e in everything if e.seq > 3]


def test_watch_resumes_after_the_api_process_restarts(client: Client, api: KnmProcess) -> None:
    task_id = start(client, sleep=4, events=3, output_lines=3, fail_nodes=["n2"])
    events = []
    restarted = threading.Event()

    def restart() -> None:
        api.start()
        restarted.set()

    for event in client.watch(task_id):
        events.append(event)
        if len(events) == 2:
            api.kill()  # the connection drops; the worker keeps running the task
            threading.Thread(target=restart).start()
    assert restarted.wait(60)
    assert_whole(events, task_id, "failed")


def test_watch_many_resubscribes_every_task_with_since_after_the_api_process_restarts(
    client: Client, api: KnmProcess
) -> None:
    first = start(client, sleep=4, events=3, output_lines=3)
    second = start(client, sleep=4, events=2, output_lines=2, fail_nodes=["n1"])
    events = []
    restarted = threading.Event()

    def restart() -> None:
        api.start()
        restarted.set()

    with client.watch_many([first, second]) as watches:
        for event in watches:
            events.append(event)
            if len(events) == 3:
                api.kill()
                threading.Thread(target=restart).start()
    assert restarted.wait(60)
    assert_whole([e for e in events if e.task_id == first], first)
    assert_whole([e for e in events if e.task_id == second], second, "failed")


def test_watch_polls_the_event_log_when_the_websocket_is_refused(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        watch_module,
        "ws_url",
        lambda url, prefix, token=None: f"{url.replace('http', 'ws')}/nowhere",
    )
    task_id = start(client, sleep=0.5, events=3)
    events = list(client.watch(task_id, interval=0.1))
    assert_whole(events, task_id)


def test_watch_without_websocket_polls(client: Client) -> None:
    task_id = start(client, events=2)
    assert_whole(list(client.watch(task_id, websocket=False, interval=0.1)), task_id)


def test_watching_an_unknown_task_or_with_a_bad_token_fails(
    api: KnmProcess, client: Client
) -> None:
    with pytest.raises(NotFound):
        list(client.watch("test-exec-1-zzzzzz"))
    with Client(api.base_url, "not-a-token") as stranger, pytest.raises(Unauthorized):
        list(stranger.watch("test-exec-1-zzzzzz"))


def test_the_watch_sends_its_token_as_a_subprotocol_never_in_the_url() -> None:
    import base64

    url = watch_module.ws_url("https://knm.example:8443", "/api/v1")
    assert url == "wss://knm.example:8443/api/v1/progress/ws"
    protocols = watch_module.token_subprotocols("knm_tok.secret/+=")
    assert protocols is not None and protocols[0] == "knm"
    encoded = protocols[1].removeprefix("base64url.bearer.knm.")
    assert base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)) == b"knm_tok.secret/+="
    assert watch_module.token_subprotocols(None) is None
