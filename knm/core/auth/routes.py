"""``/auth``, ``/users`` and ``/tokens``."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

import msgspec
from litestar import Request, delete, get, post, put

from knm.core.auth import passwords, throttle, tokens, users
from knm.core.auth.guards import ADMIN, VIEWER, principal_of
from knm.core.auth.principal import ROLES, Principal, role_at_least
from knm.core.envelope import Done, Envelope, PageNo, PageSize, created, ok
from knm.core.errors import Forbidden, Invalid, Unauthorized

if TYPE_CHECKING:
    from knm.core.state import Knm

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]


class LoginRequest(msgspec.Struct, forbid_unknown_fields=True):
    username: Annotated[str, msgspec.Meta(max_length=256)]
    password: Annotated[str, msgspec.Meta(max_length=1024)]


class UserOut(msgspec.Struct):
    id: int
    username: str
    role: str


class LoginResponse(msgspec.Struct):
    token: str
    expires_at: datetime
    user: UserOut


class UserCreate(msgspec.Struct, forbid_unknown_fields=True):
    username: Name
    password: str
    role: Literal["admin", "operator", "viewer"] = "viewer"


class UserUpdate(msgspec.Struct, forbid_unknown_fields=True):
    role: Literal["admin", "operator", "viewer"] | None = None
    disabled: bool | None = None


class PasswordReset(msgspec.Struct, forbid_unknown_fields=True):
    password: str


class PasswordChange(msgspec.Struct, forbid_unknown_fields=True):
    current_password: str
    new_password: str


class UserList(msgspec.Struct):
    total: int
    users: list[users.User]


class TokenCreate(msgspec.Struct, forbid_unknown_fields=True):
    name: Name
    role: Literal["admin", "operator", "viewer"] | None = None
    expires_at: datetime | None = None


class TokenList(msgspec.Struct):
    total: int
    tokens: list[tokens.ApiToken]


def _knm(request: Request[Any, Any, Any]) -> Any:
    return request.app.state["knm"]


def client_address(request: Request[Any, Any, Any]) -> str:
    return _knm(request).client_of(request)


def _login_response(knm: Knm, row: users.UserRow, session: tokens.Session) -> LoginResponse:
    token, expires = tokens.issue_jwt(
        knm.keys.jwt,
        user_id=row.id,
        role=row.role,
        epoch=row.session_epoch,
        ttl=knm.config.token_ttl,
        session=session,
        max_age=knm.config.session_max_age,
    )
    return LoginResponse(token, expires, UserOut(row.id, row.username, row.role))


@post("/auth/login", opt={"public": True}, status_code=200, summary="Log in; returns a JWT")
async def login(request: Request[Any, Any, Any], data: LoginRequest) -> Envelope[LoginResponse]:
    knm = _knm(request)
    cfg = knm.config
    client = client_address(request)
    async with knm.pool.acquire() as conn:
        await throttle.attempt(
            conn,
            data.username,
            client,
            max_failures=cfg.login_max_failures,
            window=cfg.login_window,
        )
        row = await users.auth_row_by_name(conn, data.username)
    good = await knm.passwords.verify(row.password_hash if row else knm.dummy_hash, data.password)
    async with knm.pool.acquire() as conn:
        if row is None or not good or row.disabled:
            await knm.audit_record(
                conn,
                principal=None,
                username=data.username,
                action="auth.login",
                target=data.username,
                outcome="failed",
                client=client,
            )
            # One message for unknown user, wrong password and disabled user.
            raise Unauthorized("invalid username or password", message="login failed")
        await throttle.clear(conn, data.username, client)
        answer = _login_response(knm, row, tokens.Session.new())
        await knm.audit_record(
            conn,
            principal=None,
            username=row.username,
            action="auth.login",
            target=row.username,
            outcome="ok",
            client=client,
            user_id=row.id,
            role=row.role,
        )
    return ok(answer, "login successful")


@post(
    "/auth/refresh",
    guards=[VIEWER],
    status_code=200,
    summary="Exchange a valid token for a fresh one",
)
async def refresh(request: Request[Any, Any, Any]) -> Envelope[LoginResponse]:
    """A fresh JWT of the same session: it expires ``token_ttl`` from now, but never later than
    ``session_max_age`` after the session's login (401 once that has passed)."""
    knm = _knm(request)
    principal = principal_of(request)
    if principal.via != "jwt":
        raise Forbidden("API tokens cannot be refreshed")
    async with knm.pool.acquire() as conn:
        row = await users.auth_row(conn, principal.user_id)
    if row is None:
        raise Unauthorized("user no longer exists")
    session = tokens.Session(
        principal.session or uuid.uuid4().hex,
        principal.auth_time if principal.auth_time is not None else 0,
    )
    return ok(_login_response(knm, row, session), "token refreshed")


@get("/auth/me", summary="The caller")
async def me(request: Request[Any, Any, Any]) -> Envelope[users.User]:
    """From memory while the authentication cache is live: a user's row changes only through
    ``users.update``, whose announcement drops it in every process (``knm.core.auth.cache``).

    No guard: any caller the middleware let through may ask, and ``principal_of`` refuses the
    rest; a guard would cost a copy of the route handler per request (Litestar's
    ``authorize_connection``)."""
    principal = principal_of(request)
    knm = _knm(request)
    cache = knm.auth_cache
    if cache is None:
        async with knm.pool.acquire() as conn:
            return ok(await users.get(conn, principal.user_id))
    known = cache.user(principal.user_id)
    if known is not None:
        return ok(known)
    generation = cache.generation
    async with knm.pool.acquire() as conn:
        user = await users.get(conn, principal.user_id)
    cache.put_user(user, generation)
    return ok(user)


@put("/auth/password", guards=[VIEWER], summary="Change your own password")
async def change_password(request: Request[Any, Any, Any], data: PasswordChange) -> Done:
    """The session the change is made from goes on; every other session of the user and every
    API token of theirs is revoked."""
    knm = _knm(request)
    principal = principal_of(request)
    passwords.check_password_rules(data.new_password)
    client = client_address(request)
    async with knm.pool.acquire() as conn:
        # Guessing the current password here counts like failed logins: a stolen session
        # gets no faster way to learn the password.
        await throttle.attempt(
            conn,
            principal.username,
            client,
            max_failures=knm.config.login_max_failures,
            window=knm.config.login_window,
        )
        row = await users.auth_row(conn, principal.user_id)
    if row is None or not await knm.passwords.verify(row.password_hash, data.current_password):
        raise Invalid("current password is wrong")
    new_hash = await knm.passwords.hash(data.new_password)
    keep = principal.session if principal.via == "jwt" else None
    async with knm.pool.acquire() as conn:
        await throttle.clear(conn, principal.username, client)
        await users.update(conn, principal.user_id, password_hash=new_hash, keep_session=keep)
        await knm.audit(request, "user.password", principal.username, conn=conn)
    knm.forget_user(principal.user_id)
    message = (
        "password changed; this session goes on, every other session and API token is revoked"
        if keep
        else "password changed; every session and API token is revoked"
    )
    return Done(code=200, message=message)


@get("/users", guards=[ADMIN], summary="List users")
async def list_users(
    request: Request[Any, Any, Any], page: PageNo = 1, page_size: PageSize = 20
) -> Envelope[UserList]:
    async with _knm(request).pool.acquire() as conn:
        total, found = await users.list_users(conn, page_size, (page - 1) * page_size)
    return ok(UserList(total, found))


@post("/users", guards=[ADMIN], summary="Create a user")
async def create_user(request: Request[Any, Any, Any], data: UserCreate) -> Envelope[users.User]:
    knm = _knm(request)
    passwords.check_password_rules(data.password)
    password_hash = await knm.passwords.hash(data.password)
    async with knm.pool.acquire() as conn:
        user = await users.create(conn, data.username, password_hash, data.role)
        await knm.audit(request, "user.create", data.username, conn=conn)
    return created(user, "user created")


@get("/users/{user_id:int}", guards=[ADMIN], summary="One user")
async def get_user(request: Request[Any, Any, Any], user_id: int) -> Envelope[users.User]:
    async with _knm(request).pool.acquire() as conn:
        return ok(await users.get(conn, user_id))


@put("/users/{user_id:int}", guards=[ADMIN], summary="Change a user's role or disable them")
async def update_user(
    request: Request[Any, Any, Any], user_id: int, data: UserUpdate
) -> Envelope[users.User]:
    knm = _knm(request)
    async with knm.pool.acquire() as conn, conn.transaction():
        current = await users.get(conn, user_id)
        # users.update refuses to leave no active admin, under a lock: see _keep_an_admin.
        user = await users.update(conn, user_id, role=data.role, disabled=data.disabled)
        await knm.audit(request, "user.update", current.username, conn=conn)
    knm.forget_user(user_id)
    return ok(user, "user updated")


@put("/users/{user_id:int}/password", guards=[ADMIN], summary="Reset a user's password")
async def reset_password(
    request: Request[Any, Any, Any], user_id: int, data: PasswordReset
) -> Envelope[users.User]:
    knm = _knm(request)
    passwords.check_password_rules(data.password)
    password_hash = await knm.passwords.hash(data.password)
    async with knm.pool.acquire() as conn:
        # Every session and API token of the user is revoked with the old password.
        user = await users.update(conn, user_id, password_hash=password_hash)
        await knm.audit(request, "user.reset_password", user.username, conn=conn)
    knm.forget_user(user_id)
    return ok(user, "password reset")


@get("/tokens", guards=[VIEWER], summary="Your API tokens (admins: everyone's)")
async def list_tokens(
    request: Request[Any, Any, Any], page: PageNo = 1, page_size: PageSize = 20
) -> Envelope[TokenList]:
    principal = principal_of(request)
    owner = None if principal.role == "admin" else principal.user_id
    async with _knm(request).pool.acquire() as conn:
        total, found = await tokens.list_api_tokens(conn, owner, page_size, (page - 1) * page_size)
    return ok(TokenList(total, found))


@post("/tokens", guards=[VIEWER], summary="Create an API token (shown once)")
async def create_token(
    request: Request[Any, Any, Any], data: TokenCreate
) -> Envelope[tokens.NewApiToken]:
    knm = _knm(request)
    principal: Principal = principal_of(request)
    role = data.role or principal.role
    if not role_at_least(principal.role, role):
        raise Forbidden(f"a token's role cannot exceed yours ({principal.role})")
    if data.expires_at is not None:
        expires = data.expires_at if data.expires_at.tzinfo else data.expires_at.replace(tzinfo=UTC)
        if expires <= datetime.now(UTC):
            raise Invalid("expires_at must be in the future")
    else:
        expires = None
    async with knm.pool.acquire() as conn:
        # A token minted with an API token is its child: no later expiry, revoked with it.
        new = await tokens.create_api_token(
            conn,
            name=data.name,
            user_id=principal.user_id,
            role=role,
            expires_at=expires,
            parent_id=principal.token_id if principal.via == "api" else None,
        )
        await knm.audit(request, "token.create", data.name, conn=conn)
    return created(new, "token created; it is shown only once")


@delete("/tokens/{token_id:int}", guards=[VIEWER], status_code=200, summary="Revoke an API token")
async def revoke_token(request: Request[Any, Any, Any], token_id: int) -> Done:
    knm = _knm(request)
    principal = principal_of(request)
    owner = None if principal.role == "admin" else principal.user_id
    async with knm.pool.acquire() as conn:
        owner_id = await tokens.revoke_api_token(conn, token_id, owner)
        await knm.audit(request, "token.revoke", str(token_id), conn=conn)
    knm.forget_user(owner_id)
    return Done(code=200, message="token revoked")


ROUTES = [
    login,
    refresh,
    me,
    change_password,
    list_users,
    create_user,
    get_user,
    update_user,
    reset_password,
    list_tokens,
    create_token,
    revoke_token,
]
assert ROLES
