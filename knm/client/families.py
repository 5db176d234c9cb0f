"""Endpoint families: versioned content (playbooks, scripts, workflows) and executors (ssh,
ansible, scripts, workflows, k8s, and any plugin's through ``ExecutorApi``).

``client.scripts`` and ``client.workflows`` are both: their content lives under the same route
as their executor.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Protocol, TypeVar

from knm.client import models as m
from knm.client.calls import (
    Call,
    body,
    history_page,
    idempotency,
    nothing,
    one,
    paged,
    query,
    started,
    task_status,
)

T = TypeVar("T")


class _Doer(Protocol):
    def _do(self, call: Call[T]) -> T: ...


def _targets(
    cluster_name: str,
    target_nodes: list[str] | None,
    target_selector: str | None,
    **fields: Any,
) -> dict[str, Any]:
    return body(
        cluster_name=cluster_name,
        target_nodes=target_nodes,
        target_selector=target_selector,
        **fields,
    )


class ContentApi:
    """List, read, create, change, delete, version and clone one kind of content."""

    def __init__(self, owner: _Doer, route: str, plural: str, body_field: str = "content"):
        self._owner = owner
        self.route = route
        self.plural = plural
        self.body_field = body_field

    def _do(self, call: Call[T]) -> T:
        return self._owner._do(call)

    def list(
        self,
        *,
        q: str | None = None,
        category: str | None = None,
        tag: str | None = None,
        is_builtin: bool | None = None,
        is_active: bool | None = None,
        page: int = 1,
        page_size: int = 20,
        **filters: Any,
    ) -> m.Page[m.ContentItem]:
        params = query(
            q=q,
            category=category,
            tag=tag,
            is_builtin=is_builtin,
            is_active=is_active,
            page=page,
            page_size=page_size,
            **filters,
        )
        return self._do(Call("GET", self.route, paged(m.ContentItem, self.plural), params=params))

    def get(self, item_id: int) -> m.ContentItem:
        return self._do(Call("GET", f"{self.route}/{item_id}", one(m.ContentItem)))

    def create(self, name: str, body: Any, **fields: Any) -> m.ContentItem:
        """Create an item; ``body`` is its ``content`` (text) or ``definition`` (workflows);
        ``fields``: description, category, tags, is_active, and the kind's own."""
        payload = {"name": name, self.body_field: body, **fields}
        return self._do(Call("POST", self.route, one(m.ContentItem), json=payload))

    def update(self, item_id: int, **fields: Any) -> m.ContentItem:
        """Change the fields given; ``version=`` makes the change conditional (409 when the
        item moved on meanwhile)."""
        return self._do(Call("PUT", f"{self.route}/{item_id}", one(m.ContentItem), json=fields))

    def delete(self, item_id: int) -> None:
        return self._do(Call("DELETE", f"{self.route}/{item_id}", nothing))

    def versions(
        self, item_id: int, *, page: int = 1, page_size: int = 20
    ) -> m.Page[m.ContentVersion]:
        params = query(page=page, page_size=page_size)
        return self._do(
            Call(
                "GET",
                f"{self.route}/{item_id}/versions",
                paged(m.ContentVersion, "versions"),
                params=params,
            )
        )

    def version(self, item_id: int, version: int) -> m.ContentVersion:
        path = f"{self.route}/{item_id}/versions/{version}"
        return self._do(Call("GET", path, one(m.ContentVersion)))

    def clone(self, item_id: int, name: str | None = None) -> m.ContentItem:
        payload = body(name=name)
        return self._do(
            Call("POST", f"{self.route}/{item_id}/clone", one(m.ContentItem), json=payload)
        )


class ExecutorApi:
    """The routes every executor has: start, status, cancel, rerun, history."""

    def __init__(self, owner: _Doer, route: str, start_path: str = "execute"):
        self._owner = owner
        self.base = f"/automation/{route}"
        self.start_path = start_path

    def _do(self, call: Call[T]) -> T:
        return self._owner._do(call)

    def start(
        self, payload: dict[str, Any], *, idempotency_key: str | None = None
    ) -> m.TaskStarted:
        """Start a task with the executor's request body as given."""
        return self._do(
            Call(
                "POST",
                f"{self.base}/{self.start_path}",
                started,
                json=payload,
                headers=idempotency(idempotency_key),
            )
        )

    def status(self, task_id: str) -> m.TaskStatus:
        return self._do(Call("GET", f"{self.base}/status/{task_id}", task_status))

    def cancel(self, task_id: str) -> m.CancelResult:
        return self._do(Call("POST", f"{self.base}/cancel/{task_id}", one(m.CancelResult)))

    def rerun(self, task_id: str, *, only_failed: bool = True) -> m.TaskStarted:
        payload = {"only_failed": only_failed}
        return self._do(Call("POST", f"{self.base}/rerun/{task_id}", started, json=payload))

    def history(
        self,
        *,
        cluster_name: str | None = None,
        status: str | None = None,
        start_date: date | None = None,
        end_date: date | None = None,
        include_children: bool | None = None,
        page: int = 1,
        page_size: int = 20,
    ) -> m.Page[m.TaskSummary]:
        params = query(
            cluster_name=cluster_name,
            status=status,
            start_date=start_date,
            end_date=end_date,
            include_children=include_children,
            page=page,
            page_size=page_size,
        )
        return self._do(Call("GET", f"{self.base}/history", history_page, params=params))


class SshApi(ExecutorApi):
    def __init__(self, owner: _Doer) -> None:
        super().__init__(owner, "ssh")

    def execute(
        self,
        cluster_name: str,
        command: str,
        *,
        target_nodes: list[str] | None = None,
        target_selector: str | None = None,
        credential_id: int | None = None,
        sudo: bool | None = None,
        idempotency_key: str | None = None,
        **options: Any,
    ) -> m.TaskStarted:
        """Run ``command`` on every target node; ``options``: timeout, deadline, batch_size,
        max_failures."""
        payload = _targets(
            cluster_name,
            target_nodes,
            target_selector,
            command=command,
            credential_id=credential_id,
            sudo=sudo,
            **options,
        )
        return self.start(payload, idempotency_key=idempotency_key)

    def host_keys(
        self, *, cluster: str | None = None, page: int = 1, page_size: int = 20
    ) -> m.Page[m.HostKey]:
        params = query(cluster=cluster, page=page, page_size=page_size)
        return self._do(
            Call("GET", f"{self.base}/host-keys", paged(m.HostKey, "host_keys"), params=params)
        )

    def pin_host_key(self, cluster: str, node: str, public_key: str) -> m.HostKey:
        payload = {"public_key": public_key}
        path = f"{self.base}/host-keys/{cluster}/{node}"
        return self._do(Call("PUT", path, one(m.HostKey), json=payload))

    def forget_host_key(self, cluster: str, node: str) -> None:
        return self._do(Call("DELETE", f"{self.base}/host-keys/{cluster}/{node}", nothing))


class AnsibleApi(ExecutorApi):
    def __init__(self, owner: _Doer) -> None:
        super().__init__(owner, "ansible", start_path="run")

    def run(
        self,
        playbook_id: int,
        cluster_name: str,
        *,
        target_nodes: list[str] | None = None,
        target_selector: str | None = None,
        credential_id: int | None = None,
        extra_vars: dict[str, Any] | None = None,
        extra_args: str | None = None,
        idempotency_key: str | None = None,
        **options: Any,
    ) -> m.TaskStarted:
        payload = _targets(
            cluster_name,
            target_nodes,
            target_selector,
            playbook_id=playbook_id,
            credential_id=credential_id,
            extra_vars=extra_vars,
            extra_args=extra_args,
            **options,
        )
        return self.start(payload, idempotency_key=idempotency_key)


class ScriptsApi(ContentApi, ExecutorApi):
    """The script library (``list``, ``get``, ``create``, ...) and script runs (``execute``)."""

    def __init__(self, owner: _Doer) -> None:
        ContentApi.__init__(self, owner, "/automation/scripts", "scripts")
        ExecutorApi.__init__(self, owner, "scripts")

    def execute(
        self,
        script_id: int,
        cluster_name: str,
        *,
        target_nodes: list[str] | None = None,
        target_selector: str | None = None,
        credential_id: int | None = None,
        parameters: dict[str, str] | None = None,
        idempotency_key: str | None = None,
        **options: Any,
    ) -> m.TaskStarted:
        payload = _targets(
            cluster_name,
            target_nodes,
            target_selector,
            script_id=script_id,
            credential_id=credential_id,
            parameters=parameters,
            **options,
        )
        return self.start(payload, idempotency_key=idempotency_key)


class WorkflowsApi(ContentApi, ExecutorApi):
    """Workflow definitions, runs, and their approvals."""

    def __init__(self, owner: _Doer) -> None:
        ContentApi.__init__(self, owner, "/automation/workflows", "workflows", "definition")
        ExecutorApi.__init__(self, owner, "workflows")

    def execute(
        self,
        workflow_id: int,
        cluster_name: str,
        *,
        target_nodes: list[str] | None = None,
        target_selector: str | None = None,
        credential_id: int | None = None,
        parameters: dict[str, str] | None = None,
        idempotency_key: str | None = None,
        **options: Any,
    ) -> m.TaskStarted:
        payload = _targets(
            cluster_name,
            target_nodes,
            target_selector,
            workflow_id=workflow_id,
            credential_id=credential_id,
            parameters=parameters,
            **options,
        )
        return self.start(payload, idempotency_key=idempotency_key)

    def approve(self, task_id: str, step_id: str, comment: str = "") -> m.Decision:
        payload = {"step_id": step_id, "comment": comment}
        return self._do(
            Call("POST", f"{self.base}/approve/{task_id}", one(m.Decision), json=payload)
        )

    def reject(self, task_id: str, step_id: str, comment: str = "") -> m.Decision:
        payload = {"step_id": step_id, "comment": comment}
        return self._do(
            Call("POST", f"{self.base}/reject/{task_id}", one(m.Decision), json=payload)
        )

    def resume(self, task_id: str, parameters: dict[str, str] | None = None) -> m.TaskStarted:
        """A new task that skips the steps this failed or cancelled one completed."""
        payload = body(parameters=parameters)
        return self._do(Call("POST", f"{self.base}/resume/{task_id}", started, json=payload))


class K8sApi(ExecutorApi):
    def __init__(self, owner: _Doer) -> None:
        super().__init__(owner, "k8s")

    def execute(
        self,
        action: str,
        cluster_name: str,
        *,
        target_nodes: list[str] | None = None,
        target_selector: str | None = None,
        params: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
        **options: Any,
    ) -> m.TaskStarted:
        """A node action (``cordon``, ``uncordon``, ``drain``, ``label``, ``taint``, ...)."""
        payload = _targets(
            cluster_name, target_nodes, target_selector, action=action, params=params, **options
        )
        return self.start(payload, idempotency_key=idempotency_key)


class Families:
    """The families a client has, built around its ``_do``."""

    def _families(self) -> None:
        owner: Any = self
        self.playbooks = ContentApi(owner, "/automation/ansible/playbooks", "playbooks")
        self.scripts = ScriptsApi(owner)
        self.workflows = WorkflowsApi(owner)
        self.ssh = SshApi(owner)
        self.ansible = AnsibleApi(owner)
        self.k8s = K8sApi(owner)

    def executor(self, route: str, start_path: str = "execute") -> ExecutorApi:
        """Any executor by route, e.g. a plugin's (``client.executor("test")``)."""
        owner: Any = self
        return ExecutorApi(owner, route, start_path)


__all__ = [
    "AnsibleApi",
    "ContentApi",
    "ExecutorApi",
    "K8sApi",
    "ScriptsApi",
    "SshApi",
    "WorkflowsApi",
    "task_status",
]
