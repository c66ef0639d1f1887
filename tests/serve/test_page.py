"""The page at `/` in a real browser: Debian's Chromium driven by Playwright. A photo chosen
through the page's file input comes back drawn (its keypoints on a canvas) with a table of its
faces, and the JSON the page's button downloads is the API's answer for the same photo.

Without Playwright or Chromium the test is skipped, except under CI=true, where it fails.
KFKD_SCREENSHOT=docs/serve.png saves a screenshot of the page; KFKD_SERVE_MODEL=FILE serves
that model instead of the tiny one (for a screenshot worth showing)."""
import json
import os
import socket
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from kfkd_kit.photo.align import COLUMNS

ASTRONAUT = Path(__file__).resolve().parents[1] / "fixtures" / "astronaut.jpg"
CHROMIUM = Path("/usr/bin/chromium")
# the network is closed here: nothing for the browser to phone home to
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def browser_or_skip():
    """playwright's sync API; skipped where it or Chromium is missing, failed under CI=true."""
    why = None
    try:
        from playwright import sync_api
    except ImportError:
        why = "playwright is not installed"
    if why is None and not CHROMIUM.is_file():
        why = f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    if why:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{why}; CI must run the page's test")
        pytest.skip(why)
    return sync_api


@pytest.fixture
def server(service):
    """The app on a free localhost port, in a thread; its base URL."""
    import uvicorn

    from kfkd_kit.serve.app import create_app
    from kfkd_kit.serve.service import KeypointService
    model = os.environ.get("KFKD_SERVE_MODEL")
    served = KeypointService(model) if model else service
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(create_app(served), host="127.0.0.1", port=port, log_level="warning")
    running = uvicorn.Server(config)
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not running.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    running.should_exit = True
    thread.join(30)


@pytest.mark.slow
def test_the_page_draws_the_keypoints_and_downloads_the_apis_answer(server, tmp_path):
    sync_api = browser_or_skip()
    import httpx
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 860})
            outside = []
            local = (server, "blob:", "data:")       # the photo shown: a blob of the chosen file
            page.on("request", lambda r: None if r.url.startswith(local) else outside.append(r.url))
            page.goto(server + "/")
            page.wait_for_selector("#model:not(:has-text('loading'))")
            page.set_input_files("#files", str(ASTRONAUT))
            canvas = page.wait_for_selector("figure canvas[data-keypoints]", timeout=60_000)
            page.wait_for_selector("#faces tbody tr.face")
            faces = page.locator("#faces tbody tr.face").count()
            assert faces >= 1 and int(canvas.get_attribute("data-keypoints")) == 15 * faces
            with page.expect_download() as download:
                page.click("#download-json")
            from_page = json.loads(Path(download.value.path()).read_text())
            with page.expect_download() as download:
                page.click("#download-csv")
            table = pd.read_csv(download.value.path())
            # the last point drawn lies on the canvas in its colour (the mouth's green)
            face = from_page["images"][0]["faces"][-1]
            lip = face["keypoints"]["mouth_center_bottom_lip"]
            red, green, blue = page.evaluate(
                "([x, y]) => Array.from(document.querySelector('figure canvas').getContext('2d')"
                ".getImageData(Math.floor(x), Math.floor(y), 1, 1).data.slice(0, 3))",
                [lip["x"] - 0.5, lip["y"] - 0.5])
            assert green > 200 and red < 90 and blue < 150, (red, green, blue)
            if os.environ.get("KFKD_SCREENSHOT"):
                page.screenshot(path=os.environ["KFKD_SCREENSHOT"], full_page=True)
            assert outside == [], f"the page fetched from elsewhere: {outside}"
            # the webcam button: shown where the browser offers getUserMedia (localhost is a
            # secure context), hidden where it does not
            assert page.is_visible("#webcam")
            bare = browser.new_page()
            bare.add_init_script("Object.defineProperty(navigator, 'mediaDevices', {value: undefined})")
            bare.goto(server + "/")
            assert bare.is_hidden("#webcam") and bare.is_visible("label[for=files]")
        finally:
            browser.close()
    with ASTRONAUT.open("rb") as photo:
        api = httpx.post(server + "/v1/keypoints", timeout=120,
                         files=[("images", ("astronaut.jpg", photo, "image/jpeg"))]).json()
    assert from_page == api
    assert list(table.columns) == list(COLUMNS) and len(table) == faces
    assert table["nose_tip_x"].tolist() == pytest.approx(
        [f["keypoints"]["nose_tip"]["x"] for f in api["images"][0]["faces"]])
