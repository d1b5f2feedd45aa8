"""Full export, and its restore into an empty database: the round trip loses nothing."""

from __future__ import annotations

import argparse
import gzip
import json
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from supportswarm import cli
from supportswarm.accounts import services as accounts
from supportswarm.accounts.models import User
from supportswarm.db import ConnectionParams
from supportswarm.errors import Conflict, InvalidInput, NotAuthenticated
from supportswarm.export import SECTIONS, UNUSABLE_PASSWORD, export_forum, is_export_file, restore_export
from supportswarm.forum import services as forum
from supportswarm.forum.models import Question
from supportswarm.resources import Resources
from supportswarm.swarm import services as swarm
from tests.conftest import Actor


async def _user(actor: Actor) -> User:
    return await User.get(id=actor.user["id"])


async def build_forum(make_user: Any, res: Resources) -> None:
    """A small forum with every kind of row: accepted and swarm answers, comments, votes, edits,
    a duplicate, a resolved swarm with a transcript and a linked question, and their events."""
    alice, bob = await _user(await make_user("alice")), await _user(await make_user("bobby", "expert"))
    staff = await _user(await make_user("stella", "staff"))
    q1 = await forum.create_question(alice, "Card declined while travelling", "Declined in a shop abroad.",
                                     ["cards", "travel"], jobs=None)
    a1 = await forum.post_answer(bob, q1.id, "Enable travel mode in the app, then try again.")
    await forum.accept_answer(alice, a1.id)
    await forum.post_comment(bob, "Which country were you in?", question_id=q1.id)
    await forum.post_comment(alice, "That worked, thanks!", answer_id=a1.id)
    await forum.vote(alice, value=1, answer_id=a1.id)
    await forum.vote(bob, value=-1, question_id=q1.id)
    await forum.edit_question(alice, q1.id, title="Card declined while travelling in Spain",
                              body="Declined in a shop in Madrid.", tags=["cards"], comment="more detail", jobs=None)
    dup = await forum.create_question(bob, "Card refused abroad, what now?", "Same thing here.", [], jobs=None)
    await forum.mark_duplicate(staff, dup.id, q1.id)

    q2 = await forum.create_question(alice, "Transfer stuck as pending for days", "Sent on Monday.", ["transfers"],
                                     jobs=None)
    q3 = await forum.create_question(bob, "My transfer is pending too", "Since Tuesday.", ["transfers"], jobs=None)
    room = await swarm.open_swarm(q2.id, opened_by=alice, reason="manual", broker=res.broker, jobs=res.jobs)
    await swarm.link_questions_to_swarm(room.id, [q3.id], broker=res.broker)
    await swarm.join_swarm(await swarm.get_swarm(room.id), bob, expert_reputation=200)
    await swarm.post_message(room.id, alice, "Still pending, any idea?", "c-1", broker=res.broker, jobs=res.jobs)
    await swarm.post_message(room.id, bob, "Pending transfers clear after the bank's cut-off; check the "
                             "reference.", "c-2", broker=res.broker, jobs=res.jobs)
    await swarm.resolve_swarm(room.id, alice, 2, broker=res.broker, expert_reputation=200)
    await res.jobs.drain()


def _records(path: Path) -> list[dict[str, Any]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def _comparable(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Everything but the header (a new export id and time) and the users' `imported` flag (a restore sets it)."""
    out = []
    for record in records[1:]:
        if record["type"] == "user":
            record = {k: v for k, v in record.items() if k != "imported"}
        out.append(record)
    return out


async def test_export_then_restore_into_an_empty_database_round_trips(
    make_user: Any, resources: Resources, pg_params: ConnectionParams, empty_db: ConnectionParams, tmp_path: Path
) -> None:
    await build_forum(make_user, resources)
    first, second = tmp_path / "forum.jsonl", tmp_path / "again.jsonl.gz"

    counts = await export_forum(pg_params, first)
    report = await restore_export(empty_db, first)
    await export_forum(empty_db, second)

    assert counts["question"] == 4 and counts["answer"] == 3 and counts["swarm_message"] == 2
    assert all(counts[s.type] > 0 for s in SECTIONS if s.type != "suggestion")
    assert report.complete and not report.skipped
    assert dict(report.added) == {k: v for k, v in counts.items() if v}
    original, restored = _records(first), _records(second)
    assert original[0]["type"] == "supportswarm-export" and original[-1] == {"type": "end", "counts": counts}
    assert _comparable(restored) == _comparable(original)
    by_type = {r["type"]: r for r in original}
    assert by_type["swarm"]["linked_question_ids"] and by_type["swarm_message"]["client_msg_id"]
    questions = [r for r in original if r["type"] == "question"]
    assert questions[0]["tags"] == ["cards"] and questions[0]["accepted_answer_id"] is not None


async def test_export_holds_no_password_hashes_and_restored_users_cannot_log_in(
    make_user: Any, resources: Resources, pg_params: ConnectionParams, empty_db: ConnectionParams, tmp_path: Path
) -> None:
    await make_user("alice", password="a secret password")
    path = tmp_path / "forum.jsonl"
    await export_forum(pg_params, path)
    text = path.read_text()
    assert "password" not in text and "argon2" not in text and "a secret password" not in text

    await restore_export(empty_db, path)

    conn = await asyncpg.connect(empty_db.url())
    try:
        row = await conn.fetchrow("SELECT password_hash, imported FROM users WHERE username = 'alice'")
    finally:
        await conn.close()
    assert row is not None and row["password_hash"] == UNUSABLE_PASSWORD and row["imported"] is True
    # The same hash in the live database: no password, not even an empty one, verifies against it.
    await User.filter(username="alice").update(password_hash=UNUSABLE_PASSWORD)
    for attempt in ("a secret password", "", UNUSABLE_PASSWORD):
        with pytest.raises(NotAuthenticated):
            await accounts.authenticate("alice", attempt)


async def test_an_interrupted_restore_resumes_and_a_rerun_adds_nothing(
    make_user: Any, resources: Resources, pg_params: ConnectionParams, empty_db: ConnectionParams, tmp_path: Path
) -> None:
    await build_forum(make_user, resources)
    full, cut = tmp_path / "forum.jsonl", tmp_path / "cut.jsonl"
    counts = await export_forum(pg_params, full)
    lines = full.read_text().splitlines(keepends=True)
    cut.write_text("".join(lines[: len(lines) // 2]))  # the same export, as far as a crash let it get

    partial = await restore_export(empty_db, cut)
    resumed = await restore_export(empty_db, full)
    rerun = await restore_export(empty_db, full)

    assert not partial.complete and "cut short" in partial.summary()
    total = sum(counts.values())
    assert sum(partial.added.values()) + sum(resumed.added.values()) == total
    assert sum(rerun.added.values()) == 0 and sum(rerun.present.values()) == total
    again = tmp_path / "again.jsonl"
    await export_forum(empty_db, again)
    assert _comparable(_records(again)) == _comparable(_records(full))


async def test_restore_refuses_a_database_in_use_and_files_that_are_not_exports(
    make_user: Any, pg_params: ConnectionParams, tmp_path: Path
) -> None:
    await make_user("alice")
    path = tmp_path / "forum.jsonl"
    await export_forum(pg_params, path)
    with pytest.raises(Conflict, match="empty database"):
        await restore_export(pg_params, path)

    plain = tmp_path / "questions.jsonl"
    plain.write_text(json.dumps({"external_id": "x1", "title": "A plain import line", "body": "..."}) + "\n")
    assert is_export_file(path) and not is_export_file(plain) and not is_export_file(tmp_path / "missing.jsonl")
    with pytest.raises(InvalidInput):
        await restore_export(pg_params, plain)


async def test_bad_lines_are_skipped_and_reported(
    pg_params: ConnectionParams, empty_db: ConnectionParams, tmp_path: Path
) -> None:
    path = tmp_path / "edited.jsonl"
    user = {"type": "user", "id": 5, "username": "carol", "role": "customer", "created_at": "2024-03-01T10:00:00+00:00"}
    lines = [
        {"type": "supportswarm-export", "version": 1, "export_id": "hand-made"},
        user,
        {"type": "user", "id": 6, "username": "dave", "role": "pirate"},  # violates the role check
        {"type": "user", "id": "seven", "username": "erin"},
        {"type": "question", "id": 1, "title": "A question that stays", "body": "b", "author_id": 5,
         "created_at": "2024-03-01T10:00:00+00:00", "updated_at": "2024-03-01T10:00:00+00:00",
         "last_activity_at": "2024-03-01T10:00:00+00:00", "tags": ["ok"], "accepted_answer_id": 99},
        {"type": "answer", "id": 2, "question_id": 404, "body": "orphan", "created_at": "2024-03-01T10:00:00+00:00",
         "updated_at": "2024-03-01T10:00:00+00:00"},
        {"type": "mystery"},
    ]
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n{not json\n")

    report = await restore_export(empty_db, path)

    assert dict(report.added) == {"user": 1, "question": 1}
    assert report.skipped == {"user rejected by the database": 1, "user has an invalid value": 1,
                              "answer rejected by the database": 1, "unknown record type": 1, "invalid JSON": 1}
    assert any("answer 2" in e for e in report.examples)
    conn = await asyncpg.connect(empty_db.url())
    try:
        # The accepted answer was never restored: the link is dropped, not the question.
        assert await conn.fetchval("SELECT accepted_answer_id FROM questions WHERE id = 1") is None
        assert await conn.fetchval("SELECT nextval(pg_get_serial_sequence('users', 'id'))") == 6
    finally:
        await conn.close()


def test_cli_export_writes_the_file(pg_params: ConnectionParams, tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("DATABASE_URL", pg_params.url())
    monkeypatch.setenv("SECRET_KEY", "test-secret")
    monkeypatch.delenv("REDIS_URL", raising=False)
    # Root logging and warning capture are process-wide: leave them as pytest set them.
    monkeypatch.setattr(cli, "configure_logging", lambda settings: None)
    path = tmp_path / "out.jsonl.gz"

    assert cli.main(["export", str(path)]) == 0

    records = _records(path)
    assert records[0]["type"] == "supportswarm-export" and records[-1]["type"] == "end"
    assert "exported to" in capsys.readouterr().out


async def test_cli_import_of_an_export_restores_and_embeds(
    make_user: Any, resources: Resources, pg_params: ConnectionParams, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    await build_forum(make_user, resources)
    path = tmp_path / "forum.jsonl"
    counts = await export_forum(pg_params, path)
    conn = await asyncpg.connect(pg_params.url())
    try:  # the same database, emptied: as on a new server
        await conn.execute("TRUNCATE users, questions, events, import_runs RESTART IDENTITY CASCADE")
    finally:
        await conn.close()
    args = argparse.Namespace(file=str(path), site=None, batch_size=50, no_wait=False)

    assert await cli._import(resources, args) == 0

    assert await Question.all().count() == counts["question"]
    assert await Question.filter(embedding_model=resources.embedder.name).count() == counts["question"]
    assert "restored" in capsys.readouterr().out
    # A new question gets an id after the restored ones: the sequences were moved on.
    user = await User.get(username="alice")
    fresh = await forum.create_question(user, "A question after the restore", "body", [], jobs=None)
    assert fresh.id == counts["question"] + 1
