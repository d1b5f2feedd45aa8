from __future__ import annotations

from enum import StrEnum
from typing import Any

from tortoise import fields
from tortoise.models import Model

# Other domains' models are referred to by string only (STYLE C2), hence `Any` in their relations' hints.


class QuestionStatus(StrEnum):
    OPEN = "open"
    SWARMING = "swarming"
    RESOLVED = "resolved"
    DUPLICATE = "duplicate"


class Tag(Model):
    id = fields.IntField(primary_key=True)
    name = fields.CharField(max_length=32, unique=True)

    class Meta:
        table = "tags"


class Question(Model):
    """The `embedding` and `search` columns exist in SQL only: matching reads and writes them directly."""

    id = fields.IntField(primary_key=True)
    external_id = fields.CharField(max_length=128, null=True, unique=True)
    author: fields.ForeignKeyNullableRelation[Any] = fields.ForeignKeyField(
        "models.User", related_name="questions", null=True)
    author_id: int | None
    title = fields.CharField(max_length=200)
    body = fields.TextField()
    status = fields.CharEnumField(QuestionStatus, max_length=16, default=QuestionStatus.OPEN)
    accepted_answer: fields.ForeignKeyNullableRelation[Answer] = fields.ForeignKeyField(
        "models.Answer", related_name=False, null=True)
    accepted_answer_id: int | None
    duplicate_of: fields.ForeignKeyNullableRelation[Question] = fields.ForeignKeyField(
        "models.Question", related_name="duplicates", null=True)
    duplicate_of_id: int | None
    score = fields.IntField(default=0)
    answer_count = fields.IntField(default=0)
    created_at = fields.DatetimeField()
    updated_at = fields.DatetimeField()
    last_activity_at = fields.DatetimeField()
    embedding_model = fields.CharField(max_length=100, null=True)
    hidden_at = fields.DatetimeField(null=True)  # hidden by a moderator or by flags (moderation/)
    hidden_by: fields.ForeignKeyNullableRelation[Any] = fields.ForeignKeyField(
        "models.User", related_name=False, null=True)
    tags: fields.ManyToManyRelation[Tag] = fields.ManyToManyField(
        "models.Tag", through="question_tags", forward_key="tag_id", backward_key="question_id",
        related_name="questions",
    )

    class Meta:
        table = "questions"


class Answer(Model):
    id = fields.IntField(primary_key=True)
    question: fields.ForeignKeyRelation[Question] = fields.ForeignKeyField("models.Question", related_name="answers")
    question_id: int
    author: fields.ForeignKeyNullableRelation[Any] = fields.ForeignKeyField(
        "models.User", related_name="answers", null=True)
    author_id: int | None
    body = fields.TextField()
    score = fields.IntField(default=0)
    is_accepted = fields.BooleanField(default=False)
    is_wiki = fields.BooleanField(default=False)
    from_swarm: fields.ForeignKeyNullableRelation[Any] = fields.ForeignKeyField(
        "models.Swarm", related_name=False, null=True)
    from_swarm_id: int | None
    created_at = fields.DatetimeField()
    updated_at = fields.DatetimeField()
    hidden_at = fields.DatetimeField(null=True)  # hidden by a moderator or by flags (moderation/)
    hidden_by: fields.ForeignKeyNullableRelation[Any] = fields.ForeignKeyField(
        "models.User", related_name=False, null=True)

    class Meta:
        table = "answers"


class Comment(Model):
    id = fields.IntField(primary_key=True)
    question: fields.ForeignKeyNullableRelation[Question] = fields.ForeignKeyField(
        "models.Question", related_name="comments", null=True)
    answer: fields.ForeignKeyNullableRelation[Answer] = fields.ForeignKeyField(
        "models.Answer", related_name="comments", null=True)
    answer_id: int | None
    author: fields.ForeignKeyNullableRelation[Any] = fields.ForeignKeyField(
        "models.User", related_name="comments", null=True)
    body = fields.TextField()
    created_at = fields.DatetimeField(auto_now_add=True)
    hidden_at = fields.DatetimeField(null=True)  # hidden by a moderator or by flags (moderation/)
    hidden_by: fields.ForeignKeyNullableRelation[Any] = fields.ForeignKeyField(
        "models.User", related_name=False, null=True)

    class Meta:
        table = "comments"


class Vote(Model):
    id = fields.IntField(primary_key=True)
    user: fields.ForeignKeyRelation[Any] = fields.ForeignKeyField("models.User", related_name="votes")
    question: fields.ForeignKeyNullableRelation[Question] = fields.ForeignKeyField(
        "models.Question", related_name="votes", null=True)
    answer: fields.ForeignKeyNullableRelation[Answer] = fields.ForeignKeyField(
        "models.Answer", related_name="votes", null=True)
    answer_id: int | None
    value = fields.SmallIntField()
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "votes"


class Revision(Model):
    id = fields.IntField(primary_key=True)
    question: fields.ForeignKeyNullableRelation[Question] = fields.ForeignKeyField(
        "models.Question", related_name="revisions", null=True)
    answer: fields.ForeignKeyNullableRelation[Answer] = fields.ForeignKeyField(
        "models.Answer", related_name="revisions", null=True)
    editor: fields.ForeignKeyNullableRelation[Any] = fields.ForeignKeyField(
        "models.User", related_name="revisions", null=True)
    number = fields.IntField()
    title = fields.CharField(max_length=200, null=True)
    body = fields.TextField()
    tags = fields.TextField(default="")
    comment = fields.CharField(max_length=300, default="")
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "revisions"
