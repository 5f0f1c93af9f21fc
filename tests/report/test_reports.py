"""HTML reports and their index page: export, offline resources, index rows."""

from __future__ import annotations

import base64
import html
import io
import json
import re
from pathlib import Path

import nbformat
import pytest

from wemem.batch import runner
from wemem.report import html as reports
from wemem.report import index as report_index
from wemem.report.html import export_html
from wemem.report.index import write_index

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
    assert runner.write_index is report_index.write_index


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
    assert report_index._format_seconds(seconds) == text


def _png(width: int, height: int, colour: str = "steelblue") -> str:
    """A base64 PNG of ``width`` × ``height`` px with a transparent margin (as notebook outputs)."""
    from PIL import Image, ImageDraw

    image = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    ImageDraw.Draw(image).rectangle([width // 4, height // 4, width // 2, height // 2], colour)
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def _figure(png: str) -> nbformat.NotebookNode:
    return nbformat.v4.new_output("display_data", data={"image/png": png, "text/plain": "<Figure>"})


def _tagged_notebook(path: Path, n_figures: int = 1) -> Path:
    """One cell per reviewer tag, each with a marked source and output, plus untagged figures."""
    new_code, stream = nbformat.v4.new_code_cell, nbformat.v4.new_output
    cells = [nbformat.v4.new_markdown_cell("# 98 · Tags")]
    for tag in ["hide-input", "remove-input", "remove-output", "remove-cell", None]:
        name = (tag or "plain").replace("-", "_")
        cells.append(
            new_code(
                f"print('{name}_SOURCE')",
                metadata={"tags": [tag]} if tag else {},
                outputs=[stream("stream", name="stdout", text=f"{name}_OUTPUT\n")],
            )
        )
    cells[4].outputs.append(_figure(_png(900, 600, "red")))  # remove-cell: figure not shown
    cells += [
        new_code(f"fig{i}", id=f"fig{i}", outputs=[_figure(_png(900, 600))])
        for i in range(n_figures)
    ]
    nb = nbformat.v4.new_notebook(cells=cells)
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def _text(page: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", page))


def test_report_honours_reviewer_tags(tmp_path):
    nb = _tagged_notebook(tmp_path / "tiny" / "98_tags.ipynb")
    text = _text(export_html(nb, tmp_path / "reports" / "98_tags-tiny.html").read_text())
    for name in ["hide_input", "remove_input"]:  # outputs only
        assert f"{name}_SOURCE" not in text and f"{name}_OUTPUT" in text
    assert "remove_output_SOURCE" in text and "remove_output_OUTPUT" not in text
    assert "remove_cell_SOURCE" not in text and "remove_cell_OUTPUT" not in text
    assert "plain_SOURCE" in text and "plain_OUTPUT" in text


def test_index_shows_report_figures_as_small_thumbnails(tmp_path):
    from PIL import Image

    nb = _tagged_notebook(tmp_path / "tiny" / "98_tags.ipynb", n_figures=2)
    report = export_html(nb, tmp_path / "reports" / "98_tags-tiny.html")
    index = write_index(tmp_path / "reports").read_text()
    [row] = re.findall(r'<tr class="figures">(.*?)</tr>', index, flags=re.S)
    links = re.findall(r'<a href="([^"]+)"><img src="data:image/png;base64,([^"]+)"', row)
    # The removed cell's figure is not in the report, so not in the index either.
    assert [href for href, _ in links] == [
        f"{report.name}#cell-id=fig0",
        f"{report.name}#cell-id=fig1",
    ]
    for _, data in links:
        thumb = Image.open(io.BytesIO(base64.b64decode(data)))
        px = report_index.THUMB_PX
        assert thumb.size == (px, px * 2 // 3)  # 900 × 600 scaled
        assert thumb.getpixel((0, 0)) == thumb.getpixel((1, 1))  # transparency flattened
    assert len(index) < 20_000  # downscaled: two 900 × 600 figures cost a few kB
    assert [u for u in _resource_urls(index) if _is_remote(u)] == []


def test_index_counts_the_figures_beyond_the_cap(tmp_path, monkeypatch):
    monkeypatch.setattr(report_index, "MAX_THUMBS", 2)
    nb = _tagged_notebook(tmp_path / "tiny" / "98_tags.ipynb", n_figures=5)
    export_html(nb, tmp_path / "reports" / "98_tags-tiny.html")
    index = write_index(tmp_path / "reports").read_text()
    assert index.count("<img ") == 2
    assert '<a href="98_tags-tiny.html">+3 more</a>' in index


def test_index_skips_unreadable_images_and_pages_without_figures(tmp_path):
    reports_dir = tmp_path / "reports"
    reports_dir.mkdir()
    (reports_dir / "a.html").write_text('<img src="data:image/png;base64,bm90IGEgcG5n">')
    (reports_dir / "b.html").write_text("<p>no figures</p>")
    index = write_index(reports_dir).read_text()
    assert "<img" not in index and 'class="figures"' not in index


def test_remote_resources_finds_what_a_browser_would_fetch():
    page = """<a href="https://example.org/paper">prose link</a>
    <script src="https://cdn.example.org/require.js"></script>
    <link rel="stylesheet" href="//fonts.googleapis.com/css?family=Roboto">
    <img alt="x" src='http://example.org/a.png'><img src="data:image/png;base64,AAAA">
    <style>@import "https://example.org/b.css"; .x { background: url(https://example.org/c.svg) }
    /* see https://github.com/some/project */</style>
    <script type="module">const m = await import("https://unpkg.com/mermaid.mjs");</script>
    <script src="_static/mathjax/MathJax.js?config=Safe"></script>"""
    assert reports.remote_resources(page) == [
        "https://cdn.example.org/require.js",
        "//fonts.googleapis.com/css?family=Roboto",
        "http://example.org/a.png",
        "https://example.org/b.css",
        "https://example.org/c.svg",
        "https://unpkg.com/mermaid.mjs",
    ]
