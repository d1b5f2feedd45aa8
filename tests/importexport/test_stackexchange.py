"""Stack Exchange data dumps: small Posts.xml, Users.xml and Comments.xml in the real format."""

from __future__ import annotations

import argparse
import tracemalloc
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

import pytest
from tortoise import connections

from embeddings import Embedder
from supportswarm import cli
from supportswarm.accounts.models import User
from supportswarm.errors import InvalidInput
from supportswarm.export import UNUSABLE_PASSWORD
from supportswarm.forum.models import Answer, Comment, Question
from supportswarm.html_markdown import html_to_markdown
from supportswarm.markdown import render_markdown
from supportswarm.resources import Resources
from supportswarm.stackexchange import (
    DumpReport,
    import_dump,
    parse_tags,
    rows,
    username_for,
)

SITE = "cooking.stackexchange.com"
T0 = "2019-05-04T10:00:00.000"

# In dump order, by Id. Answer 5 comes before its question 6, as happens in real dumps.
POSTS: list[dict[str, Any]] = [
    {"Id": 1, "PostTypeId": 1, "AcceptedAnswerId": 3, "Score": 12, "OwnerUserId": 10, "CreationDate": T0,
     "LastActivityDate": "2020-01-02T03:04:05.000", "Title": "How long should I boil an egg?",
     "Tags": "<eggs><boiling>",
     "Body": "<p>I want a <em>soft</em> yolk. Is <code>6 min</code> right?</p>\n"
             "<p>See <a href=\"/questions/6\">the bread question</a>.</p>\n"},
    {"Id": 2, "PostTypeId": 2, "ParentId": 1, "Score": 3, "OwnerUserId": 11, "CreationDate": T0,
     "Body": "<p>About 6 minutes from boiling.</p>\n"},
    {"Id": 3, "PostTypeId": 2, "ParentId": 1, "Score": 25, "OwnerUserId": 12, "CreationDate": T0,
     "CommunityOwnedDate": T0,
     "Body": "<p>Steps:</p>\n<ol>\n<li>Boil water</li>\n<li>Add eggs for <strong>6:30</strong></li>\n</ol>\n"
             "<pre><code>timer = 390  # seconds\n</code></pre>\n"},
    {"Id": 4, "PostTypeId": 5, "Score": 0, "CreationDate": T0, "Body": "<p>Eggs are laid by birds.</p>"},
    {"Id": 5, "PostTypeId": 2, "ParentId": 6, "Score": 8, "OwnerUserId": 11, "CreationDate": T0,
     "Body": "<p>Knead it for ten minutes.</p>\n"},
    {"Id": 6, "PostTypeId": 1, "AcceptedAnswerId": 5, "Score": 4, "OwnerUserId": 11, "CreationDate": T0,
     "Title": "Why is my bread dense?", "Tags": "|baking|bread|", "Body": "<p>It never rises.</p>"},
    {"Id": 7, "PostTypeId": 4, "Score": 0, "CreationDate": T0, "Body": "<p>Excerpt.</p>"},
    {"Id": 8, "PostTypeId": 2, "ParentId": 999, "Score": 1, "CreationDate": T0, "Body": "<p>Orphan.</p>"},
    {"Id": 9, "PostTypeId": 1, "Score": 1, "CreationDate": T0, "Title": "", "Body": "<p>No title.</p>"},
]
USERS: list[dict[str, Any]] = [
    {"Id": -1, "Reputation": 1, "CreationDate": T0, "DisplayName": "Community", "LastAccessDate": T0},
    {"Id": 10, "Reputation": 2500, "CreationDate": T0, "DisplayName": "Jürgen Müller", "LastAccessDate": T0},
    {"Id": 11, "Reputation": 101, "CreationDate": T0, "DisplayName": "bob smith", "LastAccessDate": T0},
    {"Id": 12, "Reputation": 7, "CreationDate": T0, "DisplayName": "漢字", "LastAccessDate": T0},
]
COMMENTS: list[dict[str, Any]] = [
    {"Id": 100, "PostId": 1, "Score": 2, "Text": "Altitude matters too.", "CreationDate": T0, "UserId": 11},
    {"Id": 101, "PostId": 3, "Score": 0, "Text": "Works every time, thanks!", "CreationDate": T0, "UserId": 10},
    {"Id": 102, "PostId": 999, "Score": 0, "Text": "On a deleted post.", "CreationDate": T0},
]


def write_dump(folder: Path, name: str, root: str, items: list[dict[str, Any]]) -> Path:
    """A dump file as Stack Exchange writes it: one <row> per line, every value an attribute."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = ['<?xml version="1.0" encoding="utf-8"?>', f"<{root}>"]
    lines += ["  <row " + " ".join(f"{k}={quoteattr(str(v))}" for k, v in item.items()) + " />" for item in items]
    lines.append(f"</{root}>")
    path = folder / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_site(folder: Path, posts: list[dict[str, Any]] | None = None) -> Path:
    write_dump(folder, "Users.xml", "users", USERS)
    write_dump(folder, "Comments.xml", "comments", COMMENTS)
    return write_dump(folder, "Posts.xml", "posts", POSTS if posts is None else posts)


async def _answer_external_id(answer_id: int) -> str:
    # The answers' external_id column is written by imports only; the ORM model does not map it.
    rows_ = await connections.get("default").execute_query_dict("SELECT external_id FROM answers WHERE id = $1",
                                                                [answer_id])
    return str(rows_[0]["external_id"])


async def _import(posts: Path, resources: Resources, embedder: Embedder) -> DumpReport:
    return await import_dump(posts, embedder=embedder, jobs=resources.jobs, inline=True, batch_size=2)


async def test_imports_questions_answers_users_and_comments(
    resources: Resources, embedder: Embedder, tmp_path: Path
) -> None:
    report = await _import(write_site(tmp_path / SITE), resources, embedder)

    assert report.site == SITE
    assert (report.questions.imported, report.questions.embedded) == (2, 2)
    assert report.added == {"user": 4, "answer": 3, "comment": 2} and report.accepted == 2
    assert report.skipped == {"answer to a question that was not imported": 1,
                              "comment on a post that was not imported": 1}
    assert report.questions.skipped == {
        "post type 5 (tag wiki): not a question or answer": 1,
        "post type 4 (tag wiki excerpt): not a question or answer": 1,
        "question without a usable title or id (1 to 200 characters)": 1,
    }

    eggs = await Question.get(external_id=f"se:{SITE}:1").prefetch_related("tags", "author")
    assert sorted(t.name for t in eggs.tags) == ["boiling", "eggs"]
    assert (eggs.status, eggs.score, eggs.answer_count) == ("resolved", 12, 2)
    assert eggs.author is not None and eggs.author.username == "Jurgen.Muller-10"
    assert eggs.last_activity_at.year == 2020 and eggs.created_at.year == 2019
    assert "`6 min`" in eggs.body and f"(https://{SITE}/questions/6)" in eggs.body
    accepted = await Answer.get(id=eggs.accepted_answer_id)  # type: ignore[attr-defined]
    assert await _answer_external_id(accepted.id) == f"se:{SITE}:3" and accepted.is_accepted and accepted.is_wiki
    assert accepted.score == 25 and "1. Boil water" in accepted.body and "```\ntimer = 390" in accepted.body

    bread = await Question.get(external_id=f"se:{SITE}:6").prefetch_related("tags")
    assert sorted(t.name for t in bread.tags) == ["baking", "bread"]
    assert await _answer_external_id(bread.accepted_answer_id) == f"se:{SITE}:5"  # type: ignore[attr-defined]

    users = {u.username: u for u in await User.filter(username__in=["Community-n1", "bob.smith-11", "user-12"])}
    assert len(users) == 3 and users["bob.smith-11"].reputation == 101
    assert all(u.password_hash == UNUSABLE_PASSWORD for u in users.values())
    comments = await Comment.all().order_by("id")
    assert [c.body for c in comments] == ["Altitude matters too.", "Works every time, thanks!"]
    assert comments[0].question_id == eggs.id and comments[1].answer_id == accepted.id  # type: ignore[attr-defined]
    embedded = await Question.filter(embedding_model=embedder.name).count()
    assert embedded == 2


async def test_running_again_adds_nothing(resources: Resources, embedder: Embedder, tmp_path: Path) -> None:
    posts = write_site(tmp_path / SITE)
    await _import(posts, resources, embedder)

    again = await _import(posts, resources, embedder)

    assert again.questions.imported == 0 and again.questions.existing == 2 and again.questions.embedded == 0
    assert not again.added and again.present == {"user": 4, "answer": 3, "comment": 2}
    assert again.accepted == 0
    assert (await Question.all().count(), await Answer.all().count(), await Comment.all().count()) == (2, 3, 2)


async def test_an_interrupted_import_is_finished_by_running_it_again(
    resources: Resources, embedder: Embedder, tmp_path: Path
) -> None:
    folder = tmp_path / SITE
    # The first run stopped after the first rows (here: a dump holding only them, in the same site folder).
    first = await _import(write_site(folder, POSTS[:3]), resources, embedder)
    assert first.questions.imported == 1 and first.accepted == 1

    second = await _import(write_site(folder), resources, embedder)

    assert second.questions.imported == 1 and second.added["answer"] == 1 and second.accepted == 1
    assert second.present["answer"] == 2
    resolved = await Question.filter(status="resolved").count()
    assert (await Question.all().count(), await Answer.all().count(), resolved) == (2, 3, 2)


async def test_a_cut_off_dump_stores_what_it_read_and_says_so(
    resources: Resources, embedder: Embedder, tmp_path: Path
) -> None:
    posts = write_site(tmp_path / SITE)
    text = posts.read_text()
    posts.write_text(text[: text.index('<row Id="5"')])  # the download stopped mid-file

    with pytest.raises(InvalidInput, match="not well-formed XML"):
        await _import(posts, resources, embedder)

    assert await Question.filter(external_id=f"se:{SITE}:1").exists()


async def test_cli_import_picks_the_reader_by_file(resources: Resources, tmp_path: Path) -> None:
    posts = write_site(tmp_path / "dump")
    args = argparse.Namespace(file=str(posts), site="my-site", batch_size=50, no_wait=False)

    assert await cli._import(resources, args) == 0

    assert await Question.filter(external_id="se:my-site:6").exists()


def test_rows_stream_in_constant_memory(tmp_path: Path) -> None:
    body = "<p>" + "x" * 500 + "</p>"
    many = [{"Id": i, "PostTypeId": 2, "ParentId": 1, "CreationDate": T0, "Body": body} for i in range(20_000)]
    path = write_dump(tmp_path, "Posts.xml", "posts", many)
    tracemalloc.start()
    try:
        count = sum(1 for _ in rows(path))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 20_000
    assert path.stat().st_size > 10_000_000 and peak < 2_000_000


@pytest.mark.parametrize(("html", "rendered"), [
    ("<p>a <b>bold</b> and <i>it</i> and <code>x*y</code></p>",
     "<p>a <strong>bold</strong> and <em>it</em> and <code>x*y</code></p>"),
    ("<p>*not emphasis* and 1 &lt; 2 &amp; [x]</p>", "<p>*not emphasis* and 1 &lt; 2 &amp; [x]</p>"),
    ("<p># not a heading</p><h3>a heading</h3>", "<p># not a heading</p>\n<h3>a heading</h3>"),
    ("<ul><li>one</li><li>two<ul><li>inner</li></ul></li></ul>",
     "<ul>\n<li>one</li>\n<li>two\n<ul>\n<li>inner</li>\n</ul>\n</li>\n</ul>"),
    ("<blockquote><p>quoted</p><p>more</p></blockquote><p>after</p>",
     "<blockquote>\n<p>quoted</p>\n<p>more</p>\n</blockquote>\n<p>after</p>"),
    ("<pre><code>a ``` b\n  indented\n</code></pre>", "<pre><code>a ``` b\n  indented\n</code></pre>"),
    ("<p><a href=\"javascript:alert(1)\">click</a> <a href=\"https://x.org/a_(b)\">ok</a></p>",
     "<p>click <a href=\"https://x.org/a_%28b%29\" rel=\"nofollow ugc noopener\">ok</a></p>"),
    ("<p>line<br>break</p><hr><script>alert(1)</script>", "<p>line<br>\nbreak</p>\n<hr>"),
])
def test_html_to_markdown_renders_like_the_original(html: str, rendered: str) -> None:
    assert str(render_markdown(html_to_markdown(html))).strip() == rendered


def test_tags_and_usernames() -> None:
    assert parse_tags("<c#><.net><Visual Studio>") == ["c#", "dotnet", "visual-studio"]
    assert parse_tags("|python|pandas|") == ["python", "pandas"] and parse_tags(None) == []
    assert username_for("Jürgen Müller", 10) == "Jurgen.Muller-10"
    assert username_for("", 3) == "user-3" and username_for("a" * 40, 123456) == "a" * 25 + "-123456"
    salted = username_for("bob", 11, salt="site")
    assert salted.startswith("bob-11-") and len(salted) == len("bob-11-") + 4
