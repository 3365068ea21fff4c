"""The training job behind ``digits train``: seeded, augmented, exported as TorchScript + card."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from model.card import InputSpec, ModelCard, Training, file_sha256, save_card
from model.device import resolve_device
from model.evaluate import evaluate, normalize
from model.layers import describe_layers
from model.mnist import Mnist
from model.network import ConvNet, parameter_count

MODEL_NAME = "digits-convnet"
MODEL_VERSION = "1.0.0"


@dataclass(frozen=True)
class TrainConfig:
    out: Path
    epochs: int = 12
    seed: int = 0
    device: str = "auto"
    batch_size: int = 128
    max_lr: float = 4e-3
    weight_decay: float = 1e-2
    label_smoothing: float = 0.05
    train_limit: int | None = None  # use only the first N training digits (smoke runs)
    progress: bool = True


@dataclass(frozen=True)
class EpochStats:
    epoch: int
    loss: float
    train_accuracy: float
    test_accuracy: float
    seconds: float


def random_affine(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Small handwriting-like distortions: rotation, scale, shear and shift (images in [0, 1])."""
    n = images.shape[0]

    def uniform(low: float, high: float) -> torch.Tensor:
        return torch.empty(n).uniform_(low, high, generator=generator)

    angle = uniform(-12, 12) * math.pi / 180
    scale = uniform(0.9, 1.1)
    shear = uniform(-0.2, 0.2)
    shift_x, shift_y = uniform(-0.12, 0.12), uniform(-0.12, 0.12)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack(
        [
            torch.stack([cos, -sin + shear * cos, shift_x], dim=1),
            torch.stack([sin, cos + shear * sin, shift_y], dim=1),
        ],
        dim=1,
    ).to(images.device)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def train(data: Mnist, config: TrainConfig) -> ModelCard:
    """Train, export the TorchScript artifact to ``config.out`` and write its card beside it."""
    started = time.perf_counter()
    device = resolve_device(config.device)
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)

    train_images = data.train.images[: config.train_limit]
    train_labels = torch.from_numpy(data.train.labels[: config.train_limit])
    pixels = torch.from_numpy(train_images.copy()).to(torch.float32).unsqueeze(1)
    # The card's rounded values from the first step on: the model trains on exactly what it is served.
    spec = InputSpec(mean=round(float(data.train.images.mean() / 255.0), 6),
                     std=round(float(data.train.images.std() / 255.0), 6))  # fmt: skip

    model = ConvNet().to(device, memory_format=torch.channels_last)  # type: ignore[call-overload]
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.max_lr, weight_decay=config.weight_decay)
    steps_per_epoch = math.ceil(len(train_labels) / config.batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=config.max_lr, epochs=config.epochs, steps_per_epoch=steps_per_epoch
    )
    history: list[EpochStats] = []
    for epoch in range(1, config.epochs + 1):
        epoch_start = time.perf_counter()
        model.train()
        order = torch.randperm(len(train_labels), generator=generator)
        total_loss, correct = 0.0, 0
        batches = tqdm(
            range(steps_per_epoch), desc=f"epoch {epoch}/{config.epochs}", disable=not config.progress, leave=False
        )
        for step in batches:
            index = order[step * config.batch_size : (step + 1) * config.batch_size]
            x = spec.normalize(random_affine(pixels[index], generator))
            x = x.to(device, memory_format=torch.channels_last)
            y = train_labels[index].to(device)
            logits = model(x)
            loss = F.cross_entropy(logits, y, label_smoothing=config.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            total_loss += loss.item() * len(index)
            correct += int((logits.argmax(dim=1) == y).sum())
            batches.set_postfix(loss=f"{loss.item():.4f}")
        model.eval()
        with torch.no_grad():
            test_x = normalize(data.test.images, spec)
            test_pred = torch.cat([model(chunk.to(device)).argmax(1).cpu() for chunk in test_x.split(1000)])
        stats = EpochStats(
            epoch=epoch,
            loss=total_loss / len(train_labels),
            train_accuracy=correct / len(train_labels),
            test_accuracy=float((test_pred.numpy() == data.test.labels).mean()),
            seconds=time.perf_counter() - epoch_start,
        )
        history.append(stats)
        if config.progress:
            tqdm.write(
                f"epoch {epoch:>2}/{config.epochs}  loss {stats.loss:.4f}  train acc {stats.train_accuracy:.2%}  "
                f"test acc {stats.test_accuracy:.2%}  ({stats.seconds:.0f} s)"
            )
    wall_time = time.perf_counter() - started
    return export(model, data, config, spec=spec, device=device, wall_time=wall_time, history=history)


def export(
    model: ConvNet,
    data: Mnist,
    config: TrainConfig,
    *,
    spec: InputSpec,
    device: torch.device,
    wall_time: float,
    history: list[EpochStats],
) -> ModelCard:
    model = model.cpu().to(memory_format=torch.contiguous_format).eval()  # type: ignore[call-overload]
    scripted = torch.jit.freeze(torch.jit.script(model), preserved_attrs=["forward_features"])
    config.out.parent.mkdir(parents=True, exist_ok=True)
    scripted.save(str(config.out))
    reloaded = torch.jit.load(str(config.out), map_location="cpu")
    card = ModelCard(
        name=MODEL_NAME,
        version=MODEL_VERSION,
        artifact=config.out.name,
        sha256=file_sha256(config.out),
        parameter_count=parameter_count(model),
        input=spec,
        layers=describe_layers(model),
        training=Training(
            seed=config.seed,
            epochs=config.epochs,
            batch_size=config.batch_size,
            wall_time_seconds=round(wall_time, 1),
            device=str(device),
            torch_version=torch.__version__,
            optimizer=f"AdamW(weight_decay={config.weight_decay}), label smoothing {config.label_smoothing}",
            schedule=f"OneCycleLR(max_lr={config.max_lr})",
            data_sha256=dict(sorted(data.sha256.items())),
            epoch_losses=[round(h.loss, 6) for h in history],
            epoch_test_accuracy=[round(h.test_accuracy, 6) for h in history],
        ),
        evaluation=evaluate(reloaded, data.test, spec),
    )
    save_card(card, config.out)
    return card
