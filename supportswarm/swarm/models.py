from __future__ import annotations

from enum import StrEnum
from typing import Any

from tortoise import fields
from tortoise.models import Model

# Other domains' models are referred to by string only (STYLE C2), hence `Any` in their relations' hints.


class SwarmStatus(StrEnum):
    OPEN = "open"
    RESOLVED = "resolved"


class Swarm(Model):
    id = fields.IntField(primary_key=True)
    question: fields.OneToOneRelation[Any] = fields.OneToOneField("models.Question", related_name="swarm")
    question_id: int
    status = fields.CharEnumField(SwarmStatus, max_length=16, default=SwarmStatus.OPEN)
    reason = fields.CharField(max_length=32, default="manual")
    opened_by: fields.ForeignKeyNullableRelation[Any] = fields.ForeignKeyField(
        "models.User", related_name=False, null=True)
    opened_at = fields.DatetimeField(auto_now_add=True)
    resolved_at = fields.DatetimeField(null=True)
    last_seq = fields.IntField(default=0)
    solution_answer: fields.ForeignKeyNullableRelation[Any] = fields.ForeignKeyField(
        "models.Answer", related_name=False, null=True)
    solution_answer_id: int | None

    class Meta:
        table = "swarms"


class SwarmMessage(Model):
    id = fields.BigIntField(primary_key=True)
    swarm: fields.ForeignKeyRelation[Swarm] = fields.ForeignKeyField("models.Swarm", related_name="messages")
    swarm_id: int
    seq = fields.IntField()
    author: fields.ForeignKeyNullableRelation[Any] = fields.ForeignKeyField(
        "models.User", related_name=False, null=True)
    body = fields.TextField()
    client_msg_id = fields.CharField(max_length=64)
    created_at = fields.DatetimeField(auto_now_add=True)
    hidden_at = fields.DatetimeField(null=True)  # hidden by a moderator or by flags (moderation/)
    hidden_by: fields.ForeignKeyNullableRelation[Any] = fields.ForeignKeyField(
        "models.User", related_name=False, null=True)

    class Meta:
        table = "swarm_messages"


class SwarmParticipant(Model):
    id = fields.IntField(primary_key=True)
    swarm: fields.ForeignKeyRelation[Swarm] = fields.ForeignKeyField("models.Swarm", related_name="participants")
    user: fields.ForeignKeyRelation[Any] = fields.ForeignKeyField("models.User", related_name=False)
    invited_at = fields.DatetimeField(null=True)
    invite_score = fields.FloatField(null=True)
    joined_at = fields.DatetimeField(null=True)
    left_at = fields.DatetimeField(null=True)
    messages = fields.IntField(default=0)

    class Meta:
        table = "swarm_participants"


class SwarmLink(Model):
    """A further question gathered into a swarm that belongs to another question (incident swarms)."""

    question: fields.OneToOneRelation[Any] = fields.OneToOneField(
        "models.Question", related_name="links_in_swarm", primary_key=True)
    swarm: fields.ForeignKeyRelation[Swarm] = fields.ForeignKeyField("models.Swarm", related_name="links")
    linked_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "swarm_links"


class HelperExpertise(Model):
    """What a helper is good at. The `embedding` column exists in SQL only: expertise.py reads and writes it."""

    user: fields.OneToOneRelation[Any] = fields.OneToOneField("models.User", related_name=False, primary_key=True)
    tags: fields.JSONField[dict[str, float]] = fields.JSONField(default=dict)  # tag -> weight
    evidence = fields.IntField(default=0)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "helper_expertise"
