"""Credentials: CRUD, value rules, roles, write-only secrets sealed at rest, and no leaks."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import asyncssh
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from knm.core import db
from knm.core.credentials import DecryptedCredential, load_credential
from knm.core.crypto import DecryptionError
from knm.core.errors import NotFound
from knm.testing.client import ApiClient, assert_envelope

PASSPHRASE = "correct horse battery staple"
SHOWN = {
    "id",
    "name",
    "description",
    "username",
    "auth_type",
    "port",
    "has_password",
    "has_private_key",
    "has_passphrase",
    "allowed_roles",
    "allowed_users",
    "allowed_clusters",
    "created_at",
    "updated_at",
}


@pytest.fixture(scope="module")
def ssh_key() -> asyncssh.SSHKey:
    return asyncssh.generate_private_key("ssh-ed25519")


@pytest.fixture(scope="module")
def openssh_key(ssh_key: asyncssh.SSHKey) -> str:
    return ssh_key.export_private_key().decode()


@pytest.fixture(scope="module")
def encrypted_pem_key(ssh_key: asyncssh.SSHKey) -> str:
    return ssh_key.export_private_key("pkcs8-pem", passphrase=PASSPHRASE).decode()


@pytest.fixture(scope="module")
async def knm(knm_app: Any, knm_client: ApiClient, knm_database_url: str) -> AsyncIterator[Any]:
    """The app's runtime as ``load_credential`` sees it, on a pool of the tests' own event loop
    (the app's pool lives on the test client's loop)."""
    app_knm = knm_app.state["knm"]
    pool = await db.connect(knm_database_url, min_size=1, max_size=4)
    yield SimpleNamespace(pool=pool, config=app_knm.config, _secret=app_knm._secret)
    await pool.close()


@pytest.fixture(scope="module")
async def viewer(knm_client: ApiClient, admin_headers: dict[str, str]) -> dict[str, str]:
    return await knm_client.create_user(admin_headers, "cred-viewer", "viewer")


@pytest.fixture(scope="module")
async def operator(knm_client: ApiClient, admin_headers: dict[str, str]) -> dict[str, str]:
    return await knm_client.create_user(admin_headers, "cred-operator", "operator")


class Api:
    """The credentials endpoints, as the admin unless told otherwise."""

    def __init__(self, client: ApiClient, headers: dict[str, str]) -> None:
        self.client = client
        self.headers = headers

    async def create(self, headers: dict[str, str] | None = None, **body: Any) -> httpx.Response:
        return await self.client.post("/credentials", json=body, headers=headers or self.headers)

    async def update(
        self, cid: int, headers: dict[str, str] | None = None, **body: Any
    ) -> httpx.Response:
        return await self.client.put(
            f"/credentials/{cid}", json=body, headers=headers or self.headers
        )

    async def created(self, **body: Any) -> dict[str, Any]:
        return assert_envelope(await self.create(**body), 201)["data"]


@pytest.fixture(scope="module")
def api(knm_client: ApiClient, admin_headers: dict[str, str]) -> Api:
    return Api(knm_client, admin_headers)


def password_body(name: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "username": "root",
        "auth_type": "password",
        "password": "s3cret!",
        **extra,
    }


# --- create ----------------------------------------------------------------------------------


async def test_admin_creates_a_password_credential_and_no_secret_comes_back(api: Api) -> None:
    body = assert_envelope(
        await api.create(**password_body("web", description="web nodes", port=2222)), 201
    )
    data = body["data"]
    assert set(data) == SHOWN
    assert data["name"] == "web" and data["username"] == "root" and data["port"] == 2222
    assert (data["has_password"], data["has_private_key"], data["has_passphrase"]) == (
        True,
        False,
        False,
    )
    assert data["created_at"].endswith("Z") or data["created_at"].endswith("+00:00")


async def test_the_port_defaults_to_22(api: Api) -> None:
    assert (await api.created(**password_body("default-port")))["port"] == 22


async def test_an_openssh_private_key_is_accepted(api: Api, openssh_key: str) -> None:
    data = await api.created(
        name="key-plain", username="ubuntu", auth_type="private_key", private_key=openssh_key
    )
    assert (data["has_password"], data["has_private_key"], data["has_passphrase"]) == (
        False,
        True,
        False,
    )


async def test_an_encrypted_key_with_its_passphrase_is_accepted(
    api: Api, knm: Any, encrypted_pem_key: str
) -> None:
    data = await api.created(
        name="key-enc",
        username="ubuntu",
        auth_type="private_key",
        private_key=encrypted_pem_key,
        passphrase=PASSPHRASE,
    )
    assert data["has_passphrase"] is True
    loaded = await load_credential(knm, data["id"])
    assert loaded.private_key == encrypted_pem_key and loaded.passphrase == PASSPHRASE


async def test_an_encrypted_key_with_a_wrong_or_missing_passphrase_is_422(
    api: Api, encrypted_pem_key: str
) -> None:
    body = {"name": "key-bad-pass", "username": "u", "auth_type": "private_key"}
    wrong = assert_envelope(
        await api.create(**body, private_key=encrypted_pem_key, passphrase="not it"), 422
    )
    assert "passphrase" in wrong["error"]
    missing = assert_envelope(await api.create(**body, private_key=encrypted_pem_key), 422)
    assert "passphrase" in missing["error"]


# 16 bcrypt rounds, not 128: each decryption (the test's, and knm's for the wrong and the right
# passphrase) costs a second of CPU at 128, and what is tested is the passphrase, not the KDF.
@pytest.mark.filterwarnings("ignore:.*bcrypt.kdf.. called with only:UserWarning")
async def test_an_encrypted_openssh_key_is_checked_with_its_passphrase(
    api: Api, ssh_key: asyncssh.SSHKey
) -> None:
    key = ssh_key.export_private_key(passphrase=PASSPHRASE, rounds=16).decode()
    body = {
        "name": "key-openssh-enc",
        "username": "u",
        "auth_type": "private_key",
        "private_key": key,
    }
    assert_envelope(await api.create(**body, passphrase="wrong"), 422)
    assert_envelope(await api.create(**body, passphrase=PASSPHRASE), 201)


@pytest.mark.parametrize(
    "key",
    [
        "not a key",
        "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n",
        "   ",
        "key\x00with NUL",
    ],
)
async def test_a_private_key_that_does_not_parse_is_422(api: Api, key: str) -> None:
    body = assert_envelope(
        await api.create(name="bad-key", username="u", auth_type="private_key", private_key=key),
        422,
    )
    assert "private_key" in body["error"]


async def test_a_public_key_is_not_a_private_key(api: Api, ssh_key: asyncssh.SSHKey) -> None:
    public = ssh_key.export_public_key().decode()
    response = await api.create(
        name="pub", username="u", auth_type="private_key", private_key=public
    )
    assert "private_key" in assert_envelope(response, 422)["error"]


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"auth_type": "password"}, "password: required when auth_type is password"),
        ({"auth_type": "password", "password": None}, "password: required"),
        ({"auth_type": "private_key"}, "private_key: required when auth_type is private_key"),
        ({"auth_type": "private_key", "password": "x"}, "private_key: required"),
    ],
)
async def test_a_missing_secret_is_400_naming_the_field(
    api: Api, body: dict[str, Any], needle: str
) -> None:
    full = {"name": "missing-secret", "username": "root", **body}
    assert needle in assert_envelope(await api.create(**full), 400)["error"]


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"auth_type": "password", "password": ""}, "needs a password"),
        ({"auth_type": "private_key", "private_key": "", "password": "x"}, "needs a private_key"),
        ({"auth_type": "password", "password": "x", "passphrase": "y"}, "passphrase"),
        ({"auth_type": "password", "password": "x", "port": 0}, "port"),
        ({"auth_type": "password", "password": "x", "port": 65536}, "port"),
        ({"auth_type": "password", "password": "x", "port": -22}, "port"),
        ({"auth_type": "password", "password": "x", "port": 2**62}, "port"),
        ({"auth_type": "password", "password": "x", "name": "  "}, "name"),
        ({"auth_type": "password", "password": "x", "name": " padded"}, "name"),
        ({"auth_type": "password", "password": "x", "name": "a\nb"}, "name"),
        ({"auth_type": "password", "password": "x", "username": ""}, "username"),
        ({"auth_type": "password", "password": "x", "username": "ro\x00ot"}, "username"),
        ({"auth_type": "password", "password": "x", "description": "nul\x00"}, "description"),
    ],
)
async def test_values_that_break_a_rule_are_422_naming_the_field(
    api: Api, body: dict[str, Any], needle: str
) -> None:
    full = {"name": "rule-check", "username": "root", **body}
    assert needle in assert_envelope(await api.create(**full), 422)["error"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"username": "root", "auth_type": "password", "password": "x"}, "name"),
        ({"name": "n", "auth_type": "password", "password": "x"}, "username"),
        ({"name": "n", "username": "root", "password": "x"}, "auth_type"),
        ({"name": "n", "username": "root", "auth_type": "kerberos"}, "auth_type"),
        ({"name": "n", "username": "root", "auth_type": "password", "password": 5}, "password"),
        (
            {
                "name": "n",
                "username": "root",
                "auth_type": "password",
                "password": "x",
                "port": "22",
            },
            "port",
        ),
        (
            {
                "name": "n",
                "username": "root",
                "auth_type": "password",
                "password": "x",
                "port": 2.5,
            },
            "port",
        ),
        (
            {"name": "n", "username": "root", "auth_type": "password", "password": "x", "extra": 1},
            "extra",
        ),
        ({"name": "n" * 129, "username": "root", "auth_type": "password", "password": "x"}, "name"),
        (
            {
                "name": "n",
                "username": "root",
                "auth_type": "private_key",
                "private_key": "k" * (64 * 1024 + 1),
            },
            "private_key",
        ),
    ],
)
async def test_a_body_of_the_wrong_shape_is_400_naming_the_field(
    api: Api, body: dict[str, Any], field: str
) -> None:
    assert field in assert_envelope(await api.create(**body), 400)["error"]


@pytest.mark.parametrize("raw", [b"", b"not json", b"[]", b"null", b'{"name": '])
async def test_a_body_that_is_not_a_json_object_is_400(
    knm_client: ApiClient, admin_headers: dict[str, str], raw: bytes
) -> None:
    headers = {**admin_headers, "Content-Type": "application/json"}
    assert_envelope(await knm_client.post("/credentials", content=raw, headers=headers), 400)


async def test_a_duplicate_name_is_409_regardless_of_case(api: Api) -> None:
    await api.created(**password_body("dup"))
    assert (
        "already exists" in assert_envelope(await api.create(**password_body("DUP")), 409)["error"]
    )


async def test_a_name_is_free_again_after_its_credential_is_deleted(
    api: Api, knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    first = await api.created(**password_body("reused"))
    assert_envelope(
        await knm_client.delete(f"/credentials/{first['id']}", headers=admin_headers), 200
    )
    second = await api.created(**password_body("reused"))
    assert second["id"] != first["id"]


# --- read ------------------------------------------------------------------------------------


async def test_the_list_pages_and_counts(
    api: Api, knm_client: ApiClient, viewer: dict[str, str]
) -> None:
    for n in range(3):
        await api.created(**password_body(f"paged-{n}"))
    everything = assert_envelope(
        await knm_client.get("/credentials?page_size=100", headers=viewer), 200
    )
    total = everything["data"]["total"]
    assert total == len(everything["data"]["credentials"]) >= 3
    page = assert_envelope(
        await knm_client.get("/credentials?page=2&page_size=2", headers=viewer), 200
    )
    assert page["data"]["total"] == total
    assert [c["id"] for c in page["data"]["credentials"]] == [
        c["id"] for c in everything["data"]["credentials"][2:4]
    ]
    for credential in everything["data"]["credentials"]:
        assert set(credential) == SHOWN
    assert_envelope(await knm_client.get("/credentials?page_size=101", headers=viewer), 400)
    assert_envelope(await knm_client.get("/credentials?page=0", headers=viewer), 400)


async def test_an_unknown_id_is_404_naming_it(
    knm_client: ApiClient, admin_headers: dict[str, str], api: Api
) -> None:
    for response in (
        await knm_client.get("/credentials/999999", headers=admin_headers),
        await api.update(999999, password="x"),
        await knm_client.delete("/credentials/999999", headers=admin_headers),
    ):
        assert assert_envelope(response, 404)["error"] == "Credential ID 999999 not found"


async def test_every_role_reads_but_only_admins_change(
    api: Api, knm_client: ApiClient, viewer: dict[str, str], operator: dict[str, str]
) -> None:
    cid = (await api.created(**password_body("roles")))["id"]
    for headers in (viewer, operator):
        assert_envelope(await knm_client.get("/credentials", headers=headers), 200)
        assert_envelope(await knm_client.get(f"/credentials/{cid}", headers=headers), 200)
        assert_envelope(await api.create(headers=headers, **password_body("nope")), 403)
        assert_envelope(await api.update(cid, headers=headers, description="x"), 403)
        assert_envelope(await knm_client.delete(f"/credentials/{cid}", headers=headers), 403)
    assert_envelope(await knm_client.get("/credentials"), 401)


# --- update ----------------------------------------------------------------------------------


async def test_an_update_changes_only_the_fields_it_carries(api: Api, knm: Any) -> None:
    before = await api.created(**password_body("partial", description="old", port=2200))
    after = assert_envelope(await api.update(before["id"], description="new"), 200)["data"]
    assert after["description"] == "new"
    assert {k: after[k] for k in ("name", "username", "port", "auth_type", "has_password")} == {
        k: before[k] for k in ("name", "username", "port", "auth_type", "has_password")
    }
    loaded = await load_credential(knm, before["id"])
    assert loaded.password == "s3cret!"


async def test_an_update_without_secrets_keeps_the_stored_ones(
    api: Api, knm: Any, encrypted_pem_key: str
) -> None:
    cid = (
        await api.created(
            name="keep",
            username="u",
            auth_type="private_key",
            private_key=encrypted_pem_key,
            passphrase=PASSPHRASE,
            password="sudo-pass",
        )
    )["id"]
    assert_envelope(await api.update(cid, username="deploy", port=2022, name="keep-2"), 200)
    loaded = await load_credential(knm, cid)
    assert (loaded.name, loaded.username, loaded.port) == ("keep-2", "deploy", 2022)
    assert (loaded.private_key, loaded.passphrase, loaded.password) == (
        encrypted_pem_key,
        PASSPHRASE,
        "sudo-pass",
    )


async def test_an_update_replaces_a_secret_it_carries(api: Api, knm: Any) -> None:
    cid = (await api.created(**password_body("replace")))["id"]
    assert_envelope(await api.update(cid, password="brand-new"), 200)
    assert (await load_credential(knm, cid)).password == "brand-new"


async def test_switching_auth_type_needs_the_matching_secret(
    api: Api, knm: Any, openssh_key: str
) -> None:
    cid = (await api.created(**password_body("switch")))["id"]
    assert (
        "needs a private_key"
        in assert_envelope(await api.update(cid, auth_type="private_key"), 422)["error"]
    )
    data = assert_envelope(
        await api.update(cid, auth_type="private_key", private_key=openssh_key, password=None), 200
    )["data"]
    assert (data["auth_type"], data["has_password"], data["has_private_key"]) == (
        "private_key",
        False,
        True,
    )
    loaded = await load_credential(knm, cid)
    assert loaded.password is None and loaded.private_key == openssh_key


async def test_removing_the_secret_the_auth_type_needs_is_422(api: Api, knm: Any) -> None:
    cid = (await api.created(**password_body("remove")))["id"]
    assert_envelope(await api.update(cid, password=None), 422)
    assert_envelope(await api.update(cid, password=""), 422)
    assert (await load_credential(knm, cid)).password == "s3cret!"


async def test_a_new_passphrase_is_checked_against_the_stored_key(
    api: Api, encrypted_pem_key: str
) -> None:
    cid = (
        await api.created(
            name="repass",
            username="u",
            auth_type="private_key",
            private_key=encrypted_pem_key,
            passphrase=PASSPHRASE,
        )
    )["id"]
    assert_envelope(await api.update(cid, passphrase="wrong"), 422)
    assert_envelope(await api.update(cid, passphrase=None), 422)
    assert_envelope(await api.update(cid, passphrase=PASSPHRASE), 200)
    assert_envelope(await api.update(cid, private_key="garbage"), 422)


async def test_renaming_onto_another_name_is_409(api: Api) -> None:
    await api.created(**password_body("taken"))
    cid = (await api.created(**password_body("mover")))["id"]
    assert_envelope(await api.update(cid, name="Taken"), 409)
    assert_envelope(await api.update(cid, name="mover"), 200)


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"port": 0}, 422),
        ({"port": "22"}, 400),
        ({"name": ""}, 422),
        ({"auth_type": "ssh"}, 400),
        ({"unknown": True}, 400),
        ({"password": 1}, 400),
    ],
)
async def test_update_values_and_shapes_are_checked_like_create(
    api: Api, body: dict[str, Any], status: int
) -> None:
    cid = (await api.created(**password_body(f"upd-check-{status}-{len(str(body))}")))["id"]
    assert_envelope(await api.update(cid, **body), status)


# --- delete ----------------------------------------------------------------------------------


@pytest.fixture
async def tasks_table(knm: Any) -> AsyncIterator[None]:
    # The tasks engine owns this table; a stand-in with the two columns the check reads keeps
    # this test independent of when that migration lands.
    await knm.pool.execute(
        "CREATE TABLE IF NOT EXISTS tasks (id bigserial PRIMARY KEY, task_id text, kind text, "
        "status text, credential_id bigint)"
    )
    yield
    await knm.pool.execute("DELETE FROM tasks WHERE task_id LIKE 'cred-test-%'")


async def test_a_credential_used_by_a_pending_or_running_task_cannot_be_deleted(
    api: Api, knm: Any, knm_client: ApiClient, admin_headers: dict[str, str], tasks_table: None
) -> None:
    cid = (await api.created(**password_body("busy")))["id"]
    for status in ("pending", "running"):
        await knm.pool.execute(
            "INSERT INTO tasks (task_id, kind, status, credential_id) VALUES ($1, 'ssh', $2, $3)",
            f"cred-test-{status}",
            status,
            cid,
        )
    body = assert_envelope(
        await knm_client.delete(f"/credentials/{cid}", headers=admin_headers), 409
    )
    assert "2 pending or running" in body["error"]
    await knm.pool.execute("DELETE FROM tasks WHERE task_id LIKE 'cred-test-%'")
    await knm.pool.execute(
        "INSERT INTO tasks (task_id, kind, status, credential_id) "
        "VALUES ('cred-test-done', 'ssh', 'completed', $1)",
        cid,
    )
    assert_envelope(await knm_client.delete(f"/credentials/{cid}", headers=admin_headers), 200)
    assert_envelope(await knm_client.get(f"/credentials/{cid}", headers=admin_headers), 404)


# --- load_credential -------------------------------------------------------------------------


async def test_load_credential_decrypts_and_hides_secrets_from_repr(api: Api, knm: Any) -> None:
    cid = (await api.created(**password_body("loaded", password="hunter2-distinct")))["id"]
    loaded = await load_credential(knm, cid)
    assert isinstance(loaded, DecryptedCredential)
    assert (loaded.id, loaded.name, loaded.username, loaded.auth_type, loaded.port) == (
        cid,
        "loaded",
        "root",
        "password",
        22,
    )
    assert loaded.secret_values() == ["hunter2-distinct"]
    for text in (repr(loaded), str(loaded), repr(list(loaded.__rich_repr__()))):
        assert "hunter2-distinct" not in text
        assert "has_password=True" in text or "('has_password', True)" in text


async def test_load_credential_of_an_unknown_id_is_not_found(knm: Any) -> None:
    with pytest.raises(NotFound, match="Credential ID 424242 not found"):
        await load_credential(knm, 424242)


async def test_a_ciphertext_copied_into_another_row_does_not_decrypt(api: Api, knm: Any) -> None:
    source = (await api.created(**password_body("aad-source", password="source-secret")))["id"]
    target = (await api.created(**password_body("aad-target", password="target-secret")))["id"]
    await knm.pool.execute(
        "UPDATE credentials t SET key_id = s.key_id, nonce = s.nonce, ciphertext = s.ciphertext "
        "FROM credentials s WHERE s.id = $1 AND t.id = $2",
        source,
        target,
    )
    with pytest.raises(DecryptionError, match="copied from another row") as caught:
        await load_credential(knm, target)
    assert "source-secret" not in str(caught.value)
    assert (await load_credential(knm, source)).password == "source-secret"


# --- secrets never leak ----------------------------------------------------------------------


async def _text_everywhere(knm: Any) -> list[tuple[str, str]]:
    """Every text-like value in every table of the database, as (where, text)."""
    columns = await knm.pool.fetch(
        "SELECT table_schema, table_name, column_name, data_type FROM information_schema.columns "
        "WHERE table_schema NOT IN ('pg_catalog', 'information_schema') "
        "AND data_type IN ('text', 'character varying', 'character', 'json', 'jsonb', 'bytea', "
        "'ARRAY', 'USER-DEFINED')"
    )
    found = []
    for c in columns:
        table = f'"{c["table_schema"]}"."{c["table_name"]}"'
        column = f'"{c["column_name"]}"'
        if c["data_type"] == "bytea":
            for row in await knm.pool.fetch(f"SELECT {column} AS v FROM {table}"):
                if row["v"] is not None:
                    found.append((f"{table}.{column}", bytes(row["v"]).decode("latin-1")))
        else:
            for row in await knm.pool.fetch(f"SELECT {column}::text AS v FROM {table}"):
                if row["v"] is not None:
                    found.append((f"{table}.{column}", row["v"]))
    return found


async def test_secrets_appear_in_no_response_log_audit_entry_or_column(
    api: Api,
    knm: Any,
    knm_client: ApiClient,
    admin_headers: dict[str, str],
    caplog: pytest.LogCaptureFixture,
    ssh_key: asyncssh.SSHKey,
) -> None:
    caplog.set_level(logging.DEBUG)
    password = "pw-LEAKCHECK-7f3a9c"
    passphrase = "pp-LEAKCHECK-b81e2d"
    key = ssh_key.export_private_key("pkcs8-pem", passphrase=passphrase).decode()
    key_body = "".join(line for line in key.splitlines() if not line.startswith("-----"))
    secrets = [
        password,
        passphrase,
        key_body,
        *(line for line in key.splitlines()[1:-1] if len(line) > 16),
    ]

    responses: list[httpx.Response] = []
    full = {
        "name": "leak",
        "username": "root",
        "auth_type": "private_key",
        "private_key": key,
        "passphrase": passphrase,
        "password": password,
    }
    responses.append(await api.create(**full))
    cid = responses[-1].json()["data"]["id"]
    responses.append(await api.create(**full))  # 409
    responses.append(await api.create(**{**full, "name": "leak-2", "passphrase": password}))  # 422
    responses.append(await api.create(**{**full, "name": "leak-3", "port": 0}))  # 422
    responses.append(await api.create(**{**full, "name": "leak-4", "extra": password}))  # 400
    responses.append(await api.create(**{**full, "name": "leak-5", "password": 7}))  # 400
    responses.append(await api.update(cid, password=password + "-2", description="changed"))
    responses.append(await api.update(cid, passphrase=passphrase + "-wrong"))  # 422
    responses.append(await api.update(cid, private_key=key[: len(key) // 2]))  # 422
    responses.append(await knm_client.get(f"/credentials/{cid}", headers=admin_headers))
    responses.append(await knm_client.get("/credentials?page_size=100", headers=admin_headers))
    responses.append(await knm_client.get("/audit?page_size=100", headers=admin_headers))
    assert [r.status_code for r in responses[:6]] == [201, 409, 422, 422, 400, 400]
    assert [r.status_code for r in responses[6:]] == [200, 422, 422, 200, 200, 200]
    (await load_credential(knm, cid)).secret_values()
    other = await api.created(**password_body("leak-pw", password=password))
    responses.append(await knm_client.delete(f"/credentials/{other['id']}", headers=admin_headers))

    audit = await knm.pool.fetch("SELECT * FROM audit_log")
    assert any(r["action"] == "credential.update" for r in audit)
    places: list[tuple[str, str]] = [(f"response {r.request.url}", r.text) for r in responses]
    places += [(f"header {r.request.url}", str(r.headers)) for r in responses]
    places += [("audit", repr(dict(r))) for r in audit]
    places += [("log", caplog.text)]
    places += [("log", repr(r.args) + r.getMessage()) for r in caplog.records]
    places += await _text_everywhere(knm)
    scanned = {where for where, _ in places}
    assert {'"public"."credentials"."ciphertext"', '"public"."audit_log"."detail"'} <= scanned
    for where, text in places:
        for secret in secrets:
            assert secret not in text, f"a secret leaked into {where}"
            assert (secret + "-2") not in text


# --- random bodies ---------------------------------------------------------------------------

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=5,
)
FIELD_VALUES = {
    "name": st.text(max_size=140) | JSON,
    "description": st.text(max_size=40) | JSON,
    "username": st.text(max_size=20) | JSON,
    "auth_type": st.sampled_from(["password", "private_key", "other", ""]) | JSON,
    "password": st.text(max_size=20) | JSON,
    "private_key": st.text(max_size=80) | JSON,
    "passphrase": st.text(max_size=20) | JSON,
    "port": st.integers() | JSON,
}
BODIES = st.fixed_dictionaries({}, optional=FIELD_VALUES) | JSON


def _assert_clean_envelope(response: httpx.Response) -> None:
    assert response.status_code in {200, 201, 400, 409, 422}, response.text
    assert_envelope(response, response.status_code)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=BODIES)
async def test_random_create_bodies_never_cause_a_500(api: Api, body: Any) -> None:
    _assert_clean_envelope(await api.client.post("/credentials", json=body, headers=api.headers))


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=BODIES)
async def test_random_update_bodies_never_cause_a_500(api: Api, body: Any) -> None:
    cid = await _fuzz_target(api)
    _assert_clean_envelope(
        await api.client.put(f"/credentials/{cid}", json=body, headers=api.headers)
    )


_FUZZ: dict[str, int] = {}


async def _fuzz_target(api: Api) -> int:
    if "id" not in _FUZZ:
        _FUZZ["id"] = (await api.created(**password_body("fuzz-target")))["id"]
    return _FUZZ["id"]
