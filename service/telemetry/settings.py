"""The config's `metrics:`, `access_log:` and `tracing:` sections, as frozen settings.

Parsed and checked by service/config.py (its keys are in config_keys.py); kept here so
that the telemetry modules need nothing from the config module.
"""

from __future__ import annotations

from dataclasses import dataclass, field

ACCESS_LOG_FORMATS = ("text", "json")


@dataclass(frozen=True, slots=True)
class MetricsSettings:
    enabled: bool = True


@dataclass(frozen=True, slots=True)
class AccessLogSettings:
    enabled: bool = True
    format: str = "text"  # "text" | "json"
    log_bodies: bool = False  # prompt and completion text in each line
    path: str = "-"  # "-": standard error


@dataclass(frozen=True, slots=True)
class TracingSettings:
    """`enabled: None` leaves it to the standard OTEL_* variables (on when
    OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set)."""

    enabled: bool | None = None
    endpoint: str = ""  # OTLP/gRPC, e.g. http://collector:4317; else the OTEL_* variables
    sample_ratio: float | None = None  # else OTEL_TRACES_SAMPLER(_ARG), default 1.0
    service_name: str = ""  # else OTEL_SERVICE_NAME, default "switchyard"


@dataclass(frozen=True, slots=True)
class TelemetrySettings:
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    access_log: AccessLogSettings = field(default_factory=AccessLogSettings)
    tracing: TracingSettings = field(default_factory=TracingSettings)
