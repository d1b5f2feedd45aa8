from __future__ import annotations

from enum import StrEnum
from typing import Any

from tortoise import fields
from tortoise.models import Model

# Other domains' models are referred to by string only (STYLE C2), hence `Any` in their relations' hints.


class SuggestionOutcome(StrEnum):
    SHOWN = "shown"
    ACCEPTED = "accepted"
    REJECTED = "rejected"


class Suggestion(Model):
    """An existing answer offered for a customer's draft question, and what the customer said."""

    id = fields.IntField(primary_key=True)
    asker: fields.ForeignKeyNullableRelation[Any] = fields.ForeignKeyField(
        "models.User", related_name=False, null=True)
    asker_id: int | None
    draft_title = fields.CharField(max_length=200)
    draft_body = fields.TextField(default="")
    draft_tags = fields.TextField(default="")  # space-separated, as in revisions
    suggested_question: fields.ForeignKeyRelation[Any] = fields.ForeignKeyField("models.Question", related_name=False)
    suggested_question_id: int
    suggested_answer: fields.ForeignKeyNullableRelation[Any] = fields.ForeignKeyField(
        "models.Answer", related_name=False, null=True)
    suggested_answer_id: int | None
    score = fields.FloatField()
    outcome = fields.CharEnumField(SuggestionOutcome, max_length=16, default=SuggestionOutcome.SHOWN)
    posted_question: fields.ForeignKeyNullableRelation[Any] = fields.ForeignKeyField(
        "models.Question", related_name=False, null=True)
    posted_question_id: int | None
    created_at = fields.DatetimeField(auto_now_add=True)
    decided_at = fields.DatetimeField(null=True)

    class Meta:
        table = "suggestions"
