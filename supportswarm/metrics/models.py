from __future__ import annotations

from typing import Any

from tortoise import fields
from tortoise.models import Model


class Event(Model):
    """The append-only log every metric is computed from. Rows are never updated or deleted.

    The `txid` column (the writing transaction, 0004_metrics.sql) exists in SQL only: the database fills
    it, and only the metrics rollup reads it.
    """

    id = fields.BigIntField(primary_key=True)
    kind = fields.CharField(max_length=32)
    at = fields.DatetimeField()
    actor: fields.ForeignKeyNullableRelation[Any] = fields.ForeignKeyField(
        "models.User", related_name=False, null=True)
    question: fields.ForeignKeyNullableRelation[Any] = fields.ForeignKeyField(
        "models.Question", related_name=False, null=True)
    answer: fields.ForeignKeyNullableRelation[Any] = fields.ForeignKeyField(
        "models.Answer", related_name=False, null=True)
    swarm: fields.ForeignKeyNullableRelation[Any] = fields.ForeignKeyField(
        "models.Swarm", related_name=False, null=True)
    data: fields.JSONField[dict[str, Any]] = fields.JSONField(default=dict)

    class Meta:
        table = "events"


class EmergentCluster(Model):
    """A burst of similar new questions (metrics/emergent.py writes it with SQL; read it here if you like).

    Its questions are in `emergent_cluster_questions`; once it is an incident, `swarm` is the incident swarm
    and `incident_questions` lists the questions that swarm covers.
    """

    id = fields.IntField(primary_key=True)
    status = fields.CharField(max_length=16, default="open")  # open | incident | dismissed
    label = fields.CharField(max_length=200)
    representative_question: fields.ForeignKeyNullableRelation[Any] = fields.ForeignKeyField(
        "models.Question", related_name=False, null=True)
    size = fields.IntField()
    askers = fields.IntField()
    first_asked_at = fields.DatetimeField()
    last_asked_at = fields.DatetimeField()
    cohesion = fields.FloatField()
    detected_at = fields.DatetimeField()
    updated_at = fields.DatetimeField()
    swarm: fields.ForeignKeyNullableRelation[Any] = fields.ForeignKeyField(
        "models.Swarm", related_name=False, null=True)
    decided_by: fields.ForeignKeyNullableRelation[Any] = fields.ForeignKeyField(
        "models.User", related_name=False, null=True)
    decided_at = fields.DatetimeField(null=True)

    class Meta:
        table = "emergent_clusters"
