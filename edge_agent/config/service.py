"""The ``service:`` section of the plant file: how the agent runs as a gateway service.

Health and metrics endpoint, thresholds for ``/healthz``, the MQTT status
document, the watchdog's idea of "alive", and the time sinks get to drain on stop.
Everything has a default, so a plant file without ``service:`` runs as before; the
HTTP endpoint is only opened when ``service.health`` is present (a port nobody asked
for is a port an attacker may find).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from edge_agent.config.base import Duration, Strict
from edge_agent.config.console import ConsoleConfig, HealthTls, is_loopback

#: Logger names as they appear in the ``logger`` field of every log line.
LoggerName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*$")]


class HealthConfig(Strict):
    """``/healthz`` and ``/metrics`` over plain HTTP; loopback unless told otherwise."""

    listen: str = Field(
        default="127.0.0.1",
        min_length=1,
        description="Address to bind: 127.0.0.1 (default), ::1, or a plant-network address.",
    )
    port: int = Field(default=9880, ge=0, le=65535, description="0 picks a free port.")
    sink_down_after: Duration = Field(
        default=300.0,
        gt=0,
        description="/healthz reports 503 once a sink has failed to deliver for this long.",
    )
    device_offline_after: Duration = Field(
        default=300.0,
        gt=0,
        description="/healthz reports 503 once a device has been offline for this long.",
    )
    tls: HealthTls | None = Field(
        default=None,
        description="Serve HTTPS with this certificate (the console's login cookie is then "
        "Secure). /healthz, /metrics and /status are HTTPS too.",
    )


class ServiceConfig(Strict):
    health: HealthConfig | None = Field(
        default=None, description="Leave out to run without the HTTP endpoint."
    )
    console: ConsoleConfig | None = Field(
        default=None,
        description="The web console, served on the health listener. Leave out to run "
        "without it (the default).",
    )
    status_interval: Duration = Field(
        default=60.0,
        ge=0,
        le=86_400,
        description="Seconds between retained status documents on each MQTT sink; 0 is off.",
    )
    drain_timeout: Duration = Field(
        default=5.0,
        ge=0,
        le=600,
        description=(
            "On stop, how long sinks may deliver what is buffered. Keep it well below the "
            "unit's TimeoutStopSec (30 s in systemd/edge-agent.service)."
        ),
    )
    max_loop_lag: Duration = Field(
        default=5.0,
        gt=0,
        le=3600,
        description=(
            "The systemd watchdog is only fed while the event loop reacts within this many "
            "seconds (and every poller keeps completing its polls)."
        ),
    )

    @model_validator(mode="after")
    def _console_is_guarded(self) -> ServiceConfig:
        console = self.console
        if console is None:
            return self
        if self.health is None:
            raise ValueError(
                "console: the console is served on the health listener; add service.health "
                "(listen and port)"
            )
        if not console.users and not is_loopback(self.health.listen):
            raise ValueError(
                f"console: service.health.listen is {self.health.listen}, reachable from "
                "other machines: add service.console.users (a login is required off loopback)"
            )
        return self


LogLevel = Literal["debug", "info", "warning", "error"]


# The ``logging:`` section (no docstring: it would become the JSON Schema's description).
class LoggingConfig(Strict):
    level: LogLevel = "info"
    components: dict[LoggerName, LogLevel] = Field(
        default_factory=dict,
        description=(
            "Level per logger, by the name in each line's 'logger' field, e.g. "
            "{edge_agent.scheduler: debug, edge_agent.sink.mqtt: warning, pymodbus: error}."
        ),
    )
    format: Literal["auto", "json", "console"] = Field(
        default="auto", description="auto: colour on a terminal, JSON lines otherwise."
    )
