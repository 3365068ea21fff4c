from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from model.card import InputSpec, load_card
from model.mnist import load_test_split
from service.core.decoding import decode_image
from service.core.errors import ApiError, ErrorCode
from service.core.preprocessing import (
    FIELD,
    MIN_CONTRAST,
    StageRecorder,
    check_pixels,
    pixel_rows,
    to_mnist_field,
)
from tests.uploads import realistic_upload

MAX_ACCURACY_DROP = 0.001  # 0.1 percentage point: 10 of the 10,000 MNIST test digits


def accuracy(module: torch.jit.ScriptModule, fields: list[np.ndarray], labels: np.ndarray, spec: InputSpec) -> float:
    batch = torch.from_numpy(spec.normalize(np.stack(fields))[:, None])
    with torch.no_grad():
        predicted = module(batch).argmax(1).numpy()
    return float((predicted == labels).mean())


@pytest.mark.slow
def test_realistic_uploads_stay_close_to_clean_accuracy(artifact: Path, data_dir: Path) -> None:
    card = load_card(artifact)
    norm = card.input
    module = torch.jit.load(str(artifact)).eval()
    split = load_test_split(data_dir)
    rng = np.random.default_rng(0)
    images, labels = split.images, split.labels

    clean = accuracy(module, [to_mnist_field(d, "none", 0) for d in images], labels, norm)
    uploads = [realistic_upload(d, rng) for d in images]
    fields = [to_mnist_field(decode_image(u, max_pixels=10**8, index=0), "auto", 0) for u in uploads]
    realistic = accuracy(module, fields, labels, norm)
    print(f"\naccuracy on {len(labels)} MNIST test digits: clean {clean:.2%}, as realistic uploads {realistic:.2%}")
    assert realistic >= clean - MAX_ACCURACY_DROP


def test_8_bit_and_float_gray_give_the_same_field_and_stages(data_dir: Path) -> None:
    """Decoded images (uint8) take a lookup path, gray values (float32) the direct one: both must agree exactly."""
    rng = np.random.default_rng(3)
    for digit in load_test_split(data_dir).images[:100]:
        upload = decode_image(realistic_upload(digit, rng), max_pixels=10**8, index=0)  # dark on light paper
        for gray in (upload, digit, np.pad(digit, ((3, 0), (0, 0)))):  # odd and even border lengths
            by_level, by_value = StageRecorder(), StageRecorder()
            field = to_mnist_field(gray, "auto", 0, by_level)
            np.testing.assert_array_equal(field, to_mnist_field(gray.astype(np.float32), "auto", 0, by_value))
            assert [name for name, _ in by_level.images] == [name for name, _ in by_value.images]
            for (_, a), (_, b) in zip(by_level.images, by_value.images, strict=True):
                assert a.dtype == b.dtype == np.float32
                np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_contrast_just_below_the_minimum_is_blank(dtype: type) -> None:
    page: np.ndarray = np.full((40, 40), 200, dtype)
    page[10:30, 18:22] = 200 - MIN_CONTRAST + 1
    with pytest.raises(ApiError) as excinfo:
        to_mnist_field(page, "auto", 0)
    assert excinfo.value.code == ErrorCode.image_empty
    page[10:30, 18:22] = 200 - MIN_CONTRAST
    assert to_mnist_field(page, "auto", 0).max() > 200


def test_polarity_and_centring() -> None:
    page = np.full((300, 200), 240, np.uint8)
    page[40:140, 20:50] = 10  # a dark bar, far off-centre
    field = to_mnist_field(page, "auto", 0)
    assert field.shape == (FIELD, FIELD)
    assert field[0, 0] == 0 and field.max() > 200  # ink bright on black
    ys, xs = np.nonzero(field > 50)
    assert max(ys.max() - ys.min(), xs.max() - xs.min()) + 1 <= 21  # longer side scaled to 20 px
    weights = field / field.sum()
    cy = (weights.sum(1) * np.arange(FIELD)).sum()
    cx = (weights.sum(0) * np.arange(FIELD)).sum()
    assert abs(cy - 13.5) <= 1 and abs(cx - 13.5) <= 1


def test_recorded_stages_lead_to_the_same_field() -> None:
    page = np.full((300, 200), 240, np.float32)
    page[40:140, 20:50] = 10
    stages = StageRecorder()
    field = to_mnist_field(page, "auto", 0, stages)
    np.testing.assert_array_equal(field, to_mnist_field(page, "auto", 0))
    names = [name for name, _ in stages.images]
    assert names == ["grayscale", "polarity", "cropped", "scaled", "centred"]
    images = dict(stages.images)
    assert images["grayscale"].shape == images["polarity"].shape == (300, 200)
    assert images["polarity"][0, 0] == 15 and images["cropped"].shape == (100, 30)  # paper dark, still there
    assert images["scaled"].shape == (20, 6)
    assert images["centred"] is field


def test_bright_ink_on_dark_is_not_inverted() -> None:
    digit = np.zeros((28, 28), np.uint8)
    digit[4:24, 12:16] = 255
    assert to_mnist_field(digit, "auto", 0).max() > 200


def test_blank_image_is_refused() -> None:
    with pytest.raises(ApiError) as excinfo:
        to_mnist_field(np.full((50, 50), 128, np.uint8), "auto", 3)
    assert excinfo.value.code == ErrorCode.image_empty and excinfo.value.index == 3


def test_none_requires_28x28() -> None:
    with pytest.raises(ApiError) as excinfo:
        to_mnist_field(np.zeros((32, 32), np.uint8), "none", 0)
    assert excinfo.value.code == ErrorCode.wrong_image_size


@pytest.mark.parametrize(
    "values",
    [
        np.zeros((28,)),
        np.zeros((2, 28, 28)),
        np.array([[np.nan]]),
        np.array([[np.inf]]),
        np.array([[256.0]]),
        np.array([[-1.0]]),
    ],
)
def test_bad_pixels(values: np.ndarray) -> None:
    with pytest.raises(ApiError) as excinfo:
        check_pixels(values, 0)
    assert excinfo.value.code == ErrorCode.invalid_pixels


GRAY_ROWS = [
    [[0, 255], [17, 4]],  # whole numbers 0-255: the bytes() path
    [[1, True], [0, False]],  # booleans among numbers count as 1 and 0, as numpy reads them
    [[0, 1.5], [2, 3]],  # a fraction anywhere: numpy's path
    [[0.0, 255.0]],
]


@pytest.mark.parametrize("rows", GRAY_ROWS)
def test_pixel_rows_read_gray_values_as_numpy_does(rows: list[list[float]]) -> None:
    values = pixel_rows(rows)
    assert values.dtype == np.float32 and values.flags.writeable
    np.testing.assert_array_equal(values, np.array(rows, dtype=np.float32))


@pytest.mark.parametrize(
    ("rows", "problem"),
    [
        ([[True, False]], "rows of numbers"),  # booleans only: not gray values
        ([[0, 1], [2]], "equal length"),
        ([[0, 1], 5], "equal length"),
        ([[0, 1], "ab"], "equal length"),
        ([["a", "b"]], "rows of numbers"),
        ([[0, None]], "rows of numbers"),
        ([[256, 0]], "0-255"),
        ([[0, -1]], "0-255"),
        ([[2**70, 0]], "rows of numbers"),
        ([[]], "empty"),
        ([0, 1], "2-D"),
        ([[[0]]], "2-D"),
    ],
)
def test_pixel_rows_say_what_is_wrong(rows: object, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        pixel_rows(rows)
