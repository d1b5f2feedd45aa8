from __future__ import annotations

import pytest

from supportswarm.accounts import services
from supportswarm.accounts.models import Role, User
from supportswarm.errors import InvalidInput, NotAuthenticated
from supportswarm.settings import Settings


async def test_tokens_resolve_to_their_user(settings: Settings, app: object) -> None:
    user = await services.register("tina", "long-password", role="staff")
    token = await services.create_token(user)
    found = await services.user_for_token(token)
    assert found is not None and found.id == user.id and found.role == Role.STAFF
    assert await services.user_for_token(token + "x") is None
    assert await services.user_for_token("garbage") is None


async def test_wrong_role_is_rejected(app: object) -> None:
    with pytest.raises(InvalidInput) as err:
        await services.register("tina", "long-password", role="overlord")
    assert err.value.field == "role"
    assert await User.all().count() == 0


async def test_disabled_user_cannot_log_in(app: object) -> None:
    user = await services.register("tina", "long-password")
    user.is_active = False
    await user.save()
    with pytest.raises(NotAuthenticated):
        await services.authenticate("tina", "long-password")


async def test_reputation_never_drops_below_one(app: object) -> None:
    user = await services.register("tina", "long-password")
    await services.add_reputation(user.id, -50)
    await user.refresh_from_db()
    assert user.reputation == 1
