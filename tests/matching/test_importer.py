"""`supportswarm import` (JSON Lines) and `reindex`: stored like forum content, idempotent, resumable,
embedded in batches inline or through the EMBED_QUESTIONS job. Plumbing: the deterministic embedder."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from tortoise import connections

from embeddings import Embedder, HashingEmbedder, Vectors
from supportswarm import importer
from supportswarm.forum import services as forum
from supportswarm.forum.models import Answer, Question, QuestionStatus
from supportswarm.matching import services
from supportswarm.metrics.models import Event
from supportswarm.resources import Resources

RECORDS: list[dict[str, Any]] = [
    {"external_id": "se:1", "title": "Card declined abroad", "body": "In a shop in Lisbon.",
     "tags": ["Cards", "travel"], "answer": "Enable payments abroad in the app.", "created_at": "2021-03-04T05:06:07Z"},
    {"external_id": "se:2", "title": "How do I close my account?", "body": "", "tags": "account closing"},
    {"external_id": 3, "title": "Exchange rate for euros", "tags": ["fx rates!", "a b", "x" * 40]},
]


def write_jsonl(path: Path, lines: list[Any]) -> Path:
    path.write_text("\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n")
    return path


async def vectors() -> dict[str, str | None]:
    rows = await connections.get("default").execute_query_dict(
        "SELECT external_id, embedding_model FROM questions WHERE embedding IS NOT NULL")
    return {r["external_id"]: r["embedding_model"] for r in rows}


async def run_import(path: Path, resources: Resources, *, inline: bool = True, batch_size: int = 256
                     ) -> importer.ImportReport:
    report = await importer.import_file(path, embedder=resources.embedder, jobs=resources.jobs, inline=inline,
                                        batch_size=batch_size)
    await resources.jobs.drain()
    return report


class TestImport:
    async def test_stores_questions_like_the_forum_does(self, tmp_path: Path, resources: Resources,
                                                        embedder: Embedder) -> None:
        report = await run_import(write_jsonl(tmp_path / "qa.jsonl", RECORDS), resources)
        assert (report.read, report.imported, report.existing, report.embedded) == (3, 3, 0, 3)
        first = await Question.get(external_id="se:1").prefetch_related("tags")
        assert first.status == QuestionStatus.RESOLVED and first.answer_count == 1
        assert first.created_at.isoformat() == "2021-03-04T05:06:07+00:00"
        assert sorted(t.name for t in first.tags) == ["cards", "travel"]
        answer = await Answer.get(question_id=first.id)
        assert answer.is_accepted and answer.body == "Enable payments abroad in the app."
        assert first.accepted_answer_id == answer.id  # type: ignore[attr-defined]
        detail = await forum.question_detail(first.id)
        assert detail["answers"][0]["is_accepted"] is True
        assert len(await forum.revision_history(question_id=first.id)) == 1
        assert len(await forum.revision_history(answer_id=answer.id)) == 1
        second = await Question.get(external_id="se:2").prefetch_related("tags")
        assert second.status == QuestionStatus.OPEN and second.accepted_answer_id is None  # type: ignore[attr-defined]
        assert sorted(t.name for t in second.tags) == ["account", "closing"]
        third = await Question.get(external_id="3").prefetch_related("tags")
        assert sorted(t.name for t in third.tags) == ["a-b", "fx-rates"], "lenient tags; too long ones dropped"
        assert await vectors() == {"se:1": embedder.name, "se:2": embedder.name, "3": embedder.name}
        assert await Event.all().count() == 0, "imported history stays out of the metrics"

    async def test_a_second_run_adds_nothing(self, tmp_path: Path, resources: Resources) -> None:
        path = write_jsonl(tmp_path / "qa.jsonl", RECORDS)
        await run_import(path, resources)
        again = await run_import(path, resources, batch_size=2)
        assert (again.read, again.imported, again.existing, again.embedded) == (3, 0, 3, 0)
        assert await Question.all().count() == 3 and await Answer.all().count() == 1

    async def test_an_interrupted_import_finishes_embedding_when_run_again(self, tmp_path: Path,
                                                                           resources: Resources) -> None:
        path = write_jsonl(tmp_path / "qa.jsonl", RECORDS)
        await run_import(path, resources)
        await Question.filter(external_id__in=["se:1", "3"]).update(embedding_model=None)
        await connections.get("default").execute_query("UPDATE questions SET embedding = NULL "
                                                       "WHERE embedding_model IS NULL")
        again = await run_import(path, resources)
        assert (again.imported, again.embedded) == (0, 2)
        assert len(await vectors()) == 3

    async def test_bad_lines_are_skipped_and_reported(self, tmp_path: Path, resources: Resources) -> None:
        path = write_jsonl(tmp_path / "bad.jsonl", [
            RECORDS[0], "", "{not json", "[1, 2]", {"title": "No external id here"},
            {"external_id": "e1", "title": ""}, {"external_id": "e2", "title": "t" * 201},
            {"external_id": "e3", "title": "Has a bad time", "created_at": "yesterday"},
            {"external_id": "e4", "title": "Has a NUL", "body": "a\x00b"},
            {"external_id": "e5", "title": "Lone surrogate \ud800"},
            {"external_id": "se:1", "title": "Repeated in the file"},
        ])
        (tmp_path / "bad.jsonl").write_bytes(path.read_bytes() + b'{"external_id": "e6", "title": "\xff"}\n')
        report = await run_import(path, resources)
        assert (report.read, report.imported) == (11, 1)
        assert sum(report.skipped.values()) == 10
        text = report.summary()
        for reason in ("not JSON", "not a JSON object", "external_id must be", "title must be 1 to 200",
                       "not an ISO 8601 time", "NUL", "lone surrogate", "repeated in the file", "not UTF-8"):
            assert reason in text, reason
        assert "line 3" in text, "the report says where"

    async def test_with_workers_the_batches_go_through_the_embed_job(self, tmp_path: Path,
                                                                     resources: Resources) -> None:
        # inline=False is the REDIS_URL path: EMBED_QUESTIONS jobs (here run by the in-process queue).
        report = await run_import(write_jsonl(tmp_path / "qa.jsonl", RECORDS), resources, inline=False,
                                  batch_size=2)
        assert (report.imported, report.embedded) == (3, 3)
        assert len(await vectors()) == 3


def test_readers_are_chosen_by_file_name(tmp_path: Path) -> None:
    assert importer.reader_for(tmp_path / "a.jsonl") is importer.read_jsonl
    assert importer.reader_for(tmp_path / "a.unknown") is importer.read_jsonl
    assert importer.count_lines(write_jsonl(tmp_path / "a.jsonl", RECORDS)) == 3


class TestReindex:
    async def test_reembeds_only_stale_questions_unless_asked_for_all(self, tmp_path: Path, resources: Resources,
                                                                      embedder: Embedder) -> None:
        await run_import(write_jsonl(tmp_path / "qa.jsonl", RECORDS), resources)
        await Question.filter(external_id="se:2").update(embedding_model="old-model@0")
        assert await services.count_stale(embedder.name) == 1
        seen: list[int] = []
        done = await services.reindex(embedder=embedder, jobs=resources.jobs, inline=True, progress=seen.append)
        assert (done, sum(seen)) == (1, 1)
        assert await services.count_stale(embedder.name) == 0
        assert set((await vectors()).values()) == {embedder.name}
        everything = await services.reindex(embedder=embedder, jobs=resources.jobs, inline=True, everything=True,
                                            batch_size=2)
        assert everything == 3

    async def test_with_workers_reindex_queues_batches(self, tmp_path: Path, resources: Resources,
                                                       embedder: Embedder) -> None:
        await run_import(write_jsonl(tmp_path / "qa.jsonl", RECORDS), resources)
        await Question.all().update(embedding_model="old-model@0")
        queued = await services.reindex(embedder=embedder, jobs=resources.jobs, inline=False, batch_size=2)
        assert queued == 3
        assert await services.wait_embedded(model=embedder.name, max_idle=5.0, poll=0.01) == 0


class TestCommands:
    async def test_import_and_reindex_print_what_they_did(self, tmp_path: Path, resources: Resources,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
        code = await importer.command_import(resources, write_jsonl(tmp_path / "qa.jsonl", [*RECORDS, "oops"]))
        out = capsys.readouterr()
        assert code == 0
        assert "read 4 records: 3 imported, 0 already present, 1 skipped; 3 embedded" in out.out
        assert "import qa.jsonl" in out.err and "4/4" in out.err, "the progress bar"
        assert await importer.command_reindex(resources, everything=False) == 0
        assert "0 questions re-embedded" in capsys.readouterr().out
        assert await importer.command_reindex(resources) == 0
        assert "3 questions re-embedded" in capsys.readouterr().out
        assert await importer.command_import(resources, tmp_path / "missing.jsonl") == 2

    def test_the_cli_knows_both_commands(self) -> None:
        from supportswarm.cli import RESOURCE_COMMANDS, build_parser

        args = build_parser().parse_args(["import", "dump.jsonl", "--batch-size", "64"])
        assert (args.command, args.file, args.batch_size, args.no_wait) == ("import", "dump.jsonl", 64, False)
        assert build_parser().parse_args(["reindex", "--stale"]).stale is True
        assert build_parser().parse_args(["reindex"]).stale is False
        assert {"import", "reindex"} <= set(RESOURCE_COMMANDS)


def test_the_progress_bar_counts_and_totals() -> None:
    import io

    stream = io.StringIO()
    bar = importer.ProgressBar("import x", 4, stream=stream)
    bar(3)
    bar(1)
    bar.close()
    assert "import x [" in stream.getvalue() and "4/4 100%" in stream.getvalue()


class CrashingEmbedder(HashingEmbedder):
    def encode(self, texts: Sequence[str], *, batch_size: int = 64) -> Vectors:
        raise RuntimeError("the model crashed")


async def test_a_crashing_encoder_stops_the_import_instead_of_hanging(resources: Resources) -> None:
    records = (importer.Record(external_id=f"r{i}", title=f"Question {i}", body="") for i in range(200))
    with pytest.raises(RuntimeError, match="the model crashed"):
        await asyncio.wait_for(importer.import_records(records, embedder=CrashingEmbedder(), jobs=resources.jobs,
                                                       inline=True, batch_size=10), timeout=60)
