"""The model versions this process serves, and the traffic policy between them.

Every process converges to the shared :class:`~service.core.serving_state.ServingState`: it loads the versions the
state lists (a version takes traffic only once loaded, warmed and probed), applies the state's traffic policy once
every version it names is loaded here, and unloads what the state no longer lists. Unloading takes a version off
the routes first, then lets it finish every request it admitted, then frees it. So the serving version is never
unloaded before its replacement serves, and a request is answered by a version that was loaded when it came.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from model.refusal import VersionRefused
from service.core.errors import ApiError, ErrorCode
from service.core.inference import CallT, Inference, Outcome, Reader
from service.core.loading import VersionLoader
from service.core.metrics import Metrics
from service.core.serving_state import Refusal, ServingState, StateStore
from service.core.shadow import ShadowRunner
from service.core.traffic import TrafficPolicy

log = logging.getLogger(__name__)
ROLES = ("stable", "candidate", "idle")


class ServedModels:
    def __init__(
        self, loader: VersionLoader, store: StateStore, metrics: Metrics, shadow: ShadowRunner, initial_version: str
    ) -> None:
        self.loader = loader
        self.store = store
        self.metrics = metrics
        self.shadow = shadow
        self.initial_version = initial_version
        self.versions: dict[str, Inference] = {}
        self.policy: TrafficPolicy | None = None
        self.applied_revision = -1
        self.setup_error: str | None = None
        self._converging = asyncio.Lock()

    # -- serving ---------------------------------------------------------------------------------------------------

    @property
    def stable(self) -> Inference | None:
        return None if self.policy is None else self.versions.get(self.policy.stable)

    def select(self, version: str | None = None, routing_key: str | None = None) -> Inference:
        """The loaded ``version``, or for an unversioned request the one the traffic policy picks."""
        if version is not None:
            inference = self.versions.get(version)
            if inference is None:
                loaded = ", ".join(sorted(self.versions)) or "none yet"
                raise ApiError(ErrorCode.unknown_model, f"model version {version} is not loaded (loaded: {loaded})")
            return inference
        policy = self.policy
        if policy is None:
            raise ApiError(ErrorCode.not_ready, self.setup_error or "the model is still loading",
                           headers={"Retry-After": "1"})  # fmt: skip
        return self.versions[policy.choose(routing_key)]

    async def run(
        self, read: Reader[CallT], version: str | None = None, routing_key: str | None = None
    ) -> Outcome[CallT]:
        """Answer one request: on ``version``, or on the version the traffic policy picks (and then, when the
        policy says so, a shadow copy to the candidate)."""
        policy = self.policy
        inference = self.select(version, routing_key)
        outcome = await inference.run(read)
        if (
            version is None
            and policy is not None
            and policy.candidate is not None
            and inference.card.version == (policy.stable)
            and policy.shadowed()
        ):
            candidate = self.versions.get(policy.candidate)
            if candidate is not None:
                self.shadow.offer(outcome, inference, candidate)
        return outcome

    async def ready(self) -> bool:
        stable = self.stable
        return stable is not None and await stable.ready()

    # -- changing what is served -------------------------------------------------------------------------------------

    def initial_state(self) -> ServingState:
        return ServingState(versions=[self.initial_version], policy=TrafficPolicy(stable=self.initial_version))

    async def start(self) -> None:
        """Serve what the shared state says, or the initial version when there is no state yet."""
        state = self.store.read()
        if state is None:
            with self.store.update(self.initial_state()) as state:
                pass
        await self.converge(state)
        if self.policy is None:
            refused = state.refusals.get(state.policy.stable)
            self.setup_error = f"model version {state.policy.stable} could not be loaded" + (
                f": {refused.code}: {refused.message}" if refused else ""
            )

    async def converge(self, state: ServingState) -> None:
        """Load what ``state`` lists, apply its policy once this process has every version it names, and unload
        what it no longer lists."""
        async with self._converging:
            wanted = set(state.versions) | state.policy.versions()
            for version in sorted(wanted - self.versions.keys()):
                if version in state.refusals and version not in state.policy.versions():
                    continue
                try:
                    await self._load_here(version)
                except VersionRefused as refused:
                    self._refused_here(refused)
            if state.policy.versions() <= self.versions.keys():
                self._apply(state.policy)
            in_use = self.policy.versions() if self.policy else set()
            for version in sorted(self.versions.keys() - wanted - in_use):
                await self._unload_here(version)
            self.applied_revision = state.revision

    async def load(self, version: str) -> Inference:
        """Load ``version`` here and list it in the shared state; a refusal is recorded there and raised."""
        try:
            async with self._converging:
                inference = self.versions.get(version) or await self._load_here(version)
        except VersionRefused as refused:
            self._refused_here(refused)
            with self.store.update(self.initial_state()) as state:
                state.refusals[version] = Refusal(version=version, code=refused.code, message=refused.message,
                                                  at=time.time())  # fmt: skip
                state.record("refused", str(refused))
            raise
        with self.store.update(self.initial_state()) as state:
            if version not in state.versions:
                state.versions.append(version)
            state.refusals.pop(version, None)
            state.record("loaded", f"model version {version} loaded")
        return inference

    async def unload(self, version: str) -> None:
        """Stop listing ``version``; every process then takes it off its routes, lets it finish, and frees it.
        The stable version is never unloaded: make another one stable first."""
        with self.store.update(self.initial_state()) as state:
            if version == state.policy.stable:
                raise ApiError(ErrorCode.version_in_use, f"model version {version} is the stable version; make "
                               "another version stable first")  # fmt: skip
            if version not in state.versions and version not in self.versions:
                raise ApiError(ErrorCode.unknown_model, f"model version {version} is not loaded")
            if state.policy.candidate == version:
                state.policy = TrafficPolicy(stable=state.policy.stable)
            state.versions = [v for v in state.versions if v != version]
            state.retire_at.pop(version, None)
            state.record("unloaded", f"model version {version} unloaded")
        await self.converge(state)

    async def set_policy(self, policy: TrafficPolicy, why: str) -> ServingState:
        """Make ``policy`` the shared traffic policy (its versions are loaded first)."""
        for version in policy.versions() - self.versions.keys():
            await self.load(version)
        with self.store.update(self.initial_state()) as state:
            state.policy = policy
            for version in policy.versions():
                if version not in state.versions:
                    state.versions.append(version)
            state.record("policy", why)
        await self.converge(state)
        return state

    async def stop(self) -> None:
        await self.shadow.stop()
        for inference in list(self.versions.values()):
            await inference.stop()

    def index(self) -> list[dict[str, Any]]:
        """Every version in the repository, loaded or not, with its state (the repository extension's index)."""
        state = self.store.read()
        refusals = {} if state is None else state.refusals
        entries = []
        for version in sorted(set(self.loader.repository.versions()) | self.versions.keys()):
            entry: dict[str, Any] = {"name": "digits", "version": version}
            if version in self.versions:
                entry |= {"state": "READY", "reason": ""}
            elif version in refusals:
                refusal = refusals[version]
                entry |= {"state": "UNAVAILABLE", "reason": f"{refusal.code}: {refusal.message}"}
            else:
                entry |= {"state": "UNAVAILABLE", "reason": "unloaded"}
            entries.append(entry)
        return entries

    # -- this process --------------------------------------------------------------------------------------------------

    async def _load_here(self, version: str) -> Inference:
        inference = await self.loader.load(version)
        self.versions[version] = inference
        card, backend = inference.card, inference.backend
        self.metrics.model_info.labels(name=card.name, version=card.version, sha256=card.sha256,
                                       backend=backend.name, device=backend.device).set(1)  # fmt: skip
        self.metrics.versions_loaded.set(len(self.versions))
        log.info("model version %s loaded, warmed and probed", version)
        return inference

    def _refused_here(self, refused: VersionRefused) -> None:
        self.metrics.version_refusals.labels(code=refused.code).inc()
        log.error("%s", refused)

    def _apply(self, policy: TrafficPolicy) -> None:
        if policy != self.policy:
            log.info("traffic policy: %s", policy.model_dump(exclude_defaults=True))
        self.policy = policy
        self.setup_error = None
        shares = policy.shares()
        for version in self.versions:
            role = "stable" if version == policy.stable else "candidate" if version == policy.candidate else "idle"
            for each in ROLES:  # a version that changed role keeps no share under its old one
                self.metrics.traffic_share.labels(version=version, role=each).set(
                    shares.get(version, 0.0) if each == role else 0.0
                )
            self.metrics.shadow_share.labels(version=version).set(policy.shadow if role == "candidate" else 0.0)

    async def _unload_here(self, version: str) -> None:
        inference = self.versions.pop(version)  # off the routes first: no new request reaches it
        self.metrics.versions_loaded.set(len(self.versions))
        await inference.stop()  # then it answers everything it admitted, and is freed
        card = inference.card
        self.metrics.model_info.remove(card.name, card.version, card.sha256, inference.backend.name,
                                       inference.backend.device)  # fmt: skip
        for role in ROLES:
            self.metrics.traffic_share.labels(version=version, role=role).set(0.0)
        log.info("model version %s unloaded after its last request", version)
