"""The index page of the HTML reports: one row per report, its figures as small thumbnails.

:func:`write_index` reads the ``<meta>`` that :func:`wemem.report.html.export_html` puts in each
report (title, run, start, wall time) and shows each report's figures as small inline thumbnails
(downscaled copies, embedded as ``data:`` URIs), so the page loads nothing from the network.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import html
import io
import json
import logging
import re
from pathlib import Path

from wemem import __version__
from wemem.report.html import REPORT_META
from wemem.report.run_folder import atomic_write_text

logger = logging.getLogger("wemem.report.html")  # the reports' one logger, as before the split

THUMB_PX = 240  # thumbnails in the index fit a THUMB_PX × THUMB_PX box
MAX_THUMBS = 8  # per report; the rest are counted ("+3 more")

__all__ = ["MAX_THUMBS", "THUMB_PX", "write_index"]


def _read_report_meta(path: Path) -> dict:
    with path.open(encoding="utf-8", errors="replace") as f:
        head = f.read(8192)
    match = re.search(rf'<meta name="{REPORT_META}" content="([^"]*)"', head)
    if match:
        try:
            return json.loads(html.unescape(match.group(1)))
        except json.JSONDecodeError:
            logger.warning("%s: unreadable %s meta", path, REPORT_META)
    return {"title": path.stem}


def _format_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"


def _format_start(start: str | None) -> str:
    if not start:
        return "–"
    try:
        when = dt.datetime.fromisoformat(start).astimezone(dt.UTC)
    except ValueError:
        return start
    return when.strftime("%Y-%m-%d %H:%M UTC")


_FIGURE_RE = re.compile(
    r'<div\b[^>]*?\bid="(cell-id=[^"]*)"|<img\b[^>]*?\bsrc="data:image/png;base64,([^"]+)"'
)


def _report_figures(page: str) -> list[tuple[str, bytes]]:
    """The PNG images a report page shows (its figures: outputs of the cells it keeps), in page
    order, each with the ``id`` of the cell that holds it (``""`` before the first cell)."""
    figures, cell = [], ""
    for match in _FIGURE_RE.finditer(page):
        if match.group(1) is not None:
            cell = match.group(1)
            continue
        try:
            figures.append((cell, base64.b64decode(match.group(2))))
        except (binascii.Error, ValueError):
            logger.warning("skipping an undecodable image in a report")
    return figures


def _thumbnail(png: bytes) -> tuple[bytes, int | None, int | None] | None:
    """A PNG of ``png`` that fits THUMB_PX × THUMB_PX (flattened on white, 256-colour palette:
    a few kB), with its width and height; ``None`` for an unreadable image. Without Pillow
    (it comes with matplotlib) the original, sized by the page's CSS."""
    try:
        from PIL import Image
    except ImportError:
        return png, None, None
    try:
        with Image.open(io.BytesIO(png)) as image:
            rgba = image.convert("RGBA")
    except (OSError, ValueError, Image.DecompressionBombError):
        return None
    flat = Image.new("RGBA", rgba.size, "white")
    flat.alpha_composite(rgba)
    small = flat.convert("RGB")
    small.thumbnail((THUMB_PX, THUMB_PX), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    small.quantize(256).save(out, format="PNG", optimize=True)
    return out.getvalue(), small.width, small.height


def _thumbnails_html(page_path: Path, title: str) -> str:
    """Inline thumbnails of the report's figures, each linking to its cell in the report."""
    try:
        figures = _report_figures(page_path.read_text(encoding="utf-8", errors="replace"))
    except OSError:
        return ""
    esc, links = html.escape, []
    for i, (cell, png) in enumerate(figures[:MAX_THUMBS], start=1):
        thumb = _thumbnail(png)
        if thumb is None:
            continue
        data, width, height = thumb
        size = f' width="{width}" height="{height}"' if width else ""
        href = page_path.name + (f"#{cell}" if cell else "")
        links.append(
            f'<a href="{esc(href)}"><img src="data:image/png;base64,'
            f'{base64.b64encode(data).decode()}"{size} alt="{esc(f"figure {i} of {title}")}"></a>'
        )
    if len(figures) > MAX_THUMBS:
        links.append(f'<a href="{esc(page_path.name)}">+{len(figures) - MAX_THUMBS} more</a>')
    return " ".join(links)


_INDEX_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto;
       max-width: 60rem; padding: 0 1rem; color: #222; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 0.4rem 0.8rem; border-bottom: 1px solid #ddd; }
th { border-bottom: 2px solid #444; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
a { color: #0645ad; }
tr:has(+ tr.figures) td { border-bottom: none; }
tr.figures td { padding-top: 0; }
tr.figures img { max-width: 240px; max-height: 240px; margin: 0 0.4rem 0.4rem 0;
                 vertical-align: top; border: 1px solid #ddd; }
"""


def _failed_html(reports_dir: Path) -> str:
    """A list of the executed notebooks of failed runs kept in ``<reports_dir>/../failed/``
    (:mod:`wemem.batch.execution`), newest first; ``""`` when there are none."""
    failed = Path(reports_dir).parent / "failed"
    kept = sorted(failed.glob("*.ipynb"), key=lambda p: (-p.stat().st_mtime, p.name))
    if not kept:
        return ""
    esc = html.escape
    items = "\n".join(
        f'<li><a href="../failed/{esc(p.name)}">{esc(p.stem)}</a> '
        f"({esc(_format_start(dt.datetime.fromtimestamp(p.stat().st_mtime, dt.UTC).isoformat()))})"
        "</li>"
        for p in kept
    )
    return (
        "<h2>Failed runs</h2>\n<p>The executed notebooks of runs that stopped with an error, "
        f"kept until the run succeeds.</p>\n<ul>\n{items}\n</ul>\n"
    )


def write_index(reports_dir: Path) -> Path:
    """Write ``reports_dir/index.html``: one row per report (title, run, date, wall time).

    Plain HTML with inline CSS and no external resources; rows sorted by notebook, then run name;
    pages without wemem's ``<meta>`` are listed by file name. Each row also
    links the run's folder (``../<stem>/<run>/``) when the report names its run. Below it, the
    report's figures (the PNG outputs the page shows, so hidden-input cells count and removed
    cells do not) appear as thumbnails embedded in the page (at most THUMB_PX wide, a few kB
    each; MAX_THUMBS per report), each linking to its cell in the report. Below the table, the
    executed notebooks of failed runs kept in ``../failed/``, if any.
    """
    reports_dir = Path(reports_dir)
    reports_dir.mkdir(parents=True, exist_ok=True)
    reports = [
        (_read_report_meta(path), path)
        for path in reports_dir.glob("*.html")
        if path.name != "index.html"
    ]
    # By notebook then run name ("tiny" before "tiny-wide"), which file names do not give.
    reports.sort(key=lambda r: (r[0].get("notebook", r[1].stem), r[0].get("run_name", ""), r[1]))
    esc = html.escape
    rows = []
    for meta, path in reports:
        folder = ""
        if meta.get("notebook") and meta.get("run_name"):
            href = f"../{meta['notebook']}/{meta['run_name']}/"
            folder = f'<a href="{esc(href)}">files</a>'
        rows.append(
            "<tr>"
            f'<td><a href="{esc(path.name)}">{esc(str(meta.get("title", path.stem)))}</a></td>'
            f"<td>{esc(str(meta.get('run_name', '–')))}</td>"
            f"<td>{esc(_format_start(meta.get('start')))}</td>"
            f'<td class="num">{esc(_format_seconds(meta.get("wall_seconds")))}</td>'
            f"<td>{folder}</td>"
            "</tr>"
        )
        thumbs = _thumbnails_html(path, str(meta.get("title", path.stem)))
        if thumbs:
            rows.append(f'<tr class="figures"><td colspan="5">{thumbs}</td></tr>')
    body = "\n".join(rows) or '<tr><td colspan="5">No reports yet.</td></tr>'
    generated = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    page = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>wemem reports</title>
<style>{_INDEX_CSS}</style>
</head>
<body>
<h1>wemem reports</h1>
<p>Executed notebooks, one page per run. Generated {generated}
by wemem {html.escape(__version__)}.</p>
<table>
<thead><tr><th>Notebook</th><th>Run</th><th>Date</th><th>Wall time</th><th>Outputs</th></tr></thead>
<tbody>
{body}
</tbody>
</table>
{_failed_html(reports_dir)}</body>
</html>
"""
    return atomic_write_text(reports_dir / "index.html", page)
