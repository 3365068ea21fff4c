"""Write ``loadtest/samples/``: a few dozen MNIST test digits as scans, and their labels.

    python -m loadtest.make_samples --data-dir $DIGITS_DATA_DIR [--artifact model/artifacts/digits.pt]

Digits are taken in test-split order, the same number per class. With an artifact, a digit
is kept only if that model, through the gateway's own pipeline, labels
both its PNG (``preprocess=auto``) and its pixels (``preprocess=none``) correctly and
confidently: a load test failure then means the service broke, not that MNIST has a hard
digit. The output is deterministic; the files are committed, the data set never is.
"""

from __future__ import annotations

import argparse
import io
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from loadtest.samples import MANIFEST_NAME, SAMPLES_DIR, Manifest, Sample, SampleEntry
from model.mnist import Split, load_test_split
from model.settings import DEFAULT_ARTIFACT, DataSettings

# Side lengths of the scans, cycled through: from MNIST's own 28 px to a phone-crop size.
SIZES = (28, 36, 48, 64, 80, 96, 120, 144, 160, 200)
MIN_CONFIDENCE = 0.9

Check = Callable[[Sample], bool]


def render_scan(digit: np.ndarray, size: int) -> bytes:
    """An MNIST digit (ink bright on black, 28x28) as dark ink on white paper, ``size`` px square."""
    image = Image.fromarray(255 - digit.astype(np.uint8), mode="L")
    if size != digit.shape[0]:
        image = image.resize((size, size), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


class ModelCheck:
    """Whether an artifact labels a sample right through the gateway's pipeline."""

    def __init__(self, artifact: Path) -> None:
        import torch

        from model.card import load_card
        from service.core.pipeline import Pipeline
        from service.core.types import Limits

        self._pipeline = Pipeline(load_card(artifact), Limits(max_images=2, max_pixels=1_000_000))
        self._module = torch.jit.load(str(artifact), map_location="cpu").eval()

    def __call__(self, sample: Sample) -> bool:
        import torch

        scan = self._pipeline.prepare([sample.png], "auto")
        pixels = self._pipeline.prepare([np.asarray(sample.pixels, dtype=np.float32)], "none")
        with torch.inference_mode():
            probabilities = torch.softmax(self._module(torch.from_numpy(np.concatenate([scan, pixels]))), dim=1).numpy()
        return bool(
            (probabilities.argmax(axis=1) == sample.label).all() and probabilities.max(axis=1).min() >= MIN_CONFIDENCE
        )


def select_samples(split: Split, per_class: int, check: Check | None = None) -> list[tuple[SampleEntry, bytes]]:
    """``per_class`` digits of each class, in test-split order, that pass ``check``."""
    chosen: list[tuple[SampleEntry, bytes]] = []
    counts = [0] * 10
    for index in range(len(split.labels)):
        label = int(split.labels[index])
        if counts[label] >= per_class:
            continue
        size = SIZES[len(chosen) % len(SIZES)]
        name = f"mnist-test-{index:05d}-{size}px.png"
        png = render_scan(split.images[index], size)
        if check is not None and not check(Sample(name, label, png)):
            continue
        chosen.append((SampleEntry(file=name, label=label, mnist_index=index, width=size, height=size), png))
        counts[label] += 1
        if min(counts) >= per_class:
            break
    if min(counts) < per_class:
        raise ValueError(f"found only {counts} usable digits per class; lower --per-class or check the artifact")
    return chosen


def write_samples(chosen: list[tuple[SampleEntry, bytes]], out_dir: Path, source: str) -> Manifest:
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.glob("mnist-test-*.png"):
        stale.unlink()
    for entry, png in chosen:
        (out_dir / entry.file).write_bytes(png)
    manifest = Manifest(
        source=source,
        description="MNIST test digits as dark ink on white paper at varied sizes; label is the MNIST test label",
        samples=[entry for entry, _ in chosen],
    )
    (out_dir / MANIFEST_NAME).write_text(manifest.model_dump_json(indent=1) + "\n")
    return manifest


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.make_samples", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, help="MNIST directory (default: $DIGITS_DATA_DIR)")
    parser.add_argument("--artifact", type=Path, default=DEFAULT_ARTIFACT, help="model that must label every sample")
    parser.add_argument("--no-check", action="store_true", help="keep digits without asking a model")
    parser.add_argument("--per-class", type=int, default=4)
    parser.add_argument("--out", type=Path, default=SAMPLES_DIR)
    args = parser.parse_args(argv)
    split = load_test_split(args.data_dir or DataSettings().data_dir)
    check = None if args.no_check else ModelCheck(args.artifact)
    chosen = select_samples(split, args.per_class, check)
    manifest = write_samples(chosen, args.out, source="MNIST test split (t10k-images-idx3-ubyte)")
    print(f"wrote {len(manifest.samples)} samples and {MANIFEST_NAME} to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
