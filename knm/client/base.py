"""What the sync and async clients share: every endpoint that is one request and one answer.

An endpoint method builds a ``Call`` (``knm.client.calls``) and hands it to ``self._do``: the
sync client performs it and returns the result, the async client returns an awaitable of it. So
each endpoint is written once; its annotation names the result the sync client returns (the
async one awaits to it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date, datetime
from typing import Any, TypeVar

import msgspec

from knm.client import models as m
from knm.client.calls import (
    Call,
    body,
    check_raw,
    cluster,
    history_page,
    idempotency,
    nothing,
    one,
    paged,
    parse,
    query,
    route_of,
    same,
    started,
    task_status,
)
from knm.client.notifications import NotificationCalls
from knm.client.schedules import ScheduleCalls
from knm.client.windows import WindowCalls

T = TypeVar("T")


def normalize_prefix(prefix: str) -> str:
    return "/" + prefix.strip("/") if prefix.strip("/") else ""


class Endpoints(WindowCalls, ScheduleCalls, NotificationCalls):
    """Every endpoint that is one request and one answer (see the module docstring), and what
    both clients do around sending one: where it goes, with which headers and body, and what
    the answer means. Only the sending differs between them."""

    url: str
    prefix: str
    token: str | None

    def _address(self, url: str, token: str | None, prefix: str) -> None:
        self.url = url.rstrip("/")
        self.prefix = normalize_prefix(prefix)
        self.token = token

    def _path(self, call: Call[Any]) -> str:
        root = self.prefix.removesuffix("/api/v1") if call.outside_api else self.prefix
        return root + call.path

    def _headers(self, extra: dict[str, str]) -> dict[str, str]:
        headers = {"Accept": "application/json", **extra}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers

    def _request(self, call: Call[Any]) -> tuple[str, dict[str, str], bytes | None]:
        """The path, headers and body ``call`` is sent with."""
        headers = self._headers(call.headers)
        content = None
        if call.json is not None:
            content = msgspec.json.encode(call.json)
            headers["Content-Type"] = "application/json"
        return self._path(call), headers, content

    @staticmethod
    def _result(
        call: Call[T],
        status: int,
        reason: str,
        headers: Mapping[str, str],
        content: bytes,
        text: Callable[[], str],
    ) -> T:
        """What the answer to ``call`` means: its result, or the ``KnmError`` it carries.
        ``text`` decodes the body as the sending library reads its charset."""
        retry_after = headers.get("retry-after")
        if call.raw:
            check_raw(status, content, reason, retry_after)
            return call.decode(text())
        return call.decode(parse(status, content, reason, retry_after))

    def _output_request(
        self, task_id: str, node: str, stream: str, start: int
    ) -> tuple[str, dict[str, str], dict[str, str]]:
        """The path, query and headers of a node's stored output from byte ``start``."""
        headers = self._headers({"Range": f"bytes={start}-"} if start else {})
        return f"{self.prefix}/tasks/{task_id}/output", {"node": node, "stream": stream}, headers

    # --- auth -----------------------------------------------------------------------------

    def _logged_in(self, data: Any) -> m.Login:
        login = msgspec.convert(data, m.Login)
        self.token = login.token
        return login

    def login(self, username: str, password: str) -> m.Login:
        """Log in; the client then uses the token (the password is not kept)."""
        return self._do(
            Call(
                "POST",
                "/auth/login",
                self._logged_in,
                json={"username": username, "password": password},
            )
        )

    def refresh(self) -> m.Login:
        """A fresh JWT for the current one (not for API tokens); the client switches to it."""
        return self._do(Call("POST", "/auth/refresh", self._logged_in))

    def me(self) -> m.User:
        return self._do(Call("GET", "/auth/me", one(m.User)))

    def change_password(self, current_password: str, new_password: str) -> None:
        payload = {"current_password": current_password, "new_password": new_password}
        return self._do(Call("PUT", "/auth/password", nothing, json=payload))

    # --- users and tokens -----------------------------------------------------------------

    def users(self, *, page: int = 1, page_size: int = 20) -> m.Page[m.User]:
        params = query(page=page, page_size=page_size)
        return self._do(Call("GET", "/users", paged(m.User, "users"), params=params))

    def user(self, user_id: int) -> m.User:
        return self._do(Call("GET", f"/users/{user_id}", one(m.User)))

    def create_user(self, username: str, password: str, role: str = "viewer") -> m.User:
        payload = {"username": username, "password": password, "role": role}
        return self._do(Call("POST", "/users", one(m.User), json=payload))

    def update_user(
        self, user_id: int, *, role: str | None = None, disabled: bool | None = None
    ) -> m.User:
        payload = body(role=role, disabled=disabled)
        return self._do(Call("PUT", f"/users/{user_id}", one(m.User), json=payload))

    def reset_password(self, user_id: int, password: str) -> m.User:
        payload = {"password": password}
        return self._do(Call("PUT", f"/users/{user_id}/password", one(m.User), json=payload))

    def tokens(self, *, page: int = 1, page_size: int = 20) -> m.Page[m.ApiToken]:
        params = query(page=page, page_size=page_size)
        return self._do(Call("GET", "/tokens", paged(m.ApiToken, "tokens"), params=params))

    def create_token(
        self, name: str, *, role: str | None = None, expires_at: datetime | None = None
    ) -> m.NewApiToken:
        payload = body(name=name, role=role, expires_at=expires_at and expires_at.isoformat())
        return self._do(Call("POST", "/tokens", one(m.NewApiToken), json=payload))

    def revoke_token(self, token_id: int) -> None:
        return self._do(Call("DELETE", f"/tokens/{token_id}", nothing))

    # --- features -------------------------------------------------------------------------

    def features(self) -> dict[str, dict[str, bool]]:
        """The public switches (no token needed)."""
        return self._do(Call("GET", "/features", same))

    def settings(self) -> dict[str, Any]:
        """Every switch and executor setting (admin)."""
        return self._do(Call("GET", "/features/automation", same))

    def set_enabled(self, enabled: bool) -> dict[str, Any]:
        """The master switch (admin)."""
        payload = {"enabled": enabled}
        return self._do(Call("PUT", "/features/automation/enabled", same, json=payload))

    def update_settings(self, kind: str, **fields: Any) -> dict[str, Any]:
        """Change an executor's settings (``enabled``, ``timeout``, ...); admin."""
        return self._do(Call("PUT", f"/features/automation/{kind}", same, json=fields))

    # --- credentials ----------------------------------------------------------------------

    def credentials(self, *, page: int = 1, page_size: int = 20) -> m.Page[m.Credential]:
        params = query(page=page, page_size=page_size)
        return self._do(
            Call("GET", "/credentials", paged(m.Credential, "credentials"), params=params)
        )

    def credential(self, credential_id: int) -> m.Credential:
        return self._do(Call("GET", f"/credentials/{credential_id}", one(m.Credential)))

    def create_credential(
        self,
        name: str,
        username: str,
        auth_type: str,
        *,
        password: str | None = None,
        private_key: str | None = None,
        passphrase: str | None = None,
        port: int | None = None,
        description: str = "",
    ) -> m.Credential:
        payload = body(
            name=name,
            username=username,
            auth_type=auth_type,
            password=password,
            private_key=private_key,
            passphrase=passphrase,
            port=port,
            description=description,
        )
        return self._do(Call("POST", "/credentials", one(m.Credential), json=payload))

    def update_credential(self, credential_id: int, **fields: Any) -> m.Credential:
        """Change what is given; a secret given as None or "" is removed."""
        return self._do(
            Call("PUT", f"/credentials/{credential_id}", one(m.Credential), json=fields)
        )

    def delete_credential(self, credential_id: int) -> None:
        return self._do(Call("DELETE", f"/credentials/{credential_id}", nothing))

    # --- clusters -------------------------------------------------------------------------

    def clusters(self, *, page: int = 1, page_size: int = 20) -> m.Page[m.Cluster]:
        params = query(page=page, page_size=page_size)

        def decode(data: Any) -> m.Page[m.Cluster]:
            return m.Page(data["total"], [cluster(item) for item in data["clusters"]])

        return self._do(Call("GET", "/clusters", decode, params=params))

    def cluster(self, name: str) -> m.Cluster:
        return self._do(Call("GET", f"/clusters/{name}", cluster))

    def create_cluster(self, name: str, kind: str, **fields: Any) -> m.Cluster:
        """Register a cluster: ``kind`` names its provider; its fields (static: ``nodes``)
        follow."""
        payload = {"name": name, "kind": kind, **fields}
        return self._do(Call("POST", "/clusters", cluster, json=payload))

    def update_cluster(self, name: str, **fields: Any) -> m.Cluster:
        return self._do(Call("PUT", f"/clusters/{name}", cluster, json=fields))

    def delete_cluster(self, name: str) -> None:
        return self._do(Call("DELETE", f"/clusters/{name}", nothing))

    def nodes(
        self, cluster_name: str, *, selector: str | None = None, page: int = 1, page_size: int = 100
    ) -> m.Page[m.Node]:
        params = query(selector=selector, page=page, page_size=page_size)
        return self._do(
            Call("GET", f"/clusters/{cluster_name}/nodes", paged(m.Node, "nodes"), params=params)
        )

    # --- tasks of every kind --------------------------------------------------------------

    def tasks(
        self,
        *,
        kind: str | None = None,
        cluster_name: str | None = None,
        status: str | None = None,
        start_date: date | None = None,
        end_date: date | None = None,
        include_children: bool | None = None,
        parent_task_id: str | None = None,
        page: int = 1,
        page_size: int = 20,
    ) -> m.Page[m.TaskSummary]:
        params = query(
            kind=kind,
            cluster_name=cluster_name,
            status=status,
            start_date=start_date,
            end_date=end_date,
            include_children=include_children,
            parent_task_id=parent_task_id,
            page=page,
            page_size=page_size,
        )
        return self._do(Call("GET", "/tasks", history_page, params=params))

    def task(self, task_id: str) -> m.TaskStatus:
        return self._do(Call("GET", f"/tasks/{task_id}", task_status))

    def events(self, task_id: str, *, since: int = 0, limit: int = 1000) -> list[m.Event]:
        params = query(since=since, limit=limit)

        def decode(data: Any) -> list[m.Event]:
            return msgspec.convert(data["entries"], list[m.Event])

        return self._do(Call("GET", f"/tasks/{task_id}/events", decode, params=params))

    def output(
        self,
        task_id: str,
        node: str,
        stream: str = "stdout",
        *,
        start: int | None = None,
        end: int | None = None,
    ) -> str:
        """A node's stored output; ``start``/``end`` (bytes, end exclusive) ask for a range."""
        headers = {}
        if start is not None or end is not None:
            last = "" if end is None else str(end - 1)
            headers["Range"] = f"bytes={start or 0}-{last}"
        return self._do(
            Call(
                "GET",
                f"/tasks/{task_id}/output",
                same,
                params=query(node=node, stream=stream),
                headers=headers,
                raw=True,
            )
        )

    def cancel(self, task_id: str) -> m.CancelResult:
        """Cancel any task (its executor's route is found from the id)."""
        path = f"/automation/{route_of(task_id)}/cancel/{task_id}"
        return self._do(Call("POST", path, one(m.CancelResult)))

    def rerun(
        self, task_id: str, *, only_failed: bool = True, idempotency_key: str | None = None
    ) -> m.TaskStarted:
        """A new task over the failed nodes (``only_failed``) or every node of a finished one."""
        path = f"/automation/{route_of(task_id)}/rerun/{task_id}"
        payload = {"only_failed": only_failed}
        headers = idempotency(idempotency_key)
        return self._do(Call("POST", path, started, json=payload, headers=headers))

    # --- administration -------------------------------------------------------------------

    def audit(
        self,
        *,
        user: str | None = None,
        action: str | None = None,
        target: str | None = None,
        start_date: date | None = None,
        end_date: date | None = None,
        page: int = 1,
        page_size: int = 20,
    ) -> m.Page[m.AuditEntry]:
        params = query(
            user=user,
            action=action,
            target=target,
            start_date=start_date,
            end_date=end_date,
            page=page,
            page_size=page_size,
        )
        return self._do(Call("GET", "/audit", paged(m.AuditEntry, "entries"), params=params))

    def plugins(self) -> list[m.PluginInfo]:
        return self._do(
            Call("GET", "/plugins", lambda d: msgspec.convert(d["plugins"], list[m.PluginInfo]))
        )

    def metrics(self) -> str:
        """The Prometheus text (``/metrics`` beside the API)."""
        return self._do(Call("GET", "/metrics", same, raw=True, outside_api=True))
