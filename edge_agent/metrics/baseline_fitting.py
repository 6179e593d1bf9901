"""When a baseline is fitted, where its fit is kept, and how it is published.

* ``fit: {csv: path}``: fitted at start from the CSV.
* ``fit: {from, to}``: fitted from the agent's own recorded windows
  (:mod:`edge_agent.metrics.window_history`) as soon as the period is over: at the close
  of its last window, or, if the agent was down then, at the first close pass after
  start in which no restored window of the period is still open (:meth:`fit_if_due`):
  a window left open across the downtime closes first and is in the fit, which is then
  saved for good. Only windows recorded
  under the baseline's current settings (:attr:`BaselineSpec.record_key`), with the
  minimum coverage and every variable known go into the fit.

A fit is saved (``baseline-<name>.fit.json`` in the state directory, atomically) with a
key of everything it depends on (meters, machines, window, variables, temperature, the
fit source and the CSV's content, the quality limits). At start a saved fit with the
same key is loaded as it is: no refit, and numpy is not imported. Any change of those
settings refits.

The ``baseline`` family (docs/METRICS.md): ``r2``, ``cv_rmse``, ``n``, ``intercept``,
``coef_<variable>``, ``min_<variable>`` / ``max_<variable>`` (the validity range) and
``valid`` (1/0, its reason when 0), published after a fit and with each ``1d`` window.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import structlog

from edge_agent.metrics.baseline import Fit, fit_baseline
from edge_agent.metrics.baseline_inputs import BaselineSpec
from edge_agent.metrics.output import metric_batch
from edge_agent.metrics.specs import Context
from edge_agent.metrics.store import StateStore
from edge_agent.metrics.tracks import OpenWindow
from edge_agent.metrics.window_history import CsvError, Record, WindowHistory, read_csv
from edge_agent.metrics.windows import DAY, NS_PER_S
from edge_agent.model import Quality, SampleBatch

log = structlog.get_logger("edge_agent.metrics")


def baseline_names(variables: tuple[str, ...]) -> tuple[str, ...]:
    """Names of a baseline batch, in order."""
    return (
        "r2",
        "cv_rmse",
        "n",
        "intercept",
        *(f"coef_{v}" for v in variables),
        *(f"min_{v}" for v in variables),
        *(f"max_{v}" for v in variables),
        "valid",
    )


class BaselineFitting:
    """The fit of one baseline: loaded, made from CSV or history, saved, published."""

    def __init__(
        self,
        spec: BaselineSpec,
        history: WindowHistory,
        store: StateStore | None,
        started_ns: int,
        min_coverage: float,
    ) -> None:
        self.spec = spec
        self.history = history
        self._store = store
        self._min_coverage = min_coverage
        self.fit: Fit | None = None
        #: Why there is no fit yet (or it cannot be made).
        self.reason = ""
        #: A fit was made or loaded and is not published yet.
        self.announce = False
        #: Fits made by this process (a restart with an unchanged config makes none).
        self.fits_made = 0
        #: The period ended before this start: fit once its restored windows have closed.
        self.due = False
        if self._load():
            return  # published when it was made; each day's batch repeats it
        if spec.csv is not None:
            self._fit_csv()
        elif spec.period is not None and started_ns >= spec.period[1]:
            self.due = True
            self.reason = "not fitted yet: waiting for the baseline period's last windows"
        else:
            self.reason = f"not fitted yet: the baseline period ends {self._period_end()}"

    def _period_end(self) -> str:
        assert self.spec.period is not None
        end = dt.datetime.fromtimestamp(self.spec.period[1] / NS_PER_S, dt.UTC)
        return end.strftime("%Y-%m-%d %H:%M UTC")

    # ------------------------------------------------------------------ fitting

    def _load(self) -> bool:
        if self._store is None:
            return False
        saved = self._store.load()
        if saved is None or saved.get("fit_key") != self.spec.fit_key:
            return False
        try:
            self.fit = Fit.load(saved["fit"])
        except (KeyError, TypeError, ValueError) as exc:
            log.warning("saved baseline fit unreadable; fitting again", error=str(exc))
            return False
        log.info("baseline fit loaded", baseline=self.spec.name, valid=self.fit.valid)
        return True

    def _fit_csv(self) -> None:
        assert self.spec.csv is not None
        try:
            records = read_csv(self.spec.csv, list(self.spec.variables))
        except CsvError as exc:
            self.reason = f"baseline CSV unusable: {exc}"
            log.error("baseline not fitted", baseline=self.spec.name, reason=self.reason)
            return
        self._fit(records)

    def _fit_history(self) -> None:
        assert self.spec.period is not None
        start, end = self.spec.period
        recorded = self.history.between(start, end)
        # Records made under other settings (another window kind, other meters) hold
        # other quantities: fitting them would give a baseline of something else.
        mine = [r for r in recorded if r.key == self.spec.record_key]
        usable = [
            r
            for r in mine
            if r.coverage >= self._min_coverage
            and r.energy_kwh is not None
            and all(r.variables.get(v) is not None for v in self.spec.variables)
        ]
        other = len(recorded) - len(mine)
        note = (
            f"; {other} windows of the period were recorded under other settings (window, "
            "meters, machines or temperature changed since) and are not used"
            if other
            else ""
        )
        self._fit(usable, note)

    def _fit(self, records: list[Record], note: str = "") -> None:
        energy = [r.energy_kwh for r in records if r.energy_kwh is not None]
        rows = [[r.variables[v] or 0.0 for v in self.spec.variables] for r in records]
        self.fit = fit_baseline(energy, rows, self.spec.variables, self.spec.quality)
        if note and not self.fit.valid:
            self.fit = dataclasses.replace(self.fit, reason=self.fit.reason + note)
        self.fits_made += 1
        self.announce = True
        fit = self.fit
        log.info(
            "baseline fitted",
            baseline=self.spec.name,
            n=fit.n,
            r2=fit.r2,
            cv_rmse=fit.cv_rmse,
            valid=fit.valid,
            reason=fit.reason or None,
        )
        if self._store is not None:
            self._store.save({"fit_key": self.spec.fit_key, "fit": fit.state()})

    def window_closed(self, end_ns: int) -> None:
        """Fit from history once the window closing the baseline period has closed."""
        period = self.spec.period
        if self.fit is None and period is not None and end_ns >= period[1]:
            self.due = False
            self._fit_history()

    def fit_if_due(self, open_starts: list[int]) -> None:
        """Make a fit that was due at start, unless a window of the period (``open_starts``:
        the starts of the meters' open windows of the baseline's kind) is still open."""
        period = self.spec.period
        if not self.due or period is None:
            return
        if any(start < period[1] for start in open_starts):
            return
        self.due = False
        if self.fit is None:
            self._fit_history()

    # ------------------------------------------------------------------ using

    def usable(self) -> Fit | None:
        """The fit, if it is valid."""
        return self.fit if self.fit is not None and self.fit.valid else None

    def not_usable_reason(self) -> str:
        if self.fit is None:
            return "baseline " + self.reason
        return "baseline not valid: " + self.fit.reason

    def batch(self, window: OpenWindow[Any], ctx: Context, as_of: int | None = None) -> SampleBatch:
        """The ``baseline`` batch (see the module docstring), for ``window``'s bounds: of
        the closed day, or of the running day with ``as_of`` (a fit announced at once)."""
        self.announce = False
        variables = self.spec.variables
        names = baseline_names(variables)
        fit = self.fit
        values: list[float | None]
        if fit is None or fit.coefficients is None:
            values = [None] * (len(names) - 1) + [0.0]
            reason = self.not_usable_reason()
        else:
            values = [fit.r2, fit.cv_rmse, float(fit.n), fit.intercept, *fit.coefficients]
            values += [low for low, _ in fit.ranges] + [high for _, high in fit.ranges]
            values.append(1.0 if fit.valid else 0.0)
            reason = "" if fit.valid else self.not_usable_reason()
        batch = metric_batch(
            self.spec.name, DAY, window, "baseline", names, values, 1.0, 0.0, as_of
        )
        for index, value in enumerate(values):
            if value is None:
                batch.qualities[index] = Quality.UNCERTAIN
                batch.reasons[index] = reason
        batch.reasons[-1] = reason
        return batch
