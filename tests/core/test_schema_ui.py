"""The ``/schema`` UI works offline with Authorize, and the OpenAPI document declares auth, an
area tag and a stable id for every operation."""

from __future__ import annotations

import re
from typing import Any

import openapi_spec_validator
import pytest

from knm.testing.client import ApiClient

#: Routes anyone may call.
PUBLIC = {("post", "/api/v1/auth/login"), ("get", "/api/v1/features"), ("get", "/healthz"),
          ("get", "/readyz")}  # fmt: skip


@pytest.fixture(scope="module")
async def document(knm_client: ApiClient) -> dict[str, Any]:
    response = await knm_client.http.get("/schema/openapi.json")
    assert response.status_code == 200
    return response.json()


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in ("get", "post", "put", "delete", "patch")
    ]


async def test_the_ui_loads_nothing_from_outside_knm(knm_client: ApiClient) -> None:
    for path in ("/schema", "/schema/swagger"):
        page = await knm_client.http.get(path)
        assert page.status_code == 200 and "SwaggerUIBundle" in page.text
        assert not re.search(r"""(src|href)=['"]https?://""", page.text), page.text
        assets = re.findall(r"""(?:src|href)=['"](/schema/assets/[^'"]+)['"]""", page.text)
        assert len(assets) == 4
        for asset in assets:
            served = await knm_client.http.get(asset)
            assert served.status_code == 200 and served.content, asset


async def test_a_bearer_scheme_is_declared_and_every_operation_says_whether_it_needs_it(
    document: dict[str, Any],
) -> None:
    scheme = document["components"]["securitySchemes"]["bearerAuth"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    for method, path, operation in _operations(document):
        expected = [{}] if (method, path) in PUBLIC else [{"bearerAuth": []}]
        assert operation["security"] == expected, (method, path)


async def test_every_operation_has_an_area_tag_and_a_unique_id_free_of_the_mount_path(
    document: dict[str, Any],
) -> None:
    ids = []
    for method, path, operation in _operations(document):
        assert operation["tags"] and "knm" not in operation["tags"], (method, path)
        assert not operation["operationId"].startswith("ApiV1"), (method, path)
        ids.append(operation["operationId"])
    assert len(ids) == len(set(ids))
    tags = {tag for _, _, operation in _operations(document) for tag in operation["tags"]}
    assert {"auth", "users", "clusters", "credentials", "tasks", "features"} <= tags


async def test_the_document_is_valid_openapi(document: dict[str, Any]) -> None:
    openapi_spec_validator.validate(document)


def _data_schema(document: dict[str, Any], method: str, path: str) -> dict[str, Any]:
    """The schema of ``data`` in the operation's success answer, references followed."""
    schemas = document["components"]["schemas"]
    responses = document["paths"][path][method]["responses"]
    answer = responses.get("200") or responses["201"]
    envelope = answer["content"]["application/json"]["schema"]
    envelope = schemas[envelope["$ref"].rsplit("/", 1)[-1]]
    data = envelope["properties"]["data"]
    if "$ref" not in data:
        data = next(d for d in data.get("oneOf", data.get("anyOf", [])) if "$ref" in d)
    return schemas[data["$ref"].rsplit("/", 1)[-1]]


@pytest.mark.parametrize(
    ("route", "own"),
    [("ssh", "command"), ("ansible", "playbook_name"), ("scripts", "script_name"),
     ("workflows", "workflow_name")],
)  # fmt: skip
async def test_execute_and_status_are_typed_with_each_kinds_own_fields(
    document: dict[str, Any], route: str, own: str
) -> None:
    execute = "run" if route == "ansible" else "execute"
    started = _data_schema(document, "post", f"/api/v1/automation/{route}/{execute}")
    assert {"task_id", "status", "start_time", own} <= started["properties"].keys()
    status = _data_schema(document, "get", f"/api/v1/automation/{route}/status/{{task_id}}")
    assert {"task_id", "status", "results", "duration", own} <= status["properties"].keys()


async def test_clusters_document_their_bodies_and_answers(document: dict[str, Any]) -> None:
    for method, path in (("post", "/api/v1/clusters"), ("put", "/api/v1/clusters/{name}")):
        assert "requestBody" in document["paths"][path][method], (method, path)
        answer = _data_schema(document, method, path)
        assert "default_credential_id" in answer["properties"]


async def test_execute_bodies_show_the_contracts_examples(document: dict[str, Any]) -> None:
    for route, field in (("ssh/execute", "command"), ("ansible/run", "playbook_id"),
                         ("scripts/execute", "script_id"),
                         ("workflows/execute", "workflow_id")):  # fmt: skip
        body = document["paths"][f"/api/v1/automation/{route}"]["post"]["requestBody"]
        (example,) = body["content"]["application/json"]["schema"]["examples"]
        assert example["cluster_name"] == "production" and field in example, route


def _untyped(document: dict[str, Any]) -> list[tuple[str, str, str]]:
    """Success responses whose body (or the envelope's ``data``) has no schema a client could
    generate a type from."""
    schemas = document["components"]["schemas"]

    def resolve(schema: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in schema:
            schema = schemas[schema["$ref"].rsplit("/", 1)[-1]]
        return schema

    def typed(schema: dict[str, Any] | None) -> bool:
        if not schema:
            return False
        schema = resolve(schema)
        for key in ("oneOf", "anyOf"):
            if key in schema:
                return all(typed(choice) for choice in schema[key])
        if schema.get("type") == "object":
            return bool(schema.get("properties") or schema.get("additionalProperties"))
        return any(key in schema for key in ("type", "enum", "const"))

    found = []
    for method, path, operation in _operations(document):
        for code, answer in operation["responses"].items():
            if not code.startswith("2"):
                continue
            contents = answer.get("content") or {"": {}}
            for media, body in contents.items():
                schema = body.get("schema")
                if not typed(schema):
                    found.append((method, path, f"{code} {media or 'no content'}"))
                    continue
                data = resolve(schema).get("properties", {}).get("data", "absent")
                if data != "absent" and not typed(data):
                    found.append((method, path, f"{code} data"))
    return found


async def test_every_success_response_is_typed(document: dict[str, Any]) -> None:
    found = _untyped(document)
    assert not found, "\n".join(map(str, found))


async def test_settings_name_each_executors_own_fields_and_text_answers_say_text(
    document: dict[str, Any],
) -> None:
    settings = _data_schema(document, "get", "/api/v1/features/automation")
    assert {"enabled", "ssh"} <= settings["properties"].keys()
    assert settings["properties"]["ssh"]["$ref"].endswith("/SshSettings")
    for path, codes in (("/api/v1/tasks/{task_id}/output", ("200", "206")),
                        ("/metrics", ("200",))):  # fmt: skip
        for code in codes:
            (media,) = document["paths"][path]["get"]["responses"][code]["content"]
            assert media.startswith("text/plain"), (path, code)
