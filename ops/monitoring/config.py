"""The deploy Prometheus configuration, re-aimed at addresses on this machine.

``deploy/prometheus/prometheus.yml`` finds its targets through Docker's DNS. Here every scrape job gets
a static list of addresses instead; rules, intervals, paths and everything else stay as they are, so a
local Prometheus records the same series as the one in the docker-compose stack.
"""

from __future__ import annotations

import copy
import glob
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_PROMETHEUS_CONFIG = REPO_ROOT / "deploy" / "prometheus" / "prometheus.yml"

SERVICE_DISCOVERY_SUFFIX = "_sd_configs"


class PrometheusConfigError(ValueError):
    pass


def load_config(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise PrometheusConfigError(f"no Prometheus configuration at {path}: pass --config with its path")
    config = yaml.safe_load(path.read_text())
    if not isinstance(config, dict) or not config.get("scrape_configs"):
        raise PrometheusConfigError(f"{path} has no scrape_configs: is it a Prometheus configuration file?")
    return config


def job_names(config: Mapping[str, Any]) -> list[str]:
    return [str(job["job_name"]) for job in config.get("scrape_configs") or []]


def with_targets(
    config: Mapping[str, Any], targets: Mapping[str, Sequence[str]], scrape_interval: str | None = None
) -> dict[str, Any]:
    """A copy of ``config`` in which job ``name`` scrapes exactly ``targets[name]`` (``host:port`` each).

    Every job needs an entry (an empty list leaves the job without targets). ``scrape_interval``, when
    given, replaces the global scrape and evaluation intervals (and caps the scrape timeout), for a
    quick look or a test; nothing else changes.
    """
    names = job_names(config)
    unknown = sorted(set(targets) - set(names))
    missing = [name for name in names if name not in targets]
    if unknown:
        raise PrometheusConfigError(f"the configuration has no scrape job {unknown}; its jobs are {names}")
    if missing:
        raise PrometheusConfigError(f"no local address for the scrape job(s) {missing}")
    result = copy.deepcopy(dict(config))
    for job in result["scrape_configs"]:
        for key in [key for key in job if key.endswith(SERVICE_DISCOVERY_SUFFIX) or key == "static_configs"]:
            del job[key]
        job["static_configs"] = [{"targets": list(targets[job["job_name"]])}]
    if scrape_interval is not None:
        global_section = result.setdefault("global", {})
        global_section.update(
            scrape_interval=scrape_interval, evaluation_interval=scrape_interval, scrape_timeout=scrape_interval
        )
    return result


def write_config(config: Mapping[str, Any], source: Path, destination_dir: Path) -> Path:
    """Writes ``config`` to ``destination_dir/<source name>`` beside copies of the rule files it names.

    Rule file patterns are relative to the configuration file, so the copies keep their relative paths
    and the rewritten file lists them exactly as the original does.
    """
    for pattern in config.get("rule_files") or []:
        if Path(pattern).is_absolute():
            continue
        for match in glob.glob(str(source.parent / pattern)):
            relative = Path(match).relative_to(source.parent)
            (destination_dir / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(match, destination_dir / relative)
    destination = destination_dir / source.name
    destination.write_text(yaml.safe_dump(dict(config), sort_keys=False))
    return destination
