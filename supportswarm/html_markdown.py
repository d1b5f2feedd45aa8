"""HTML to Markdown, for bodies imported from systems that store HTML (Stack Exchange dumps).

The forum stores Markdown and renders it with markdown-it, raw HTML disabled, then nh3. Converting
(instead of storing the HTML) keeps one rendering path: nothing imported reaches a page as HTML, and
the text is escaped so it reads the same once rendered. A leaf module: standard library only.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any

_ESCAPE = re.compile(r"([\\`*_\[\]<])")
_LINE_START = re.compile(r"^(\s*)([#>+=|-]|\d+[.)])")
_SPACES = re.compile(r"\s+")
# Characters that would end or break a Markdown link destination, percent-encoded (same URL).
_URL_UNSAFE = str.maketrans({" ": "%20", "(": "%28", ")": "%29", "<": "%3C", ">": "%3E", "\n": ""})


def _escape(text: str) -> str:
    return _ESCAPE.sub(r"\\\1", text)


@dataclass(frozen=True)
class _Break:
    """A line break (`blank`: a paragraph break) and the prefix of the line after it. Consecutive
    breaks merge into one when rendered, so block elements need not know what their neighbours wrote."""

    blank: bool
    prefix: str


class _Markdown(HTMLParser):
    """A small HTML to Markdown converter for what Stack Exchange bodies contain: paragraphs, headings,
    emphasis, code, pre, links, images, lists, blockquotes, rules, line breaks. Anything else is
    reduced to its text. Text is escaped, so it reads as the same text once rendered."""

    _BLOCKS = frozenset({"p", "div", "h1", "h2", "h3", "h4", "h5", "h6", "table", "tr", "dl", "dt", "dd"})
    _MARKS = {"strong": "**", "b": "**", "em": "*", "i": "*", "del": "~~", "s": "~~", "strike": "~~"}

    def __init__(self, base_url: str | None) -> None:
        super().__init__(convert_charrefs=True)
        self.base_url = base_url
        self.out: list[str | _Break] = []
        self.prefix: list[str] = []  # "> " per blockquote, spaces per list item
        self.lists: list[list[Any]] = []  # [ordered, next number]
        self.links: list[tuple[int, str | None]] = []  # (position in out, href)
        self.raw: list[str] | None = None  # text of a <pre> or inline <code> being collected
        self.in_pre = False
        self.fresh_item = False  # just wrote a list marker: the item's first block stays on its line

    def _break(self, *, blank: bool = True) -> None:
        if not self.fresh_item:
            self.out.append(_Break(blank, "".join(self.prefix)))

    def _at_line_start(self) -> bool:
        for token in reversed(self.out):
            if isinstance(token, _Break):
                return True
            if token.strip():
                return False
        return True

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.raw is not None:
            return
        if tag in self._BLOCKS:
            self._break()
            if tag[0] == "h" and tag[1:].isdigit():
                self.out.append("#" * int(tag[1]) + " ")
        elif tag in self._MARKS:
            self.out.append(self._MARKS[tag])
        elif tag in self._STARTS:
            self._STARTS[tag](self, dict(attrs))
        if tag != "li":
            self.fresh_item = self.fresh_item and tag in ("p", "div")

    def _br(self, attrs: dict[str, str | None]) -> None:
        self.out.append("  ")
        self._break(blank=False)

    def _hr(self, attrs: dict[str, str | None]) -> None:
        self._break()
        self.out.append("* * *")
        self._break()

    def _list(self, ordered: bool) -> None:
        self._break(blank=not self.lists)
        self.lists.append([ordered, 1])

    def _quote(self, attrs: dict[str, str | None]) -> None:
        self._break()
        self.prefix.append("> ")
        self._break(blank=False)

    def _pre(self, attrs: dict[str, str | None]) -> None:
        self._break()
        self.raw, self.in_pre = [], True

    def _code(self, attrs: dict[str, str | None]) -> None:
        self.raw = []

    def _link(self, attrs: dict[str, str | None]) -> None:
        self.links.append((len(self.out), self._url(attrs.get("href"))))

    def _img(self, attrs: dict[str, str | None]) -> None:
        src = self._url(attrs.get("src"))
        if src:
            self.out.append(f"![{_escape(attrs.get('alt') or '')}]({src})")

    def _start_item(self, attrs: dict[str, str | None]) -> None:
        if not self.lists:
            self.lists.append([False, 1])
        ordered, number = self.lists[-1]
        marker = f"{number}. " if ordered else "- "
        self.lists[-1][1] = number + 1
        self.fresh_item = False
        self._break(blank=False)
        self.out.append(marker)
        self.prefix.append(" " * len(marker))
        self.fresh_item = True

    _STARTS: dict[str, Callable[[_Markdown, dict[str, str | None]], None]] = {
        "br": _br, "hr": _hr, "blockquote": _quote, "pre": _pre, "code": _code, "a": _link, "img": _img,
        "li": _start_item, "ul": lambda self, attrs: self._list(False), "ol": lambda self, attrs: self._list(True),
    }

    def handle_endtag(self, tag: str) -> None:
        if tag == "pre" and self.in_pre:
            self._end_pre()
        elif self.raw is not None and not self.in_pre and tag == "code":
            self._end_code()
        elif self.raw is not None:
            return
        elif tag in self._BLOCKS or tag == "blockquote":
            if tag == "blockquote" and self.prefix:
                self.prefix.pop()
            self._break()
        elif tag in self._MARKS:
            self.out.append(self._MARKS[tag])
        elif tag in ("ul", "ol") and self.lists:
            self.lists.pop()
            self._break(blank=not self.lists)
        elif tag == "li" and self.prefix:
            self.prefix.pop()
            self.fresh_item = False
        elif tag == "a" and self.links:
            self._end_link()

    def _end_pre(self) -> None:
        code = "".join(self.raw or []).strip("\n")
        self.raw, self.in_pre = None, False
        fence = "`" * max(3, _longest_run(code, "`") + 1)
        prefix = "".join(self.prefix)
        self.fresh_item = False
        self.out.append(f"{fence}\n{prefix}" + code.replace("\n", "\n" + prefix) + f"\n{prefix}{fence}")
        self._break()

    def _end_code(self) -> None:
        code = "".join(self.raw or []).replace("\n", " ")
        self.raw = None
        if code:
            ticks = "`" * (_longest_run(code, "`") + 1)
            pad = " " if code.startswith("`") or code.endswith("`") else ""
            self.out.append(f"{ticks}{pad}{code}{pad}{ticks}")
            self.fresh_item = False

    def _end_link(self) -> None:
        start, href = self.links.pop()
        text = "".join(t for t in self.out[start:] if isinstance(t, str)).strip()
        del self.out[start:]
        self.out.append(text if href is None else f"[{text or _escape(href)}]({href})")

    def handle_data(self, data: str) -> None:
        if self.lasttag in ("script", "style"):
            return  # never in a dump, but a hand-made file may have them: their text is not content
        if self.raw is not None:
            self.raw.append(data)
            return
        text = _SPACES.sub(" ", data)
        if self._at_line_start() or self.fresh_item:
            text = text.lstrip()
            if not text:
                return
            text = _LINE_START.sub(r"\1\\\2", _escape(text))
        else:
            text = _escape(text)
        self.fresh_item = False
        self.out.append(text)

    def _url(self, url: str | None) -> str | None:
        """Only web and mail links survive; the dump's site-relative links point back to the site."""
        if not url:
            return None
        url = url.strip().translate(_URL_UNSAFE)
        if url.startswith("//"):
            url = "https:" + url
        elif url.startswith("/") and self.base_url:
            url = self.base_url + url
        return url if re.match(r"^(https?:|mailto:)", url, re.IGNORECASE) else None

    def markdown(self) -> str:
        self.close()
        parts: list[str] = []
        run: list[_Break] = []
        for token in [*self.out, _Break(False, "")]:
            if isinstance(token, _Break):
                run.append(token)
            elif token.strip() or not run:
                if run:  # before the first text, only the prefix matters (a body that opens with a quote)
                    parts.append(_render_breaks(run) if parts else run[-1].prefix)
                run = []
                parts.append(token)
        return "\n".join(line.rstrip() if not line.endswith("  ") else line
                         for line in "".join(parts).strip().split("\n")).strip()


def _render_breaks(run: list[_Break]) -> str:
    """Consecutive breaks as one: a blank line if any asks for one (with the shortest prefix, so a
    quote that ended stays ended), then the last break's prefix for the next line."""
    if any(b.blank for b in run):
        return "\n" + min((b.prefix for b in run), key=len).rstrip() + "\n" + run[-1].prefix
    return "\n" + run[-1].prefix


def _longest_run(text: str, char: str) -> int:
    runs = re.findall(re.escape(char) + "+", text)
    return max((len(r) for r in runs), default=0)


def html_to_markdown(html: str, *, base_url: str | None = None) -> str:
    """Markdown that renders (with markdown-it) like the given HTML body. `base_url` completes site-relative links."""
    parser = _Markdown(base_url)
    parser.feed(html)
    return parser.markdown()
