"""What ``digits rollout`` prints: a rollout's progress in one line, from GET /v1/rollout's report."""

from __future__ import annotations

from typing import Any

SHADOW = "shadow"
ENDED = {"promoted", "rolled_back", "aborted"}


def running(report: dict[str, Any]) -> dict[str, Any] | None:
    rollout: dict[str, Any] | None = report.get("rollout")
    return rollout if rollout is not None and rollout.get("status") == "running" else None


def progress_line(report: dict[str, Any]) -> str:
    """The running rollout's step, the shares, and each version's figures over the step so far; or, with none
    running, what is served and how the last rollout ended."""
    rollout = running(report)
    if rollout is None:
        return summary_line(report)
    steps, step = rollout["steps"], rollout["step"]
    candidate, previous = rollout["candidate"], rollout["previous"]
    window = report.get("window", {})
    parts = [
        f"{candidate} over {previous}: step {step + 1}/{len(steps)} ({_step_name(steps[step])})",
        f"shares {_shares(report['policy'])}",
        f"candidate {_figures(window.get(candidate, {}), shadow=steps[step] == SHADOW)}",
        f"stable {_figures(window.get(previous, {}), shadow=False)}",
    ]
    return " | ".join(parts)


def summary_line(report: dict[str, Any]) -> str:
    policy = report["policy"]
    line = f"stable {policy['stable']}, shares {_shares(policy)}"
    rollout = report.get("rollout")
    if rollout is not None and rollout["status"] in ENDED:
        line += f" | last rollout: {ended_line(rollout)}"
    return line


def ended_line(rollout: dict[str, Any]) -> str:
    status = str(rollout["status"]).replace("_", " ")
    return f"{rollout['candidate']} {status}: {rollout.get('reason') or 'no reason recorded'}"


def _step_name(step: str) -> str:
    return SHADOW if step == SHADOW else f"{step} %"


def _shares(policy: dict[str, Any]) -> str:
    stable, candidate = policy["stable"], policy.get("candidate")
    if candidate is None:
        return f"{stable} 100 %"
    weight = float(policy.get("weight") or 0.0)
    text = f"{stable} {_percent(1.0 - weight)}, {candidate} {_percent(weight)}"
    shadow = float(policy.get("shadow") or 0.0)
    return text + (f" (+{_percent(shadow)} shadowed to {candidate})" if shadow else "")


def _figures(figures: dict[str, Any], *, shadow: bool) -> str:
    text = (
        f"{figures.get('requests', 0)} req, p99 {_ms(figures.get('p99_seconds'))}, "
        f"errors {_percent(figures.get('error_rate'), 2)}, confidence {_number(figures.get('mean_confidence'))}"
    )
    if shadow:
        text += (
            f", shadowed {figures.get('shadow_compared', 0)}, agreement {_percent(figures.get('agreement'), 1)}, "
            f"shift {_number(figures.get('mean_shadow_shift'), signed=True)}"
        )
    return text


def _percent(share: float | None, digits: int = 0) -> str:
    return "-" if share is None else f"{share * 100:.{digits}f} %"


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.1f} ms"


def _number(value: float | None, *, signed: bool = False) -> str:
    return "-" if value is None else f"{value:+.3f}" if signed else f"{value:.3f}"
