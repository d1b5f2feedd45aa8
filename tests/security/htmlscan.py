"""Finds executable markup in a page: what an XSS payload would need to run, whatever page it landed on."""

from __future__ import annotations

from html.parser import HTMLParser
from urllib.parse import urlsplit

# Elements our templates never emit and that run code or load documents.
FORBIDDEN_TAGS = frozenset({
    "iframe", "frame", "frameset", "object", "embed", "applet", "base", "style", "math", "template",
    "animate", "set", "foreignobject", "use", "image", "portal",
})
URL_ATTRS = frozenset({"href", "src", "action", "formaction", "xlink:href", "data", "poster", "background",
                       "srcset", "values", "to", "from", "ping", "lowsrc", "dynsrc", "codebase", "manifest"})
BAD_SCHEMES = ("javascript:", "vbscript:", "data:")


def _own_static(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in {"", "http", "https"} and parts.netloc in {"", "testserver"} \
        and parts.path.startswith("/static/")


def scheme_of(value: str) -> str:
    """What a browser would take as the scheme: it drops ASCII whitespace and controls anywhere in it."""
    return "".join(ch for ch in value if ord(ch) > 0x20).lower()


class _Scanner(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag in FORBIDDEN_TAGS:
            self.problems.append(f"<{tag}> element")
        if tag == "script":
            self._in_script = True
            if not _own_static(values.get("src", "")):
                self.problems.append(f"<script> not from /static/: {values}")
        if tag == "meta" and "http-equiv" in values:
            self.problems.append(f"<meta http-equiv>: {values}")
        if tag == "link" and values.get("rel") not in {"stylesheet", "icon"}:
            self.problems.append(f"<link rel={values.get('rel')!r}>")
        for name, value in values.items():
            self._check_attr(tag, name, value, values)

    def _check_attr(self, tag: str, name: str, value: str, values: dict[str, str]) -> None:
        if name.startswith("on"):
            self.problems.append(f"<{tag} {name}=...> event handler")
        if name == "style" and "url(" in value.lower():
            self.problems.append(f"<{tag} style> loading a URL")
        if name in URL_ATTRS and scheme_of(value).startswith(BAD_SCHEMES):
            own_icon = tag == "link" and values.get("rel") == "icon" and value.startswith("data:image/svg+xml,")
            if not own_icon:
                self.problems.append(f"<{tag} {name}={value[:60]!r}>")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag == "script":
            self._in_script = False

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.problems.append(f"inline script: {data.strip()[:60]!r}")


def executable_markup(html: str) -> list[str]:
    """Every construct in `html` that could run script; [] for a safe page."""
    scanner = _Scanner()
    scanner.feed(html)
    scanner.close()
    return scanner.problems
