"""Which loaded version answers an unversioned request: the stable one, or a candidate for a weighted share of
requests (sticky per client when the request carries a routing key), plus a sampled shadow copy to the candidate."""

from __future__ import annotations

import random
import zlib
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator


class TrafficPolicy(BaseModel):
    model_config = ConfigDict(frozen=True)

    stable: str = Field(description="the version that answers when no other is chosen")
    candidate: str | None = Field(None, description="a version on trial")
    weight: float = Field(0.0, ge=0.0, le=1.0, description="share of unversioned requests the candidate answers")
    shadow: float = Field(0.0, ge=0.0, le=1.0, description="share of stable's requests also sent to the candidate")

    @model_validator(mode="after")
    def _a_candidate_is_another_version(self) -> Self:
        if self.candidate == self.stable:
            raise ValueError(f"the candidate {self.candidate} is the stable version; pick another version")
        if self.candidate is None and (self.weight or self.shadow):
            raise ValueError("a weight or shadow share needs a candidate version")
        return self

    def choose(self, routing_key: str | None) -> str:
        """The version for one request: by a hash of ``routing_key`` (the same client, the same version while the
        weight stays), or at random without one."""
        if self.candidate is None or self.weight <= 0.0:
            return self.stable
        draw = zlib.crc32(routing_key.encode()) / 2**32 if routing_key else random.random()
        return self.candidate if draw < self.weight else self.stable

    def shadowed(self) -> bool:
        """Whether a request stable answers is also sent to the candidate."""
        return self.candidate is not None and self.shadow > 0.0 and random.random() < self.shadow

    def versions(self) -> set[str]:
        return {self.stable} | ({self.candidate} if self.candidate else set())

    def shares(self) -> dict[str, float]:
        """Each version's share of unversioned requests."""
        if self.candidate is None:
            return {self.stable: 1.0}
        return {self.stable: 1.0 - self.weight, self.candidate: self.weight}
