"""The pages in a real headless Chromium against a real gateway: draw, upload, read the dashboard.

Screenshots go to ``test-artifacts/`` at the repository root.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import math
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import numpy as np
import pytest
import torch
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
from torch import nn

from model.card import Layer, ModelCard
from model.mnist import load_test_split
from model.network import Conv, ConvNet, Pool
from service.core.api_keys import new_key
from service.core.schemas import EXAMPLE_PIXELS
from tests.bursts import burst, post_request
from tests.cards import network_artifact, uncalibrated_artifact
from tests.lifecycle.helpers import OTHER, STABLE, bearer, make_keys, make_repository, repository_gateway
from tests.servers import REPO, ServerProcess, gateway_process

pytestmark = pytest.mark.browser

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

# Where the page drew the window and the receptive field: the outline's pixels found on each view (converted back
# to the plane's rows and columns with the view's scale and padding margin), the box on "what the model saw" (its
# rectangle's attributes, and its place on screen in field pixels), and the padding cells of the input table.
OUTLINES = """const outlined = (id) => {
      const c = document.getElementById(id);
      if (c.width < 2) return null;
      const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
      let [x0, y0, x1, y1] = [Infinity, Infinity, -1, -1];
      for (let y = 0; y < c.height; y++) for (let x = 0; x < c.width; x++) {
        const i = (y * c.width + x) * 4;
        if (d[i] === 240 && d[i + 1] === 140 && d[i + 2] === 0) {
          [x0, y0, x1, y1] = [Math.min(x0, x), Math.min(y0, y), Math.max(x1, x), Math.max(y1, y)];
        }
      }
      const [s, m] = [Number(c.dataset.scale), Number(c.dataset.margin)];
      return {drawn: [y0 / s - m, x0 / s - m, (y1 + 1) / s - 1 - m, (x1 + 1) / s - 1 - m],
              data: ['top', 'left', 'bottom', 'right'].map(k => Number(c.dataset[k])),
              label: c.getAttribute('aria-label')};
    };
    const seen = document.getElementById('seen').getBoundingClientRect();
    const box = document.getElementById('seen-field-box');
    const onScreen = box.getBoundingClientRect();
    const px = (v, o, size) => (v - o) * 28 / size;
    const inputTable = [...document.querySelectorAll('#inspect-math table')]
      .find(t => t.caption && t.caption.textContent === 'input');
    return {window: outlined('inspect-window'), field: outlined('inspect-field'),
            seen: {hidden: document.getElementById('seen-field').hidden,
                   attributes: ['y', 'x', 'height', 'width'].map(a => Number(box.getAttribute(a))),
                   screen: [px(onScreen.top, seen.top, seen.height), px(onScreen.left, seen.left, seen.width),
                            px(onScreen.bottom, seen.top, seen.height), px(onScreen.right, seen.left, seen.width)]},
            padding: inputTable ? inputTable.querySelectorAll('td.padding').length : null}"""

Box = tuple[int, int, int, int]  # top, left, bottom, right: rows and columns, inclusive


def window_of(layer: Layer, y: int, x: int) -> Box:
    """The rows and columns of its input that a layer's output pixel reads: y*s - p .. y*s - p + k - 1."""
    assert layer.kernel_size is not None and layer.stride is not None and layer.padding is not None
    top, left = y * layer.stride - layer.padding, x * layer.stride - layer.padding
    return top, left, top + layer.kernel_size - 1, left + layer.kernel_size - 1


def receptive_field(chain: list[Layer], y: int, x: int) -> Box:
    """The input span of ``chain[-1]``'s pixel, by the jump / size / centre recurrence (not the page's way back):
    each layer multiplies the jump between neighbouring pixels by its stride, widens the field by (k - 1) jumps
    and moves the first pixel's centre by ((k - 1) / 2 - p) jumps."""
    jump, size, start = 1.0, 1.0, 0.0
    for layer in chain:
        assert layer.kernel_size is not None and layer.stride is not None and layer.padding is not None
        size += (layer.kernel_size - 1) * jump
        start += ((layer.kernel_size - 1) / 2 - layer.padding) * jump
        jump *= layer.stride
    half = (size - 1) / 2
    top, left = start + y * jump - half, start + x * jump - half
    assert top.is_integer() and left.is_integer()
    return int(top), int(left), int(top + size - 1), int(left + size - 1)


def clip(box: Box, height: int, width: int) -> Box:
    return max(box[0], 0), max(box[1], 0), min(box[2], height - 1), min(box[3], width - 1)


def check_where_it_looks(driver: Chrome, card: ModelCard, layer: Layer, y: int, x: int) -> None:
    """The window outlined on the layer's input (padding included), the receptive field on the network's input
    (clipped to the field) in the inspector and on "what the model saw", all where the layer table puts them."""
    mapped = [row for row in card.layers if row.feature_map]
    chain = mapped[: mapped.index(layer) + 1]
    _, height, width = chain[-2].output_shape if len(chain) > 1 else card.input.shape
    _, field_height, field_width = card.input.shape
    window = window_of(layer, y, x)
    field = clip(receptive_field(chain, y, x), field_height, field_width)
    if len(chain) == 1:  # the first layer reads the field itself: its receptive field is its window, clipped
        assert field == clip(window, field_height, field_width)
    where = driver.execute_script(OUTLINES)
    assert where["window"]["drawn"] == list(window) and where["window"]["data"] == list(window)
    assert where["field"]["drawn"] == list(field) and where["field"]["data"] == list(field)
    seen = where["seen"]
    top, left, bottom, right = field
    assert not seen["hidden"] and seen["attributes"] == [top, left, bottom - top + 1, right - left + 1]
    assert seen["screen"] == pytest.approx([top, left, bottom + 1, right + 1], abs=0.1)
    if layer.kind == "conv":
        rows = min(window[2], height - 1) - max(window[0], 0) + 1
        cols = min(window[3], width - 1) - max(window[1], 0) + 1
        assert where["padding"] == (window[2] - window[0] + 1) * (window[3] - window[1] + 1) - rows * cols


def inspected(driver: Chrome, label_part: str) -> dict[str, Any]:
    return wait_until(
        driver, lambda d: v if (v := d.execute_script(INSPECTED)) and label_part in v["label"] else None, label_part
    )


def open_from_the_form(driver: Chrome, layer: Layer, channel: int) -> dict[str, Any]:
    Select(driver.find_element(By.ID, "inspect-layer")).select_by_value(layer.name)
    field = driver.find_element(By.ID, "inspect-channel")
    field.clear()
    field.send_keys(str(channel), Keys.ENTER)
    return inspected(driver, f"{layer.name} channel {channel},")


def check_the_arithmetic_of_a_channel(driver: Chrome, card: ModelCard) -> None:
    """The first convolution's channel 0 opened by a click on its tile: a hovered pixel's sum equals the served value
    and its window and receptive field are outlined where they belong, at the centre, in the padded corner and at
    the far edge; then the keyboard, a pooling layer and the last convolution's last channel."""
    mapped = [layer for layer in card.layers if layer.feature_map]
    first = mapped[0]
    tiles = driver.find_element(By.ID, f"maps-{first.name}")
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", tiles)
    corner = tiles.size["width"] / 2 - 3, tiles.size["height"] / 2 - 3  # inside the first tile, from the centre
    ActionChains(driver).move_to_element_with_offset(tiles, -round(corner[0]), -round(corner[1])).click().perform()
    inspected(driver, f"{first.name} channel 0,")
    canvas = driver.find_element(By.ID, "inspect-map")
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", canvas)
    _, height, width = first.output_shape
    step, half = canvas.size["width"] / width, canvas.size["width"] / 2
    for row, col in ((height // 2, width // 2), (0, 0), (height - 1, width - 2)):
        offset = round((col + 0.5) * step - half), round((row + 0.5) * step - half)
        ActionChains(driver).move_to_element_with_offset(canvas, *offset).perform()
        shown = inspected(driver, f"row {row}, column {col}")
        assert shown["value"] == pytest.approx(shown["served"], abs=1e-4)
        check_where_it_looks(driver, card, first, row, col)
    # The keyboard moves the pixel, and the outlines with it.
    canvas.send_keys(Keys.ARROW_LEFT)
    inspected(driver, f"row {height - 1}, column {width - 3}")
    check_where_it_looks(driver, card, first, height - 1, width - 3)
    canvas.send_keys(Keys.ARROW_UP)
    inspected(driver, f"row {height - 2}, column {width - 3}")
    # A pooling layer opened from the form shows its winner.
    pool = next(layer for layer in mapped if layer.kind == "maxpool")
    pooled = open_from_the_form(driver, pool, 5)
    assert pooled["value"] == pooled["served"]
    assert driver.find_elements(By.CSS_SELECTOR, "#inspect-math td.winner")
    check_where_it_looks(driver, card, pool, pool.output_shape[1] // 2, pool.output_shape[2] // 2)
    # The last convolution, whose input is the deepest map and whose receptive field is the widest.
    last = [layer for layer in mapped if layer.kind == "conv"][-1]
    channels, height, width = last.output_shape
    deep = open_from_the_form(driver, last, channels - 1)
    assert deep["value"] == pytest.approx(deep["served"], abs=1e-4)
    check_where_it_looks(driver, card, last, height // 2, width // 2)
    canvas.send_keys(Keys.ARROW_DOWN)
    deep = inspected(driver, f"row {height // 2 + 1}, column {width // 2}")
    assert deep["value"] == pytest.approx(deep["served"], abs=1e-4)
    check_where_it_looks(driver, card, last, height // 2 + 1, width // 2)


@pytest.fixture(scope="module")
def unpadded_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A gateway serving a layout the shipped model lacks (a 5x5 stride-2 padding-2 convolution, a 3x3 one,
    pooling, an unpadded 3x3, one linear layer), untrained, with batch norm statistics that are not the identity,
    so that freezing folds something real into the served weights."""
    tmp = tmp_path_factory.mktemp("unpadded")
    torch.manual_seed(2)
    network = ConvNet(layout=(Conv(32, kernel_size=5, stride=2), Conv(48), Pool(), Conv(64, padding=0)), hidden=None)
    with torch.no_grad():
        for module in network.modules():
            if isinstance(module, nn.BatchNorm2d):
                assert module.running_mean is not None and module.running_var is not None
                module.running_mean.uniform_(-0.3, 0.3)
                module.running_var.uniform_(0.3, 2.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.1, 0.3)
    artifact = network_artifact(network, tmp / "unpadded.pt", "untrained")
    with gateway_process(tmp, {"DIGITS_ARTIFACT": str(artifact)}) as server:
        yield server


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
    check_the_arithmetic_of_a_channel(browser, card)
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


def test_inspect_an_unpadded_layer(browser: Chrome, unpadded_gateway: ServerProcess) -> None:
    """Stride 2, padding 2 and padding 0, and no hidden layer: the arithmetic and the outlines still hold."""
    card = served_card(unpadded_gateway)
    shapes = {layer.name: (layer.kernel_size, layer.stride, layer.padding, layer.output_shape) for layer in card.layers}
    assert shapes["conv1"] == (5, 2, 2, [32, 14, 14]) and shapes["conv3"] == (3, 1, 0, [64, 5, 5])
    assert [layer.name for layer in card.layers if layer.kind == "linear"] == ["fc1"]
    browser.set_window_size(1280, 1000)
    browser.get(f"{unpadded_gateway.url}/")
    wait_until(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#diagram svg a.stage-link"), "the diagram")
    draw(browser, browser.find_element(By.ID, "pad"), SEVEN, interaction.POINTER_MOUSE)
    check_prediction(browser, card)
    check_the_arithmetic_of_a_channel(browser, card)
    assert console_errors(browser) == []
    screenshot(browser, "index-channel-unpadded.png")


MODEL_PANEL = """const svg = document.querySelector('#reliability svg');
    const note = document.querySelector('#reliability p');
    return {bins: svg ? Number(svg.dataset.bins) : null, note: note ? note.textContent : '',
            perClass: document.querySelectorAll('#per-class tr').length,
            confusion: [...document.querySelectorAll('#confusion tr')].map(tr => tr.cells.length),
            errors: document.querySelectorAll('#confusion td.error').length}"""


def test_the_model_panel_shows_the_cards_reliability_diagram(browser: Chrome, gateway: ServerProcess) -> None:
    card = served_card(gateway)
    calibration = card.evaluation.calibration
    assert calibration is not None
    browser.set_window_size(1280, 1000)
    browser.get(f"{gateway.url}/")
    panel = wait_until(browser, lambda d: p if (p := d.execute_script(MODEL_PANEL))["bins"] else None, "the panel")
    browser.execute_script("document.getElementById('model-title').scrollIntoView()")
    screenshot(browser, "index-model.png")
    assert panel["bins"] == sum(1 for row in calibration.reliability if row.count)
    assert f"calibration error {calibration.ece * 100:.2f}%" in panel["note"]
    assert panel["perClass"] == 10 and panel["confusion"] == [11] * 11
    matrix = card.evaluation.confusion_matrix
    assert panel["errors"] == sum(1 for i, row in enumerate(matrix) for j, n in enumerate(row) if i != j and n > 0)
    assert console_errors(browser) == []


def test_the_model_panel_says_when_a_card_has_no_calibration(browser: Chrome, artifact: Path, tmp_path: Path) -> None:
    copy, _ = uncalibrated_artifact(artifact, tmp_path)
    with gateway_process(tmp_path, {"DIGITS_ARTIFACT": str(copy)}) as server:
        browser.get(f"{server.url}/")
        note = wait_until(browser, lambda d: d.execute_script(MODEL_PANEL)["note"] or None, "the panel's note")
    assert "no calibration" in note and browser.execute_script(MODEL_PANEL)["bins"] is None


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
    panel = browser.execute_script(MODEL_PANEL)
    assert panel["bins"] and panel["perClass"] == 10
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
        # A tap on a pixel of an open channel shows its arithmetic and where it looks.
        first = next(layer for layer in card.layers if layer.feature_map)
        open_from_the_form(browser, first, 1)
        canvas = browser.find_element(By.ID, "inspect-map")
        browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", canvas)
        _, height, width = first.output_shape
        row, col = 0, width - 1  # a corner, whose window hangs over the padding
        draw(browser, canvas, [((col + 0.5) / width, (row + 0.5) / height)], interaction.POINTER_TOUCH)
        tapped = inspected(browser, f"row {row}, column {col}")
        assert tapped["value"] == pytest.approx(tapped["served"], abs=1e-4)
        check_where_it_looks(browser, card, first, row, col)
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
    assert data["chart-stages"]["max"] > 0  # where the time goes: the stages stacked, read at the bottom
    assert len(browser.find_elements(By.CSS_SELECTOR, "#chart-stages path.series")) == 6
    assert browser.find_elements(By.CSS_SELECTOR, "#chart-latency path.series")
    assert browser.find_element(By.ID, "quota-charts").get_attribute("data-state") == "no-keys"
    assert "No API keys file is configured" in browser.find_element(By.ID, "quota-note").text
    assert console_errors(browser) == []
    screenshot(browser, "dashboard.png")


def send_digits(server: ServerProcess, key: str, digits: Iterable[np.ndarray], per_request: int = 50) -> None:
    """MNIST-style digits as a client would send them (gray values, preprocess auto), waiting out any 429."""
    images = [digit.tolist() for digit in digits]
    for start in range(0, len(images), per_request):
        body = {"instances": [{"pixels": pixels} for pixels in images[start : start + per_request]]}
        while (answer := httpx.post(f"{server.url}/v1/predict", json=body, headers={"Authorization": f"Bearer {key}"},
                                    timeout=30)).status_code == 429:  # fmt: skip
            time.sleep(float(answer.headers["Retry-After"]))
        assert answer.status_code == 200, answer.text


def drift_figures(driver: Chrome) -> list[dict[str, Any]]:
    figures: list[dict[str, Any]] = driver.execute_script(
        "return [...document.querySelectorAll('#drift-charts figure.chart')].map(f => ({id: f.id, ...f.dataset, "
        "series: f.querySelectorAll('path.series').length, thresholds: f.querySelectorAll('line.threshold').length, "
        "alert: f.querySelector('p.alert')?.textContent ?? null, text: f.textContent}))"
    )
    return figures


def drift_figure(prefix: str, **wanted: str) -> Callable[[Chrome], dict[str, Any] | None]:
    """A wait condition: the first drift figure whose id starts with ``prefix`` and whose data has ``wanted``."""

    def found(driver: Chrome) -> dict[str, Any] | None:
        figures = drift_figures(driver)
        return next((f for f in figures if f["id"].startswith(prefix) and wanted.items() <= f.items()), None)

    return found


def chart_max(driver: Chrome, chart_id: str) -> float:
    return float(driver.find_element(By.ID, chart_id).get_attribute("data-max") or 0)


def test_dashboard_charts_drift_and_quotas(browser: Chrome, data_dir: Path, tmp_path: Path) -> None:
    key, line = new_key("ci")
    viewer, viewer_line = new_key("ops")  # the page's own key: its polls are charged to no quota
    keys_file = tmp_path / "api-keys"
    keys_file.write_text(f"{line} rps=5\n{viewer_line}\n")
    env = {"DIGITS_API_KEYS_FILE": str(keys_file), "DIGITS_WORKERS": "2", "DIGITS_DRIFT_WINDOW_IMAGES": "200",
           "DIGITS_DRIFT_REFRESH_SECONDS": "0.2", "DIGITS_DASHBOARD_INTERVAL_SECONDS": "0.5"}  # fmt: skip
    # Drawn from the whole test set: its first 5,000 digits are the cleaner ones (NIST's training writers), the
    # baseline holds both kinds, and a 200-image window of the first 800 alone once scored over the alert line.
    test_digits = load_test_split(data_dir).images
    digits = test_digits[np.random.default_rng(27).choice(len(test_digits), size=800, replace=False)]
    with gateway_process(tmp_path, env, ready_timeout=120) as server:
        card = httpx.get(f"{server.url}/v1/models/digits", headers={"Authorization": f"Bearer {key}"}, timeout=10)
        version = card.json()["version"]
        answer = f"window.prompt = () => {viewer!r};"  # the dashboard asks for a key once
        script = browser.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": answer})
        try:
            browser.get(f"{server.url}/dashboard")
            note = lambda d: t if "PSI" in (t := d.find_element(By.ID, "drift-note").text) else None  # noqa: E731
            assert "sliding window of the last 200 images" in wait_until(browser, note, "the drift panel's note")
            waiting = wait_until(browser, lambda d: drift_figures(d) or None, "the drift panel of the served version")
            assert [(f["version"], f["state"]) for f in waiting] == [(version, "no-data")]
            assert "No data yet" in waiting[0]["text"]

            # Enough for both workers' windows to fill (a window of a few images scores high: no alert under 200).
            send_digits(server, key, digits)
            full = drift_figure("chart-drift", images="200")
            figure = wait_until(browser, full, "the drift scores of a full window of MNIST test digits")
            assert figure["series"] == 8 and figure["thresholds"] == 1  # every statistic, and the alert line
            assert figure["state"] == "ok" and figure["alerts"] == "" and figure["alert"] is None, figure
            assert float(figure["latest"]) < 0.25
            confidence = wait_until(browser, drift_figure("chart-confidence"), "the confidence drop")
            assert int(confidence["points"]) > 0 and "baseline mean" in confidence["text"]

            send_digits(server, key, [255 - digit for digit in digits])  # white paper, dark ink: photos' look
            figure = wait_until(browser, drift_figure("chart-drift", state="alert"), "the inversion's drift alert")
            assert "inverted" in figure["alerts"].split(",") and "inverted" in figure["alert"]
            screenshot(browser, "dashboard-drift.png")

            one = json.dumps({"instances": [{"pixels": EXAMPLE_PIXELS}], "preprocess": "none"}).encode()
            request = post_request("/v1/predict", one, {"Authorization": f"Bearer {key}"})
            statuses = asyncio.run(burst(int(server.url.rsplit(":", 1)[1]), [request] * 16))
            assert 429 in statuses and 200 in statuses
            wait_until(browser, lambda d: chart_max(d, "chart-quota-refusals") > 0 or None, "the burst's 429s")
            assert "ci: 5 requests/s" in browser.find_element(By.ID, "quota-note").text
            assert chart_max(browser, "chart-key-requests") > 0 and chart_max(browser, "chart-key-images") > 0
            assert browser.find_elements(By.CSS_SELECTOR, "#chart-key-requests line.threshold")  # the key's quota
            assert key not in browser.page_source and viewer not in browser.page_source
            assert [error for error in console_errors(browser) if "401 (Unauthorized)" not in error] == []
            screenshot(browser, "dashboard-quotas.png")
        finally:
            browser.execute_cdp_cmd("Page.removeScriptToEvaluateOnNewDocument", {"identifier": script["identifier"]})


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


def version_rows(driver: Chrome) -> dict[str, dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = driver.execute_script(
        "return Object.fromEntries([...document.querySelectorAll('#version-rows .version-row')].map(r => "
        "[r.dataset.version, {...r.dataset, heading: r.querySelector('h3').textContent, "
        "mix: [...r.querySelectorAll('.class-mix li')].map(li => Number(li.dataset.share)), "
        "confidence: [...r.querySelectorAll('.confidence li')].map(li => Number(li.dataset.share))}]))"
    )
    return rows


def rollout_note(status: str) -> Callable[[Chrome], str | None]:
    """A wait condition: the rollout line, once it says ``status``."""

    def found(driver: Chrome) -> str | None:
        note = driver.find_element(By.ID, "rollout-note")
        return note.text if note.get_attribute("data-status") == status else None

    return found


def test_dashboard_shows_each_versions_row_and_a_rollback(browser: Chrome, data_dir: Path, tmp_path: Path) -> None:
    repository = make_repository(tmp_path / "repository")
    keys, keys_file = make_keys(tmp_path / "keys")
    settings = {"DIGITS_DASHBOARD_INTERVAL_SECONDS": "0.5", "DIGITS_ROLLOUT_STEP_MIN_SECONDS": "3600"}
    digits = load_test_split(data_dir).images[:200]
    with repository_gateway(tmp_path, repository, keys_file, **settings) as server:
        policy = {"stable": STABLE, "candidate": OTHER, "weight": 0.5, "shadow": 1.0}
        answer = httpx.put(f"{server.url}/v1/traffic", json=policy, headers=bearer(keys.admin), timeout=120)
        assert answer.status_code == 200, answer.text
        answer_key = f"window.prompt = () => {keys.client!r};"  # a predict key: the page needs no admin
        script = browser.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": answer_key})
        try:
            browser.get(f"{server.url}/dashboard")
            console_errors(browser)  # drained: the previous test's page may have polled its stopped gateway
            send_digits(server, keys.client, digits, per_request=4)

            def both_served(driver: Chrome) -> dict[str, dict[str, Any]] | None:
                rows = version_rows(driver)
                served = {version: float(row["requests"]) for version, row in rows.items() if float(row["requests"])}
                everything = sum(served.values()) >= len(digits) / 4  # the workers' counts reach the page within 1 s
                return rows if set(served) == {STABLE, OTHER} and everything and "agreement" in rows[OTHER] else None

            rows = wait_until(browser, both_served, "a row with traffic for each version")
            assert (rows[STABLE]["role"], rows[OTHER]["role"]) == ("stable", "candidate")
            assert float(rows[STABLE]["share"]) == float(rows[OTHER]["share"]) == 0.5
            assert "50.0 % of traffic" in rows[STABLE]["heading"]
            assert "shadow 100 % of stable's" in rows[OTHER]["heading"]
            for row in (rows[STABLE], rows[OTHER]):
                assert len(row["mix"]) == 10 and sum(row["mix"]) == pytest.approx(1.0, abs=1e-6)
                assert sum(row["confidence"]) == pytest.approx(1.0, abs=1e-6)
            assert 0.9 < float(rows[OTHER]["agreement"]) <= 1.0  # two good networks agree on MNIST test digits
            assert chart_max(browser, "chart-version-rate") > 0
            shares_chart = browser.find_element(By.CSS_SELECTOR, "#chart-version-share svg").get_attribute("aria-label")
            assert f"latest: {STABLE} 50.0, {OTHER} 50.0" in (shares_chart or "")
            assert "No rollout yet" in browser.find_element(By.ID, "rollout-note").text
            screenshot(browser, "dashboard-versions.png")

            started = httpx.post(f"{server.url}/v1/rollout/start", json={"candidate": OTHER, "steps": ["25", "100"]},
                                 headers=bearer(keys.admin), timeout=120)  # fmt: skip
            assert started.status_code == 202, started.text
            running = wait_until(browser, rollout_note("running"), "the running rollout")
            assert f"Rollout of {OTHER} over {STABLE}: step 1 of 2 (25 %)" in running
            shares = lambda d: r if float((r := version_rows(d))[OTHER]["share"]) == 0.25 else None  # noqa: E731
            assert float(wait_until(browser, shares, "the step's shares")[STABLE]["share"]) == 0.75

            back = httpx.post(f"{server.url}/v1/rollout/rollback", headers=bearer(keys.admin), timeout=60)
            assert back.status_code == 200, back.text
            note = wait_until(browser, rollout_note("rolled_back"), "the rollback")
            assert f"Rollout of {OTHER} rolled back at step 1 of 2 (25 %): rolled back by an operator" in note
            assert f"{STABLE} is stable" in note
            assert float(version_rows(browser)[OTHER]["share"]) == 0.0
            assert keys.client not in browser.page_source and keys.admin not in browser.page_source
            assert [error for error in console_errors(browser) if "401 (Unauthorized)" not in error] == []
            screenshot(browser, "dashboard-rollback.png")
        finally:
            browser.execute_cdp_cmd("Page.removeScriptToEvaluateOnNewDocument", {"identifier": script["identifier"]})
