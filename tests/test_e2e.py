"""End to end in a real browser: headless Chromium (Debian's `chromium` package) driven by
playwright-python. Uploads a photo, runs Detect, reads the verdict off the page and saves
a screenshot to tests/artifacts/. No browser is ever downloaded (no `playwright install`).
"""

import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ARTIFACTS = ROOT / "tests" / "artifacts"
EXAMPLE = ROOT / "demo" / "examples" / "real_ffhq_00002.jpg"

if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
    pytest.skip(f"{CHROMIUM} not found: install Debian's chromium package "
                "(apt-get install -y chromium) to run the browser test", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright-python not installed "
                               "(pip install -r requirements-dev.txt)")


@pytest.fixture(scope="module")
def app_url(model, detector_path, start_app):
    app, url = start_app({"LF_DETECTOR": str(detector_path), "LF_WEIGHTS": model.path})
    yield url
    app.close()


@pytest.fixture
def page():
    profile = tempfile.mkdtemp(prefix="lf-chromium-")  # a new, empty user-data-dir
    with sync_api.sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, args=ARGS, headless=True,
            viewport={"width": 1400, "height": 1000})
        try:
            yield ctx.new_page()
        finally:
            ctx.close()
            shutil.rmtree(profile, ignore_errors=True)


def test_upload_detect_and_read_the_verdict(app_url, page):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.goto(app_url)
    page.wait_for_selector("#lf-detect", timeout=60_000)
    page.set_input_files("#lf-image input[type=file]", str(EXAMPLE))
    page.wait_for_selector("#lf-image img", timeout=60_000)  # the upload is shown
    steps = page.locator("#lf-steps input[type=number]")
    steps.fill("5")
    steps.press("Enter")
    page.click("#lf-detect")
    page.wait_for_function(  # streamed progress: the step counter shows up, or the steps are
        # done (a fast CPU runs 5 steps within one update interval; tests/test_app.py counts
        # the streamed steps of a longer run)
        "() => /Step|Done in/.test(document.querySelector('#lf-status')?.innerText || '')",
        timeout=300_000)
    label = page.wait_for_selector("#lf-verdict .lf-label", timeout=300_000)
    verdict = label.inner_text().strip()
    assert verdict in ("REAL", "FAKE")
    card = page.inner_text("#lf-verdict")
    assert "p(fake)" in card and "Detector" in card and "How to read this" in card
    page.wait_for_function(  # explanations rendered after the verdict
        "() => (document.querySelector('#lf-status')?.innerText || '').includes('Done in')",
        timeout=300_000)
    page.wait_for_timeout(1500)  # let the plots draw
    body = page.inner_text("body")
    assert "Traceback" not in body
    page.screenshot(path=str(ARTIFACTS / "e2e_detect.png"), full_page=True)
    assert (ARTIFACTS / "e2e_detect.png").stat().st_size > 10_000


TABS = ("Detect", "Video", "Explore", "Benchmarks", "Train your own")
# labels, tab names and buttons whose text is cut off (ellipsis or hidden overflow)
CLIPPED_JS = """() => {
  const out = [];
  const sel = '[data-testid="block-info"], [role="tab"], .lf-prov td, .lf-label';
  for (const el of document.querySelectorAll(sel)) {
    const r = el.getBoundingClientRect();
    if (!r.width || !r.height || getComputedStyle(el).visibility === 'hidden') continue;
    if (el.scrollWidth > el.clientWidth + 1 && el.innerText.trim())
      out.push(el.innerText.trim().slice(0, 60));
  }
  return out;
}"""


@pytest.mark.parametrize("width", [1400, 400])
def test_every_tab_at_desktop_and_phone_width(app_url, page, width):
    """Each tab renders at 1400 px and at a phone's 400 px with no label cut off; a
    screenshot of each goes to tests/artifacts/."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.set_viewport_size({"width": width, "height": 900})
    page.goto(app_url)
    page.wait_for_selector("#lf-detect", timeout=60_000)
    for tab in TABS:
        # a phone's tab bar folds some tabs into a menu: choose the tab wide, then look narrow
        page.set_viewport_size({"width": 1400, "height": 900})
        page.get_by_role("tab", name=tab).click()
        page.set_viewport_size({"width": width, "height": 900})
        page.wait_for_timeout(400)
        if tab == "Benchmarks":  # its plots are drawn
            page.wait_for_selector(".js-plotly-plot", state="visible", timeout=60_000)
        clipped = page.evaluate(CLIPPED_JS)
        name = f"tab_{tab.split()[0].lower()}_{width}.png"
        page.screenshot(path=str(ARTIFACTS / name), full_page=True)
        assert not clipped, f"{tab} at {width} px: text cut off: {clipped}"
        assert "Traceback" not in page.inner_text("body")


def test_explanation_adds_up_to_the_verdict_in_the_page(app_url, page):
    """The waterfall starts at the baseline's p(fake) and its steps end at the verdict's."""
    page.goto(app_url)
    page.wait_for_selector("#lf-detect", timeout=60_000)
    page.set_input_files("#lf-image input[type=file]", str(EXAMPLE))
    page.wait_for_selector("#lf-image img", timeout=60_000)
    page.click("#lf-detect")
    page.wait_for_function(
        "() => (document.querySelector('#lf-status')?.innerText || '').includes('Done in')",
        timeout=300_000)
    page.wait_for_selector("#lf-why .js-plotly-plot", timeout=60_000)
    xs = page.evaluate("() => Array.from(document.querySelector('#lf-why .js-plotly-plot')"
                       ".data[0].x)")
    text = page.inner_text("#lf-verdict")
    p = float(text.split("p(fake) = ")[1].split()[0])
    assert abs(sum(xs[:-1]) - p) < 0.01  # baseline + rows (the last bar is the total)
    page.screenshot(path=str(ARTIFACTS / "e2e_explained.png"), full_page=True)


def test_a_bad_upload_is_cleared_and_said_in_the_status(app_url, page, tmp_path):
    """A text file named .jpg: no broken preview, the status says why; Detect with no
    photo then says so in the status too (not only in a notice that fades)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    fake = tmp_path / "notes.jpg"
    fake.write_text("this is not a photo\n" * 50)
    page.goto(app_url)
    page.wait_for_selector("#lf-detect", timeout=60_000)
    page.set_input_files("#lf-image input[type=file]", str(fake))
    page.wait_for_function(
        "() => (document.querySelector('#lf-status')?.innerText || '')"
        ".includes('Not a usable image')", timeout=60_000)
    assert page.locator("#lf-image img").count() == 0  # no broken-image preview
    page.click("#lf-detect")
    page.wait_for_function(
        "() => (document.querySelector('#lf-status')?.innerText || '').includes('Not analysed')",
        timeout=60_000)
    assert "upload one first" in page.inner_text("#lf-status")
    assert "Traceback" not in page.inner_text("body")
    page.screenshot(path=str(ARTIFACTS / "e2e_bad_upload.png"), full_page=True)
