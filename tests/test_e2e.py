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
    page.wait_for_function(  # streamed progress: the step counter shows up
        "() => (document.querySelector('#lf-status')?.innerText || '').includes('Step')",
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
