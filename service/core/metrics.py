"""Prometheus metrics of the gateway (units: seconds). Names are a contract with the dashboards."""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.openmetrics import exposition as openmetrics

from service.core.tally import Tallies

# Set (by ``digits serve`` with several workers) before the worker processes start: prometheus-client then
# keeps every value in files there, and any worker can report the sum over all of them.
MULTIPROCESS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"

# The *_created series double the output and no dashboard reads them.
disable_created_metrics()

# Fine enough to read a p99 of a few milliseconds, wide enough to see a stall.
LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0015,
    0.002,
    0.003,
    0.004,
    0.005,
    0.0065,
    0.008,
    0.01,
    0.0125,
    0.015,
    0.02,
    0.025,
    0.03,
    0.04,
    0.05,
    0.075,
    0.1,
    0.125,
    0.15,
    0.2,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
# The stages of a request: finer at the bottom, where decoding, batch assembly and encoding take tens of
# microseconds.
STAGE_BUCKETS = (0.00005, 0.0001, 0.00025, *LATENCY_BUCKETS)
BATCH_BUCKETS = (1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 96, 128, 256)
CONFIDENCE_BUCKETS = (0.5, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999, 1.0)


def multiprocess_mode() -> bool:
    return bool(os.environ.get(MULTIPROCESS_DIR_VARIABLE))


class Metrics:
    """All collectors, on a registry of their own so that several apps can live in one process.

    ``exported`` is what ``/metrics`` and the dashboard read: that registry, or with several
    worker processes, a view that adds up every worker's values. ``tallies`` holds the request path's
    observations until ``exported`` is read (service/core/tally.py).
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.exported = self.registry
        self.tallies = Tallies()
        if multiprocess_mode():
            self.exported = CollectorRegistry()
        self.exported.register(self.tallies)  # first: every reading flushes them before it reads a value
        if multiprocess_mode():
            MultiProcessCollector(self.exported)
        self.http_requests = Counter(
            "digits_http_requests",
            "HTTP requests by route, method and status",
            ["route", "method", "status"],
            registry=r,
        )
        self.http_duration = Histogram(
            "digits_http_request_duration_seconds",
            "Time from request start to the end of the response",
            ["route", "method"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.inference_duration = Histogram(
            "digits_inference_duration_seconds",
            "Duration of one model call (a whole batch)",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram("digits_batch_size", "Images per model call", buckets=BATCH_BUCKETS, registry=r)
        self.stage_seconds = Histogram(
            "digits_stage_seconds",
            "Time a request spent in each stage (service/core/telemetry/stages.py): read, decode, queue, assembly, "
            "model, encode",
            ["version", "route", "stage"],
            buckets=STAGE_BUCKETS,
            registry=r,
        )
        self.deadline_refusals = Counter(
            "digits_deadline_refusals",
            "Requests answered queue_full because the model could not start them within DIGITS_MAX_QUEUE_WAIT_MS: "
            "refused on arrival (admission) or dropped from the queue at their deadline (expired)",
            ["version", "route", "when"],
            registry=r,
        )
        self.inline_batches = Counter(
            "digits_inline_batches",
            "Model calls run at once on the event loop's thread: a small request that found no other in flight",
            registry=r,
        )
        self.queue_wait = Histogram(
            "digits_queue_wait_seconds",
            "Time a request waited for its batch to start",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.queue_depth = Gauge(
            "digits_queue_depth", "Images waiting for the model", registry=r, multiprocess_mode="livesum"
        )
        self.inflight = Gauge(
            "digits_inflight_requests", "HTTP requests being served", registry=r, multiprocess_mode="livesum"
        )
        self.predictions = Counter(
            "digits_predictions", "Predictions by label and model version", ["label", "version"], registry=r
        )
        self.errors = Counter("digits_errors", "Error responses by code", ["code"], registry=r)
        self.model_info = Gauge(
            "digits_model_info",
            "The served model",
            ["name", "version", "sha256", "backend", "device"],
            registry=r,
            multiprocess_mode="max",
        )
        # Per model version (service/core/version_stats.py): what the rollout's gates read too.
        self.version_requests = Counter(
            "digits_version_requests",
            "Inference requests by model version and outcome (ok, error)",
            ["version", "outcome"],
            registry=r,
        )
        self.version_duration = Histogram(
            "digits_version_request_duration_seconds",
            "Time from admission to the model's answer, by model version",
            ["version"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.version_confidence = Histogram(
            "digits_version_confidence",
            "Top-1 probability of each prediction, by model version",
            ["version"],
            buckets=CONFIDENCE_BUCKETS,
            registry=r,
        )
        self.shadow_comparisons = Counter(
            "digits_shadow_comparisons",
            "Shadow answers of a candidate compared with stable's (agree, disagree)",
            ["version", "result"],
            registry=r,
        )
        self.shadow_dropped = Counter(
            "digits_shadow_dropped",
            "Shadow copies not run (busy: the stable path had work; share: over the cap)",
            ["version", "reason"],
            registry=r,
        )
        self.shadow_confidence = Histogram(
            "digits_shadow_confidence",
            "Top-1 probability of each shadowed image, by candidate version and side (stable, candidate): the mean "
            "shift is the difference of their means",
            ["version", "side"],
            buckets=CONFIDENCE_BUCKETS,
            registry=r,
        )
        self.traffic_share = Gauge(
            "digits_traffic_share",
            "Share of unversioned requests the traffic policy sends to a version",
            ["version", "role"],
            registry=r,
            multiprocess_mode="max",
        )
        self.shadow_share = Gauge(
            "digits_shadow_sampling",
            "Share of stable's requests copied to the candidate in shadow",
            ["version"],
            registry=r,
            multiprocess_mode="max",
        )
        self.rollout_step = Gauge(
            "digits_rollout_step",
            "The running rollout's step (0: shadow), -1 when none runs",
            ["candidate"],
            registry=r,
            multiprocess_mode="max",
        )
        self.rollouts = Counter(
            "digits_rollouts",
            "Rollouts ended, by result (promoted, rolled_back, aborted) and reason",
            ["result", "reason"],
            registry=r,
        )
        self.version_refusals = Counter(
            "digits_model_version_refusals", "Model versions refused at load, by code", ["code"], registry=r
        )
        self.versions_loaded = Gauge(
            "digits_model_versions_loaded",
            "Model versions loaded and serving in this process",
            registry=r,
            multiprocess_mode="max",
        )
        # Drift of the served inputs and predictions against the card's baseline (service/core/drift.py).
        self.drift_score = Gauge(
            "digits_drift_score",
            "Population stability index of a statistic over the last images against the training baseline",
            ["version", "statistic"],
            registry=r,
            multiprocess_mode="livemax",
        )
        self.drift_window_mean = Gauge(
            "digits_drift_window_mean",
            "Mean of a statistic over the drift window",
            ["version", "statistic"],
            registry=r,
            multiprocess_mode="livemax",
        )
        self.drift_baseline_mean = Gauge(
            "digits_drift_baseline_mean",
            "Mean of a statistic over the training baseline",
            ["version", "statistic"],
            registry=r,
            multiprocess_mode="max",
        )
        self.drift_window_images = Gauge(
            "digits_drift_window_images",
            "Images in the drift window",
            ["version"],
            registry=r,
            multiprocess_mode="livemax",
        )
        self.preprocess_paths = Counter(
            "digits_preprocess_paths", "Inputs by preprocessing path taken", ["version", "path"], registry=r
        )
        # Per API key quotas (service/core/quotas.py), labelled by the key's name, never the key.
        self.key_requests = Counter("digits_key_requests", "Requests by API key name", ["key_name"], registry=r)
        self.key_images = Counter("digits_key_images", "Images admitted by API key name", ["key_name"], registry=r)
        self.quota_refusals = Counter(
            "digits_quota_refusals",
            "Requests refused with 429 by API key name and quota (requests or images per second)",
            ["key_name", "quota"],
            registry=r,
        )
        self._request_children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        key = (route, method, status)
        children = self._request_children.get(key)
        if children is None:
            children = self._request_children[key] = (
                self.http_requests.labels(route=route, method=method, status=str(status)),
                self.http_duration.labels(route=route, method=method),
            )
        requests, duration = children
        requests.inc()
        duration.observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.exported)

    def render_openmetrics(self) -> bytes:
        """The OpenMetrics exposition: with exemplars (the trace ids of sampled requests) on the stage buckets."""
        exposition: bytes = openmetrics.generate_latest(self.exported)
        return exposition

    def retire(self) -> None:
        """At a worker's exit: its last tallied observations are added, and its live gauges (queue depth, in
        flight) stop counting in the sum."""
        self.tallies.flush()
        if multiprocess_mode():
            mark_process_dead(os.getpid())
