from __future__ import annotations

from enum import StrEnum

from tortoise import fields
from tortoise.models import Model


class Role(StrEnum):
    CUSTOMER = "customer"
    EXPERT = "expert"
    STAFF = "staff"
    LEAD = "lead"
    ADMIN = "admin"


class User(Model):
    id = fields.IntField(primary_key=True)
    username = fields.CharField(max_length=32)
    email = fields.CharField(max_length=254, null=True)
    password_hash = fields.TextField()
    role = fields.CharEnumField(Role, max_length=16, default=Role.CUSTOMER)
    reputation = fields.IntField(default=1)
    on_duty = fields.BooleanField(default=False)
    is_active = fields.BooleanField(default=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    last_seen_at = fields.DatetimeField(null=True)
    # Session cookies carry it (sessions.py); bumped to sign out every session at once.
    session_generation = fields.IntField(default=0)

    class Meta:
        table = "users"

    def public(self) -> dict[str, object]:
        return {"id": self.id, "username": self.username, "role": str(self.role), "reputation": self.reputation}


class ApiToken(Model):
    id = fields.IntField(primary_key=True)
    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField("models.User", related_name="tokens")
    token_hash = fields.CharField(max_length=64, unique=True)
    name = fields.CharField(max_length=64, default="")
    created_at = fields.DatetimeField(auto_now_add=True)
    last_used_at = fields.DatetimeField(null=True)

    class Meta:
        table = "api_tokens"


class PasswordReset(Model):
    """The one live reset link of a user (its token's SHA-256); deleted when used or replaced."""

    id = fields.IntField(primary_key=True)
    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField("models.User", related_name=False)
    token_hash = fields.CharField(max_length=64, unique=True)
    created_by: fields.ForeignKeyNullableRelation[User] = fields.ForeignKeyField(
        "models.User", related_name=False, null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    expires_at = fields.DatetimeField()

    class Meta:
        table = "password_resets"
