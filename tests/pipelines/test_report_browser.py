"""The run report as a person sees it: opened in headless Chromium (Debian's, installed by scripts/chromium.sh and
driven by Playwright), with no console error, every section and plot there and drawn, Chinese glyphs included."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from pipelines.report import ReportOptions, Validation, read_inputs, write_report
from pipelines.report_plots import cjk_font
from tests.pipelines.report_runs import two_runs
from tests.pipelines.test_report import SECTIONS, _png

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def chromium() -> str:
    """The browser's path, installed with apt-get when missing (never skipped: the test needs the real thing)."""
    done = subprocess.run(["sh", str(ROOT / "scripts" / "chromium.sh")], capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr
    cjk_font.cache_clear()  # a font the script has just installed
    return done.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def reports(tmp_path_factory, chromium) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("reports")
    options = ReportOptions(at_risk_waterfalls=2)
    validation = {"churn": Validation({"roc_auc": (0.78, 0.70)}, calibration_png=_png())}
    inputs = read_inputs(two_runs(folder / "store"), "run-second", validation=validation, options=options)
    return {lang: write_report(inputs, lang, folder / f"report.{lang}.html", options) for lang in ("en", "zh")}


def open_page(chromium: str, path: Path, screenshot: Path) -> dict:
    """Open a report, collect console errors and what each section holds, and save a screenshot."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        # Playwright's own browser downloads cannot be relied on: it drives the system's Chromium.
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"], headless=True)
        try:
            page = browser.new_page(viewport={"width": 1300, "height": 1000})
            errors: list[str] = []
            page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(path.as_uri(), wait_until="load")
            sections = page.evaluate("""() => Array.from(document.querySelectorAll('section')).map(s => ({
                id: s.id, text: s.innerText.trim(), tables: s.querySelectorAll('table tr').length,
                notes: s.querySelectorAll('p.note').length,
                images: Array.from(s.querySelectorAll('img')).map(i => [i.complete, i.naturalWidth, i.naturalHeight])}))""")
            glyphs = page.evaluate(DISTINCT_GLYPHS)
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    return {"errors": errors, "sections": sections, "glyphs": glyphs}


# Two different Chinese words drawn in the page's font: identical pixels mean both became the same
# empty boxes (no font with the glyphs), different pixels mean real characters.
DISTINCT_GLYPHS = """() => {
  const font = getComputedStyle(document.body).fontFamily;
  const draw = (word) => { const c = document.createElement('canvas'); c.width = 120; c.height = 40;
    const g = c.getContext('2d'); g.font = '28px ' + font; g.fillText(word, 2, 30);
    return Array.from(g.getImageData(0, 0, 120, 40).data).join(','); };
  return draw('数据质量') !== draw('客户分群') && draw('数据质量') !== draw('');
}"""


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_the_report_renders_in_chromium_with_every_section_and_plot(chromium, reports, lang, tmp_path):
    screenshot = tmp_path / f"report.{lang}.png"
    seen = open_page(chromium, reports[lang], screenshot)

    assert seen["errors"] == []
    assert [s["id"] for s in seen["sections"]] == list(SECTIONS)
    for section in seen["sections"]:
        # a heading plus something: a table with rows, a plot, or the sentence saying why there is none
        assert len(section["text"].splitlines()) >= 2 and (section["tables"] or section["images"] or section["notes"]), section["id"]
        for complete, width, height in section["images"]:
            assert complete and width > 50 and height > 50, section["id"]
    plots = {s["id"]: len(s["images"]) for s in seen["sections"] if s["images"]}
    assert plots == {"pareto": 1, "calibration": 2, "distributions": 2, "drift": 1, "waterfalls": 2}
    assert screenshot.stat().st_size > 20_000
    if lang == "zh":
        assert seen["glyphs"], "Chinese text renders as empty boxes: no CJK font (scripts/chromium.sh installs one)"


def test_chinese_plot_labels_have_a_font_with_their_glyphs(chromium):
    assert cjk_font() is not None
