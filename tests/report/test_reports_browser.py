"""A report and the index, opened in headless Chromium: not blank, tags honoured, equations typeset
by the local MathJax, and no network request at all.

How "no network request" is checked, twice:

1. In the browser. Chromium runs with ``--proxy-server`` pointing at a recording proxy started by
   the test (a socket on 127.0.0.1 that logs the first line of every connection and closes it)
   and ``--proxy-bypass-list=<-loopback>``, which removes Chromium's implicit bypass for
   localhost. Every http(s) and ws(s) request the page makes — scripts, styles, fonts, images,
   ``fetch``, module imports, even to localhost — then reaches the proxy as ``GET http://…`` or
   ``CONNECT host:443``; ``file://`` loads (the page, ``_static/mathjax/``) and ``data:`` URIs do
   not. The test asserts the proxy saw nothing, after ``--virtual-time-budget`` let the page's
   scripts finish (MathJax loads its parts by inserting script tags, so a CDN fallback would show
   up). A control page with remote resources checks that the proxy does see them with this
   browser build, so an empty log cannot come from Chromium ignoring the flag.
2. Statically: :func:`wemem.report.html.remote_resources` finds no ``http(s)://`` or ``//`` URL the
   page would load by itself (src/href of any tag but ``<a>``, CSS ``url()``/``@import``, module
   imports), which also covers resources a page would load later than the time budget.

The screenshots go to ``outputs/test-artifacts/`` when ``WEMEM_ARTIFACTS`` is set (CI keeps them),
else to pytest's ``tmp_path``; their paths are printed. Without a Chromium binary the test skips
and says which names it looked for (``.ci/run`` installs one).
"""

from __future__ import annotations

import base64
import html
import io
import os
import re
import shutil
import socket
import subprocess
import threading
from pathlib import Path

import nbformat
import pytest

from wemem.report import html as reports
from wemem.report.html import export_html
from wemem.report.index import write_index

BROWSERS = ("chromium", "chromium-headless-shell", "chromium-browser", "google-chrome")
HIDDEN_SOURCE = "fig = plot_secret_plumbing(run)"
EQUATION = r"$$\mathrm{mem}(x_i) = \Pr[f(x_i) = y_i] - \Pr[f^{\setminus i}(x_i) = y_i]$$"


def _browser() -> str | None:
    return next(filter(None, map(shutil.which, BROWSERS)), None)


class RecordingProxy:
    """An HTTP proxy on 127.0.0.1 that answers nothing and records each request's first line."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        self._stop = threading.Event()
        self._server = socket.create_server(("127.0.0.1", 0))
        self._server.settimeout(0.1)  # accept() wakes up to notice close()
        self.port = self._server.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._server.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(2)
                try:
                    line = conn.recv(4096).split(b"\r\n", 1)[0]
                except OSError:
                    line = b"<no request line>"
                self.requests.append(line.decode("latin-1"))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._server.close()


@pytest.fixture
def proxy():
    p = RecordingProxy()
    yield p
    p.close()


def _open(browser: str, page: Path, proxy: RecordingProxy, screenshot: Path) -> str:
    """Load ``page`` headless through ``proxy``; returns the DOM after its scripts ran."""
    profile = screenshot.parent / f".profile-{screenshot.stem}"
    cmd = [
        browser,
        "--headless",
        "--no-sandbox",  # root in containers
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        f"--user-data-dir={profile}",
        f"--proxy-server=http://127.0.0.1:{proxy.port}",
        "--proxy-bypass-list=<-loopback>",
        "--virtual-time-budget=10000",
        "--window-size=1000,800",
        "--hide-scrollbars",
        f"--screenshot={screenshot}",
        "--dump-dom",
        page.resolve().as_uri(),
    ]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert screenshot.is_file(), done.stderr[-2000:]
    return done.stdout


def _text(dom: str) -> str:
    """Visible text, roughly: the DOM without scripts, styles and tags."""
    dom = re.sub(r"<(script|style)\b.*?</\1>", "", dom, flags=re.S | re.I)
    return html.unescape(re.sub(r"<[^>]+>", "", dom))


def _assert_not_blank(png: Path) -> None:
    from PIL import Image

    with Image.open(png) as image:
        colours = image.convert("RGB").getcolors(maxcolors=1 << 16)
    assert colours is None or len(colours) > 20, f"{png} is (nearly) one colour"


def _figure_png() -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4, 3), dpi=80)
    ax.plot([0, 1, 2], [1, 3, 2])
    ax.set_title("hidden-input figure")
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def _executed_notebook(path: Path) -> Path:
    """What papermill leaves: an equation, a hidden-input cell with a figure, a plain cell."""
    out = nbformat.v4.new_output
    figure = out("display_data", data={"image/png": _figure_png(), "text/plain": "<Figure>"})
    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_markdown_cell(f"# 99 · Browser check\n\nThe mem-score:\n\n{EQUATION}"),
            nbformat.v4.new_code_cell(
                HIDDEN_SOURCE, id="hidden", metadata={"tags": ["hide-input"]}, outputs=[figure]
            ),
            nbformat.v4.new_code_cell(
                "total = 40 + 2\ntotal",
                execution_count=1,
                outputs=[out("execute_result", data={"text/plain": "42"}, execution_count=1)],
            ),
        ]
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def _artifacts(tmp_path: Path) -> Path:
    if os.environ.get("WEMEM_ARTIFACTS"):
        folder = Path(__file__).resolve().parents[2] / "outputs" / "test-artifacts"
    else:
        folder = tmp_path / "artifacts"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_report_and_index_render_offline_in_chromium(tmp_path, proxy):
    browser = _browser()
    if browser is None:
        pytest.skip(f"no Chromium found on PATH (looked for {', '.join(BROWSERS)})")
    assert reports._mathjax_source() is not None, "jupyter-server-mathjax is a dependency"
    artifacts = _artifacts(tmp_path)
    outputs = tmp_path / "outputs"
    nb = _executed_notebook(outputs / "99_browser" / "tiny" / "99_browser.ipynb")
    report = export_html(nb, outputs / "reports" / "99_browser-tiny.html")
    index = write_index(outputs / "reports")

    # Control: the proxy sees what a page asks for, or an empty log would prove nothing.
    control = tmp_path / "control.html"
    control.write_text('<script src="https://cdn.example.org/x.js"></script><p>control</p>')
    _open(browser, control, proxy, tmp_path / "control.png")
    assert any("cdn.example.org" in r for r in proxy.requests), proxy.requests
    proxy.requests.clear()

    shot = artifacts / "report-screenshot.png"
    dom = _open(browser, report, proxy, shot)
    print(f"report screenshot: {shot}")
    assert proxy.requests == [], f"the report made network requests: {proxy.requests}"
    text = _text(dom)
    assert "99 · Browser check" in text and "The mem-score:" in text
    assert "total = 40 + 2" in text and "42" in text  # a plain cell: source and result
    assert "plot_secret_plumbing" not in dom  # hide-input: the source is gone...
    hidden_cell = dom[dom.index('id="cell-id=hidden"') :].split('id="cell-id=', 2)[1]
    assert re.search(r'<img\b[^>]*src="data:image/png;base64,', hidden_cell)  # ...not its figure
    assert re.search(r'class="(MathJax|MathJax_Display|MathJax_CHTML)"|<mjx-container', dom), (
        "MathJax did not typeset the equation"
    )
    assert "Math Processing Error" not in text and 'class="MathJax_Error"' not in dom
    _assert_not_blank(shot)

    index_shot = artifacts / "index-screenshot.png"
    index_dom = _open(browser, index, proxy, index_shot)
    print(f"index screenshot: {index_shot}")
    assert proxy.requests == [], f"the index made network requests: {proxy.requests}"
    assert "99 · Browser check" in _text(index_dom)
    assert re.search(
        r'<a href="99_browser-tiny.html#cell-id=hidden"><img src="data:image/png', index_dom
    )
    _assert_not_blank(index_shot)
    for page in (report, index):
        assert reports.remote_resources(page.read_text(encoding="utf-8")) == [], page.name
