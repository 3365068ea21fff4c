"""A real multi-worker gateway serving a model repository, its admin and client keys, and load that records which
version answered each request and when."""

from __future__ import annotations

import contextlib
import itertools
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import orjson

from model.settings import ARTIFACT_DIR
from ops.local_servers import ServerProcess
from service.core.api_keys import new_key
from tests.servers import gateway_process
from tests.versions import copy_version

SHIPPED = ARTIFACT_DIR.parent / "versions"
STABLE, OTHER = "2.1.0", "2.0.0"


@dataclass(frozen=True)
class Keys:
    admin: str
    client: str


def make_keys(path: Path) -> tuple[Keys, Path]:
    admin, admin_line = new_key("release-bot", "admin")
    client, client_line = new_key("app")
    path.write_text(f"{admin_line}\n{client_line}\n")
    return Keys(admin, client), path


def make_repository(root: Path) -> Path:
    """The shipped versions, copied (their files, not links) into ``root``."""
    for version in (OTHER, STABLE):
        copy_version(SHIPPED / version / "digits.pt", root, version)
    return root


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@contextlib.contextmanager
def repository_gateway(tmp: Path, repository: Path, keys_file: Path, **settings: str) -> Iterator[ServerProcess]:
    env = {
        "DIGITS_WORKERS": "2",
        "DIGITS_MODEL_REPOSITORY": str(repository),
        "DIGITS_MODEL_VERSION": STABLE,
        "DIGITS_STATE_DIR": str(tmp / "state"),
        "DIGITS_API_KEYS_FILE": str(keys_file),
        "DIGITS_REPOSITORY_POLL_SECONDS": "0.2",
        **settings,
    }
    with gateway_process(tmp, env, ready_timeout=180) as server:
        yield server


def reprobed(artifact: Path) -> Path:
    """``artifact``'s card given the probe set its own network passes, as ``digits train`` would record it."""
    subprocess.run([sys.executable, "-m", "digits_cli.main", "probes", str(artifact)], check=True,
                   capture_output=True)  # fmt: skip
    return artifact


@dataclass(frozen=True)
class Answer:
    sent: float
    received: float
    status: int | None
    version: str | None


@dataclass
class Load:
    """Clients posting /v1/predict in a loop, each on a connection of its own, until stopped."""

    url: str
    bodies: list[bytes]
    clients: int = 4
    headers: dict[str, str] = field(default_factory=dict)
    answers: list[Answer] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def __enter__(self) -> Load:
        self._threads = [threading.Thread(target=self._client, daemon=True) for _ in range(self.clients)]
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)

    def _client(self) -> None:
        headers = {"Content-Type": "application/json", **self.headers}
        with httpx.Client(base_url=self.url, timeout=30) as client:
            for body in itertools.cycle(self.bodies):
                if self._stop.is_set():
                    return
                sent = time.monotonic()
                try:
                    response = client.post("/v1/predict", content=body, headers=headers)
                except httpx.HTTPError:
                    self.answers.append(Answer(sent, time.monotonic(), None, None))
                    continue
                version = response.json()["model"]["version"] if response.status_code == 200 else None
                self.answers.append(Answer(sent, time.monotonic(), response.status_code, version))

    def failures(self) -> list[Answer]:
        return [answer for answer in self.answers if answer.status != 200]


def pixel_bodies(images: Iterable[np.ndarray]) -> list[bytes]:
    """One /v1 request body per 28x28 digit."""
    return [orjson.dumps({"instances": [{"pixels": image.tolist()}], "preprocess": "none"}) for image in images]


def wait_for(condition: Callable[[], bool], timeout: float = 60, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)
