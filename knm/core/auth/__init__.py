"""Users, roles, tokens and the guards every route uses."""

from knm.core.auth.guards import require_role
from knm.core.auth.principal import ROLES, Principal, role_at_least

__all__ = ["ROLES", "Principal", "require_role", "role_at_least"]
