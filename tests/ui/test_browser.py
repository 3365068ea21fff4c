"""The pages in a real headless Chromium against a real gateway: draw, upload, read the dashboard.

Screenshots go to ``test-artifacts/`` at the repository root.
"""

from __future__ import annotations

import base64
import io
import json
import math
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from PIL import Image, ImageDraw
from selenium import webdriver
from selenium.webdriver import Chrome
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.actions import interaction
from selenium.webdriver.common.actions.action_builder import ActionBuilder
from selenium.webdriver.common.actions.pointer_input import PointerInput
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import Select, WebDriverWait

from model.card import ModelCard
from service.core.api_keys import new_key
from tests.cards import calibrated_artifact
from tests.servers import REPO, ServerProcess, gateway_process

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ARTIFACTS = REPO / "test-artifacts"
WAIT_SECONDS = 30
SEVEN = [(0.25, 0.2), (0.5, 0.2), (0.75, 0.2), (0.62, 0.45), (0.5, 0.7), (0.42, 0.85)]  # fractions of the pad
PHONE_WIDTH = 390
ONE = [(0.5, 0.15), (0.5, 0.5), (0.5, 0.85)]

T = TypeVar("T")


@pytest.fixture(scope="module")
def browser() -> Iterator[Chrome]:
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.skip("needs the Debian packages chromium and chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--disable-background-networking", "--disable-component-update", "--disable-sync",
                         "--no-first-run", f"--user-data-dir={profile}", "--window-size=1280,1000"):  # fmt: skip
            options.add_argument(argument)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
        try:
            yield driver
        finally:
            driver.quit()


def wait_until(driver: Chrome, condition: Callable[[Chrome], T | None], what: str) -> T:
    """Poll ``condition`` until it returns something other than None (or a falsy value)."""
    result: T | None = WebDriverWait(driver, WAIT_SECONDS, poll_frequency=0.2).until(condition, f"timed out: {what}")
    assert result is not None
    return result


def screenshot(driver: Chrome, name: str) -> Path:
    """The whole page, not just the window."""
    ARTIFACTS.mkdir(exist_ok=True)
    size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True, "clip": clip}
    )
    path = ARTIFACTS / name
    path.write_bytes(base64.b64decode(shot["data"]))
    print(f"screenshot: {path}")
    return path


def console_errors(driver: Chrome) -> list[str]:
    entries: list[dict[str, Any]] = driver.get_log("browser")  # type: ignore[no-untyped-call]
    return [entry["message"] for entry in entries if entry["level"] == "SEVERE"]


def predict_count(server: ServerProcess) -> float:
    with urllib.request.urlopen(f"{server.url}/metrics", timeout=10) as response:
        text = response.read().decode()
    prefix = 'digits_http_requests_total{method="POST",route="/v1/predict",'
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(prefix))


def served_card(server: ServerProcess) -> ModelCard:
    with urllib.request.urlopen(f"{server.url}/v1/models/digits", timeout=10) as response:
        return ModelCard.model_validate(json.loads(response.read()))


def draw(driver: Chrome, pad: WebElement, path: list[tuple[float, float]], kind: str) -> None:
    """One stroke through ``path`` (fractions of the pad) with a mouse, or a finger (``POINTER_TOUCH``)."""
    size = pad.size
    builder = ActionBuilder(driver, mouse=PointerInput(kind, f"{kind}-1"))  # type: ignore[no-untyped-call]

    def offset(fx: float, fy: float) -> tuple[int, int]:  # from the pad's centre, as W3C actions count
        return round((fx - 0.5) * size["width"]), round((fy - 0.5) * size["height"])

    pointer = builder.pointer_action
    pointer.move_to(pad, *offset(*path[0]))  # type: ignore[no-untyped-call]
    pointer.pointer_down()  # type: ignore[no-untyped-call]
    for point in path[1:]:
        pointer.move_to(pad, *offset(*point))  # type: ignore[no-untyped-call]
    pointer.pointer_up()  # type: ignore[no-untyped-call]
    builder.perform()


def probability_bars(driver: Chrome) -> list[dict[str, Any]]:
    script = """return [...document.querySelectorAll('#bars li')].map(li => ({
        label: li.dataset.label, probability: Number(li.dataset.probability),
        width: li.querySelector('.bar').getBoundingClientRect().width,
        track: li.querySelector('.bar-track').getBoundingClientRect().width}))"""
    bars: list[dict[str, Any]] = driver.execute_script(script)
    return bars


def loaded_feature_images(driver: Chrome) -> dict[str, list[int]]:
    script = """return Object.fromEntries([...document.querySelectorAll('#features img')]
        .filter(img => !img.hidden && img.complete && img.naturalWidth > 0)
        .map(img => [img.id.replace('maps-', ''), [img.naturalWidth, img.naturalHeight]]))"""
    images: dict[str, list[int]] = driver.execute_script(script)
    return images


def expected_grid(shape: list[int]) -> list[int]:
    """Pixel size of the PNG grid the gateway tiles ``[C, H, W]`` into (1-pixel gaps)."""
    channels, height, width = shape
    cols = math.ceil(math.sqrt(channels))
    rows = math.ceil(channels / cols)
    return [cols * (width + 1) - 1, rows * (height + 1) - 1]


def check_prediction(driver: Chrome, card: ModelCard) -> str:
    bars = wait_until(driver, lambda d: b if len(b := probability_bars(d)) == 10 else None, "ten probability bars")
    assert [bar["label"] for bar in bars] == card.labels
    assert sum(bar["probability"] for bar in bars) == pytest.approx(1.0, abs=1e-3)
    for bar in bars:  # each bar is as long as its probability
        assert bar["width"] == pytest.approx(max(bar["probability"] * bar["track"], 1), abs=1.5)
    label = driver.find_element(By.ID, "label").text
    assert label == max(bars, key=lambda bar: bar["probability"])["label"]
    assert (
        driver.find_element(By.CSS_SELECTOR, f"#diagram #output-{label}").get_attribute("class") == "output predicted"
    )
    maps = {layer.name: layer.output_shape for layer in card.layers if layer.feature_map}
    images = wait_until(
        driver, lambda d: i if len(i := loaded_feature_images(d)) == len(maps) else None, "feature maps"
    )
    assert images == {name: expected_grid(shape) for name, shape in maps.items()}
    return label


SEEN = """const c = document.getElementById('seen');
    const p = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let ink = 0, colored = 0;
    for (let i = 0; i < p.length; i += 4) {
      if (p[i] + p[i + 1] + p[i + 2] > 60) ink++;
      if (Math.abs(p[i] - p[i + 2]) > 40) colored++;
    }
    return {label: c.dataset.label || null, salient: Number(c.dataset.salient || 0), ink: ink, colored: colored,
            stages: [...document.querySelectorAll('#stages li')].filter(li => li.querySelector('img').naturalWidth > 0)
                    .map(li => li.dataset.stage)}"""
STAGES = ["grayscale", "polarity", "cropped", "scaled", "centred"]


def check_what_the_model_saw(driver: Chrome, label: str) -> None:
    """The input field is drawn with its saliency for the predicted digit; the toggle takes the overlay away."""
    seen = wait_until(
        driver,
        lambda d: v if (v := d.execute_script(SEEN))["label"] == label and v["stages"] == STAGES else None,
        "what the model saw",
    )
    assert seen["ink"] > 20 and seen["salient"] > 5 and seen["colored"] > 5
    toggle = driver.find_element(By.ID, "saliency-toggle")
    toggle.click()
    wait_until(driver, lambda d: d.execute_script(SEEN)["colored"] == 0 or None, "the input without saliency")
    toggle.click()
    wait_until(driver, lambda d: d.execute_script(SEEN)["colored"] > 5 or None, "the saliency back")
    # Another digit's saliency, picked in the chart.
    other = "3" if label != "3" else "5"
    driver.find_element(By.CSS_SELECTOR, f'#bars li[data-label="{other}"]').click()
    wait_until(driver, lambda d: ((v := d.execute_script(SEEN))["label"] == other and v["colored"] > 5) or None, other)
    driver.find_element(By.CSS_SELECTOR, f'#bars li[data-label="{label}"]').send_keys(Keys.ENTER)
    wait_until(driver, lambda d: d.execute_script(SEEN)["label"] == label or None, "the predicted digit again")


INSPECTED = """const value = document.getElementById('inspect-value');
    const served = document.getElementById('inspect-served');
    const map = document.getElementById('inspect-map');
    return value && served ? {value: Number(value.dataset.value), served: Number(served.dataset.value),
                              label: map.getAttribute('aria-label'), text: value.textContent} : null"""


def inspected(driver: Chrome, label_part: str) -> dict[str, Any]:
    return wait_until(
        driver, lambda d: v if (v := d.execute_script(INSPECTED)) and label_part in v["label"] else None, label_part
    )


def check_the_arithmetic_of_a_channel(driver: Chrome) -> None:
    """conv1 channel 0 opened by a click on its tile; a hovered pixel's sum equals the served value."""
    tiles = driver.find_element(By.ID, "maps-conv1")
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", tiles)
    corner = tiles.size["width"] / 2 - 3, tiles.size["height"] / 2 - 3  # inside the first tile, from the centre
    ActionChains(driver).move_to_element_with_offset(tiles, -round(corner[0]), -round(corner[1])).click().perform()
    inspected(driver, "conv1 channel 0,")
    canvas = driver.find_element(By.ID, "inspect-map")
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", canvas)
    step, half = canvas.size["width"] / 28, canvas.size["width"] / 2
    for row, col in ((14, 14), (8, 11), (20, 16)):
        offset = round((col + 0.5) * step - half), round((row + 0.5) * step - half)
        ActionChains(driver).move_to_element_with_offset(canvas, *offset).perform()
        shown = inspected(driver, f"row {row}, column {col}")
        assert shown["value"] == pytest.approx(shown["served"], abs=1e-4)
    # The keyboard moves the pixel; a pooling layer opened from the form shows its winner.
    canvas.send_keys(Keys.ARROW_LEFT)
    inspected(driver, "row 20, column 15")
    Select(driver.find_element(By.ID, "inspect-layer")).select_by_value("pool1")
    channel = driver.find_element(By.ID, "inspect-channel")
    channel.clear()
    channel.send_keys("5", Keys.ENTER)
    pooled = inspected(driver, "pool1 channel 5,")
    assert pooled["value"] == pooled["served"]
    assert driver.find_elements(By.CSS_SELECTOR, "#inspect-math td.winner")
    Select(driver.find_element(By.ID, "inspect-layer")).select_by_value("conv4")
    channel.clear()
    channel.send_keys("63", Keys.ENTER)
    deep = inspected(driver, "conv4 channel 63,")
    assert deep["value"] == pytest.approx(deep["served"], abs=1e-4)


def test_draw_a_digit_and_see_every_layer(browser: Chrome, gateway: ServerProcess) -> None:
    card = served_card(gateway)
    browser.set_window_size(1280, 1000)
    browser.get(f"{gateway.url}/")
    wait_until(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#diagram svg a.stage-link"), "the diagram")
    assert len(browser.find_elements(By.CSS_SELECTOR, "#features figure")) == len(card.feature_layers)
    pad = browser.find_element(By.ID, "pad")

    before = predict_count(gateway)
    draw(browser, pad, SEVEN, interaction.POINTER_MOUSE)
    label = check_prediction(browser, card)
    time.sleep(0.5)
    assert predict_count(gateway) == before + 1  # one stroke, one request
    check_what_the_model_saw(browser, label)
    assert console_errors(browser) == []
    screenshot(browser, "index.png")
    check_the_arithmetic_of_a_channel(browser)
    assert console_errors(browser) == []
    screenshot(browser, "index-channel.png")

    # The diagram's stages lead to their feature maps.
    stage = browser.find_element(By.CSS_SELECTOR, f'#diagram a[href="#features-{card.feature_layers[-1]}"]')
    name = stage.find_element(By.CSS_SELECTOR, ".stage-name")  # painted: the link's box has gaps in an SVG
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", name)
    name.click()
    assert browser.execute_script("return location.hash") == f"#features-{card.feature_layers[-1]}"

    # A finger works too, after Clear empties the page.
    browser.set_window_size(1280, 1000)
    browser.find_element(By.ID, "clear").click()
    assert browser.find_element(By.ID, "label").text == "\u2013"  # the en dash of an empty result
    assert browser.find_elements(By.CSS_SELECTOR, "#bars li") == []
    assert browser.execute_script(SEEN) == {"label": None, "salient": 0, "ink": 0, "colored": 0, "stages": []}
    browser.execute_script("window.scrollTo(0, 0)")
    draw(browser, pad, ONE, interaction.POINTER_TOUCH)
    check_prediction(browser, card)


MODEL_PANEL = """const svg = document.querySelector('#reliability svg');
    const note = document.querySelector('#reliability p');
    return {bins: svg ? Number(svg.dataset.bins) : null, note: note ? note.textContent : '',
            perClass: document.querySelectorAll('#per-class tr').length,
            confusion: [...document.querySelectorAll('#confusion tr')].map(tr => tr.cells.length),
            errors: document.querySelectorAll('#confusion td.error').length}"""


def test_the_model_panel_shows_the_cards_reliability_diagram(browser: Chrome, artifact: Path, tmp_path: Path) -> None:
    copy, card = calibrated_artifact(artifact, tmp_path)
    with gateway_process(tmp_path, {"DIGITS_ARTIFACT": str(copy)}) as server:
        browser.set_window_size(1280, 1000)
        browser.get(f"{server.url}/")
        panel = wait_until(browser, lambda d: p if (p := d.execute_script(MODEL_PANEL))["bins"] else None, "the panel")
        browser.execute_script("document.getElementById('model-title').scrollIntoView()")
        screenshot(browser, "index-model.png")
    assert panel["bins"] == 3 and "calibration error 0.65%" in panel["note"]
    assert panel["perClass"] == 10 and panel["confusion"] == [11] * 11
    matrix = card.evaluation.confusion_matrix
    assert panel["errors"] == sum(1 for i, row in enumerate(matrix) for j, n in enumerate(row) if i != j and n > 0)
    assert console_errors(browser) == []


def test_upload_an_image_file(browser: Chrome, gateway: ServerProcess, tmp_path: Path) -> None:
    card = served_card(gateway)
    image = Image.new("L", (120, 160), 255)
    ImageDraw.Draw(image).line([(30, 25), (90, 25), (55, 140)], fill=20, width=12)
    path = tmp_path / "seven.png"
    image.save(path)
    browser.set_window_size(1280, 1000)
    browser.get(f"{gateway.url}/")
    wait_until(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#features figure"), "the model card")
    browser.find_element(By.ID, "file").send_keys(str(path))
    check_what_the_model_saw(browser, check_prediction(browser, card))
    panel = browser.execute_script(MODEL_PANEL)  # the shipped card has no calibration: no diagram, a note
    assert panel["bins"] is None and "no calibration" in panel["note"] and panel["perClass"] == 10
    # The upload is drawn on the pad: its centre is ink-free paper, the stroke is there somewhere.
    dark = browser.execute_script(
        "const c = document.getElementById('pad'); const d = c.getContext('2d').getImageData(0, 0, c.width, c.height);"
        "let n = 0; for (let i = 0; i < d.data.length; i += 4) if (d.data[i] < 128) n++; return n"
    )
    assert dark > 500


def test_keyboard_reaches_every_control(browser: Chrome, gateway: ServerProcess) -> None:
    browser.set_window_size(1280, 1000)
    browser.get(f"{gateway.url}/")
    wait_until(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#diagram svg a.stage-link"), "the diagram")
    reached: list[str] = []
    for _ in range(30):
        ActionChains(browser).send_keys(Keys.TAB).perform()
        reached.append(browser.execute_script(
            "const e = document.activeElement; return e.id || e.getAttribute('href') || e.tagName"
        ))  # fmt: skip
    assert {"clear", "upload", "predict"} <= set(reached)
    assert "#features-conv1" in reached  # the diagram's stages, too
    # Enter on a focused stage jumps to its maps.
    link = browser.find_element(By.CSS_SELECTOR, '#diagram a[href="#features-conv1"]')
    browser.execute_script("arguments[0].focus()", link)
    browser.switch_to.active_element.send_keys(Keys.ENTER)
    wait_until(browser, lambda d: d.execute_script("return location.hash") == "#features-conv1", "the jump")


def test_readable_on_a_phone(browser: Chrome, gateway: ServerProcess) -> None:
    card = served_card(gateway)
    phone = {"width": PHONE_WIDTH, "height": 844, "deviceScaleFactor": 1, "mobile": True}
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", phone)
    browser.execute_cdp_cmd("Emulation.setTouchEmulationEnabled", {"enabled": True, "maxTouchPoints": 5})
    try:
        browser.get(f"{gateway.url}/")
        wait_until(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#diagram svg"), "the diagram")
        assert browser.execute_script("return window.innerWidth") == PHONE_WIDTH
        draw(browser, browser.find_element(By.ID, "pad"), SEVEN, interaction.POINTER_TOUCH)
        check_prediction(browser, card)
        # Nothing but the diagram, which scrolls in its own box, is wider than the screen.
        widths = browser.execute_script(
            "return [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
        )
        assert widths[0] <= widths[1] <= PHONE_WIDTH
        assert browser.find_element(By.ID, "pad").size["width"] >= 0.8 * PHONE_WIDTH
        for control in ("clear", "upload", "predict"):  # big enough for a thumb
            assert browser.find_element(By.ID, control).size["height"] >= 44
        screenshot(browser, "index-phone.png")
    finally:
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
        browser.execute_cdp_cmd("Emulation.setTouchEmulationEnabled", {"enabled": False})


def test_dashboard_charts_recent_traffic(browser: Chrome, gateway: ServerProcess) -> None:
    buffer = io.BytesIO()
    image = Image.new("L", (56, 56), 0)
    ImageDraw.Draw(image).line([(20, 8), (30, 48)], fill=255, width=5)
    image.save(buffer, format="PNG")
    body = json.dumps({"instances": [{"image": base64.b64encode(buffer.getvalue()).decode()}] * 3})
    before = predict_count(gateway)
    for _ in range(40):
        request = urllib.request.Request(
            f"{gateway.url}/v1/predict", data=body.encode(), headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status == 200
    browser.set_window_size(1280, 1000)
    browser.get(f"{gateway.url}/dashboard")

    def charts(driver: Chrome) -> dict[str, dict[str, float]] | None:
        data: dict[str, dict[str, float]] = driver.execute_script(
            "return Object.fromEntries([...document.querySelectorAll('figure.chart')].map(f => "
            "[f.id, {points: Number(f.dataset.points), max: Number(f.dataset.max)}]))"
        )
        total = driver.find_element(By.ID, "now-total").text
        return data if total.isdigit() and int(total) >= before + 40 else None

    data = wait_until(browser, charts, "the dashboard to count the traffic")
    assert data["chart-latency"]["points"] > 0
    assert data["chart-rate"]["max"] > 0
    assert data["chart-batch"]["max"] >= 1
    assert data["chart-queue"]["points"] > 0
    assert browser.find_elements(By.CSS_SELECTOR, "#chart-latency path.series")
    assert console_errors(browser) == []
    screenshot(browser, "dashboard.png")


def test_the_page_asks_for_a_key_when_the_api_wants_one(browser: Chrome, tmp_path: Path) -> None:
    key, line = new_key("browser")
    keys_file = tmp_path / "api-keys"
    keys_file.write_text(line + "\n")
    with gateway_process(tmp_path, {"DIGITS_API_KEYS_FILE": str(keys_file)}) as server:
        # Headless Chromium cannot type into a real prompt: this one records the question and answers the key.
        answer = f"window.prompts = []; window.prompt = (q) => {{ window.prompts.push(q); return {key!r}; }};"
        script = browser.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": answer})
        try:
            browser.get(f"{server.url}/")
        finally:
            browser.execute_cdp_cmd("Page.removeScriptToEvaluateOnNewDocument", {"identifier": script["identifier"]})
        name = lambda d: t if "digits-convnet" in (t := d.find_element(By.ID, "model-name").text) else None  # noqa: E731
        wait_until(browser, name, "the model card, fetched with the key")
        storage = browser.execute_script(
            "return [window.prompts, sessionStorage.getItem('digits-api-key'), localStorage.length, document.cookie]"
        )
        assert storage == [["This server needs an API key:"], key, 0, ""]  # asked once, kept for this tab only
        draw(browser, browser.find_element(By.ID, "pad"), ONE, interaction.POINTER_MOUSE)
        label = wait_until(browser, lambda d: d.find_element(By.ID, "label").text.strip("\u2013") or None, "a label")
        assert label == "1"
