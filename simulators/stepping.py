"""Fixed-step clockwork and counter-based noise shared by every equipment model.

Why fixed steps on an integer millisecond grid: every random decision is taken
at a step boundary and every power value is constant within a step, so

* the state of a model at time ``t`` does not depend on how often, or in which
  increments, it was advanced to ``t`` (a poller reading once a second and a
  test jumping 24 hours at once see the same plant), and
* energy is an exact integer sum (milliwatts x milliseconds = microjoules), so
  ground truth is exact, not "close enough", and meter totals equal the sum of
  their loads to the last microjoule.

Noise is a pure function of ``(seed, channel, step)`` (splitmix64), so values
that are only displayed (voltage wobble, spindle speed) cost nothing unless read
and never perturb the random stream that drives state changes.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

UJ_PER_KWH = 3_600_000_000_000
"""Microjoules per kilowatt-hour: energy is kept as an exact integer in µJ (= mW x ms)."""

MW_PER_KW = 1_000_000
"""Milliwatts per kilowatt: power within a step is an integer number of mW."""

_MASK64 = (1 << 64) - 1


def _mix64(value: int) -> int:
    """One splitmix64 round: a fast, well-distributed 64-bit hash."""
    z = (value + 0x9E3779B97F4A7C15) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def noise_key(seed: int, channel: int) -> int:
    """Key of one noise stream; compute once, then call :func:`noise_at` per step."""
    return _mix64(_mix64(seed & _MASK64) ^ channel)


def noise_at(key: int, step: int) -> float:
    """Uniform value in [-1, 1), a pure function of the stream key and the step.

    Uniform rather than Gaussian on purpose: bounded noise keeps physical values
    (power, voltage) inside their plausible range without clamping.
    """
    return (_mix64(key ^ (step & _MASK64)) >> 11) * (2.0**-52) - 1.0


def noise(seed: int, channel: int, step: int) -> float:
    """``noise_at(noise_key(seed, channel), step)``, for one-off use."""
    return noise_at(noise_key(seed, channel), step)


def to_ms(t: float) -> int:
    """Seconds to the model's integer millisecond clock (nearest millisecond)."""
    return round(t * 1000)


class SteppedModel(ABC):
    """A model whose inputs change only at ``start + k * step``.

    Subclasses implement :meth:`_enter_step` (take the decisions for step ``k``)
    and :meth:`_leave_step` (account for one whole step). Time only moves
    forward: advancing to an earlier time is a no-op, because a wall clock that
    steps back (NTP) must not un-produce parts.
    """

    def __init__(self, *, start: float, step_s: float) -> None:
        step_ms = to_ms(step_s)
        if step_ms < 1:
            raise ValueError(f"step must be at least 1 ms, got {step_s} s")
        self._start_ms = to_ms(start)
        self._step_ms = step_ms
        self._k = 0
        self._now_ms = self._start_ms

    @property
    def start_ms(self) -> int:
        """Start of step 0, in milliseconds of the injected clock."""
        return self._start_ms

    @property
    def step_ms(self) -> int:
        """Length of one step in milliseconds."""
        return self._step_ms

    @property
    def step_index(self) -> int:
        """Index ``k`` of the step the model is in."""
        return self._k

    @property
    def now(self) -> float:
        """The model's current time in seconds of the injected clock."""
        return self._now_ms / 1000

    @property
    def elapsed_s(self) -> float:
        """Seconds since the model started."""
        return (self._now_ms - self._start_ms) / 1000

    def boundary_ms(self, k: int) -> int:
        """Start of step ``k`` in milliseconds."""
        return self._start_ms + k * self._step_ms

    def _into_step_ms(self) -> int:
        """Milliseconds between the start of the current step and now."""
        return self._now_ms - self.boundary_ms(self._k)

    def advance_to(self, t: float) -> None:
        """Advance to ``t`` seconds (rounded to the millisecond)."""
        self.advance_to_ms(to_ms(t))

    def advance_to_ms(self, t_ms: int) -> None:
        """Advance to ``t_ms`` milliseconds, crossing every step boundary on the way."""
        if t_ms <= self._now_ms:
            return
        next_ms = self.boundary_ms(self._k + 1)
        while t_ms >= next_ms:
            self._leave_step()
            self._k += 1
            self._now_ms = next_ms
            self._enter_step(self._k)
            next_ms += self._step_ms
        self._now_ms = t_ms

    @abstractmethod
    def _enter_step(self, k: int) -> None:
        """Take the decisions (state, power) that hold during step ``k``."""

    @abstractmethod
    def _leave_step(self) -> None:
        """Account for one whole step at the values chosen by :meth:`_enter_step`."""
