"""The Grafana dashboard in deploy/ asks only for series the gateway exposes, and with
labels those series carry: a renamed metric or label must not leave it blank."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from service.telemetry.metrics import Metrics
from service.telemetry.record import CallRecord

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "switchyard-dashboard.json"


def exposed() -> dict[str, set[str]]:
    """Every sample name a gateway exposes, with the labels it carries."""
    metrics = Metrics()
    record = CallRecord("ChatService.Stream", 0.0)
    record.tokens_in = record.tokens_out = 1
    record.cost, record.ttft = 0.1, 0.2
    metrics.started(record.route)
    metrics.finished(record, 0.5)
    record.reason = "RATE_LIMITED"
    metrics.started(record.route)
    metrics.finished(record, 0.1)
    metrics.attempt("p", "success", "", 0.1)
    metrics.breaker_state("p:m", True)
    metrics.local_queue.labels("minilm").set(1)
    metrics.local_batch.labels("minilm").observe(4)
    metrics.ledger_backlog.set(2)
    metrics.cache_lookup("m", "hit")
    text = metrics.render()[0].decode()
    names: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            names.setdefault(sample.name, set()).update(sample.labels)
    return names


def test_every_query_names_an_exposed_series_and_its_labels() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    series = exposed()
    queries = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    assert len(queries) >= 12
    used = set()
    for query in queries:
        for name in re.findall(r"switchyard_[a-z_]+", query):
            assert name in series, f"{name} is not exposed (in: {query})"
            used.add(name)
        for labels in re.findall(r"by \(([^)]*)\)", query):
            for label in (x.strip() for x in labels.split(",")):
                names = re.findall(r"switchyard_[a-z_]+", query)
                assert any(label in series[n] for n in names), f"no {label!r} in {query}"
    # Every family an operator reads in the README has a panel.
    families = {re.sub(r"_(total|bucket|count|sum|created)$", "", n) for n in series}
    assert {re.sub(r"_(total|bucket|count|sum|created)$", "", n) for n in used} == families
