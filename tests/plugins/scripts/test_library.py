"""The script library: syntax checks per language, parameter rules, the command policy, the
size limit, and lists without content."""

from __future__ import annotations

from typing import Any

import pytest

from knm.testing.client import ApiClient, assert_envelope

from .conftest import SCRIPTS, Maker

BUILTIN_NAMES = {
    "system info", "disk usage", "disk cleanup", "collect logs", "performance snapshot",
    "port check", "kubelet health", "container runtime health",
}  # fmt: skip


async def _post(client: ApiClient, headers: dict[str, str], **body: Any) -> Any:
    body = {"name": "a script", "content": "echo hi\n", **body}
    return await client.post(SCRIPTS, json=body, headers=headers)


async def test_a_script_is_created_read_and_listed_without_its_content(
    knm_client: ApiClient, admin_headers: dict[str, str], make_script: Maker
) -> None:
    params = [{"name": "PORT", "description": "port", "default": "8080", "required": False,
               "secret": False, "pattern": "[0-9]+"}]  # fmt: skip
    script = await make_script("echo $PORT\n", parameters=params, tags=["net"])
    assert (script["language"], script["version"], script["is_builtin"]) == ("shell", 1, False)
    assert script["parameters"] == params
    one = assert_envelope(
        await knm_client.get(f"{SCRIPTS}/{script['id']}", headers=admin_headers), 200
    )
    assert one["data"]["content"] == "echo $PORT\n"
    listed = assert_envelope(
        await knm_client.get(SCRIPTS, params={"tag": "net"}, headers=admin_headers), 200
    )["data"]
    assert listed["total"] == 1
    assert "content" not in listed["scripts"][0]
    assert listed["scripts"][0]["parameters"] == params


async def test_the_language_filter_and_the_builtins(
    knm_client: ApiClient, admin_headers: dict[str, str], make_script: Maker
) -> None:
    await make_script("print('hi')\n", language="python")
    python = assert_envelope(
        await knm_client.get(SCRIPTS, params={"language": "python"}, headers=admin_headers), 200
    )["data"]
    assert python["total"] >= 1 and {s["language"] for s in python["scripts"]} == {"python"}
    builtins = assert_envelope(
        await knm_client.get(
            SCRIPTS, params={"is_builtin": True, "page_size": 100}, headers=admin_headers
        ),
        200,
    )["data"]["scripts"]
    assert {s["name"] for s in builtins} == BUILTIN_NAMES
    assert all(s["parameters"] for s in builtins)


async def test_a_builtin_is_read_only_and_can_be_cloned(
    knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    found = assert_envelope(
        await knm_client.get(SCRIPTS, params={"q": "port check"}, headers=admin_headers), 200
    )["data"]["scripts"][0]
    path = f"{SCRIPTS}/{found['id']}"
    assert_envelope(
        await knm_client.put(path, json={"content": "true"}, headers=admin_headers), 409
    )
    assert_envelope(await knm_client.delete(path, headers=admin_headers), 409)
    copy = assert_envelope(await knm_client.post(f"{path}/clone", headers=admin_headers), 201)
    assert copy["data"]["name"] == "port check (copy)"
    assert copy["data"]["parameters"] == found["parameters"]


@pytest.mark.parametrize(
    ("body", "said"),
    [
        ({"content": "if true; then echo\n"}, "bash -n: line"),
        ({"content": "echo 'unclosed\n"}, "bash -n:"),
        ({"content": "def f(:\n    pass\n", "language": "python"}, "python syntax error"),
        ({"content": "   \n"}, "content must not be empty"),
        ({"parameters": [{"name": "port"}]}, "names must match ^[A-Z_][A-Z0-9_]*$"),
        ({"parameters": [{"name": "1X"}]}, "names must match"),
        ({"parameters": [{"name": "A-B"}]}, "names must match"),
        ({"parameters": [{"name": "A"}, {"name": "A"}]}, "'A' is declared twice"),
        ({"parameters": [{"name": "A", "pattern": "([0-9"}]}, "not a usable regular expression"),
        ({"parameters": [{"name": "A", "pattern": "[0-9]+", "default": "x"}]},
         "the default does not match its pattern"),
        ({"content": "echo start\nrm -rf /\n"}, "dangerous command blocked: rm -rf /"),
        ({"content": "cd /tmp && find /etc -delete\n"}, "dangerous command blocked"),
    ],
)  # fmt: skip
async def test_invalid_scripts_are_422_saying_why(
    knm_client: ApiClient, admin_headers: dict[str, str], body: dict[str, Any], said: str
) -> None:
    response = await _post(knm_client, admin_headers, **body)
    assert said in assert_envelope(response, 422)["error"]


async def test_python_is_not_judged_by_the_shell_policy(
    knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    content = "# rm -rf /\nprint('rm -rf /')\n"
    response = await _post(knm_client, admin_headers, name="py", content=content, language="python")
    assert_envelope(response, 201)


async def test_an_unknown_parameter_field_is_400(
    knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    response = await _post(knm_client, admin_headers, parameters=[{"name": "A", "typo": 1}])
    assert_envelope(response, 400)


async def test_content_over_one_mebibyte_is_413_on_create_and_update(
    knm_client: ApiClient, admin_headers: dict[str, str], make_script: Maker
) -> None:
    big = "#" * (1024 * 1024) + "\n"
    response = await _post(knm_client, admin_headers, name="big", content=big)
    assert "at most 1048576" in assert_envelope(response, 413)["error"]
    script = await make_script("echo small\n")
    response = await knm_client.put(
        f"{SCRIPTS}/{script['id']}", json={"content": big}, headers=admin_headers
    )
    assert_envelope(response, 413)


async def test_an_update_is_validated_and_a_new_parameter_list_is_a_new_version(
    knm_client: ApiClient, admin_headers: dict[str, str], make_script: Maker
) -> None:
    script = await make_script("echo $A\n")
    path = f"{SCRIPTS}/{script['id']}"
    bad = await knm_client.put(path, json={"content": "fi\n"}, headers=admin_headers)
    assert "bash -n" in assert_envelope(bad, 422)["error"]
    params = [{"name": "A", "default": "1"}]
    ok = await knm_client.put(path, json={"parameters": params}, headers=admin_headers)
    assert assert_envelope(ok, 200)["data"]["version"] == 2
    old = assert_envelope(await knm_client.get(f"{path}/versions/1", headers=admin_headers), 200)
    assert old["data"]["parameters"] == []


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({"content": "echo hi\nfi\n"}, {"field": "content", "line": 2, "column": None}),
        ({"content": "x = 1\ndef f(:\n    pass\n", "language": "python"},
         {"field": "content", "line": 2, "column": 7}),
        ({"content": "echo start\n  rm -rf /\n"}, {"field": "content", "line": 2, "column": 3}),
        ({"parameters": [{"name": "port"}]}, {"field": "parameters", "line": None,
                                              "column": None}),
        ({"name": ""}, {"field": "name", "line": None, "column": None}),
    ],
)  # fmt: skip
async def test_a_refused_script_says_where_each_problem_is(
    knm_client: ApiClient,
    admin_headers: dict[str, str],
    body: dict[str, Any],
    detail: dict[str, Any],
) -> None:
    response = await _post(knm_client, admin_headers, **body)
    answer = assert_envelope(response, 422)
    (first,) = answer["details"]
    assert {k: first[k] for k in ("field", "line", "column")} == detail
    assert first["message"] == answer["error"]
