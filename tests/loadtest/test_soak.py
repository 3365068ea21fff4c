"""``digits soak`` for a minute against a gateway of its own: mixed and bad requests at 70 % of the capacity."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from loadtest.samples import load_samples
from loadtest.soak import BAD_KINDS, SoakReport, SoakSample, soak_mix
from tests.servers import REPO


def test_the_mix_has_every_kind_of_request() -> None:
    kinds = [kind for kind, _ in soak_mix(load_samples())]
    assert {"json", "png", "features"} | BAD_KINDS == set(kinds)
    assert 0.15 < sum(kind in BAD_KINDS for kind in kinds) / len(kinds) < 0.25


def test_growth_is_read_after_the_warmup() -> None:
    report = SoakReport(rate=10, capacity=20, warmup_seconds=10)
    report.samples = [SoakSample(5, 100, 50), SoakSample(10, 200, 14), SoakSample(15, 210, 90), SoakSample(20, 202, 14)]
    growth = report.growth_after_warmup()
    assert growth["rss"] == 0.01 and growth["rss_max"] == 0.05 and growth["open_fds"] == 0.0


@pytest.mark.slow
def test_a_minute_of_soak(tmp_path: Path) -> None:
    out = tmp_path / "soak.json"
    command = [sys.executable, "-m", "digits_cli.main", "soak", "--seconds", "60", "--sample-seconds", "5",
               "--warmup", "20", "--out", str(out), "--log-dir", str(tmp_path)]  # fmt: skip
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=240, check=False)
    print(result.stdout)
    report = json.loads(out.read_text())
    totals, growth = report["totals"], report["growth_after_warmup"]
    assert report["rate"] == report["capacity"] * 0.7
    assert totals["sent"] >= 0.9 * report["rate"] * 60
    assert totals["server_errors"] == 0 and totals["timeouts"] == 0 and totals["failures"] == 0
    # 70 % of a capacity measured a minute earlier on a 2-core machine shared with other jobs can be 100 % for
    # a moment; admission then refuses a few requests with 503 and Retry-After, as it must. A minute at most
    # 1 % of those; the closing note of the 10-minute run gives the actual figures.
    assert totals["refused_busy"] <= 0.01 * totals["sent"]
    assert totals["unexpected"] == 0  # good requests 200, bad ones 4xx
    assert growth["rss"] <= 0.05 and growth["open_fds"] <= 0.05
    assert result.returncode == (1 if totals["refused_busy"] else 0)  # the command itself counts every 5xx
