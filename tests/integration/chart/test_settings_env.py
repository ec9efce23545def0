"""Every ``MINERGUARD_*`` variable the chart sets is a settings field of the component it runs.

pydantic-settings ignores variables it has no field for, so a misspelt name in a template does
nothing, silently. The chart's variables are read back here by each component's own settings
class through pydantic-settings' environment source (its prefix, aliases, case rules and nested
delimiter, whatever they are), and the values they carry must validate.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from pydantic_settings import BaseSettings, EnvSettingsSource

from tests.integration.chart import chart

# The component a container runs (its first argument to the image's `minerguard` entry point)
# and the settings class that reads its environment, by module path: each is imported from the
# component's public settings module only when a test needs it.
SETTINGS = {
    "webhook": ("webhook.settings", "WebhookSettings"),
    "agent": ("node_agent.settings", "AgentSettings"),
    "operator": ("minerguard_operator.settings", "OperatorSettings"),
}
PREFIX = "MINERGUARD_"
_POD_SPEC_OWNERS = {"Deployment", "DaemonSet", "StatefulSet", "ReplicaSet", "Job"}
# What the downward API puts in a variable, for the values the chart leaves to the cluster.
_FIELD_REFS = {
    "metadata.namespace": "minerguard",
    "metadata.name": "minerguard-agent-x7k2p",
    "spec.nodeName": "node-1",
    "status.podIP": "10.0.0.7",
}


@dataclasses.dataclass(frozen=True)
class Variable:
    """One environment variable of one container, with the value it would hold."""

    where: str
    component: str | None
    name: str
    value: str


def settings_class(component: str) -> type[BaseSettings]:
    module_name, attribute = SETTINGS[component]
    found: type[BaseSettings] = getattr(importlib.import_module(module_name), attribute)
    return found


def read_from_environment(
    settings: type[BaseSettings], environ: Mapping[str, str]
) -> dict[str, Any]:
    """What pydantic-settings takes from `environ` for `settings`: field (or alias) → raw value.

    The environment source is the one pydantic-settings builds for the class; only the variables
    it sees are replaced (its `env_vars`), so every rule of the class's config applies.
    """
    source = EnvSettingsSource(settings)
    source.env_vars = {
        name if source.case_sensitive else name.lower(): value for name, value in environ.items()
    }
    return dict(source())


def _pod_specs(rendered: chart.Render) -> Iterator[tuple[str, dict[str, Any]]]:
    for manifest in rendered.manifests:
        spec: dict[str, Any] | None = None
        if manifest.kind == "Pod":
            spec = manifest.obj["spec"]
        elif manifest.kind in _POD_SPEC_OWNERS:
            spec = manifest.obj["spec"]["template"]["spec"]
        elif manifest.kind == "CronJob":
            spec = manifest.obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        if spec is not None:
            yield f"{manifest.kind}/{manifest.name}", spec


def _value(entry: Mapping[str, Any], where: str) -> str:
    if "value" in entry:
        return str(entry["value"])
    field_ref = (entry.get("valueFrom") or {}).get("fieldRef") or {}
    path = field_ref.get("fieldPath")
    assert path in _FIELD_REFS, f"{where}: {entry['name']} comes from {entry}; add a sample value"
    return _FIELD_REFS[path]


def chart_variables(rendered: chart.Render) -> list[Variable]:
    """Every MINERGUARD_* variable on every container of every pod the chart makes."""
    found: list[Variable] = []
    for owner, spec in _pod_specs(rendered):
        for container in [*spec.get("initContainers", []), *spec["containers"]]:
            where = f"{owner} container {container['name']}"
            args = container.get("args") or []
            runs = args[0] if args and "command" not in container else None
            component = runs if runs in SETTINGS else None
            for entry in container.get("env") or []:
                if entry["name"].upper().startswith(PREFIX):
                    found.append(Variable(where, component, entry["name"], _value(entry, where)))
    return found


def problems(variables: list[Variable]) -> list[str]:
    """Why each variable would do nothing (or stop its component from starting); [] if none."""
    found: list[str] = []
    by_container: dict[tuple[str, str], dict[str, str]] = {}
    for variable in variables:
        if variable.component is None:
            found.append(f"{variable.where}: {variable.name} is set on no minerguard component")
            continue
        settings = settings_class(variable.component)
        try:
            read = read_from_environment(settings, {variable.name: variable.value})
        except ValueError as err:  # pydantic-settings' SettingsError: a list field, not JSON
            found.append(
                f"{variable.where}: {settings.__name__} cannot read {variable.name}: {err}"
            )
            continue
        if not read:
            prefix = settings.model_config.get("env_prefix", "")
            found.append(
                f"{variable.where}: {variable.name} is no field of {settings.__name__} "
                f"(prefix {prefix}); pydantic-settings ignores it"
            )
            continue
        by_container.setdefault((variable.where, variable.component), {})[variable.name] = (
            variable.value
        )
    for (where, component), environ in by_container.items():
        settings = settings_class(component)
        try:
            settings(**read_from_environment(settings, environ))
        except ValueError as err:
            found.append(f"{where}: {settings.__name__} refuses the chart's values: {err}")
    return found


@pytest.mark.parametrize("profile", chart.PROFILES)
def test_every_minerguard_variable_the_chart_sets_is_a_settings_field(profile: str) -> None:
    variables = chart_variables(chart.render_profile(profile))
    components = {v.component for v in variables}
    assert components >= {"webhook", "agent"}, f"the chart sets no variables for {components}"
    assert problems(variables) == []


def test_the_check_covers_every_component_the_chart_configures_by_variable() -> None:
    components = {v.component for v in chart_variables(chart.render())}
    assert components == set(SETTINGS)


@pytest.mark.parametrize(
    ("component", "name"),
    [
        ("webhook", "MINERGUARD_WEBHOOK_ADMISION_TIMEOUT_SECONDS"),
        ("agent", "MINERGUARD_AGENT_PROC_CONECTOR"),
        ("operator", "MINERGUARD_OPERATOR_METRIC_PORT"),
        ("operator", "MINERGUARD_WEBHOOK_NAMESPACE"),
    ],
)
def test_a_misspelt_or_misplaced_variable_is_reported(component: str, name: str) -> None:
    reported = problems([Variable("Deployment/x container y", component, name, "1")])
    assert len(reported) == 1
    assert "pydantic-settings ignores it" in reported[0]


def test_a_variable_is_matched_without_regard_to_case_as_pydantic_settings_does() -> None:
    settings = settings_class("webhook")
    assert read_from_environment(settings, {"minerguard_webhook_port": "9443"}) == {"port": "9443"}


def test_a_typo_in_extra_env_is_caught_in_the_rendered_chart() -> None:
    rendered = chart.render(
        {"webhook": {"extraEnv": [{"name": "MINERGUARD_WEBHOOK_REGISTRY_TIMEOUT_S", "value": "2"}]}}
    )
    reported = problems(chart_variables(rendered))
    assert len(reported) == 1
    assert "MINERGUARD_WEBHOOK_REGISTRY_TIMEOUT_S is no field of WebhookSettings" in reported[0]


def test_a_value_the_settings_refuse_is_reported() -> None:
    where = "DaemonSet/agent container agent"
    variables = [
        Variable(where, "agent", "MINERGUARD_AGENT_NODE_NAME", "node-1"),
        Variable(where, "agent", "MINERGUARD_AGENT_METRICS_PORT", "70000"),
    ]
    reported = problems(variables)
    assert len(reported) == 1
    assert reported[0].startswith(f"{where}: AgentSettings refuses the chart's values")
    assert "metrics_port" in reported[0]


def test_a_minerguard_variable_on_a_container_that_runs_no_component_is_reported() -> None:
    variable = Variable("Job/cleanup container cleanup", None, "MINERGUARD_WEBHOOK_PORT", "1")
    assert problems([variable]) == [
        "Job/cleanup container cleanup: MINERGUARD_WEBHOOK_PORT is set on no minerguard component"
    ]


def test_a_list_field_given_a_plain_string_is_reported() -> None:
    where = "Deployment/webhook container webhook"
    variable = Variable(where, "webhook", "MINERGUARD_WEBHOOK_POLICY_FILES", "/etc/p.yaml")
    reported = problems([variable])
    assert len(reported) == 1
    assert reported[0].startswith(f"{where}: WebhookSettings cannot read")
