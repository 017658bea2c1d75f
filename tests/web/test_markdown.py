"""Publishers' Markdown on the cat's page: formatting kept, nothing that could run."""

from __future__ import annotations

from cathouse.web.markdown import render


def test_raw_html_and_script_come_out_as_text() -> None:
    html = render('Hello <script>alert("x")</script> <img src=x onerror="alert(1)">')
    assert "<script" not in html
    assert "<img" not in html
    assert "&lt;script&gt;" in html


def test_links_that_could_run_code_are_not_links() -> None:
    html = render("[click](javascript:alert(1)) [safe](https://example.com/docs)")
    assert 'href="javascript:' not in html
    assert '<a href="https://example.com/docs" rel="nofollow noopener">safe</a>' in html


def test_headings_sit_below_the_pages_own() -> None:
    html = render("# Title\n\n## Part\n\n###### Deep")
    assert "<h3>Title</h3>" in html
    assert "<h4>Part</h4>" in html
    assert "<h6>Deep</h6>" in html
    assert "<h1>" not in html


def test_formatting_is_kept() -> None:
    assert render("**bold** and `code`\n\n- one\n- two") == (
        "<p><strong>bold</strong> and <code>code</code></p>\n<ul>\n<li>one</li>\n<li>two</li>\n</ul>\n"
    )
