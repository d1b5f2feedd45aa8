from __future__ import annotations

from enum import StrEnum

from tortoise import fields
from tortoise.models import Model


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


class Webhook(Model):
    """A receiver an admin configured: which event kinds go to which URL, signed with which secret."""

    id = fields.IntField(primary_key=True)
    url = fields.CharField(max_length=2000)
    secret = fields.CharField(max_length=128)
    events: fields.JSONField[list[str]] = fields.JSONField(default=list)
    description = fields.CharField(max_length=200, default="")
    is_active = fields.BooleanField(default=True)
    # Other domains' models are referred to by string only (STYLE C2), hence `Model` in the hints.
    created_by: fields.ForeignKeyNullableRelation[Model] = fields.ForeignKeyField(
        "models.User", related_name=False, null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "webhooks"


class WebhookDelivery(Model):
    id = fields.BigIntField(primary_key=True)
    webhook: fields.ForeignKeyRelation[Webhook] = fields.ForeignKeyField("models.Webhook", related_name="deliveries")
    webhook_id: int
    event: fields.ForeignKeyRelation[Model] = fields.ForeignKeyField("models.Event", related_name=False)
    event_id: int
    event_kind = fields.CharField(max_length=32)
    body = fields.TextField()
    status = fields.CharEnumField(DeliveryStatus, max_length=16, default=DeliveryStatus.PENDING)
    attempts = fields.IntField(default=0)
    last_status_code = fields.IntField(null=True)
    last_error = fields.CharField(max_length=300, null=True)
    next_attempt_at = fields.DatetimeField()
    delivered_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "webhook_deliveries"


class WebhookAttempt(Model):
    id = fields.BigIntField(primary_key=True)
    delivery: fields.ForeignKeyRelation[WebhookDelivery] = fields.ForeignKeyField(
        "models.WebhookDelivery", related_name="attempt_log")
    delivery_id: int
    number = fields.IntField()
    at = fields.DatetimeField()
    status_code = fields.IntField(null=True)
    error = fields.CharField(max_length=300, null=True)
    duration_ms = fields.IntField(default=0)

    class Meta:
        table = "webhook_attempts"
