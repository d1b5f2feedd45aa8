"""Every permission decision, in one place. Routes and services ask here; nothing else decides."""

from __future__ import annotations

from supportswarm.accounts.models import Role, User
from supportswarm.errors import Forbidden, NotAuthenticated

STAFF_ROLES = frozenset({Role.STAFF, Role.LEAD, Role.ADMIN})
HELPER_ROLES = STAFF_ROLES | {Role.EXPERT}
METRICS_ROLES = frozenset({Role.LEAD, Role.ADMIN})


def require_user(user: User | None) -> User:
    if user is None:
        raise NotAuthenticated("log in first")
    if not user.is_active:
        raise Forbidden("this account is disabled")
    return user


def is_staff(user: User | None) -> bool:
    return user is not None and user.role in STAFF_ROLES


def is_helper(user: User | None, *, expert_reputation: int) -> bool:
    """Staff, experts, and customers whose reputation shows they help others."""
    return user is not None and (user.role in HELPER_ROLES or user.reputation >= expert_reputation)


def can_accept(user: User, asker_id: int | None) -> bool:
    return user.id == asker_id or is_staff(user)


def can_edit(user: User, author_id: int | None, *, is_wiki: bool = False, trusted_reputation: int = 100) -> bool:
    if user.id == author_id or is_staff(user):
        return True
    return is_wiki and (user.role in HELPER_ROLES or user.reputation >= trusted_reputation)


def can_moderate(user: User | None) -> bool:
    return is_staff(user)


def can_see_metrics(user: User | None) -> bool:
    return user is not None and user.role in METRICS_ROLES


def can_open_incident(user: User | None) -> bool:
    """Turning an emergent cluster into an incident swarm (or dismissing it): leads, admins and staff."""
    return is_staff(user)


def can_manage_users(user: User | None) -> bool:
    return user is not None and user.role == Role.ADMIN


def can_view_users(user: User | None) -> bool:
    """The user list (names, roles, active or not): admins, and leads, who need to see who is on their team.
    Only admins change anything, and only admins see email addresses (`can_manage_users`)."""
    return user is not None and user.role in METRICS_ROLES


def can_change_account(actor: User, target: User, *, role: Role, is_active: bool) -> bool:
    """An admin may change anyone but themselves out of admin or active, so the last admin cannot lock
    everyone out by a slip."""
    return actor.id != target.id or (role == Role.ADMIN and is_active)


def can_manage_webhooks(user: User | None) -> bool:
    """Webhooks send forum events to any URL with a secret: an admin decision (issue 9)."""
    return user is not None and user.role == Role.ADMIN


def can_join_swarm(user: User, asker_id: int | None, *, expert_reputation: int) -> bool:
    return user.id == asker_id or is_helper(user, expert_reputation=expert_reputation)


def can_decide_suggestion(user: User, asker_id: int | None) -> bool:
    """Only the customer who was offered an existing answer says whether it solved the problem:
    the outcome is the deflection metric, so nobody may answer for them (issue 3)."""
    return asker_id is not None and user.id == asker_id


def ensure(allowed: bool, detail: str) -> None:
    if not allowed:
        raise Forbidden(detail)
