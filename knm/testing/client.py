"""A thin helper over an HTTP client for tests: the API prefix, login, and envelope checks."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import httpx


class ApiClient:
    def __init__(self, http: httpx.AsyncClient, prefix: str = "/api/v1") -> None:
        self.http = http
        self.prefix = prefix

    def url(self, path: str) -> str:
        return f"{self.prefix}{path}"

    async def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return await self.http.request(method, self.url(path), **kwargs)

    async def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.request("GET", path, **kwargs)

    async def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.request("POST", path, **kwargs)

    async def put(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.request("PUT", path, **kwargs)

    async def delete(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.request("DELETE", path, **kwargs)

    async def on_app(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        """Run ``fn(*args)`` on the app's own event loop (the one that owns its database pool);
        the test client serves the app from another thread."""
        portal = getattr(self.http, "blocking_portal", None)
        if portal is None:
            return await fn(*args)
        return await asyncio.to_thread(portal.call, fn, *args)

    async def login(self, username: str, password: str) -> str:
        response = await self.post("/auth/login", json={"username": username, "password": password})
        assert response.status_code == 200, response.text
        return response.json()["data"]["token"]

    async def headers_for(self, username: str, password: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {await self.login(username, password)}"}

    async def create_user(
        self, admin: dict[str, str], username: str, role: str, password: str = "password-123"
    ) -> dict[str, str]:
        """Create a user and return headers logged in as them."""
        response = await self.post(
            "/users", json={"username": username, "password": password, "role": role}, headers=admin
        )
        assert response.status_code == 201, response.text
        return await self.headers_for(username, password)


def assert_envelope(response: httpx.Response, status: int) -> dict[str, Any]:
    """The body of ``response`` after checking the contract's envelope and status."""
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == status
    assert isinstance(body["message"], str)
    if status >= 400:
        assert isinstance(body["error"], str) and body["error"]
        assert "Traceback" not in response.text
    return body
