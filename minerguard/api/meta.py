"""Base model and metadata shared by the minerguard resources."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

GROUP = "minerguard.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"


class ApiModel(BaseModel):
    """Frozen camelCase model; unknown fields are ignored, as objects come from the cluster."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        frozen=True,
        extra="ignore",
        use_enum_values=False,
    )

    def to_k8s(self) -> dict[str, Any]:
        """The object as the Kubernetes API wants it: camelCase keys, no nulls."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


class ObjectMeta(ApiModel):
    """The subset of ``metadata`` that minerguard reads and writes."""

    name: str | None = None
    generate_name: str | None = None
    namespace: str | None = None
    uid: str | None = None
    generation: int | None = None
    resource_version: str | None = None
    creation_timestamp: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class ResourceInfo:
    """Where a resource lives in the API, kept beside its model as class attributes."""

    group: ClassVar[str] = GROUP
    version: ClassVar[str] = VERSION
    plural: ClassVar[str]
    singular: ClassVar[str]
    kind: ClassVar[str]
    short_names: ClassVar[tuple[str, ...]]
    namespaced: ClassVar[bool]


class ConditionStatus(StrEnum):
    """Kubernetes condition status."""

    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Condition(ApiModel):
    """A standard Kubernetes condition (``metav1.Condition``)."""

    type: str = Field(description="Condition type, e.g. Ready.")
    status: ConditionStatus
    reason: str = Field(description="CamelCase reason a person can act on.")
    message: str = Field(default="", description="Human-readable detail.")
    last_transition_time: str | None = None
    observed_generation: int | None = None


class LabelSelectorRequirement(ApiModel):
    """One ``matchExpressions`` entry of a label selector."""

    key: str
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    values: list[str] = Field(default_factory=list)


class LabelSelector(ApiModel):
    """A Kubernetes label selector."""

    match_labels: dict[str, str] = Field(default_factory=dict)
    match_expressions: list[LabelSelectorRequirement] = Field(default_factory=list)
