"""The PromQL the chart ships (PrometheusRule alerts, Grafana dashboard) and what it selects.

A query reads series by metric name, label matchers and grouping labels. This module finds them
with a small PromQL tokenizer (enough for selectors, functions, aggregations and their
``by``/``without``/``on``/``ignoring`` lists; promtool checks the full syntax), so the tests can
hold them against what the components export.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterator
from typing import Any

from tests.integration.chart import chart

# Series Prometheus makes itself, not scraped from a component.
SYNTHETIC = frozenset({"up", "ALERTS", "ALERTS_FOR_STATE"})
# Labels the scrape attaches to every series of a ServiceMonitor target. A component label of the
# same name is renamed `exported_<name>` (honorLabels is off).
TARGET_LABELS = frozenset(
    {"job", "instance", "namespace", "pod", "service", "endpoint", "container"}
)
# Grafana's variables, given a value so the expression is plain PromQL.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$namespace": "minerguard"}

_KEYWORDS = frozenset(
    {"and", "or", "unless", "bool", "offset", "group_left", "group_right", "inf", "nan", "atan2"}
)
_GROUPING = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right"})
_AGGREGATIONS = frozenset(
    {"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk"}
    | {"topk", "quantile", "limitk", "limit_ratio"}
)
_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
  | (?P<range>\[[^\]]*\])
  | (?P<number>(?:0x[0-9a-fA-F]+|\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+)[a-z]*)
  | (?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)
  | (?P<matcher>=~|!~|!=|=)
  | (?P<punct>[{}(),])
  | (?P<operator>==|>=|<=|[-+*/%^<>])
    """,
    re.VERBOSE,
)


@dataclasses.dataclass(frozen=True)
class Selector:
    """One vector selector: ``metric{label="value", ...}``."""

    metric: str
    matchers: tuple[tuple[str, str, str], ...] = ()  # (label, operator, value)

    @property
    def labels(self) -> frozenset[str]:
        return frozenset(label for label, _, _ in self.matchers)

    def equals(self, label: str) -> str | None:
        """The value this selector requires of `label` with ``=``, if it does."""
        for name, operator, value in self.matchers:
            if name == label and operator == "=":
                return value
        return None


@dataclasses.dataclass(frozen=True)
class Query:
    """One expression the chart ships and where it is."""

    where: str
    expr: str

    @property
    def promql(self) -> str:
        """The expression with Grafana's variables filled in."""
        text = self.expr
        for variable, value in GRAFANA_VARIABLES.items():
            text = text.replace(variable, value)
        return text

    @property
    def selectors(self) -> tuple[Selector, ...]:
        return parse(self.promql)[0]

    @property
    def grouping(self) -> frozenset[str]:
        """Labels named in ``by``/``without``/``on``/``ignoring``/``group_*`` lists."""
        return parse(self.promql)[1]


def _tokens(expr: str) -> Iterator[tuple[str, str]]:
    position = 0
    while position < len(expr):
        found = _TOKEN.match(expr, position)
        if found is None:
            raise ValueError(f"cannot read PromQL at {expr[position:]!r} in {expr!r}")
        position = found.end()
        kind = found.lastgroup
        assert kind is not None
        if kind not in ("space", "range"):  # a range holds only a duration
            yield kind, found.group()


def _label_list(tokens: list[tuple[str, str]], start: int) -> tuple[frozenset[str], int]:
    """The names in ``( a, b )`` starting at `start` (the opening parenthesis)."""
    assert tokens[start] == ("punct", "("), f"expected a label list at {tokens[start:]}"
    names: set[str] = set()
    index = start + 1
    while tokens[index] != ("punct", ")"):
        kind, text = tokens[index]
        if kind == "name":
            names.add(text)
        index += 1
    return frozenset(names), index + 1


def _matchers(
    tokens: list[tuple[str, str]], start: int
) -> tuple[tuple[tuple[str, str, str], ...], int]:
    """The ``label op "value"`` terms in ``{...}`` starting at `start` (the opening brace)."""
    found: list[tuple[str, str, str]] = []
    index = start + 1
    while tokens[index] != ("punct", "}"):
        if tokens[index] == ("punct", ","):
            index += 1
            continue
        (_, label), (_, operator), (_, quoted) = tokens[index : index + 3]
        found.append((label, operator, json.loads(quoted) if quoted[0] == '"' else quoted[1:-1]))
        index += 3
    return tuple(found), index + 1


def parse(expr: str) -> tuple[tuple[Selector, ...], frozenset[str]]:
    """The vector selectors of a PromQL expression, and the labels its grouping lists name."""
    tokens = list(_tokens(expr))
    selectors: list[Selector] = []
    grouping: set[str] = set()
    index = 0
    while index < len(tokens):
        kind, text = tokens[index]
        following = tokens[index + 1] if index + 1 < len(tokens) else ("", "")
        if kind == "name" and text in _GROUPING and following == ("punct", "("):
            names, index = _label_list(tokens, index + 1)
            grouping |= names
        elif kind == "name" and following == ("punct", "("):
            index += 1  # a function or an aggregation
        elif kind == "name" and text.lower() in _KEYWORDS | _GROUPING | _AGGREGATIONS:
            index += 1
        elif kind == "name":
            matchers: tuple[tuple[str, str, str], ...] = ()
            index += 1
            if following == ("punct", "{"):
                matchers, index = _matchers(tokens, index)
            selectors.append(Selector(text, matchers))
        elif (kind, text) == ("punct", "{"):
            matchers, index = _matchers(tokens, index)
            named = [value for label, op, value in matchers if label == "__name__" and op == "="]
            assert named, f"a selector without a metric name in {expr!r}"
            selectors.append(Selector(named[0], matchers))
        else:
            index += 1
    return tuple(selectors), frozenset(grouping)


def monitoring_render() -> chart.Render:
    """The chart with every monitoring object on and otherwise default values."""
    return chart.render(
        {
            "metrics": {
                "serviceMonitor": {"enabled": True},
                "prometheusRule": {"enabled": True},
                "grafanaDashboard": {"enabled": True},
            }
        }
    )


def rule_groups(rendered: chart.Render) -> list[dict[str, Any]]:
    """The PrometheusRule's groups, as a Prometheus rule file holds them."""
    rules = rendered.one("PrometheusRule")
    groups: list[dict[str, Any]] = rules["spec"]["groups"]
    return groups


def alert_queries(rendered: chart.Render) -> list[Query]:
    """Every alert expression of the PrometheusRule."""
    return [
        Query(f"PrometheusRule alert {rule['alert']}", str(rule["expr"]))
        for group in rule_groups(rendered)
        for rule in group["rules"]
    ]


def dashboard_queries(rendered: chart.Render) -> list[Query]:
    """Every panel target and templating query of the Grafana dashboard."""
    config = rendered.one("ConfigMap", "-dashboard")
    dashboard = json.loads(config["data"]["minerguard.json"])
    found: list[Query] = []
    for variable in dashboard.get("templating", {}).get("list", []):
        query = variable.get("query")
        text = query.get("query") if isinstance(query, dict) else None
        values_of = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", text or "")
        if values_of is not None:
            found.append(Query(f"dashboard variable ${variable['name']}", values_of.group(1)))
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            where = f"dashboard panel {panel['title']!r} target {target['refId']}"
            found.append(Query(where, target["expr"]))
    return found


def chart_queries() -> list[Query]:
    """Every query the chart ships, alerts and dashboard."""
    rendered = monitoring_render()
    return [*alert_queries(rendered), *dashboard_queries(rendered)]


def family(sample_name: str) -> str:
    """The metric family a series name belongs to (a histogram's ``_bucket`` is its family)."""
    return re.sub(r"_(bucket|sum|count)$", "", sample_name)
