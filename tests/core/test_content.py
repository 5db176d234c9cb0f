"""Versioned content: every kind a plugin declares gets the same routes and rules."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any, Literal

import asyncpg
import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from litestar import get

from knm.core.auth.guards import VIEWER
from knm.core.content import (
    BuiltinContent,
    ContentDraft,
    ContentItem,
    ContentKind,
    get_by_name,
    get_runnable,
    sync_builtins,
)
from knm.core.content import store as content_store
from knm.core.errors import Conflict, NotFound
from knm.core.hookspecs import hookimpl
from knm.testing.client import ApiClient, assert_envelope

NOTES = "/test/notes"
RECIPES = "/test/recipes"


class Step(msgspec.Struct, forbid_unknown_fields=True):
    id: str
    action: str


class RecipeBody(msgspec.Struct, forbid_unknown_fields=True):
    steps: list[Step]


class RecipeParameter(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    description: str = ""
    default: str | None = None


class RecipeExtras(msgspec.Struct, kw_only=True):
    language: Literal["shell", "python"] = "shell"
    parameters: list[RecipeParameter] = msgspec.field(default_factory=list)


class StepCount(msgspec.Struct):
    step_count: int


def validate_note(knm: Any, draft: ContentDraft) -> list[str]:
    problems = []
    if "forbidden" in draft.body:
        problems.append("content must not say forbidden")
    if draft.name.startswith("bad"):
        problems.append("name must not start with bad")
    return problems


async def validate_recipe(knm: Any, draft: ContentDraft) -> list[str]:
    ids = [step.id for step in draft.body.steps]
    return ["step ids must be unique"] if len(ids) != len(set(ids)) else []


NOTE = ContentKind(kind="note", plural="notes", route=NOTES, label="Note", validate=validate_note)
RECIPE = ContentKind(
    kind="recipe",
    plural="recipes",
    route=RECIPES,
    label="Recipe",
    body_field="definition",
    body_type=RecipeBody,
    list_includes_body=False,
    extras=RecipeExtras,
    versioned=("language", "parameters"),
    filters=("language",),
    summary_type=StepCount,
    summary=lambda item: StepCount(len(item.body.steps)),
    validate=validate_recipe,
    max_body_bytes=1024,
)
GATED = ContentKind(
    kind="gated", plural="gated_items", route="/test/gated", label="Gated", feature="scripts"
)


@get("/test/notes/history", guards=[VIEWER])
async def notes_history() -> dict[str, str]:
    return {"route": "history"}


class ContentTestPlugin:
    def __init__(self) -> None:
        self.builtin_note_body = "shipped body"

    @hookimpl
    def knm_content_kinds(self) -> list[ContentKind]:
        return [NOTE, RECIPE, GATED]

    @hookimpl
    def knm_routes(self) -> list[Any]:
        return [notes_history]

    @hookimpl
    def knm_builtin_content(self) -> list[BuiltinContent]:
        return [
            BuiltinContent(
                kind="note",
                name="Builtin Note",
                body=self.builtin_note_body,
                description="shipped with the test plugin",
                tags=["shipped"],
            ),
            BuiltinContent(
                kind="recipe",
                name="Builtin Recipe",
                body=RecipeBody([Step("s1", "cordon")]),
                extras=RecipeExtras(language="python"),
            ),
        ]


PLUGIN = ContentTestPlugin()


@pytest.fixture(scope="module")
def knm_extra_plugins() -> list[Any]:
    return [PLUGIN]


@pytest.fixture(scope="module")
async def operator(knm_client: ApiClient, admin_headers: dict[str, str]) -> dict[str, str]:
    return await knm_client.create_user(admin_headers, "olga", "operator")


@pytest.fixture(scope="module")
async def viewer(knm_client: ApiClient, admin_headers: dict[str, str]) -> dict[str, str]:
    return await knm_client.create_user(admin_headers, "vic", "viewer")


async def _create(
    client: ApiClient, headers: dict[str, str], route: str = NOTES, **fields: Any
) -> dict[str, Any]:
    response = await client.post(route, json=fields, headers=headers)
    return assert_envelope(response, 201)["data"]


async def _on_app_loop(client: ApiClient, fn: Any, *args: Any) -> Any:
    """Run ``fn(*args)`` on the loop that owns the app's database pool."""
    portal = client.http.blocking_portal  # type: ignore[attr-defined]
    return await asyncio.to_thread(portal.call, fn, *args)


def _recipe(name: str, steps: int = 1, **extra: Any) -> dict[str, Any]:
    body = {"steps": [{"id": f"s{i}", "action": "cordon"} for i in range(steps)]}
    return {"name": name, "definition": body, **extra}


async def _twins(
    client: ApiClient, headers: dict[str, str], name: str, content: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A note and a recipe with the same id, whatever the module's other tests made before:
    the kind whose sequence lags gets items until the two meet."""
    note = await _create(client, headers, name=f"{name} note", content=content)
    recipe = await _create(client, headers, RECIPES, **_recipe(f"{name} recipe"))
    number = 0
    while note["id"] != recipe["id"]:
        number += 1
        if note["id"] < recipe["id"]:
            note = await _create(client, headers, name=f"{name} note {number}", content=content)
        else:
            recipe = await _create(client, headers, RECIPES, **_recipe(f"{name} recipe {number}"))
    return note, recipe


# --- CRUD -----------------------------------------------------------------------------------


async def test_create_answers_201_with_every_item_field(
    knm_client: ApiClient, operator: dict[str, str]
) -> None:
    note = await _create(
        knm_client, operator, name="Disk check", content="df -h", category="ops", tags=["disk"]
    )
    assert set(note) == {
        "id", "name", "description", "content", "category", "is_builtin", "is_active",
        "version", "tags", "created_at", "updated_at", "created_by", "updated_by",
    }  # fmt: skip
    assert note["version"] == 1 and note["is_builtin"] is False and note["is_active"] is True
    assert note["created_by"] == "olga" and note["created_at"].endswith("Z")
    fetched = assert_envelope(await knm_client.get(f"{NOTES}/{note['id']}", headers=operator), 200)
    assert fetched["data"] == note


async def test_a_missing_item_is_404_naming_the_label_and_id(
    knm_client: ApiClient, viewer: dict[str, str]
) -> None:
    body = assert_envelope(await knm_client.get(f"{NOTES}/999", headers=viewer), 404)
    assert body["error"] == "Note ID 999 not found"
    assert_envelope(await knm_client.get(f"{NOTES}/{2**70}", headers=viewer), 404)


async def test_delete_removes_the_item(knm_client: ApiClient, operator: dict[str, str]) -> None:
    note = await _create(knm_client, operator, name="Short-lived", content="x")
    assert_envelope(await knm_client.delete(f"{NOTES}/{note['id']}", headers=operator), 200)
    assert_envelope(await knm_client.get(f"{NOTES}/{note['id']}", headers=operator), 404)
    assert_envelope(await knm_client.delete(f"{NOTES}/{note['id']}", headers=operator), 404)


async def test_viewer_reads_but_cannot_create_edit_delete_or_clone(
    knm_client: ApiClient, operator: dict[str, str], viewer: dict[str, str]
) -> None:
    note = await _create(knm_client, operator, name="Viewer target", content="x")
    path = f"{NOTES}/{note['id']}"
    assert_envelope(await knm_client.get(path, headers=viewer), 200)
    assert_envelope(await knm_client.get(NOTES, headers=viewer), 200)
    assert_envelope(
        await knm_client.post(NOTES, json={"name": "v", "content": "x"}, headers=viewer), 403
    )
    assert_envelope(await knm_client.put(path, json={"content": "y"}, headers=viewer), 403)
    assert_envelope(await knm_client.delete(path, headers=viewer), 403)
    assert_envelope(await knm_client.post(f"{path}/clone", headers=viewer), 403)
    assert_envelope(await knm_client.get(NOTES), 401)


async def test_every_mutation_is_audited_without_the_body(
    knm_client: ApiClient, operator: dict[str, str], admin_headers: dict[str, str]
) -> None:
    note = await _create(knm_client, operator, name="Audited", content="secret-ish body")
    await knm_client.put(f"{NOTES}/{note['id']}", json={"content": "v2"}, headers=operator)
    clone = await knm_client.post(f"{NOTES}/{note['id']}/clone", headers=operator)
    copy_id = assert_envelope(clone, 201)["data"]["id"]
    await knm_client.delete(f"{NOTES}/{note['id']}", headers=operator)

    async def audited(item_id: int) -> list[dict[str, Any]]:
        response = await knm_client.get(
            "/audit", params={"target": f"note:{item_id}"}, headers=admin_headers
        )
        assert "secret-ish" not in response.text
        return assert_envelope(response, 200)["data"]["entries"]

    entries = await audited(note["id"])
    assert [e["action"] for e in entries] == ["note.delete", "note.update", "note.create"]
    assert all(e["username"] == "olga" for e in entries)
    (cloned,) = await audited(copy_id)
    assert cloned["action"] == "note.clone" and cloned["detail"]["source"] == note["id"]


async def test_a_kinds_routes_leave_its_plugins_own_static_paths_alone(
    knm_client: ApiClient, viewer: dict[str, str]
) -> None:
    response = await knm_client.get(f"{NOTES}/history", headers=viewer)
    assert response.status_code == 200 and response.json() == {"route": "history"}


async def test_a_kind_behind_a_feature_switch_is_403_while_it_is_off(
    knm_client: ApiClient, admin_headers: dict[str, str], viewer: dict[str, str]
) -> None:
    assert_envelope(await knm_client.get("/test/gated", headers=viewer), 200)
    switch = "/features/automation/scripts"
    assert_envelope(
        await knm_client.put(switch, json={"enabled": False}, headers=admin_headers), 200
    )
    try:
        # At once: the switch changed through this process, whose cache it invalidates.
        body = assert_envelope(await knm_client.get("/test/gated", headers=viewer), 403)
        assert body["message"] == "feature disabled" and "scripts_enabled" in body["error"]
        assert_envelope(await knm_client.get("/test/gated"), 401)
    finally:
        await knm_client.put(switch, json={"enabled": True}, headers=admin_headers)


# --- request shapes -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "field", ["is_builtin", "id", "created_at", "updated_at", "created_by", "colour"]
)
async def test_server_owned_and_unknown_fields_are_refused_with_400(
    knm_client: ApiClient, operator: dict[str, str], field: str
) -> None:
    created = await _create(knm_client, operator, name=f"Shape {field}", content="x")
    body = {"name": f"Sneaky {field}", "content": "x", field: True}
    error = assert_envelope(await knm_client.post(NOTES, json=body, headers=operator), 400)["error"]
    assert field in error
    put = await knm_client.put(f"{NOTES}/{created['id']}", json={field: True}, headers=operator)
    assert_envelope(put, 400)


async def test_a_create_without_the_body_field_is_400_naming_it(
    knm_client: ApiClient, operator: dict[str, str]
) -> None:
    response = await knm_client.post(NOTES, json={"name": "No body"}, headers=operator)
    assert "content" in assert_envelope(response, 400)["error"]
    response = await knm_client.post(RECIPES, json={"name": "No def"}, headers=operator)
    assert "definition" in assert_envelope(response, 400)["error"]


async def test_duplicate_names_are_409_ignoring_case(
    knm_client: ApiClient, operator: dict[str, str]
) -> None:
    first = await _create(knm_client, operator, name="Reboot Node", content="x")
    response = await knm_client.post(
        NOTES, json={"name": "reboot node", "content": "y"}, headers=operator
    )
    assert "already exists" in assert_envelope(response, 409)["error"]
    other = await _create(knm_client, operator, name="Other", content="x")
    rename = await knm_client.put(
        f"{NOTES}/{other['id']}", json={"name": "REBOOT NODE"}, headers=operator
    )
    assert_envelope(rename, 409)
    # The same name in another kind is fine.
    await _create(knm_client, operator, RECIPES, **_recipe("Reboot Node"))
    assert first["name"] == "Reboot Node"


async def test_validation_problems_are_reported_together_in_one_422(
    knm_client: ApiClient, operator: dict[str, str]
) -> None:
    response = await knm_client.post(
        NOTES, json={"name": "bad idea", "content": "forbidden words"}, headers=operator
    )
    error = assert_envelope(response, 422)["error"]
    assert "content must not say forbidden" in error and "name must not start with bad" in error
    blank = await knm_client.post(
        NOTES, json={"name": "  ", "content": "x", "category": "", "tags": [""]}, headers=operator
    )
    error = assert_envelope(blank, 422)["error"]
    assert "name" in error and "category" in error and "tag" in error


async def test_async_validators_are_awaited(
    knm_client: ApiClient, operator: dict[str, str]
) -> None:
    body = {"name": "Twice", "definition": {"steps": [{"id": "a", "action": "x"}] * 2}}
    response = await knm_client.post(RECIPES, json=body, headers=operator)
    assert assert_envelope(response, 422)["error"] == "step ids must be unique"


async def test_an_oversized_body_is_413(knm_client: ApiClient, operator: dict[str, str]) -> None:
    response = await knm_client.post(RECIPES, json=_recipe("Huge", steps=100), headers=operator)
    assert "at most 1024" in assert_envelope(response, 413)["error"]
    small = await _create(knm_client, operator, RECIPES, **_recipe("Small"))
    grown = {"definition": _recipe("x", steps=100)["definition"]}
    assert_envelope(
        await knm_client.put(f"{RECIPES}/{small['id']}", json=grown, headers=operator), 413
    )


async def test_nul_characters_are_422_not_a_database_error(
    knm_client: ApiClient, operator: dict[str, str]
) -> None:
    response = await knm_client.post(
        NOTES, json={"name": "nul", "content": "a\x00b"}, headers=operator
    )
    assert "NUL" in assert_envelope(response, 422)["error"]
    assert_envelope(await knm_client.get(NOTES, params={"q": "a\x00"}, headers=operator), 400)


# --- update and versions --------------------------------------------------------------------


async def test_put_changes_only_the_fields_it_carries(
    knm_client: ApiClient, operator: dict[str, str]
) -> None:
    note = await _create(
        knm_client, operator, name="Merge me", content="body", description="d", tags=["a"]
    )
    response = await knm_client.put(
        f"{NOTES}/{note['id']}", json={"category": "net"}, headers=operator
    )
    updated = assert_envelope(response, 200)["data"]
    assert updated["category"] == "net"
    assert (updated["content"], updated["description"], updated["tags"]) == ("body", "d", ["a"])


async def test_every_successful_put_answers_version_plus_one(
    knm_client: ApiClient, operator: dict[str, str]
) -> None:
    note = await _create(knm_client, operator, name="Versioned", content="v1")
    path = f"{NOTES}/{note['id']}"
    meta = assert_envelope(
        await knm_client.put(
            path, json={"description": "now described", "is_active": False}, headers=operator
        ),
        200,
    )["data"]
    assert meta["version"] == 2
    same = assert_envelope(
        await knm_client.put(path, json={"content": "v1"}, headers=operator), 200
    )
    assert same["data"]["version"] == 3
    bumped = assert_envelope(
        await knm_client.put(path, json={"content": "v2"}, headers=operator), 200
    )
    assert bumped["data"]["version"] == 4 and bumped["data"]["updated_by"] == "olga"
    refused = await knm_client.put(path, json={"name": ""}, headers=operator)
    assert_envelope(refused, 422)
    current = assert_envelope(await knm_client.get(path, headers=operator), 200)["data"]
    assert current["version"] == 4
    versions = assert_envelope(await knm_client.get(f"{path}/versions", headers=operator), 200)
    assert [v["version"] for v in versions["data"]["versions"]] == [4, 3, 2, 1]


async def test_versions_keep_every_body_newest_first(
    knm_client: ApiClient, operator: dict[str, str]
) -> None:
    note = await _create(knm_client, operator, name="History", content="one")
    path = f"{NOTES}/{note['id']}"
    for text in ("two", "three"):
        await knm_client.put(path, json={"content": text}, headers=operator)
    listing = assert_envelope(await knm_client.get(f"{path}/versions", headers=operator), 200)[
        "data"
    ]
    assert listing["total"] == 3
    assert [v["version"] for v in listing["versions"]] == [3, 2, 1]
    assert set(listing["versions"][0]) == {"version", "created_at", "created_by"}
    first = assert_envelope(await knm_client.get(f"{path}/versions/1", headers=operator), 200)
    assert first["data"]["content"] == "one" and first["data"]["created_by"] == "olga"
    paged = await knm_client.get(
        f"{path}/versions", params={"page": 2, "page_size": 2}, headers=operator
    )
    assert [v["version"] for v in assert_envelope(paged, 200)["data"]["versions"]] == [1]
    assert_envelope(await knm_client.get(f"{path}/versions/9", headers=operator), 404)


async def test_versioned_extras_make_a_new_version_and_are_kept(
    knm_client: ApiClient, operator: dict[str, str]
) -> None:
    recipe = await _create(knm_client, operator, RECIPES, **_recipe("Params"))
    path = f"{RECIPES}/{recipe['id']}"
    params = [{"name": "PORT", "description": "port", "default": "8080"}]
    response = await knm_client.put(path, json={"parameters": params}, headers=operator)
    assert assert_envelope(response, 200)["data"]["version"] == 2
    assert assert_envelope(response, 200)["data"]["parameters"] == params
    old = assert_envelope(await knm_client.get(f"{path}/versions/1", headers=operator), 200)["data"]
    assert old["parameters"] == [] and old["language"] == "shell"
    assert old["definition"] == {"steps": [{"id": "s0", "action": "cordon"}]}


async def test_a_put_with_a_stale_version_is_409(
    knm_client: ApiClient, operator: dict[str, str]
) -> None:
    note = await _create(knm_client, operator, name="Contended", content="v1")
    path = f"{NOTES}/{note['id']}"
    ok_put = await knm_client.put(path, json={"content": "v2", "version": 1}, headers=operator)
    assert assert_envelope(ok_put, 200)["data"]["version"] == 2
    stale = await knm_client.put(path, json={"content": "v3", "version": 1}, headers=operator)
    assert assert_envelope(stale, 409)["error"] == "version mismatch: current is 2"


async def test_concurrent_puts_with_one_version_let_exactly_one_through(
    knm_client: ApiClient, operator: dict[str, str]
) -> None:
    note = await _create(knm_client, operator, name="Raced", content="v1")
    responses = await asyncio.gather(
        *[
            knm_client.put(
                f"{NOTES}/{note['id']}", json={"content": f"by {i}", "version": 1}, headers=operator
            )
            for i in range(5)
        ]
    )
    assert sorted(r.status_code for r in responses) == [200, 409, 409, 409, 409]


# --- lists ----------------------------------------------------------------------------------


async def test_lists_filter_search_and_page(
    knm_client: ApiClient, operator: dict[str, str]
) -> None:
    for i in range(5):
        await _create(
            knm_client, operator, name=f"Paged {i}", content="x", category="paging",
            tags=["even"] if i % 2 == 0 else ["odd"], description="Find ME" if i == 3 else "",
        )  # fmt: skip

    async def listed(**params: Any) -> dict[str, Any]:
        response = await knm_client.get(
            NOTES, params={"category": "paging", **params}, headers=operator
        )
        return assert_envelope(response, 200)["data"]

    everything = await listed()
    assert everything["total"] == 5 and everything["notes"][0]["name"] == "Paged 0"
    page = await listed(page=2, page_size=2)
    assert page["total"] == 5 and [n["name"] for n in page["notes"]] == ["Paged 2", "Paged 3"]
    assert (await listed(tag="even"))["total"] == 3
    assert [n["name"] for n in (await listed(q="find me"))["notes"]] == ["Paged 3"]
    assert (await listed(q="PAGED 4"))["total"] == 1
    assert (await listed(is_builtin="true"))["total"] == 0
    assert_envelope(await knm_client.get(NOTES, params={"page_size": 101}, headers=operator), 400)


async def test_inactive_items_are_listed_and_filterable(
    knm_client: ApiClient, operator: dict[str, str]
) -> None:
    await _create(
        knm_client, operator, name="Dormant", content="x", category="dormancy", is_active=False
    )
    response = await knm_client.get(
        NOTES, params={"category": "dormancy", "is_active": "false"}, headers=operator
    )
    assert [n["name"] for n in assert_envelope(response, 200)["data"]["notes"]] == ["Dormant"]


async def test_a_list_can_leave_the_body_out_and_add_computed_fields(
    knm_client: ApiClient, operator: dict[str, str]
) -> None:
    await _create(
        knm_client, operator, RECIPES, **_recipe("Three steps", steps=3, language="python")
    )
    await _create(knm_client, operator, RECIPES, **_recipe("Shell one"))
    response = await knm_client.get(
        RECIPES, params={"language": "python", "q": "three"}, headers=operator
    )
    listed = assert_envelope(response, 200)["data"]
    assert listed["total"] == 1
    (item,) = listed["recipes"]
    assert "definition" not in item and item["step_count"] == 3 and item["language"] == "python"
    bad = await knm_client.get(RECIPES, params={"language": "cobol"}, headers=operator)
    assert_envelope(bad, 400)


# --- builtins -------------------------------------------------------------------------------


async def _builtin(client: ApiClient, headers: dict[str, str]) -> dict[str, Any]:
    response = await client.get(NOTES, params={"is_builtin": "true"}, headers=headers)
    (item,) = assert_envelope(response, 200)["data"]["notes"]
    return item


async def test_builtins_are_installed_at_startup(
    knm_client: ApiClient, viewer: dict[str, str]
) -> None:
    note = await _builtin(knm_client, viewer)
    assert note["name"] == "Builtin Note" and note["content"] == "shipped body"
    assert note["is_builtin"] is True and note["created_by"] is None
    recipes = await knm_client.get(RECIPES, params={"is_builtin": "true"}, headers=viewer)
    (recipe,) = assert_envelope(recipes, 200)["data"]["recipes"]
    assert recipe["language"] == "python" and recipe["step_count"] == 1


async def test_builtins_are_read_only_and_say_to_clone(
    knm_client: ApiClient, operator: dict[str, str]
) -> None:
    note = await _builtin(knm_client, operator)
    path = f"{NOTES}/{note['id']}"
    put = assert_envelope(
        await knm_client.put(path, json={"content": "mine"}, headers=operator), 409
    )
    assert "builtin" in put["error"] and "clone" in put["error"]
    deleted = assert_envelope(await knm_client.delete(path, headers=operator), 409)
    assert "builtin" in deleted["error"]


async def test_clone_makes_an_editable_copy(
    knm_client: ApiClient, operator: dict[str, str]
) -> None:
    note = await _builtin(knm_client, operator)
    path = f"{NOTES}/{note['id']}/clone"
    copy = assert_envelope(await knm_client.post(path, headers=operator), 201)["data"]
    assert copy["name"] == "Builtin Note (copy)" and copy["is_builtin"] is False
    assert copy["content"] == note["content"] and copy["version"] == 1 and copy["id"] != note["id"]
    again = assert_envelope(await knm_client.post(path, headers=operator), 201)["data"]
    assert again["name"] == "Builtin Note (copy 2)"
    named = await knm_client.post(path, json={"name": "My note"}, headers=operator)
    assert assert_envelope(named, 201)["data"]["name"] == "My note"
    assert_envelope(await knm_client.post(path, json={"name": "my NOTE"}, headers=operator), 409)
    assert_envelope(await knm_client.post(path, json={"nom": "x"}, headers=operator), 400)
    edited = await knm_client.put(
        f"{NOTES}/{copy['id']}", json={"content": "mine"}, headers=operator
    )
    assert assert_envelope(edited, 200)["data"]["version"] == 2


async def test_builtin_sync_keeps_ids_and_versions_a_changed_body(
    knm_client: ApiClient, knm_app: Any, operator: dict[str, str]
) -> None:
    knm = knm_app.state["knm"]
    before = await _builtin(knm_client, operator)
    await _on_app_loop(knm_client, sync_builtins, knm)
    unchanged = await _builtin(knm_client, operator)
    assert (unchanged["id"], unchanged["version"]) == (before["id"], before["version"])
    PLUGIN.builtin_note_body = "shipped body, improved"
    try:
        await _on_app_loop(knm_client, sync_builtins, knm)
        changed = await _builtin(knm_client, operator)
        assert changed["id"] == before["id"] and changed["version"] == before["version"] + 1
        assert changed["content"] == "shipped body, improved"
        old = await knm_client.get(
            f"{NOTES}/{before['id']}/versions/{before['version']}", headers=operator
        )
        assert assert_envelope(old, 200)["data"]["content"] == "shipped body"
    finally:
        # As a release shipping the old body again would: other tests see the builtin as shipped.
        PLUGIN.builtin_note_body = "shipped body"
        await _on_app_loop(knm_client, sync_builtins, knm)


# --- look-ups for executors -----------------------------------------------------------------


async def test_get_runnable_refuses_missing_and_inactive_items(
    knm_client: ApiClient, knm_app: Any, operator: dict[str, str]
) -> None:
    knm = knm_app.state["knm"]
    active = await _create(knm_client, operator, name="Runnable", content="x")
    inactive = await _create(
        knm_client, operator, name="Switched off", content="x", is_active=False
    )
    item = await _on_app_loop(knm_client, get_runnable, knm, "note", active["id"])
    assert isinstance(item, ContentItem) and item.body == "x"
    with pytest.raises(Conflict, match=r"Switched off.*inactive"):
        await _on_app_loop(knm_client, get_runnable, knm, "note", inactive["id"])
    with pytest.raises(NotFound, match="Note ID 99999 not found"):
        await _on_app_loop(knm_client, get_runnable, knm, NOTE, 99999)
    recipe = await _on_app_loop(knm_client, get_by_name, knm, "recipe", "builtin RECIPE")
    assert recipe.body == RecipeBody([Step("s1", "cordon")])
    assert recipe.extras == RecipeExtras(language="python")


async def test_the_openapi_document_names_each_kinds_structs(
    knm_client: ApiClient,
) -> None:
    response = await knm_client.http.get("/schema/openapi.json")
    document = response.json()
    schemas = document["components"]["schemas"]
    assert {"NoteCreate", "NoteUpdate", "Note", "RecipeList", "RecipeVersion"} <= set(schemas)
    operations = [
        op["operationId"] for item in document["paths"].values() for op in item.values()
        if isinstance(op, dict) and "operationId" in op
    ]  # fmt: skip
    assert len(operations) == len(set(operations))
    assert "recipe_list" in operations


# --- robustness -----------------------------------------------------------------------------

_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=10,
)
_fields = st.fixed_dictionaries(
    {},
    optional={
        "name": st.text(max_size=30) | _json,
        "content": st.text(max_size=50) | _json,
        "definition": _json,
        "description": st.text(max_size=30) | _json,
        "category": st.text(max_size=10) | _json,
        "tags": st.lists(st.text(max_size=10), max_size=4) | _json,
        "is_active": st.booleans() | _json,
        "language": st.sampled_from(["shell", "python", "cobol"]) | _json,
        "parameters": _json,
        "version": st.integers() | _json,
    },
)


@pytest.fixture(scope="module")
async def targets(knm_client: ApiClient, operator: dict[str, str]) -> dict[str, int]:
    note = await _create(knm_client, operator, name="Fuzz target", content="x")
    recipe = await _create(knm_client, operator, RECIPES, **_recipe("Fuzz target"))
    return {NOTES: note["id"], RECIPES: recipe["id"]}


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    body=_fields | _json,
    route=st.sampled_from([NOTES, RECIPES]),
    method=st.sampled_from(["POST", "PUT"]),
)
async def test_no_request_body_makes_a_500(
    knm_client: ApiClient,
    operator: dict[str, str],
    targets: dict[str, int],
    body: Any,
    route: str,
    method: str,
) -> None:
    path = route if method == "POST" else f"{route}/{targets[route]}"
    response = await knm_client.request(method, path, json=body, headers=operator)
    assert response.status_code < 500, response.text
    assert response.json()["code"] == response.status_code


_query = st.fixed_dictionaries(
    {},
    optional={
        name: st.text(max_size=12) | st.integers().map(str)
        for name in (
            "category",
            "is_builtin",
            "is_active",
            "tag",
            "q",
            "language",
            "page",
            "page_size",
        )
    },
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(params=_query, route=st.sampled_from([NOTES, RECIPES]))
async def test_no_list_query_makes_a_500(
    knm_client: ApiClient, viewer: dict[str, str], params: dict[str, str], route: str
) -> None:
    response = await knm_client.get(route, params=params, headers=viewer)
    assert response.status_code in (200, 400), response.text
    assert response.json()["code"] == response.status_code


# --- ids per kind -------------------------------------------------------------------------------


async def test_each_kind_numbers_its_items_from_1_builtins_first(
    knm_client: ApiClient, operator: dict[str, str]
) -> None:
    notes = assert_envelope(
        await knm_client.get(NOTES, params={"is_builtin": "true"}, headers=operator), 200
    )["data"]["notes"]
    recipes = assert_envelope(
        await knm_client.get(RECIPES, params={"is_builtin": "true"}, headers=operator), 200
    )["data"]["recipes"]
    assert [(n["name"], n["id"]) for n in notes] == [("Builtin Note", 1)]
    assert [(r["name"], r["id"]) for r in recipes] == [("Builtin Recipe", 1)]
    note = await _create(knm_client, operator, name="Numbered note", content="x")
    recipe = await _create(knm_client, operator, RECIPES, **_recipe("Numbered recipe"))
    # No other test of the module makes a gated item: this one is the kind's first.
    gated = await _create(knm_client, operator, "/test/gated", name="First gated", content="x")
    assert gated["id"] == 1
    # Same id, other kind: each URL finds its own kind's item.
    both, twin = await _twins(knm_client, operator, "Twin", "x")
    assert both["id"] > note["id"] and twin["id"] > recipe["id"]
    shared = both["id"]
    got_note = assert_envelope(await knm_client.get(f"{NOTES}/{shared}", headers=operator), 200)
    got_recipe = assert_envelope(await knm_client.get(f"{RECIPES}/{shared}", headers=operator), 200)
    assert got_note["data"]["name"] == both["name"] and got_recipe["data"]["name"] == twin["name"]
    assert "content" in got_note["data"] and "definition" in got_recipe["data"]


async def test_a_refused_create_does_not_use_up_an_id(
    knm_client: ApiClient, operator: dict[str, str]
) -> None:
    first = await _create(knm_client, operator, name="Gapless one", content="x")
    assert_envelope(
        await knm_client.post(
            NOTES, json={"name": "gapless ONE", "content": "x"}, headers=operator
        ),
        409,
    )
    second = await _create(knm_client, operator, name="Gapless two", content="x")
    assert second["id"] == first["id"] + 1


async def test_versions_of_items_sharing_an_id_stay_apart(
    knm_client: ApiClient, operator: dict[str, str]
) -> None:
    note, recipe = await _twins(knm_client, operator, "Versioned twin", "note v1")
    await knm_client.put(f"{NOTES}/{note['id']}", json={"content": "note v2"}, headers=operator)
    versions = assert_envelope(
        await knm_client.get(f"{RECIPES}/{recipe['id']}/versions", headers=operator), 200
    )["data"]
    assert versions["total"] == 1
    old = assert_envelope(
        await knm_client.get(f"{NOTES}/{note['id']}/versions/1", headers=operator), 200
    )["data"]
    assert old["content"] == "note v1"


async def test_migrating_an_install_with_shared_ids_keeps_them_and_continues_per_kind(
    knm_server_url: str, tmp_path: Path
) -> None:
    from knm.core import db
    from knm.testing.database import drop_database, with_database

    before = tmp_path / "core"
    before.mkdir()
    for path in db.CORE_MIGRATIONS.iterdir():
        if path.suffix == ".sql" and path.name < "0011":
            (before / path.name).write_text(path.read_text())
    name = f"knm_ids_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(knm_server_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    try:
        conn = await db.connect_one(with_database(knm_server_url, name))
        try:
            await db.migrate(conn, [db.MigrationSet("core", before)])
            for kind, item in [("playbook", "p"), ("script", "s"), ("playbook", "q")]:
                item_id = await conn.fetchval(
                    "INSERT INTO content_items (kind, name, body) VALUES ($1, $2, '\"x\"') "
                    "RETURNING id",
                    kind,
                    item,
                )
                await conn.execute(
                    "INSERT INTO content_versions (item_id, version, body) VALUES ($1, 1, '\"x\"')",
                    item_id,
                )
            applied = await db.migrate(conn, [db.MigrationSet("core", db.CORE_MIGRATIONS)])
            assert "core/0011_content_ids_per_kind.sql" in applied
            rows = await conn.fetch("SELECT kind, name, id FROM content_items ORDER BY id")
            assert [tuple(r) for r in rows] == [
                ("playbook", "p", 1),
                ("script", "s", 2),
                ("playbook", "q", 3),
            ]
            kinds = {
                k: ContentKind(kind=k, plural=f"{k}s", route=f"/{k}s", label=k)
                for k in ("playbook", "script", "workflow")
            }
            async with conn.transaction():
                draft = ContentDraft(kind="x", id=None, name="new", description="", body="y",
                                     category="general", tags=[], is_active=True, extras=None)  # fmt: skip
                added = {
                    k: (await content_store.insert(conn, spec, draft, username=None)).id
                    for k, spec in kinds.items()
                }
            assert added == {"playbook": 4, "script": 3, "workflow": 1}
            versions = await conn.fetch(
                "SELECT kind, item_id, version FROM content_versions ORDER BY kind, item_id"
            )
            assert ("script", 2, 1) in [tuple(v) for v in versions]
            assert ("script", 3, 1) in [tuple(v) for v in versions]
            await conn.execute("DELETE FROM content_items WHERE kind = 'script' AND id = 2")
            assert not await conn.fetchval(
                "SELECT count(*) FROM content_versions WHERE kind = 'script' AND item_id = 2"
            )
        finally:
            await conn.close()
    finally:
        await drop_database(knm_server_url, name)


async def test_every_problem_comes_with_its_field_in_details(
    knm_client: ApiClient, operator: dict[str, str]
) -> None:
    body = {"name": "bad name", "content": "forbidden", "tags": [""]}
    answer = assert_envelope(await knm_client.post(NOTES, json=body, headers=operator), 422)
    assert [d["field"] for d in answer["details"]] == ["tags"]
    body = {"name": "bad name", "content": "forbidden words"}
    answer = assert_envelope(await knm_client.post(NOTES, json=body, headers=operator), 422)
    assert [(d["field"], d["line"], d["column"]) for d in answer["details"]] == [
        ("content", None, None),
        ("name", None, None),
    ]
    assert "; ".join(d["message"] for d in answer["details"]) == answer["error"]
