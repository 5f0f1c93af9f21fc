"""HTML reports: an executed notebook as one page that loads nothing from the network.

:func:`export_html` turns an executed notebook into ``outputs/reports/<stem>-<run>.html``;
:func:`wemem.report.index.write_index` lists the reports of a folder in its ``index.html``, from
the ``<meta>`` each report carries (:data:`REPORT_META`). Reports are read offline:
the page loads no script or stylesheet from the network. nbconvert's ``lab`` template loads
require.js, MathJax and (for notebooks with diagrams or widget state) Mermaid and the widget
manager from CDNs; the report template drops require.js and Mermaid (diagrams stay as their
source text), widget state is left out (widget outputs show their plain-text form), and MathJax 2
is copied next to the reports from the ``jupyter-server-mathjax`` package into
``<reports>/_static/mathjax/``. Without that package the equations stay as TeX source.

Cells tagged for reviewers: ``hide-input`` (or ``remove-input``) shows only the cell's outputs,
``remove-output`` only its code, ``remove-cell`` drops the cell.
"""

from __future__ import annotations

import datetime as dt
import filecmp
import html
import importlib.util
import json
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path

import nbformat

from wemem.report.run_folder import atomic_write_text

logger = logging.getLogger(__name__)

REPORT_META = "wemem-report"  # name of the <meta> that carries a report's run description
MATHJAX_DIR = "_static/mathjax"  # relative to the reports folder; also the pages' script URL
# The package ships MathJax 2.7 with the HTML-CSS output and STIX-Web fonts only (no CommonHTML,
# no TeX fonts), so the page selects them; nbconvert's own config follows it and adds the rest.
_MATHJAX_CONFIG = "TeX-AMS-MML_HTMLorMML-full,Safe"
_MATHJAX_FONTS = """<script type="text/x-mathjax-config">
MathJax.Hub.Config({
  "HTML-CSS": {availableFonts: [], preferredFont: null, webFont: "STIX-Web", imageFont: null,
               linebreaks: {automatic: true}}
});
</script>"""
_TEMPLATE_NAME = "wemem_report.html.j2"
_TEMPLATE = (
    """{%- extends 'lab/index.html.j2' -%}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block html_head_js_mathjax -%}
{%- if resources.mathjax_url -%}
"""
    + _MATHJAX_FONTS
    + """
{{ super() }}
{%- endif -%}
{%- endblock html_head_js_mathjax -%}
"""
)

# Cell tags a report honours: the names JupyterLab's and Jupyter Book's users already know.
HIDE_INPUT_TAGS = frozenset({"hide-input", "remove-input"})
REMOVE_OUTPUT_TAGS = frozenset({"remove-output"})
REMOVE_CELL_TAGS = frozenset({"remove-cell"})

__all__ = [
    "HIDE_INPUT_TAGS",
    "REMOVE_CELL_TAGS",
    "REMOVE_OUTPUT_TAGS",
    "REPORT_META",
    "export_html",
    "remote_resources",
]


# ----------------------------------------------------------------------------- MathJax


def _mathjax_source() -> Path | None:
    """The MathJax 2 folder of ``jupyter-server-mathjax``, found without importing jupyter_server;
    ``None`` when the package is not installed."""
    spec = importlib.util.find_spec("jupyter_server_mathjax")
    if spec is None or not spec.submodule_search_locations:
        return None
    static = Path(next(iter(spec.submodule_search_locations))) / "static"
    return static if (static / "MathJax.js").is_file() else None


def _install_mathjax(reports_dir: Path) -> str:
    """Copy MathJax to ``reports_dir/_static/mathjax/`` unless the same copy is there already.

    Returns:
        the URL of ``MathJax.js`` relative to ``reports_dir``, or ``""`` without MathJax.
    """
    source = _mathjax_source()
    if source is None:
        logger.info("jupyter-server-mathjax not installed: equations stay as TeX source")
        return ""
    dest = reports_dir / MATHJAX_DIR
    url = f"{MATHJAX_DIR}/MathJax.js?config={_MATHJAX_CONFIG}"
    if _same_mathjax(source, dest):
        return url
    dest.parent.mkdir(parents=True, exist_ok=True)
    # Copied beside and renamed into place, so a page never points at a half-copied MathJax.
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-mathjax-", dir=dest.parent))
    old = dest.with_name(f".old-mathjax-{os.getpid()}")
    try:
        shutil.copytree(source, tmp, dirs_exist_ok=True)
        if dest.exists():
            os.rename(dest, old)
        try:
            os.rename(tmp, dest)
        except OSError:
            if not _same_mathjax(source, dest):  # else another process installed it first
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
    logger.info("MathJax copied to %s", dest)
    return url


def _same_mathjax(source: Path, dest: Path) -> bool:
    installed = dest / "MathJax.js"
    return installed.is_file() and filecmp.cmp(source / "MathJax.js", installed, shallow=False)


# ----------------------------------------------------------------------------- reports


#: Appended to the title of a smoke-scale run's report (``wemem reproduce --smoke``).
SMOKE_TITLE = "smoke scale: sizes shrunk, not results"


def _smoke_banner(overrides: dict) -> str:
    sizes = ", ".join(f"`{k}` = {json.dumps(v)}" for k, v in overrides.items()) or "none"
    return (
        f"> **Smoke scale** (`wemem reproduce --smoke`): this run's sizes were shrunk to check "
        f"that it executes end to end; its numbers are not results. Overridden: {sizes}."
    )


def _first_heading(nb) -> str | None:
    for cell in nb.cells:
        if cell.cell_type != "markdown":
            continue
        for line in cell.source.splitlines():
            match = re.match(r"^\s{0,3}#{1,6}\s+(.*?)\s*#*\s*$", line)
            if match and match.group(1):
                return match.group(1)
    return None


def export_html(executed_nb: Path, dest: Path) -> Path:
    """Export an executed notebook to a standalone HTML page at ``dest`` (written atomically).

    Uses nbconvert's ``lab`` template; outputs keep their inline images and Markdown images are
    embedded; cells tagged ``hide-input`` show only their output and ``remove-cell`` ones are left
    out (see the module docstring for all tags). The page's title is the first
    Markdown heading, and a ``<meta name="wemem-report">`` carries the run's description (title,
    run name, start, wall time; from ``run.json`` beside the notebook when present) for
    :func:`write_index`. The page loads nothing from the network: MathJax comes from
    ``dest``'s folder (``_static/mathjax/``, copied there when needed; see the module docstring).
    """
    from jinja2 import DictLoader
    from nbconvert import HTMLExporter
    from nbconvert.preprocessors import TagRemovePreprocessor

    executed_nb, dest = Path(executed_nb), Path(dest)
    nb = nbformat.read(executed_nb, as_version=4)
    title = _first_heading(nb) or executed_nb.stem
    run_json = executed_nb.parent / "run.json"
    run = json.loads(run_json.read_text(encoding="utf-8")) if run_json.exists() else {}
    duration = nb.metadata.get("papermill", {}).get("duration")
    if run.get("smoke") is not None:  # wemem reproduce --smoke: say so wherever the page is seen
        title = f"{title} ({SMOKE_TITLE})"
        nb.cells.insert(0, nbformat.v4.new_markdown_cell(_smoke_banner(run["smoke"])))
    meta = {
        "title": title,
        "notebook": run.get("notebook", executed_nb.stem),
        "run_name": run.get("run_name", executed_nb.parent.name),
        "start": run.get("start")
        or dt.datetime.fromtimestamp(executed_nb.stat().st_mtime, dt.UTC).isoformat(),
        "wall_seconds": run.get("wall_seconds", duration),
    }
    # Widget state would make the page fetch the widget manager from unpkg (and it needs a
    # kernel to be live anyway); without it nbconvert shows each widget's plain-text form.
    nb.metadata.pop("widgets", None)

    exporter = HTMLExporter(
        template_name="lab",
        template_file=_TEMPLATE_NAME,
        extra_loaders=[DictLoader({_TEMPLATE_NAME: _TEMPLATE})],
        embed_images=True,
        mathjax_url=_install_mathjax(dest.parent),
    )
    tags = TagRemovePreprocessor(
        remove_input_tags=set(HIDE_INPUT_TAGS),
        remove_all_outputs_tags=set(REMOVE_OUTPUT_TAGS),
        remove_cell_tags=set(REMOVE_CELL_TAGS),
    )
    exporter.register_preprocessor(tags, enabled=True)
    resources = {"metadata": {"name": title, "path": str(executed_nb.parent)}}
    body, _ = exporter.from_notebook_node(nb, resources=resources)
    for url in remote_resources(body):  # a newer nbconvert template may add one
        logger.warning("%s loads %s from the network", dest.name, url)
    tag = f'<meta name="{REPORT_META}" content="{html.escape(json.dumps(meta))}">'
    body, n = re.subn(r"<head[^>]*>", lambda m: f"{m.group(0)}\n{tag}", body, count=1)
    if not n:
        body = tag + "\n" + body
    atomic_write_text(dest, body)
    logger.info("report: %s", dest)
    return dest


_REMOTE = r"""\s*["']?((?:https?:)?//[^"'\s>)]+)"""
_REMOTE_RES = [
    # What a browser fetches by itself: src/href/poster/data of any tag but <a> (prose links
    # stay), CSS url(...) and @import, and ES module imports in inline scripts.
    re.compile(r"<(?!a\b)[a-z][^>]*?\b(?:src|href|poster|data)\s*=" + _REMOTE, re.IGNORECASE),
    re.compile(r"(?:\burl\(|@import)" + _REMOTE, re.IGNORECASE),
    re.compile(r"""(?<!@)\bimport\s*\(?\s*["']((?:https?:)?//[^"'\s]+)""", re.IGNORECASE),
]


def remote_resources(page: str) -> list[str]:
    """The network URLs (``http(s)://`` or ``//``) a browser would load for ``page`` by itself:
    scripts, stylesheets, images, fonts, frames, module imports. Links in ``<a href>`` are not
    resources and are not listed."""
    return [m.group(1) for regex in _REMOTE_RES for m in regex.finditer(page)]
