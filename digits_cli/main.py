"""The ``digits`` command: train, evaluate, serve and the tools around them.

``digits serve`` imports the served package only: the gateway image installs neither the load-test tools
nor TorchServe, and ships without the ``loadtest`` package, whose commands are then not offered.
``digits benchmark`` runs the top-level ``bench`` package of a source checkout, which no wheel ships.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import TypeAlias

from model.settings import DEFAULT_ARTIFACT, DEFAULT_REPOSITORY, DataSettings
from ops.monitoring.command import add_command as _add_monitor
from ops.rollout.command import add_command as _add_rollout
from ops.torchserve.commands import add_export_mar as _add_export_mar
from ops.torchserve.commands import add_torchserve as _add_torchserve

Subcommands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
CHECKOUT = Path(__file__).resolve().parent.parent
BENCHMARK_ELSEWHERE = (
    "digits benchmark: the benchmark runs from a source checkout, not an installed package: "
    "git clone <the digits repository>; cd digits; make peers-venv; .venv/bin/digits benchmark"
)


def _train(args: argparse.Namespace) -> int:
    if args.version is None:
        return _train_to(args, args.out)
    if args.out is not None:
        raise SystemExit("digits train: --version writes into --repository; leave out --out")
    from model.repository import ModelRepository

    repository = ModelRepository(args.repository)
    try:
        with repository.new_version(args.version) as out:
            _train_to(args, out)
    except (ValueError, FileExistsError) as exc:
        raise SystemExit(f"digits train: {exc}") from None
    print(f"version {args.version} is in {repository.root}")
    return 0


def _train_to(args: argparse.Namespace, out: Path | None) -> int:
    from model.mnist import load_mnist
    from model.payload_records import with_extra_digits
    from model.train import VALIDATION_SAMPLES, TrainConfig, train
    from ops.baseline import record_baseline

    settings = DataSettings()
    data = load_mnist(args.data_dir or settings.data_dir, mirrors=settings.mnist_mirrors)
    if args.extra_data:
        before = len(data.train.labels)
        data = with_extra_digits(data, args.extra_data, VALIDATION_SAMPLES)
        print(f"training on {len(data.train.labels) - before} labelled digits of the payload logs besides MNIST")
    chosen = {"epochs": args.epochs, "seed": args.seed, "batch_size": args.batch_size, "version": args.version}
    config = TrainConfig(
        out=out or DEFAULT_ARTIFACT,
        device=args.device,
        train_limit=args.limit,
        **{name: value for name, value in chosen.items() if value is not None},
    )
    card = train(data, config)
    card = record_baseline(config.out, data)
    print(
        f"wrote {config.out} and its card (version {card.version}): test accuracy {card.evaluation.accuracy:.2%}, "
        f"{card.parameter_count} parameters, {card.training.wall_time_seconds:.0f} s on {card.training.device}"
    )
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    import torch

    from model.card import load_card
    from model.evaluate import evaluate, format_report
    from model.mnist import load_test_split

    card = load_card(args.artifact)
    module = torch.jit.load(str(args.artifact), map_location="cpu").eval()
    split = load_test_split(args.data_dir or DataSettings().data_dir)
    evaluation = evaluate(module, split, card.input)
    print(f"{card.name} {card.version} ({args.artifact})")
    print(format_report(evaluation))
    if evaluation.accuracy != card.evaluation.accuracy:
        print(f"note: the card records {card.evaluation.accuracy:.2%}")
    return 0


def _probes(args: argparse.Namespace) -> int:
    import torch

    from model.card import save_card
    from model.evaluate import predict_logits
    from model.mnist import load_test_split
    from model.probes import choose_probes
    from model.refusal import VersionRefused
    from model.repository import ModelRepository

    repository = ModelRepository.of_artifact(args.artifact)
    try:
        found = repository.verify(repository.latest())
    except VersionRefused as exc:
        raise SystemExit(f"digits probes: {exc}") from None
    module = torch.jit.load(str(found.artifact), map_location="cpu").eval()
    split = load_test_split(args.data_dir or DataSettings().data_dir)
    predicted = predict_logits(module, split.images, found.card.input).argmax(dim=1).numpy()
    card = found.card.model_copy(update={"probes": choose_probes(split, predicted)})
    path = save_card(card, found.artifact)
    print(f"{path}: probes {', '.join(f'{p.label} (test digit {p.index})' for p in card.probes)}")
    return 0


def _serve(args: argparse.Namespace) -> int:
    from service.core.settings import ModelSettings, ServerSettings, Settings
    from service.server import run_gateway

    server = {"host": args.host, "port": args.port, "workers": args.workers}
    settings = Settings(
        server=ServerSettings(**{k: v for k, v in server.items() if v is not None}),
        model=ModelSettings(**({} if args.backend is None else {"backend": args.backend})),
    )
    if args.backend == "torchserve":  # a local TorchServe first, then the gateway in front of it
        from ops.torchserve.commands import serve_with_torchserve
        from service.uvicorn_internals import require_tested_uvicorn

        require_tested_uvicorn()  # as run_gateway does, before TorchServe starts rather than after
        return serve_with_torchserve(settings, run_gateway)
    run_gateway(settings)
    return 0


def _api_key(args: argparse.Namespace) -> int:
    from service.core.api_keys import new_key

    key, line = new_key(args.name, args.role)
    print(f"key (give it to the client; it is not stored anywhere): {key}")
    print(f"line for DIGITS_API_KEYS_FILE: {line}")
    return 0


def _add_api_key(sub: Subcommands) -> None:
    parser = sub.add_parser("api-key", help="make a new API key and print it with its line for DIGITS_API_KEYS_FILE")
    parser.add_argument("--name", default="", help="who the key is for (logged; the key never is)")
    parser.add_argument(
        "--role", choices=["predict", "admin"], default="predict", help="admin: may also manage models and rollouts"
    )
    parser.set_defaults(handler=_api_key)


def _add_train(sub: Subcommands) -> None:
    parser = sub.add_parser("train", help="train the ConvNet on MNIST and export TorchScript + model card")
    parser.add_argument("--data-dir", type=Path, help="MNIST directory (default: $DIGITS_DATA_DIR)")
    parser.add_argument("--out", type=Path, help=f"TorchScript file to write (default: {DEFAULT_ARTIFACT})")
    parser.add_argument(
        "--version",
        help="write a new version (MAJOR.MINOR.PATCH, named in its card) into the model repository --repository",
    )
    parser.add_argument(
        "--repository", type=Path, default=DEFAULT_REPOSITORY, help="model repository --version writes into"
    )
    parser.add_argument("--epochs", type=int, help="default: the recipe's (model/train.py TrainConfig)")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--limit", type=int, help="train on the first N digits only (smoke runs)")
    parser.add_argument(
        "--extra-data",
        type=Path,
        nargs="+",
        default=[],
        help="payload log files (JSON lines): their records with a label are trained on too",
    )
    parser.set_defaults(handler=_train)


def _baseline(args: argparse.Namespace) -> int:
    from model.mnist import load_mnist
    from ops.baseline import record_baseline

    settings = DataSettings()
    data = load_mnist(args.data_dir or settings.data_dir, download=False)
    card = record_baseline(args.artifact, data)
    assert card.baseline is not None
    print(f"recorded the drift baseline of {args.artifact} in its card: {card.baseline.description}")
    return 0


def _add_baseline(sub: Subcommands) -> None:
    parser = sub.add_parser("baseline", help="record an artifact's drift baseline in its card, without retraining")
    parser.add_argument("artifact", type=Path, nargs="?", default=DEFAULT_ARTIFACT)
    parser.add_argument("--data-dir", type=Path, help="MNIST directory (default: $DIGITS_DATA_DIR)")
    parser.set_defaults(handler=_baseline)


def _add_evaluate(sub: Subcommands) -> None:
    parser = sub.add_parser("evaluate", help="accuracy of an artifact on the MNIST test set, per class")
    parser.add_argument("artifact", type=Path, nargs="?", default=DEFAULT_ARTIFACT)
    parser.add_argument("--data-dir", type=Path, help="MNIST directory (default: $DIGITS_DATA_DIR)")
    parser.set_defaults(handler=_evaluate)


def _add_probes(sub: Subcommands) -> None:
    parser = sub.add_parser(
        "probes",
        help="record an artifact's probe set in its card: per class, the first MNIST test digit it labels right "
        "(training records it; this fills it in for a card from before), the artifact untouched",
    )
    parser.add_argument("artifact", type=Path, nargs="?", default=DEFAULT_ARTIFACT)
    parser.add_argument("--data-dir", type=Path, help="MNIST directory (default: $DIGITS_DATA_DIR)")
    parser.set_defaults(handler=_probes)


def _add_serve(sub: Subcommands) -> None:
    parser = sub.add_parser("serve", help="run the gateway (settings from DIGITS_* environment variables)")
    parser.add_argument("--host", help="bind address (default: $DIGITS_HOST or 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default: $DIGITS_PORT or 8000)")
    parser.add_argument("--workers", type=int, help="gateway processes (default: $DIGITS_WORKERS or 1)")
    parser.add_argument(
        "--backend",
        choices=["embedded", "torchserve"],
        help="where the model runs; torchserve also starts a local TorchServe first "
        "(DIGITS_BACKEND=torchserve alone connects to the one at DIGITS_TORCHSERVE_URL)",
    )
    parser.set_defaults(handler=_serve)


def _add_load_tools(sub: Subcommands) -> None:
    try:
        from loadtest.cli import add_loadtest, add_soak
    except ImportError:  # not installed here (the gateway image)
        return
    add_loadtest(sub)
    add_soak(sub)


def _bench_cli() -> ModuleType | None:
    """``bench.cli`` of the checkout this command runs from, or ``None`` where there is none (a wheel ships no
    ``bench``). An editable install maps only the packages a wheel ships, so the checkout joins the path here."""
    if (CHECKOUT / "bench" / "__init__.py").is_file() and str(CHECKOUT) not in sys.path:
        sys.path.append(str(CHECKOUT))
    try:
        return importlib.import_module("bench.cli")
    except ModuleNotFoundError as exc:
        if exc.name not in ("bench", "bench.cli"):
            raise
        return None


def _benchmark_elsewhere(args: argparse.Namespace) -> int:
    print(BENCHMARK_ELSEWHERE, file=sys.stderr)
    return 2


def _add_benchmark(sub: Subcommands) -> None:
    cli = _bench_cli()
    if cli is not None:
        cli.add_benchmark(sub)
        return
    # Any options, --help too, get the same answer: no option prefix here, so argparse takes them all as words.
    parser = sub.add_parser(
        "benchmark",
        help="the side-by-side benchmark: runs from a source checkout only",
        prefix_chars="+",
        add_help=False,
    )
    parser.add_argument("options", nargs="*")
    parser.set_defaults(handler=_benchmark_elsewhere)


COMMANDS: list[Callable[[Subcommands], None]] = [
    _add_train,
    _add_baseline,
    _add_evaluate,
    _add_probes,
    _add_serve,
    _add_api_key,
    _add_monitor,
    _add_rollout,
    _add_load_tools,
    _add_benchmark,
    _add_export_mar,
    _add_torchserve,
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="digits", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for add in COMMANDS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())
