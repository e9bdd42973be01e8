"""The playground as a page in a real browser: Voila serves notebooks/06_playground.ipynb on
localhost (on tiny-llama, through ``$ACTADD_PLAYGROUND_MODEL``), headless Chromium from
Debian's packages is driven through its chromedriver (selenium): the page opens with nothing
computed; press Run, move the layer slider, press Run again, and check that the steered texts
shown are the library's own for each layer. A screenshot is saved to
``results/_scratch/browser/`` (gitignored).

``make test`` installs chromium and chromium-driver (``make setup-browser``) and selenium and
Voila (``make setup-playground``). Without them the test skips, saying why; in CI (``CI`` set)
it fails instead.
"""

from __future__ import annotations

import html
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

import actadd
from actadd import SteeringVector
from actadd.ui.render import STEERED_CLASS, visible
from actadd.ui.serve import voila_argv
from actadd.ui.settings import Settings

ROOT = Path(__file__).resolve().parents[3]
NOTEBOOK = ROOT / "notebooks" / "06_playground.ipynb"
ARTIFACTS = ROOT / "results" / "_scratch" / "browser"
MODEL = "tiny-llama"
WAIT_S = 240  # a ceiling for page and kernel start on a busy machine, never a timing claim


def _require(ok: bool, why: str) -> None:
    if not ok:
        (pytest.fail if os.environ.get("CI") else pytest.skip)(why)


def _tools() -> tuple[str, str, Path]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    voila = Path(sys.executable).parent / "voila"
    _require(
        chromium is not None and driver is not None,
        "Debian's chromium and chromium-driver are not installed (`make setup-browser`)",
    )
    _require(voila.exists(), "Voila is not installed (`make setup-playground`)")
    try:
        import selenium  # noqa: F401
    except ImportError:
        _require(False, "selenium is not installed (`make setup-playground`)")
    return chromium, driver, voila


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def page_url(tmp_path_factory):
    _, _, voila = _tools()
    port = _free_port()
    log = tmp_path_factory.mktemp("voila") / "voila.log"
    env = {**os.environ, "ACTADD_PLAYGROUND_MODEL": MODEL, "OMP_NUM_THREADS": "1"}
    with open(log, "w") as out:
        proc = subprocess.Popen(
            voila_argv(port, notebook=NOTEBOOK, voila=voila),
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + WAIT_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"voila exited with {proc.returncode}: {log.read_text()[-2000:]}")
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if time.monotonic() > deadline:
                pytest.fail(f"voila did not listen on {port}: {log.read_text()[-2000:]}")
            time.sleep(0.5)
        yield f"http://127.0.0.1:{port}/"
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(30)


@pytest.fixture(scope="module")
def browser():
    chromium, driver_path, _ = _tools()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        opts.add_argument(arg)
    opts.add_argument("--window-size=1400,2000")
    driver = webdriver.Chrome(options=opts, service=Service(executable_path=driver_path))
    try:
        yield driver
    finally:
        driver.quit()


def _norm(text: str) -> str:
    return " ".join(text.split())


def _expected_steered(layer: int) -> list[str]:
    """The steered completions the page should show: the library's compare on the same
    model and the notebook's settings (the panel's defaults at ``layer``, coefficient 5)."""
    model = actadd.load_model(MODEL)
    s = Settings(layer=layer, coeff=5.0)
    v = SteeringVector.from_pair(model, s.positive, s.negative, layer, s.coeff)
    df = actadd.compare(
        model,
        s.prompt,
        v,
        s.align,
        n_samples=s.n_samples,
        seed=s.seed,
        sampling=s.sampling,
        max_new_tokens=s.max_new_tokens,
    )
    return [_norm(html.unescape(visible(t))) for t in df.steered]


def test_move_slider_press_run_and_see_the_steered_text(page_url, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, WAIT_S, poll_frequency=0.5)

    def steered_on_page() -> list[str]:
        return [_norm(e.text) for e in browser.find_elements(By.CLASS_NAME, STEERED_CLASS)]

    at_layer_2, at_layer_3 = _expected_steered(2), _expected_steered(3)
    assert at_layer_2 != at_layer_3  # so the page can show which one it computed
    browser.get(page_url)
    run = wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, ".actadd-run"), "the Run button")[0]
    # the page opens interactive: nothing generated until Run is pressed
    status = browser.find_element(By.CSS_SELECTOR, ".actadd-status")
    assert status.text.startswith("ready") and steered_on_page() == []
    run.click()
    wait.until(lambda d: steered_on_page() == at_layer_2, "the first run's completions")
    handle = browser.find_element(By.CSS_SELECTOR, ".actadd-layer .noUi-handle")
    handle.click()
    handle.send_keys(Keys.ARROW_RIGHT)  # layer 2 -> 3
    readout = browser.find_element(By.CSS_SELECTOR, ".actadd-layer .widget-readout")
    wait.until(lambda d: readout.text.strip() == "3", "the slider to read 3")
    browser.find_element(By.CSS_SELECTOR, ".actadd-run").click()
    try:
        wait.until(lambda d: steered_on_page() == at_layer_3, "the steered text at layer 3")
    finally:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(ARTIFACTS / "playground_browser.png"))
    status = browser.find_element(By.CSS_SELECTOR, ".actadd-status").text
    assert status.startswith("done: ActAdd 'Love' − 'Hate'") and "at layer 3" in status
    assert browser.find_element(By.CSS_SELECTOR, ".actadd-error").text == ""
