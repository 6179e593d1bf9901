"""An energy baseline (ISO 50006): ordinary least squares of energy on relevant variables.

``energy = intercept + sum(coef_i x variable_i)`` per window, fitted over the windows of
a baseline period. The fit publishes what a reader needs to judge it (docs/METRICS.md,
"Baselines, EnPIs and savings"):

* ``r2 = 1 - SS_res / SS_tot``;
* ``cv_rmse = sqrt(SS_res / (n - p)) / mean(energy)``, the ASHRAE Guideline 14 form with
  ``n - p`` degrees of freedom, ``p`` = number of fitted parameters *including* the
  intercept;
* ``n``, the intercept and one coefficient per variable;
* the validity range of each variable: the lowest and highest value seen in the period.
  ISO 50006 cautions against using a model outside the conditions it was fitted on: a
  prediction there is flagged (:meth:`Fit.outside`), not refused.

A fit below the configured quality (``min_r2``, ``max_cv_rmse``) or that cannot be
computed (too few windows, a variable constant or collinear with others, energy
constant or zero on average) is kept with ``valid = False`` and a reason: it is
published, so the plant sees why, but never used for savings.

numpy is imported inside :func:`fit_baseline` only: a plant without baselines, and an
agent that loads a saved fit, never import it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

#: Relevant variables a baseline may use, and what each is per window.
VARIABLES: Final = {
    "parts_good": "good parts of the baseline's machines (their parts counters)",
    "parts_produced": "parts produced (good + scrap) by the baseline's machines",
    "run_hours": "hours the baseline's machines spent in run (operating hours)",
    "temperature": "mean outdoor temperature over the window, degC",
    "heating_degree_hours": "integral of max(0, base - T) over the window, degC x h",
    "cooling_degree_hours": "integral of max(0, T - base) over the window, degC x h",
}
#: Variables that need a temperature tag.
TEMPERATURE_VARIABLES: Final = frozenset(
    {"temperature", "heating_degree_hours", "cooling_degree_hours"}
)
#: Variables that need machines.
MACHINE_VARIABLES: Final = frozenset({"parts_good", "parts_produced", "run_hours"})


@dataclass(frozen=True, slots=True)
class QualityLimits:
    """Below ``min_r2`` or above ``max_cv_rmse`` a fit is flagged and not used."""

    min_r2: float = 0.75
    max_cv_rmse: float = 0.2


@dataclass(frozen=True, slots=True)
class Fit:
    """A fitted baseline (or one flagged invalid, with ``reason``)."""

    variables: tuple[str, ...]
    intercept: float | None
    coefficients: tuple[float, ...] | None
    r2: float | None
    cv_rmse: float | None
    n: int
    #: (min, max) of each variable over the baseline period.
    ranges: tuple[tuple[float, float], ...]
    valid: bool
    reason: str = ""

    def predict(self, x: Sequence[float]) -> float:
        """Expected energy for one window's variables (in :attr:`variables` order)."""
        if self.intercept is None or self.coefficients is None:
            raise ValueError("this fit has no coefficients: " + self.reason)
        return self.intercept + math.fsum(c * v for c, v in zip(self.coefficients, x, strict=True))

    def outside(self, x: Sequence[float]) -> list[str]:
        """The variables of ``x`` outside the validity range, as sentences."""
        out = []
        for name, value, (low, high) in zip(self.variables, x, self.ranges, strict=True):
            if not low <= value <= high:
                out.append(f"{name} {value:.6g} outside the baseline range {low:.6g} to {high:.6g}")
        return out

    def state(self) -> dict[str, Any]:
        return {
            "variables": list(self.variables),
            "intercept": self.intercept,
            "coefficients": None if self.coefficients is None else list(self.coefficients),
            "r2": self.r2,
            "cv_rmse": self.cv_rmse,
            "n": self.n,
            "ranges": [list(r) for r in self.ranges],
            "valid": self.valid,
            "reason": self.reason,
        }

    @classmethod
    def load(cls, state: dict[str, Any]) -> Fit:
        coefficients = state["coefficients"]
        return cls(
            variables=tuple(str(v) for v in state["variables"]),
            intercept=None if state["intercept"] is None else float(state["intercept"]),
            coefficients=None if coefficients is None else tuple(float(c) for c in coefficients),
            r2=None if state["r2"] is None else float(state["r2"]),
            cv_rmse=None if state["cv_rmse"] is None else float(state["cv_rmse"]),
            n=int(state["n"]),
            ranges=tuple((float(a), float(b)) for a, b in state["ranges"]),
            valid=bool(state["valid"]),
            reason=str(state["reason"]),
        )


def _invalid(variables: tuple[str, ...], n: int, reason: str) -> Fit:
    return Fit(variables, None, None, None, None, n, (), False, reason)


def fit_baseline(
    energy: Sequence[float],
    rows: Sequence[Sequence[float]],
    variables: Sequence[str],
    limits: QualityLimits,
) -> Fit:
    """Ordinary least squares of ``energy`` on ``rows`` (one row of variables per window)."""
    import numpy as np  # here, not at the top: only a plant that fits a baseline loads numpy

    names = tuple(variables)
    n, p = len(energy), len(names) + 1
    if len(rows) != n:
        raise ValueError("one row of variables per energy value")
    if n <= p:
        return _invalid(names, n, f"{n} windows: need more than {p}, the number of parameters")
    y = np.asarray(energy, dtype=float)
    x = np.asarray(rows, dtype=float).reshape(n, len(names))
    if not (np.isfinite(y).all() and np.isfinite(x).all()):
        raise ValueError("energy and variables must be finite numbers")
    ranges = tuple((float(x[:, j].min()), float(x[:, j].max())) for j in range(len(names)))
    constant = [name for name, (low, high) in zip(names, ranges, strict=True) if low == high]
    if constant:
        return _invalid(names, n, f"{', '.join(constant)} did not vary over the baseline period")
    design = np.column_stack([np.ones(n), x])
    solution, _, rank, _ = np.linalg.lstsq(design, y, rcond=None)
    if rank < p:
        return _invalid(names, n, "the variables are collinear over the baseline period")
    residuals = y - design @ solution
    ss_res = float(residuals @ residuals)
    mean = float(y.mean())
    ss_tot = float(((y - mean) ** 2).sum())
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else None
    cv_rmse = math.sqrt(ss_res / (n - p)) / mean if mean > 0 else None
    problems = []
    if r2 is None:
        problems.append("energy did not vary over the baseline period")
    elif r2 < limits.min_r2:
        problems.append(f"R2 {r2:.3f} below {limits.min_r2:g}")
    if cv_rmse is None:
        problems.append("mean energy is not positive")
    elif cv_rmse > limits.max_cv_rmse:
        problems.append(f"CV(RMSE) {cv_rmse:.3f} above {limits.max_cv_rmse:g}")
    return Fit(
        variables=names,
        intercept=float(solution[0]),
        coefficients=tuple(float(c) for c in solution[1:]),
        r2=r2,
        cv_rmse=cv_rmse,
        n=n,
        ranges=ranges,
        valid=not problems,
        reason="; ".join(problems),
    )
