"""The documentation a newcomer reads: a short README, and no link that leads nowhere.

The README is the first page anyone opens; what is longer goes to docs/, bench/ or
deploy/README.md, so it has to stay short, and every relative link between these pages has to
reach a file that exists (a page moved or renamed without its links is found here).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = sorted([ROOT / "README.md", *ROOT.glob("bench/*.md"), ROOT / "deploy/README.md", *ROOT.glob("docs/*.md")])
README_MAX_LINES = 200

# [text](target) and [text](target "title"); images too. Autolinks (<https://…>) are absolute.
_LINK = re.compile(r"\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)


def relative_links(page: Path) -> list[str]:
    """The page's links to other files of the repository, without their #anchor; code blocks skipped."""
    text = _FENCE.sub("", page.read_text())
    targets = (target.split("#", 1)[0] for target in _LINK.findall(text))
    return [t for t in targets if t and not re.match(r"^[a-z][a-z0-9+.-]*:", t, re.I)]


def test_the_readme_stays_under_200_lines() -> None:
    lines = len((ROOT / "README.md").read_text().splitlines())
    assert lines < README_MAX_LINES, f"README.md has {lines} lines: move the detail to docs/"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_reaches_a_file(page: Path) -> None:
    broken = [t for t in relative_links(page) if not (page.parent / t).exists()]
    assert not broken, f"{page.relative_to(ROOT)} links to files that do not exist: {broken}"


def test_the_link_reader_finds_what_a_page_links_to(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "See [the API](docs/api.md#auth), [a site](https://example.com), [top](#top),\n"
        '![an image](img/cat.png "a cat") and [mail](mailto:a@example.com).\n'
        "```sh\ncat [not](a-link.md)\n```\n"
    )
    assert relative_links(page) == ["docs/api.md", "img/cat.png"]
