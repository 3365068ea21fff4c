"""Where the training and evaluation jobs find MNIST (environment prefix ``DIGITS_``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from model.mnist import DEFAULT_MIRRORS

ARTIFACT_DIR = Path(__file__).parent / "artifacts"
DEFAULT_ARTIFACT = ARTIFACT_DIR / "digits.pt"
DEFAULT_REPOSITORY = Path(__file__).parent / "versions"  # the shipped model repository (model/repository.py)


class DataSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DIGITS_", extra="ignore")

    data_dir: Path = Field(
        Path.home() / ".cache" / "digits" / "mnist", description="the MNIST IDX files (downloaded here when missing)"
    )
    mnist_mirrors: tuple[str, ...] = Field(DEFAULT_MIRRORS, description="where missing MNIST files are downloaded from")
