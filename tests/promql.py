"""What the alerts and the dashboard may query: the series names the operator exposes, and a reader of
the metric names a PromQL expression selects.

An alert or a panel on a metric the operator does not expose (a typo, a renamed metric, a label
mistaken for a metric) never fails anywhere: it just stays silent, or empty, forever. So the names
are checked against the operator's own registry (``phalanx.metrics.REGISTRY``, which also carries
prometheus_client's process and platform collectors), not against a list kept by hand.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterable
from pathlib import Path

import pytest
from prometheus_client.metrics_core import Metric

from phalanx import metrics
from tests.conftest import TOOLS

_SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "gaugehistogram": ("_bucket", "_gcount", "_gsum"),
    "summary": ("", "_count", "_sum", "_created"),
    "info": ("_info",),
    "stateset": ("",),
    "unknown": ("",),
}


def series_names(families: Iterable[Metric]) -> set[str]:
    """The names of the series a set of metric families is exposed as (a counter ``x``: ``x_total``...)."""
    return {family.name + suffix for family in families for suffix in _SUFFIXES[family.type]}


def exposed_names() -> set[str]:
    """Every series name the operator's /metrics can carry."""
    return series_names(metrics.REGISTRY.collect())


_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^}]*\}")
_RANGES = re.compile(r"\[[^\]]*\]")
_LABEL_LISTS = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_VARIABLES = re.compile(r"\$\{[^}]*\}|\$\w+")
_NAME = re.compile(r"(?<![\w:.])[a-zA-Z_:][\w:]*")
_KEYWORDS = frozenset(
    {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset", "and", "or", "unless"}
    | {"atan2", "inf", "nan", "Inf", "NaN"}
)


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects: every bare name that is neither a function or
    aggregation (followed by ``(``), a keyword, a label (inside ``{}`` or a ``by (...)`` list), a
    string, a duration, nor a Grafana variable (``$__rate_interval``, ``${store}``)."""
    text = _STRING.sub('""', expr)
    text = _MATCHERS.sub(" ", text)
    text = _RANGES.sub(" ", text)
    text = _LABEL_LISTS.sub(" ", text)
    text = _VARIABLES.sub(" ", text)
    names = set()
    for match in _NAME.finditer(text):
        rest = text[match.end() :].lstrip()
        if rest.startswith("(") or match.group() in _KEYWORDS:
            continue
        names.add(match.group())
    return names


def promtool() -> Path:
    """The promtool binary (`make tools` links it into .tools/bin); the test is skipped without one."""
    linked = TOOLS / "promtool"
    if linked.exists():
        return linked
    found = shutil.which("promtool")
    if found is None:
        pytest.skip("promtool missing: run `make tools` (Debian's prometheus package)")
    return Path(found)


_CLASSIC_SUFFIXES = {"histogram": ("_bucket", "_count", "_sum"), "summary": ("", "_count", "_sum")}


def declared_series(exposition: str) -> set[str]:
    """The series names a /metrics page (Prometheus' text format) declares in its `# TYPE` lines,
    so a labelled metric with no series yet counts. In this format a counter's TYPE line already
    carries its `_total` name."""
    declared = re.findall(r"^# TYPE (\S+) (\S+)$", exposition, flags=re.MULTILINE)
    return {name + suffix for name, kind in declared for suffix in _CLASSIC_SUFFIXES.get(kind, ("",))}
