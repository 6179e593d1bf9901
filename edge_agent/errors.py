"""The agent's exception tree. Failures are types, never ``None`` return values."""

from __future__ import annotations


class EdgeAgentError(Exception):
    """Base of every error the agent raises on purpose."""


class ConfigError(EdgeAgentError):
    """The plant configuration is invalid; ``problems`` lists every finding, one line each.

    ``report``: problems and warnings together in line order, as ``check`` prints them
    (the problems alone when there are no warnings).
    """

    def __init__(self, problems: list[str], report: list[str] | None = None) -> None:
        self.problems = problems
        self.report = problems if report is None else report
        super().__init__("\n".join(problems))


class DriverError(EdgeAgentError):
    """A device could not be reached or read. ``reason`` is what bad samples carry."""

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason)


class DriverConnectError(DriverError):
    """The connection to the device (or its gateway / serial bus) could not be made."""


class DriverReadError(DriverError):
    """A connected device failed to answer a read usefully."""


class SinkError(EdgeAgentError):
    """A sink could not deliver; the batches stay buffered and are retried.

    ``retry_after``: seconds the far end asked us to wait (HTTP Retry-After), which
    the runner honours as the least pause before the next attempt.
    """

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        self.retry_after = retry_after
        super().__init__(message)
