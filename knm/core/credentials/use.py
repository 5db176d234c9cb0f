"""Who may use a credential, and on which clusters: the one check every task start passes.

A credential carries three limits, each null for none (the default, which is how credentials
behaved before they had limits):

- ``allowed_roles`` and ``allowed_users``: with both null, every operator and admin may start
  tasks with it. With either set, admins and the listed roles and users (user names compared
  regardless of case) may; everyone else gets 403. Admins always may: they can change the
  credential anyway, so refusing them would only be a nuisance.
- ``allowed_clusters``: the clusters it may log in to; a task on any other cluster is 403, for
  admins too. It keeps a key meant for one environment off another.

``check`` runs in ``knm.core.tasks.service.start_task``, the path of every execution — SSH
commands, scripts, Ansible runs, workflows and each step a workflow starts (with the workflow
starter's current role) — before anything is prepared or stored.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from knm.core.errors import Forbidden

if TYPE_CHECKING:
    from knm.core.state import Knm


def refusal(credential: Any, principal: Any, cluster_name: str) -> str | None:
    """Why ``principal`` may not use ``credential`` on ``cluster_name``, or None.

    ``credential`` is anything with ``name`` and the three limits (the API's ``Credential``,
    a ``DecryptedCredential``); ``principal`` None is knm itself (no user limit applies)."""
    clusters = credential.allowed_clusters
    if clusters is not None and cluster_name not in clusters:
        return (
            f"credential {credential.name!r} may not be used on cluster {cluster_name!r} "
            f"(it is limited to: {', '.join(clusters)})"
        )
    roles, users = credential.allowed_roles, credential.allowed_users
    if principal is None or (roles is None and users is None) or principal.role == "admin":
        return None
    if principal.role in (roles or ()):
        return None
    if principal.username.lower() in {user.lower() for user in users or ()}:
        return None
    return (
        f"user {principal.username!r} (role {principal.role}) may not use credential "
        f"{credential.name!r}; ask an admin to add you or your role to its allowed_users or "
        "allowed_roles"
    )


def check(credential: Any, principal: Any, cluster_name: str) -> None:
    """403 with the reason when ``principal`` may not use ``credential`` on the cluster."""
    reason = refusal(credential, principal, cluster_name)
    if reason is not None:
        raise Forbidden(reason, message="credential not allowed")


async def require(knm: Knm, credential_id: int, principal: Any, cluster_name: str) -> None:
    """``check`` on the stored credential (its plain columns: nothing is decrypted); 404 when
    it does not exist."""
    from knm.core.bounds import fits_bigint
    from knm.core.credentials import store
    from knm.core.errors import NotFound

    if not fits_bigint(credential_id):  # no stored id is that large (PostgreSQL's bigint)
        raise NotFound(f"Credential ID {credential_id} not found")
    check(await store.get(knm.pool, credential_id), principal, cluster_name)
