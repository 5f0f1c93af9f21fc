"""HTML reports and their index page: export, offline resources, index rows."""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import pytest

from wemem import reports, runner
from wemem.reports import export_html, write_index

EQUATION = r"$$\mathrm{RSW}(x) = \sum_i w_i x_i$$"


def _notebook(path: Path) -> Path:
    """A notebook with an equation, a link in its prose and widget state (as tqdm.auto leaves)."""
    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_markdown_cell(
                f"# 07 · Offline\n\nSee [the paper](https://example.org/paper).\n\n{EQUATION}"
            ),
            nbformat.v4.new_code_cell("1"),
        ]
    )
    state = {"state": {}, "version_major": 2, "version_minor": 0}
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": state}
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def _resource_urls(page: str) -> list[str]:
    """The ``src`` of every <script> and the ``href`` of every <link>: what the browser loads."""
    urls = []
    for tag in re.findall(r"<(?:script|link)\b[^>]*>", page, flags=re.IGNORECASE):
        urls += re.findall(r"\b(?:src|href)\s*=\s*[\"']?([^\"'\s>]+)", tag, flags=re.IGNORECASE)
    return urls


def _is_remote(url: str) -> bool:
    return re.match(r"(?i)(https?:)?//", url) is not None


def _fake_mathjax(folder: Path, version: str) -> Path:
    (folder / "config").mkdir(parents=True)
    (folder / "MathJax.js").write_text(f"/* MathJax {version} */\n")
    (folder / "config" / "Safe.js").write_text(f"/* {version} */\n")
    return folder


def test_runner_reexports_the_report_functions():
    assert runner.export_html is reports.export_html
    assert runner.write_index is reports.write_index


def test_export_html_loads_nothing_from_the_network(tmp_path):
    nb = _notebook(tmp_path / "cpu" / "07_x.ipynb")
    page = export_html(nb, tmp_path / "reports" / "07_x-cpu.html").read_text(encoding="utf-8")
    assert [u for u in _resource_urls(page) if _is_remote(u)] == []
    assert "cdnjs" not in page and "unpkg" not in page  # require.js, Mermaid, widget manager
    assert '<a href="https://example.org/paper">the paper</a>' in page  # prose links stay
    assert r"\mathrm{RSW}(x) = \sum_i w_i x_i" in page  # the TeX MathJax typesets, or shown as is
    if reports._mathjax_source() is None:
        assert "MathJax.js" not in page
    else:
        [url] = [u for u in _resource_urls(page) if "MathJax.js" in u]
        assert url.startswith("_static/mathjax/MathJax.js?config=")
        assert (tmp_path / "reports" / url.partition("?")[0]).is_file()


def test_export_html_without_mathjax_keeps_tex_source(tmp_path, monkeypatch):
    monkeypatch.setattr(reports, "_mathjax_source", lambda: None)
    nb = _notebook(tmp_path / "cpu" / "07_x.ipynb")
    page = export_html(nb, tmp_path / "reports" / "07_x-cpu.html").read_text(encoding="utf-8")
    assert _resource_urls(page) == []
    assert "mathjax" not in page.lower()
    assert r"\mathrm{RSW}(x) = \sum_i w_i x_i" in page
    assert not (tmp_path / "reports" / "_static").exists()


def test_mathjax_is_copied_once_and_replaced_when_it_changes(tmp_path, monkeypatch):
    source = _fake_mathjax(tmp_path / "pkg", "2.7.9")
    monkeypatch.setattr(reports, "_mathjax_source", lambda: source)
    nb = _notebook(tmp_path / "cpu" / "07_x.ipynb")
    out = tmp_path / "reports"
    copy = out / "_static" / "mathjax"

    export_html(nb, out / "a.html")
    assert (copy / "config" / "Safe.js").read_text() == "/* 2.7.9 */\n"
    (copy / "kept.txt").write_text("same MathJax: not copied again")
    export_html(nb, out / "b.html")
    assert (copy / "kept.txt").exists()

    newer = _fake_mathjax(tmp_path / "pkg2", "2.7.10")
    monkeypatch.setattr(reports, "_mathjax_source", lambda: newer)
    export_html(nb, out / "a.html")
    assert not (copy / "kept.txt").exists()
    assert (copy / "config" / "Safe.js").read_text() == "/* 2.7.10 */\n"
    assert sorted(p.name for p in out.rglob(".*")) == []  # no temp or old copies left
    page = (out / "a.html").read_text(encoding="utf-8")
    assert '<script src="_static/mathjax/MathJax.js?config=' in page


def test_export_html_without_run_json_uses_notebook_metadata(tmp_path):
    nb = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_markdown_cell("Intro\n\n## 07 · A <b>title</b> ##\n\n# later")]
    )
    nb.metadata["papermill"] = {"duration": 75.2}
    path = tmp_path / "cpu" / "07_x.ipynb"
    path.parent.mkdir()
    nbformat.write(nb, path)
    export_html(path, tmp_path / "reports" / "07_x-cpu.html")
    index = write_index(tmp_path / "reports").read_text()
    assert "07 · A &lt;b&gt;title&lt;/b&gt;" in index
    assert "<td>cpu</td>" in index and "1 min 15 s" in index


def test_index_lists_reports_sorted_and_survives_foreign_files(tmp_path):
    reports_dir = tmp_path / "reports"
    assert "No reports yet." in write_index(reports_dir).read_text()
    meta = {"title": "02 · Motivation", "notebook": "02_motivation", "run_name": "cpu-fast"}
    meta |= {"start": "2025-03-01T10:20:00+00:00", "wall_seconds": 7384}
    tag = json.dumps(meta).replace('"', "&quot;")
    (reports_dir / "02_motivation-cpu-fast.html").write_text(
        f'<html><head><meta name="wemem-report" content="{tag}"></head></html>'
    )
    (reports_dir / "01_foreign.html").write_text("<html>not ours</html>")
    index = write_index(reports_dir).read_text()
    assert index.count("<tr><td>") == 2
    assert index.index("01_foreign.html") < index.index("02_motivation-cpu-fast.html")
    assert "2025-03-01 10:20 UTC" in index and "2 h 03 min" in index
    assert '<a href="../02_motivation/cpu-fast/">files</a>' in index
    assert "index.html" not in index.split("<tbody>")[1]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(None, "–"), (7.04, "7.0 s"), (75.2, "1 min 15 s"), (7384, "2 h 03 min")],
)
def test_format_seconds(seconds, text):
    assert reports._format_seconds(seconds) == text
