"""The signature bundle: miner indicators as versioned data with provenance.

The built-in bundle ships as ``data/builtin.yaml``; a MinerPolicy adds entries of its own
(``spec.signatures``) without a release.
"""

from __future__ import annotations

import functools
from enum import StrEnum
from importlib import resources
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from minerguard.errors import BundleError


class Kind(StrEnum):
    """What an entry's value is matched against."""

    BINARY = "binary"
    OPTION = "option"
    ALGORITHM = "algorithm"
    IMAGE = "image"
    POOL_HOST = "pool_host"
    POOL_PORT = "pool_port"
    URL_SCHEME = "url_scheme"
    WALLET = "wallet"
    ENV_NAME = "env_name"
    USER_AGENT = "user_agent"
    TEXT = "text"
    ARGUMENT = "argument"
    CONTENT = "content"


REGEX_KINDS = frozenset({Kind.WALLET, Kind.ARGUMENT})


class Entry(BaseModel):
    """One indicator."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(min_length=1)
    kind: Kind
    value: str = Field(min_length=1, max_length=2048)
    weight: float = Field(gt=0, le=1)
    tier: Literal["stable", "incubating", "experimental"] = "stable"
    source: str = Field(min_length=1)

    @field_validator("value")
    @classmethod
    def _strip(cls, value: str) -> str:
        return value.strip()


class Bundle(BaseModel):
    """A versioned list of entries."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: str
    signatures: tuple[Entry, ...]

    @field_validator("signatures")
    @classmethod
    def _unique_ids(cls, entries: tuple[Entry, ...]) -> tuple[Entry, ...]:
        seen: set[str] = set()
        for entry in entries:
            if entry.id in seen:
                raise ValueError(f"duplicate signature id {entry.id!r}")
            seen.add(entry.id)
        return entries


def parse(text: str, origin: str) -> Bundle:
    """Parse bundle YAML; errors name the origin."""
    try:
        return Bundle.model_validate(yaml.safe_load(text))
    except (yaml.YAMLError, ValidationError) as err:
        raise BundleError(f"{origin}: {err}") from err


@functools.cache
def builtin() -> Bundle:
    """The bundle shipped with this release (parsed once per process)."""
    text = resources.files("minerguard.signatures").joinpath("data/builtin.yaml").read_text()
    return parse(text, "builtin.yaml")
