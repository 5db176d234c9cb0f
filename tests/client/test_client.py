"""The sync SDK against a real server: every family's happy path and the error classes."""

from __future__ import annotations

import io
import time
from pathlib import Path

import pytest

from knm.client import (
    BadRequest,
    Client,
    Conflict,
    FeatureDisabled,
    Forbidden,
    NotFound,
    RateLimited,
    Unauthorized,
    ValidationFailed,
)
from knm.client.models import TaskStatus
from knm.testing.database import TEST_ADMIN_PASSWORD
from knm.testing.process import KnmProcess

PLAYBOOK = "- hosts: all\n  tasks:\n    - ansible.builtin.ping:\n"


def test_login_me_and_refresh_never_keep_the_password(server: KnmProcess) -> None:
    with Client(server.base_url) as client:
        login = client.login("admin", TEST_ADMIN_PASSWORD)
        assert login.user.role == "admin" and client.token == login.token
        assert client.me().username == "admin"
        fresh = client.refresh()
        assert client.token == fresh.token
        assert TEST_ADMIN_PASSWORD not in repr(vars(client))


def test_users_and_api_tokens(server: KnmProcess, admin: Client) -> None:
    user = admin.create_user("olga", "olga-password", "operator")
    assert admin.user(user.id).role == "operator"
    assert "olga" in [u.username for u in admin.users(page_size=100).items]
    assert admin.update_user(user.id, role="viewer").role == "viewer"
    admin.reset_password(user.id, "olga-password-2")
    with Client(server.base_url) as olga, Client(server.base_url) as elsewhere:
        olga.login("olga", "olga-password-2")
        elsewhere.login("olga", "olga-password-2")
        olga.change_password("olga-password-2", "olga-password-3")
        # The session that changed the password goes on; every other one is revoked.
        assert olga.me().username == "olga"
        with pytest.raises(Unauthorized):
            elsewhere.me()
        olga.login("olga", "olga-password-3")
        new = olga.create_token("ci")
        assert new.token.startswith("knm_") and new.role == "viewer"
        with Client(server.base_url, new.token) as ci:
            assert ci.me().username == "olga"
            with pytest.raises(Forbidden):
                ci.refresh()
        assert [t.name for t in olga.tokens().items] == ["ci"]
        olga.revoke_token(new.id)
        with Client(server.base_url, new.token) as ci, pytest.raises(Unauthorized):
            ci.me()


def test_features_and_settings(admin: Client) -> None:
    assert admin.features()["automation"]["test_enabled"] is True
    assert "test" in admin.settings()
    assert admin.update_settings("test", timeout=30)["timeout"] == 30
    admin.set_enabled(True)


def test_credentials_keep_their_secrets(admin: Client) -> None:
    created = admin.create_credential("ops", "root", "password", password="s3cret-pass", port=2222)
    assert created.has_password and created.port == 2222
    assert admin.credential(created.id).name == "ops"
    assert "s3cret" not in repr(admin.credentials().items)
    changed = admin.update_credential(created.id, description="for the lab")
    assert changed.description == "for the lab" and changed.has_password
    admin.delete_credential(created.id)
    with pytest.raises(NotFound, match="Credential ID"):
        admin.credential(created.id)


def test_clusters_and_nodes(admin: Client, lab: str) -> None:
    cluster = admin.cluster(lab)
    assert cluster.kind == "static" and len(cluster.extra["nodes"]) == 3
    assert lab in [c.name for c in admin.clusters().items]
    assert [n.name for n in admin.nodes(lab, selector="rack=a").items] == ["n2", "n3"]
    admin.create_cluster("spare", "static", nodes=[{"name": "s1", "address": "127.0.0.9"}])
    assert admin.update_cluster("spare", description="spare").description == "spare"
    admin.delete_cluster("spare")
    with pytest.raises(NotFound):
        admin.cluster("spare")


def test_playbooks_have_versions_and_clones(admin: Client) -> None:
    book = admin.playbooks.create("ping", PLAYBOOK, tags=["net"])
    assert book.version == 1 and book.content == PLAYBOOK
    changed = admin.playbooks.update(book.id, content=PLAYBOOK.replace("ping", "ping "), version=1)
    assert changed.version == 2
    with pytest.raises(Conflict):
        admin.playbooks.update(book.id, description="stale", version=1)
    assert [v.version for v in admin.playbooks.versions(book.id).items] == [2, 1]
    assert admin.playbooks.version(book.id, 1).content == PLAYBOOK
    copy = admin.playbooks.clone(book.id, "ping-copy")
    assert copy.name == "ping-copy" and not copy.is_builtin
    assert {"ping", "ping-copy"} <= {p.name for p in admin.playbooks.list(q="ping").items}
    admin.playbooks.delete(copy.id)
    with pytest.raises(ValidationFailed) as refused:
        admin.playbooks.create("broken", "{not: [valid")
    # Where the problem is comes along (an editor shows it at its line).
    (detail,) = refused.value.details or []
    assert (detail.field, detail.line) == ("content", 1)


def test_a_task_runs_and_every_generic_route_answers(admin: Client, lab: str) -> None:
    test = admin.executor("test")
    started = test.start(
        {
            "cluster_name": lab,
            "target_nodes": ["n1", "n2"],
            "echo": "hi {node}",
            "fail_nodes": ["n2"],
        },
        idempotency_key="once",
    )
    assert started.task_id.startswith("test-exec-") and started.extra == {"echo": "hi {node}"}
    again = test.start({"cluster_name": lab, "target_nodes": ["n1"]}, idempotency_key="once")
    assert again.task_id == started.task_id
    final = admin.wait(started.task_id, timeout=60, interval=0.1)
    assert isinstance(final, TaskStatus) and final.status == "failed"
    assert {r.node: r.status for r in final.results} == {"n1": "success", "n2": "failed"}
    assert test.status(started.task_id).failed_count == 1
    assert started.task_id in [t.task_id for t in test.history(status="failed").items]
    assert started.task_id in [t.task_id for t in admin.tasks(kind="test").items]
    events = admin.events(started.task_id)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert events[-1].type == "complete" and events[-1].data["status"] == "failed"
    assert admin.output(started.task_id, "n1") == "hi n1\n"
    assert admin.output(started.task_id, "n1", start=3) == "n1\n"
    assert admin.output(started.task_id, "n2", "stderr") == "failing as asked\n"
    rerun = admin.rerun(started.task_id)
    assert rerun.rerun_of == started.task_id and rerun.target_nodes == ["n2"]
    with pytest.raises(Conflict):
        admin.cancel(started.task_id)


def test_output_streams_and_downloads_resume_with_range(
    admin: Client, lab: str, tmp_path: Path
) -> None:
    task = admin.executor("test").start(
        {"cluster_name": lab, "target_nodes": ["n1"], "output_lines": 500}
    )
    admin.wait(task.task_id, timeout=60, interval=0.1)
    whole = b"".join(admin.stream_output(task.task_id, "n1"))
    assert whole.count(b"\n") == 500
    target = tmp_path / "n1.out"
    target.write_bytes(whole[:1000])
    assert admin.download_output(task.task_id, "n1", target) == len(whole) - 1000
    assert target.read_bytes() == whole
    buffer = io.BytesIO()
    admin.download_output(task.task_id, "n1", buffer)
    assert buffer.getvalue() == whole


def test_cancel_ends_a_running_task_cancelled(admin: Client, lab: str) -> None:
    task = admin.executor("test").start({"cluster_name": lab, "target_nodes": ["n1"], "sleep": 30})
    assert admin.cancel(task.task_id).task_id == task.task_id
    final = admin.wait(task.task_id, timeout=60, interval=0.1)
    assert final.status == "cancelled" and final.results[0].reason == "cancelled"


def test_wait_gives_up_after_its_timeout(admin: Client, lab: str) -> None:
    task = admin.executor("test").start({"cluster_name": lab, "target_nodes": ["n1"], "sleep": 30})
    with pytest.raises(TimeoutError):
        admin.wait(task.task_id, timeout=0.3, interval=0.1)
    admin.cancel(task.task_id)


def test_workflows_wait_for_approval_and_resume(admin: Client, lab: str) -> None:
    flow = admin.workflows.create(
        "gated",
        {
            "steps": [
                {"id": "gate", "type": "approval", "message": "go?"},
                {"id": "work", "type": "test", "depends_on": ["gate"]},
            ]
        },
    )
    assert admin.workflows.get(flow.id).definition["steps"][0]["id"] == "gate"
    assert admin.workflows.list(q="gated").items[0].step_count == 2
    for decide, expected in (
        (admin.workflows.approve, "completed"),
        (admin.workflows.reject, "failed"),
    ):
        task = admin.workflows.execute(flow.id, lab, target_nodes=["n1"])
        # Once the stored step state says running, the approval it waits for is recorded (the
        # engine records it, then stores and announces the step), so it can be decided.
        for _ in range(300):
            steps = admin.workflows.status(task.task_id).steps or []
            if any(s["id"] == "gate" and s["status"] == "running" for s in steps):
                break
            time.sleep(0.05)
        with pytest.raises(NotFound):
            decide(task.task_id, "work")
        assert decide(task.task_id, "gate", "ok").step_id == "gate"
        assert admin.wait(task.task_id, timeout=60, interval=0.1).status == expected
    resumed = admin.workflows.resume(task.task_id)
    assert resumed.resumed_from == task.task_id
    admin.cancel(resumed.task_id)  # it waits at the gate again


def test_scripts_content_and_runs(admin: Client, lab: str) -> None:
    script = admin.scripts.create("hello", "echo hello $WHO", language="shell",
                                  parameters=[{"name": "WHO", "default": "world"}])  # fmt: skip
    assert admin.scripts.get(script.id).content == "echo hello $WHO"


def test_audit_plugins_and_metrics(admin: Client, lab: str) -> None:
    # A task of its own, started and cancelled: the entries do not come from earlier tests.
    body = {"cluster_name": lab, "target_nodes": ["n1"], "sleep": 60}
    task_id = admin.executor("test").start(body).task_id
    admin.cancel(task_id)
    entries = [e for e in admin.audit(action="task").items if e.target == task_id]
    assert {"task.start", "task.cancel"} <= {e.action for e in entries}
    assert any(
        p.name.endswith("TestExecutorPlugin") or "test" in p.contributes.get("executors", [])
        for p in admin.plugins()
    )
    assert "knm_tasks" in admin.metrics()


def test_errors_carry_the_envelope_and_map_to_classes(
    server: KnmProcess, admin: Client, lab: str
) -> None:
    with Client(server.base_url) as anonymous, pytest.raises(Unauthorized) as missing:
        anonymous.me()
    assert missing.value.code == 401 and missing.value.message == "unauthorized"
    admin.create_user("vera", "vera-password", "viewer")
    with Client(server.base_url) as vera:
        vera.login("vera", "vera-password")
        with pytest.raises(Forbidden) as low:
            vera.create_user("x", "password-123")
        assert low.value.code == 403 and "requires role" in low.value.error
    with pytest.raises(NotFound) as unknown:
        admin.task("test-exec-1-zzzzzz")
    assert unknown.value.code == 404
    with pytest.raises(Conflict):
        admin.create_user("vera", "vera-password")
    with pytest.raises(BadRequest) as bad:
        admin.executor("test").start({"cluster_name": lab, "target_nodes": ["n1"], "sleep": "x"})
    assert "sleep" in bad.value.error
    credential = admin.create_credential("ssh-lab", "root", "password", password="pw-123456")
    with pytest.raises(ValidationFailed) as dangerous:
        admin.ssh.execute(lab, "rm -rf /", target_nodes=["n1"], credential_id=credential.id)
    assert dangerous.value.code == 422 and "dangerous command" in dangerous.value.error


def test_a_disabled_feature_is_its_own_error(admin: Client, lab: str) -> None:
    admin.update_settings("test", enabled=False)
    try:
        with pytest.raises(FeatureDisabled) as off:
            admin.executor("test").start({"cluster_name": lab, "target_nodes": ["n1"]})
        assert off.value.code == 403 and "test" in off.value.error
    finally:
        admin.update_settings("test", enabled=True)


def test_repeated_failed_logins_are_rate_limited_with_retry_after(server: KnmProcess) -> None:
    with Client(server.base_url) as client:
        for _ in range(2):
            with pytest.raises(Unauthorized):
                client.login("mallory", "wrong-password")
        with pytest.raises(RateLimited) as limited:
            client.login("mallory", "wrong-password")
    assert limited.value.code == 429 and limited.value.retry_after > 0


def test_an_unreachable_server_is_a_transport_error() -> None:
    from knm.client import TransportError
    from knm.testing.process import free_port

    with (
        Client(f"http://127.0.0.1:{free_port()}", timeout=2) as client,
        pytest.raises(TransportError) as down,
    ):
        client.features()
    assert down.value.code == 0
