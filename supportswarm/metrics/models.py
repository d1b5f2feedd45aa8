from __future__ import annotations

from tortoise import fields
from tortoise.models import Model


class Event(Model):
    """The append-only log every metric is computed from. Rows are never updated or deleted."""

    id = fields.BigIntField(primary_key=True)
    kind = fields.CharField(max_length=32)
    at = fields.DatetimeField()
    actor = fields.ForeignKeyField("models.User", related_name=False, null=True)
    question = fields.ForeignKeyField("models.Question", related_name=False, null=True)
    answer = fields.ForeignKeyField("models.Answer", related_name=False, null=True)
    swarm = fields.ForeignKeyField("models.Swarm", related_name=False, null=True)
    data = fields.JSONField(default=dict)

    class Meta:
        table = "events"
