"""Why a model version is refused: a stable code for clients, metrics and logs, and a message for people."""

from __future__ import annotations

from enum import StrEnum


class RefusalCode(StrEnum):
    UNKNOWN_VERSION = "unknown_version"  # no such version directory in the repository
    MISSING_CARD = "missing_card"  # the version has no card file
    INVALID_CARD = "invalid_card"  # the card is not a valid model card, or names another version
    MISSING_ARTIFACT = "missing_artifact"  # the version has no TorchScript file
    HASH_MISMATCH = "hash_mismatch"  # the file's sha256 is not the card's
    WRONG_INPUT_SHAPE = "wrong_input_shape"  # the card's input spec or labels, or the module's outputs, are not ours
    CORRUPT_ARTIFACT = "corrupt_artifact"  # the file is not loadable TorchScript
    NO_PROBES = "no_probes"  # the card records no probe set to check the loaded model against
    FAILED_PROBE = "failed_probe"  # the loaded model labels a probe digit wrong


class VersionRefused(Exception):
    """A model version that may not serve: ``code`` says why, stably; ``message`` says it in words."""

    def __init__(self, code: RefusalCode, version: str, message: str) -> None:
        super().__init__(f"model version {version} refused ({code}): {message}")
        self.code = code
        self.version = version
        self.message = message
