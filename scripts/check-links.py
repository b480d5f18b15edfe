#!/usr/bin/env python3
"""Checks the documentation's relative links and anchors; exits 1 on the first report's end.

    scripts/check-links.py            the built book (docs/book, after `mdbook build docs`)
                                      and the Markdown: README.md, BENCHMARKS.md, docs/src/*.md

Two passes, both offline (links with a scheme, https: or mailto:, are not fetched):

- The built book. Every <a href> and <img src> of every page: a link inside the book must name
  a file the build wrote and, with a #fragment, an id on that page; a link that leaves the book
  must name a file or directory of the repository (docs/book/ sits at the same depth as
  docs/src/, so `../../examples/x` means the repository's examples/x from both). mdbook turns
  every link ending in .md into .html, so a link to a Markdown file outside the book is
  reported: it would be broken in the built book.
- The Markdown as GitHub shows it. Every [text](target) and [label]: target outside code: the
  target must exist in the repository, and a #fragment into a Markdown file must match one of
  its headings, slugged as GitHub slugs them.

Python 3.11's standard library only.
"""

from __future__ import annotations

import html.parser
import re
import sys
import urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BOOK = ROOT / "docs" / "book"
MARKDOWN = [ROOT / "README.md", ROOT / "BENCHMARKS.md", *sorted((ROOT / "docs" / "src").glob("*.md"))]
# The 404 page is served at any depth (mdbook gives it a <base>); its links are mdbook's own.
SKIP_PAGES = {"404.html"}

problems: list[str] = []


def report(where: str, message: str) -> None:
    problems.append(f"{where}: {message}")


def has_scheme(target: str) -> bool:
    return bool(re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", target))


# ---------------------------------------------------------------------------------------------
# The built book


class Page(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.ids: set[str] = set()
        self.links: list[tuple[str, int]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        for name in ("id", "name") if tag == "a" else ("id",):
            if attributes.get(name):
                self.ids.add(attributes[name])
        target = attributes.get("href") if tag == "a" else attributes.get("src") if tag == "img" else None
        if target is not None:
            self.links.append((target, self.getpos()[0]))


def parse_page(path: Path, cache: dict[Path, Page]) -> Page:
    if path not in cache:
        page = Page()
        page.feed(path.read_text(encoding="utf-8"))
        cache[path] = page
    return cache[path]


def check_book() -> int:
    if not (BOOK / "index.html").is_file():
        report(str(BOOK.relative_to(ROOT)), "no built book here: run `mdbook build docs` first")
        return 0
    cache: dict[Path, Page] = {}
    pages = sorted(p for p in BOOK.rglob("*.html") if p.name not in SKIP_PAGES)
    count = 0
    for path in pages:
        page = parse_page(path, cache)
        where = str(path.relative_to(ROOT))
        for target, line in page.links:
            if not target or has_scheme(target) or target.startswith("//"):
                continue
            count += 1
            parsed = urllib.parse.urlsplit(target)
            fragment = urllib.parse.unquote(parsed.fragment)
            if not parsed.path:
                if fragment and fragment not in page.ids:
                    report(f"{where}:{line}", f"no anchor #{fragment} on this page")
                continue
            resolved = (path.parent / urllib.parse.unquote(parsed.path)).resolve()
            if resolved.is_relative_to(BOOK):
                if resolved.is_dir():
                    resolved = resolved / "index.html"
                if not resolved.is_file():
                    report(f"{where}:{line}", f"{target}: no such page or file in the book")
                elif fragment and resolved.suffix == ".html" and fragment not in parse_page(resolved, cache).ids:
                    report(f"{where}:{line}", f"{target}: no anchor #{fragment} there")
                continue
            # A link out of the book, into the repository.
            if not resolved.is_relative_to(ROOT):
                report(f"{where}:{line}", f"{target}: points outside the repository")
            elif resolved.exists():
                check_markdown_fragment(f"{where}:{line}", target, resolved, fragment)
            elif resolved.suffix == ".html" and resolved.with_suffix(".md").exists():
                report(
                    f"{where}:{line}",
                    f"{target}: mdbook turned a link to {resolved.with_suffix('.md').relative_to(ROOT)} "
                    "into .html, which does not exist; link a book page instead",
                )
            else:
                report(f"{where}:{line}", f"{target}: no such file in the repository")
    return count


# ---------------------------------------------------------------------------------------------
# Markdown as GitHub renders it

FENCE = re.compile(r"^\s*(```|~~~)")
INLINE_LINK = re.compile(r"(!?)\[((?:[^\[\]]|\[[^\]]*\])*)\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$")
CODE_SPAN = re.compile(r"(`+)(.+?)\1")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


def lines_outside_code(text: str):
    fenced = False
    for number, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            yield number, line


def github_slug(heading: str) -> str:
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text only
    text = re.sub(r"<[^>]+>", "", text)  # inline HTML
    text = text.lower()
    text = "".join(c for c in text if c.isalnum() or c in " -_")
    return text.replace(" ", "-")


INCLUDE = re.compile(r"^\{\{#include\s+([^:}\s]+)(?::([\w-]+))?\s*\}\}\s*$")


def with_includes(path: Path) -> str:
    """The text of `path` with mdbook's {{#include file[:anchor]}} lines replaced by what they
    include, as the book shows it."""
    lines = []
    for line in path.read_text(encoding="utf-8").splitlines():
        match = INCLUDE.match(line)
        if not match:
            lines.append(line)
            continue
        included = (path.parent / match.group(1)).read_text(encoding="utf-8").splitlines()
        if match.group(2):
            start = next(i for i, l in enumerate(included) if f"ANCHOR: {match.group(2)}" in l)
            end = next(i for i, l in enumerate(included) if f"ANCHOR_END: {match.group(2)}" in l)
            included = included[start + 1 : end]
        lines.extend(included)
    return "\n".join(lines)


def markdown_anchors(path: Path, cache: dict[Path, set[str]] = {}) -> set[str]:
    if path not in cache:
        anchors: set[str] = set()
        seen: dict[str, int] = {}
        text = with_includes(path)
        for _, line in lines_outside_code(text):
            match = HEADING.match(line)
            if not match:
                anchors.update(re.findall(r"<a\s+(?:name|id)=\"([^\"]+)\"", line))
                continue
            slug = github_slug(match.group(2))
            count = seen.get(slug, 0)
            seen[slug] = count + 1
            anchors.add(slug if count == 0 else f"{slug}-{count}")
        cache[path] = anchors
    return cache[path]


def check_markdown_fragment(where: str, target: str, resolved: Path, fragment: str) -> None:
    if fragment and resolved.is_file() and resolved.suffix == ".md":
        if fragment not in markdown_anchors(resolved):
            report(where, f"{target}: no heading for #{fragment} in {resolved.relative_to(ROOT)}")


def check_markdown(path: Path) -> int:
    count = 0
    where = str(path.relative_to(ROOT))
    for number, line in lines_outside_code(path.read_text(encoding="utf-8")):
        line = CODE_SPAN.sub("", line)
        targets = [m.group(3) for m in INLINE_LINK.finditer(line)]
        reference = REFERENCE.match(line)
        if reference:
            targets.append(reference.group(1))
        for target in targets:
            if not target or has_scheme(target) or target.startswith("//"):
                continue
            count += 1
            parsed = urllib.parse.urlsplit(target)
            fragment = urllib.parse.unquote(parsed.fragment)
            resolved = (path.parent / urllib.parse.unquote(parsed.path)).resolve() if parsed.path else path
            if not resolved.is_relative_to(ROOT):
                report(f"{where}:{number}", f"{target}: points outside the repository")
            elif not resolved.exists():
                report(f"{where}:{number}", f"{target}: no such file")
            else:
                check_markdown_fragment(f"{where}:{number}", target, resolved, fragment)
    return count


def main() -> int:
    book = check_book()
    markdown = sum(check_markdown(path) for path in MARKDOWN if path.is_file())
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        print(f"check-links: {len(problems)} broken link(s)", file=sys.stderr)
        return 1
    print(f"check-links: {book} links in the built book and {markdown} in the Markdown resolve")
    return 0


if __name__ == "__main__":
    sys.exit(main())
