"""There is always an active admin, even when two admins demote or disable each other at the
same moment."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from knm.core.auth import users
from knm.core.db import connect_one
from knm.core.errors import Conflict
from knm.testing.client import ApiClient, assert_envelope
from knm.testing.database import TEST_ADMIN_PASSWORD
from knm.testing.process import KnmProcess
from knm.testing.tasks import eventually

ACTIVE_ADMINS = "SELECT count(*) FROM users WHERE role = 'admin' AND NOT disabled"


async def admin_ids(client: ApiClient, headers: dict[str, str], *names: str) -> list[int]:
    found = []
    for name in names:
        made = await client.create_user(headers, name, "admin")
        found.append(assert_envelope(await client.get("/auth/me", headers=made), 200)["data"]["id"])
    return found


async def change(conn: asyncpg.Connection, user_id: int, **fields: Any) -> None:
    async with conn.transaction():
        await users.update(conn, user_id, **fields)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ({"role": "viewer"}, {"role": "operator"}),
        ({"disabled": True}, {"role": "viewer"}),
        ({"disabled": True}, {"disabled": True}),
    ],
    ids=["demote-demote", "disable-demote", "disable-disable"],
)
async def test_a_change_racing_another_admins_change_waits_and_is_refused(
    knm_client: ApiClient,
    admin_headers: dict[str, str],
    knm_database_url: str,
    first: dict[str, Any],
    second: dict[str, Any],
) -> None:
    others: list[int] = []
    ada, bea = await admin_ids(knm_client, admin_headers, f"ada-{id(first)}", f"bea-{id(first)}")
    one, two, watch = [await connect_one(knm_database_url) for _ in range(3)]
    try:
        # Only ada and bea are active admins from here on (the others are enabled again after).
        others = await watch.fetchval(
            "WITH off AS (UPDATE users SET disabled = true"
            " WHERE role = 'admin' AND NOT disabled AND id <> ALL($1::bigint[]) RETURNING id)"
            " SELECT coalesce(array_agg(id), '{}') FROM off",
            [ada, bea],
        )
        assert await watch.fetchval(ACTIVE_ADMINS) == 2
        holding = one.transaction()
        await holding.start()
        await users.update(one, bea, **first)  # ada's change, not yet committed
        racing = asyncio.create_task(change(two, ada, **second))  # bea's, at the same time
        pid = two.get_server_pid()

        async def blocked_or_done() -> bool:
            waiting = await watch.fetchval(
                "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $1", pid
            )
            return racing.done() or bool(waiting)

        await eventually(blocked_or_done)
        await holding.commit()
        with pytest.raises(Conflict):
            await racing
        assert await watch.fetchval(ACTIVE_ADMINS) == 1
    finally:
        await watch.execute(
            "UPDATE users SET disabled = false WHERE id = ANY($1::bigint[])", others
        )
        for conn in (one, two, watch):
            await conn.close()


async def test_two_admins_demoting_each_other_over_http_leave_an_admin(
    tmp_path: Path, knm_fresh_database_url: str
) -> None:
    # A database of its own: the test disables every other admin and leaves one standing.
    server = KnmProcess(
        tmp_path / "knm", knm_fresh_database_url, ["serve"], {"KNM_RUNNER": "false"}
    )
    server.start()
    try:
        async with httpx.AsyncClient(base_url=server.api, timeout=60) as client:

            async def login(name: str, password: str) -> dict[str, str]:
                response = await client.post(
                    "/auth/login", json={"username": name, "password": password}
                )
                return {"Authorization": f"Bearer {response.json()['data']['token']}"}

            root = await login("admin", TEST_ADMIN_PASSWORD)
            ids = {}
            for name in ("amy", "ben"):
                body = {"username": name, "password": "password-123", "role": "admin"}
                ids[name] = (await client.post("/users", json=body, headers=root)).json()["data"][
                    "id"
                ]
            amy, ben = await login("amy", "password-123"), await login("ben", "password-123")
            # Only amy and ben are active admins from here on.
            listed = (await client.get("/users?page_size=100", headers=amy)).json()["data"]["users"]
            for user in listed:
                if user["role"] == "admin" and user["id"] not in ids.values():
                    answer = await client.put(
                        f"/users/{user['id']}", json={"disabled": True}, headers=amy
                    )
                    assert answer.status_code == 200
            for _ in range(5):
                answers = await asyncio.gather(
                    client.put(f"/users/{ids['ben']}", json={"role": "viewer"}, headers=amy),
                    client.put(f"/users/{ids['amy']}", json={"role": "viewer"}, headers=ben),
                )
                codes = sorted(a.status_code for a in answers)
                # One wins; the other is refused (409), or no longer an admin at all (403).
                assert codes in ([200, 403], [200, 409]), [a.text for a in answers]
                survivor = amy if answers[0].status_code == 200 else ben
                loser = "ben" if survivor is amy else "amy"
                users_now = (await client.get("/users", headers=survivor)).json()["data"]["users"]
                admins = [u for u in users_now if u["role"] == "admin" and not u["disabled"]]
                assert len(admins) == 1
                again = await client.put(
                    f"/users/{ids[loser]}", json={"role": "admin"}, headers=survivor
                )
                assert again.status_code == 200
    finally:
        server.stop()
