from __future__ import annotations

from enum import StrEnum
from typing import Any

from tortoise import fields
from tortoise.models import Model

# Other domains' models are referred to by string only (STYLE C2), hence `Any` in their relations' hints.


class FlagReason(StrEnum):
    SPAM = "spam"
    RUDE = "rude"  # offensive: rude or abusive
    OFF_TOPIC = "off_topic"
    NEEDS_ATTENTION = "needs_attention"  # something else; the flagger says what in `detail`


class FlagStatus(StrEnum):
    PENDING = "pending"
    AGREED = "agreed"  # a moderator hid the post
    DECLINED = "declined"  # dismissed, or the post was restored


class Flag(Model):
    """One user's flag on one post: exactly one of question, answer, comment or message is set."""

    id = fields.IntField(primary_key=True)
    user: fields.ForeignKeyRelation[Any] = fields.ForeignKeyField("models.User", related_name=False)
    question: fields.ForeignKeyNullableRelation[Any] = fields.ForeignKeyField(
        "models.Question", related_name=False, null=True)
    answer: fields.ForeignKeyNullableRelation[Any] = fields.ForeignKeyField(
        "models.Answer", related_name=False, null=True)
    comment: fields.ForeignKeyNullableRelation[Any] = fields.ForeignKeyField(
        "models.Comment", related_name=False, null=True)
    message: fields.ForeignKeyNullableRelation[Any] = fields.ForeignKeyField(
        "models.SwarmMessage", related_name=False, null=True)
    reason = fields.CharEnumField(FlagReason, max_length=16)
    detail = fields.CharField(max_length=500, default="")
    status = fields.CharEnumField(FlagStatus, max_length=16, default=FlagStatus.PENDING)
    created_at = fields.DatetimeField(auto_now_add=True)
    resolved_by: fields.ForeignKeyNullableRelation[Any] = fields.ForeignKeyField(
        "models.User", related_name=False, null=True)
    resolved_at = fields.DatetimeField(null=True)

    class Meta:
        table = "flags"
