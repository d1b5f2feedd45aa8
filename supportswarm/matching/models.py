from __future__ import annotations

from enum import StrEnum

from tortoise import fields
from tortoise.models import Model


class SuggestionOutcome(StrEnum):
    SHOWN = "shown"
    ACCEPTED = "accepted"
    REJECTED = "rejected"


class Suggestion(Model):
    """An existing answer offered for a customer's draft question, and what the customer said."""

    id = fields.IntField(primary_key=True)
    asker = fields.ForeignKeyField("models.User", related_name=False, null=True)
    draft_title = fields.CharField(max_length=200)
    draft_body = fields.TextField(default="")
    draft_tags = fields.TextField(default="")  # space-separated, as in revisions
    suggested_question = fields.ForeignKeyField("models.Question", related_name=False)
    suggested_answer = fields.ForeignKeyField("models.Answer", related_name=False, null=True)
    score = fields.FloatField()
    outcome = fields.CharEnumField(SuggestionOutcome, max_length=16, default=SuggestionOutcome.SHOWN)
    posted_question = fields.ForeignKeyField("models.Question", related_name=False, null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    decided_at = fields.DatetimeField(null=True)

    class Meta:
        table = "suggestions"
