"""The signature bundle: miner indicators as versioned data with provenance.

The built-in bundle ships as ``data/builtin.yaml``; a MinerPolicy adds entries of its own
(``spec.signatures``) without a release.

How evidence adds up is data too (``scoring``): what each signal may add at most (its cap, and
why), and combination rules that add weight when signals occur together (a pool endpoint with
a checksum-valid wallet; a dropper with any mining signal). The engine only sums: a calibration
change is a bundle change with its reason, and the README's scoring table is printed from it
(:func:`scoring_table`), so the two cannot drift.
"""

from __future__ import annotations

import functools
from enum import StrEnum
from importlib import resources
from typing import Literal, get_args

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

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
    CAMPAIGN_TOOL = "campaign_tool"
    CAMPAIGN_HOST = "campaign_host"


REGEX_KINDS = frozenset({Kind.WALLET, Kind.ARGUMENT})

KIND_SIGNALS: dict[Kind, str] = {
    Kind.BINARY: "miner-binary",
    Kind.OPTION: "miner-option",
    Kind.ALGORITHM: "mining-algorithm",
    Kind.IMAGE: "miner-image",
    Kind.POOL_HOST: "pool-host",
    Kind.POOL_PORT: "pool-port",
    Kind.URL_SCHEME: "pool-url",
    Kind.WALLET: "wallet",
    Kind.ENV_NAME: "miner-env",
    Kind.USER_AGENT: "miner-agent",
    Kind.TEXT: "miner-config",
    Kind.ARGUMENT: "argument-pattern",
    Kind.CONTENT: "miner-content",
    Kind.CAMPAIGN_TOOL: "campaign-tool",
    Kind.CAMPAIGN_HOST: "campaign-host",
}
"""The signal an entry's hits count as unless it names its own (``Entry.signal``)."""

Checksum = Literal[
    "monero", "bitcoin", "bitcoin-bech32", "litecoin", "litecoin-bech32", "dogecoin",
    "ravencoin", "zcash", "bitcoin-cash", "ethereum", "dero", "bitcoin-cashaddr", "kaspa",
]  # fmt: skip
"""Address formats :mod:`minerguard.signatures.wallets` validates."""
CHECKSUMS: tuple[str, ...] = get_args(Checksum)


class Entry(BaseModel):
    """One indicator."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(min_length=1)
    kind: Kind
    value: str = Field(min_length=1, max_length=2048)
    weight: float = Field(gt=0, le=1)
    tier: Literal["stable", "incubating", "experimental"] = "stable"
    source: str = Field(min_length=1)
    signal: str | None = Field(default=None, min_length=1, max_length=64)
    """The signal this entry's hits count as, when not its kind's (a named, separately capped
    signal such as ``pool-endpoint`` that combination rules refer to)."""
    checksum: Checksum | None = None
    """Wallet entries: the address format whose checksum a match must pass to count as a
    ``wallet``; a match that fails it counts only as ``wallet-shaped``."""

    @field_validator("value")
    @classmethod
    def _strip(cls, value: str) -> str:
        return value.strip()


class SignalCap(BaseModel):
    """One signal: the most its hits add together, and why (a row of the scoring table)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, max_length=64)
    cap: float = Field(gt=0, le=1)
    why: str = Field(min_length=1)
    conclusive: bool = False
    """Whether this signal alone may reach the threshold (documented; a test holds every
    other signal below it)."""


class Rule(BaseModel):
    """Weight added when signals occur together.

    Fires when every name in ``all_of`` and, if ``any_of`` is given, at least one name in it
    is present; a name is a signal name (``wallet``) or an entry id (``binary/xmrig``). A
    rule adds its weight once, as a signal named by its id, so it is capped by itself.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(min_length=1, pattern=r"^rule/")
    all_of: tuple[str, ...] = ()
    any_of: tuple[str, ...] = ()
    weight: float = Field(gt=0, le=1)
    why: str = Field(min_length=1)
    source: str = Field(min_length=1)

    @model_validator(mode="after")
    def _something(self) -> Rule:
        if not self.any_of and not self.all_of:
            raise ValueError("a rule needs all_of or any_of")
        return self

    def fires(self, present: frozenset[str] | set[str]) -> bool:
        """Whether the names ``present`` satisfy this rule."""
        return all(n in present for n in self.all_of) and (
            not self.any_of or any(n in present for n in self.any_of)
        )


class Scoring(BaseModel):
    """How evidence adds up: per-signal caps, then combination rules."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    signals: tuple[SignalCap, ...] = ()
    rules: tuple[Rule, ...] = ()

    @property
    def caps(self) -> dict[str, float]:
        """Signal name to cap (rules are capped by their own weight)."""
        caps = {s.name: s.cap for s in self.signals}
        caps.update((r.id, r.weight) for r in self.rules)
        return caps

    def cap(self, name: str) -> float:
        """The cap of signal ``name``; raises KeyError for a name the table lacks."""
        return self.caps[name]


class NamedWithSource(BaseModel):
    """A name in an image heuristic list, and where it comes from or why it is there."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, max_length=128)
    source: str = Field(min_length=1)


class ImageHeuristics(BaseModel):
    """What image names give away (see :mod:`minerguard.signatures.image_names`).

    ``packaging_words``: words that may sit around a miner's name in a repository's name
    (``xmrig-docker``); ``public_registries``: where anyone may claim a namespace (where
    typosquats live); ``protected``: namespaces and registries typosquats imitate;
    ``allowed``: real namespaces close to a protected one (measured on popular images).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    packaging_words: tuple[str, ...] = ()
    public_registries: tuple[str, ...] = ()
    protected: tuple[NamedWithSource, ...] = ()
    allowed: tuple[NamedWithSource, ...] = ()


class Bundle(BaseModel):
    """A versioned list of entries, and how their evidence adds up."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: str
    signatures: tuple[Entry, ...]
    scoring: Scoring = Scoring()
    images: ImageHeuristics = ImageHeuristics()

    @field_validator("signatures")
    @classmethod
    def _unique_ids(cls, entries: tuple[Entry, ...]) -> tuple[Entry, ...]:
        seen: set[str] = set()
        for entry in entries:
            if entry.id in seen:
                raise ValueError(f"duplicate signature id {entry.id!r}")
            seen.add(entry.id)
        return entries

    @model_validator(mode="after")
    def _names_resolve(self) -> Bundle:
        """Every signal an entry or rule names is in the scoring table (no silent typo)."""
        if not self.scoring.signals:
            return self
        signals = {s.name for s in self.scoring.signals}
        ids = {e.id for e in self.signatures} | {r.id for r in self.scoring.rules}
        for entry in self.signatures:
            if entry.signal is not None and entry.signal not in signals:
                raise ValueError(f"{entry.id}: signal {entry.signal!r} is not in scoring.signals")
        for rule in self.scoring.rules:
            for name in rule.all_of + rule.any_of:
                if name not in signals and name not in ids:
                    raise ValueError(f"{rule.id}: {name!r} is neither a signal nor an entry id")
        return self


def parse(text: str, origin: str) -> Bundle:
    """Parse bundle YAML; errors name the origin."""
    try:
        return Bundle.model_validate(yaml.safe_load(text))
    except (yaml.YAMLError, ValidationError) as err:
        raise BundleError(f"{origin}: {err}") from err


def scoring_table(loaded: Bundle) -> str:
    """The README's scoring table (signal, weight, why), printed from the bundle's data.

    Entry-backed signals show the range of their entries' weights and the cap; rules show
    what they need and what they add.
    """
    weights: dict[str, list[float]] = {}
    for entry in loaded.signatures:
        name = entry.signal or KIND_SIGNALS[entry.kind]
        weights.setdefault(name, []).append(entry.weight)
    lines = ["| signal | weight | why |", "| --- | --- | --- |"]
    for signal in loaded.scoring.signals:
        found = weights.get(signal.name)
        low, high = (min(found), max(found)) if found else (0.0, 0.0)
        each = f"{low:g}-{high:g} each, " if low != high else f"{low:g} each, " if found else ""
        shown = f"{each}at most {signal.cap:g}" + (" (conclusive)" if signal.conclusive else "")
        lines.append(f"| `{signal.name}` | {shown} | {_cell(signal.why)} |")
    for rule in loaded.scoring.rules:
        needs = " + ".join(f"`{n}`" for n in rule.all_of)
        if rule.any_of:
            either = " or ".join(f"`{n}`" for n in rule.any_of)
            needs = f"{needs} + ({either})" if needs else either
        lines.append(f"| `{rule.id}`: {needs} | +{rule.weight:g} | {_cell(rule.why)} |")
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    """``text`` safe inside a Markdown table cell (``curl|sh`` would split it)."""
    return text.replace("|", "\\|").replace("\n", " ")


@functools.cache
def builtin() -> Bundle:
    """The bundle shipped with this release (parsed once per process)."""
    text = resources.files("minerguard.signatures").joinpath("data/builtin.yaml").read_text()
    return parse(text, "builtin.yaml")
