"""The one gate every write command goes through (:class:`WriteService`).

The order of the checks is the contract's (docs/WRITES.md, "The order of the
checks") and is kept exactly: well formed, signature, time, id, target and channel,
value, rate, device state, condition, dry run, value before, one write and its
read-back, audit. Each refusal has its own sentence; nothing is sent to a device for
a refused command, and nothing is ever sent twice (a write without an answer is
resolved by reading the tag back, never by writing again).

Every command, accepted or refused, ends in one audit record (appended, fsynced, then
handed to the audit listeners: the sinks that publish ``edge/{plant}/audit``) and one
log line ``write command``. A command can only be written while the audit log can be
written: after an append failed, writes are refused until an append succeeds again.

Commands to one device run one at a time (a per-device lock, from the rate check to
the read-back); the driver shares the device's connection with the polls under its
own lock, so polls keep their interval. The policy is replaceable (:meth:`update`, on
reload) without losing the rate windows or the ids already seen.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import structlog

from edge_agent.config.writes import WriteCondition
from edge_agent.driver import (
    PreparedWrite,
    TagReading,
    WriteFailed,
    WriteOutcomeUnknown,
    WriteRefused,
    Writes,
)
from edge_agent.errors import DriverError
from edge_agent.runtime.source_runner import DeviceState
from edge_agent.writes.confirm import ReadBackResult, read_back
from edge_agent.writes.model import (
    Outcome,
    WriteRequest,
    WriteResult,
    WriteValue,
    audit_record,
)
from edge_agent.writes.policy import (
    PlantWrites,
    WritableTag,
    check_arguments,
    check_value,
    condition_met,
    describe_values,
    values_match,
)
from edge_agent.writes.ports import AuditListener, AuditStore, DeviceAccess
from edge_agent.writes.ratelimit import RateLimiter
from edge_agent.writes.scrub import clean
from edge_agent.writes.signing import IdCache, time_refusal
from edge_agent.writes.steps import (
    ID_PATTERN,
    Refused,
    call_text,
    checked,
    find_target,
    known,
    refuse_if,
    signature,
    well_formed,
)

log = structlog.get_logger("edge_agent.writes")

#: Longest wait for one driver call; the driver's own timeout is far shorter. Only a
#: driver that hangs meets it (then the device's lock is not held forever).
DRIVER_GUARD_S = 60.0

_T = TypeVar("_T")


#: The reason of a write the agent's stop cut short (the outcome is unknown).
STOPPED_MID_WRITE = (
    "the agent stopped while the write was under way: it may or may not have been applied"
)
#: The reason of a command the agent's stop cut short before its write (nothing sent).
STOPPED_BEFORE_WRITE = "the agent stopped before the write: nothing was sent"


@dataclass(slots=True)
class _Progress:
    """What is known about one command so far (for its result, whatever ends it)."""

    received_ns: int
    signed: bool = False
    id_taken: bool = False
    sent: str = ""
    before: WriteValue | None = None
    written_ns: int = 0


class WriteService:
    """:class:`~edge_agent.writes.model.WriteGate`: checks, writes, reads back, audits."""

    def __init__(
        self,
        policy: PlantWrites,
        devices: DeviceAccess,
        audit: AuditStore,
        *,
        time_ns: Callable[[], int] = time.time_ns,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        read_back_interval: float = 0.1,
    ) -> None:
        self.policy = policy
        self._devices = devices
        self._audit = audit
        self._now = time_ns
        self._sleep = sleep
        self._interval = read_back_interval
        self._rates = RateLimiter()
        self._ids = IdCache(policy.commands.max_age)
        self._locks: dict[str, asyncio.Lock] = {}
        self._listeners: list[AuditListener] = []
        #: Why the last audit append failed; "" while the log can be written.
        self._audit_error = ""

    # -- life

    def start(self) -> None:
        """Remember the ids the audit log holds from the replay window (a restart must
        not let a copy of a command that was handled before it through)."""
        problem = self._audit.ready()
        if problem:  # no write may go out that cannot be audited: refused from the start
            log.error("audit log cannot be written; writes are refused", error=problem)
            self.audit_unavailable(problem)
        since = self._now() - self._ids.keep_ns
        self._ids.seed(self._audit.recent_ids(since))

    def update(self, policy: PlantWrites) -> None:
        """Follow a reloaded plant file; rate windows and ids seen are kept. A longer
        ``max_age`` widens the window a command is valid in: the ids the shorter one had
        forgotten come back from the audit log, or a copy could be replayed."""
        longer = policy.commands.max_age > self._ids.max_age_s
        self.policy = policy
        self._ids.max_age_s = policy.commands.max_age
        if longer:
            try:
                self.start()
            except OSError as exc:  # the window's ids unknown: no write until audited again
                self.audit_unavailable(f"its ids cannot be read back: {exc}")

    def audit_unavailable(self, reason: str) -> None:
        """The audit log cannot be written (its directory cannot be made): every write
        is refused until an append succeeds (refusals are still tried, and may)."""
        self._audit_error = reason

    def add_listener(self, listener: AuditListener) -> None:
        if listener not in self._listeners:
            self._listeners.append(listener)

    def remove_listener(self, listener: AuditListener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    # -- the gate

    async def submit(self, request: WriteRequest) -> WriteResult:
        """Check, write once, read back, audit; never raises for what the request or
        the device did (that is the result)."""
        progress = _Progress(received_ns=request.received_at_ns or self._now())
        try:
            result = await self._handle(request, progress)
        except Refused as refused:
            result = self._result(request, progress, Outcome.REFUSED, refused.reason)
        except asyncio.CancelledError:
            # The agent is stopping: the command is audited before the cancellation goes
            # on. A write already under way may have reached the device (unknown); one
            # that had not begun was not sent (refused).
            if progress.written_ns:
                stopped = self._result(request, progress, Outcome.UNKNOWN, STOPPED_MID_WRITE)
            else:
                stopped = self._result(request, progress, Outcome.REFUSED, STOPPED_BEFORE_WRITE)
            self._finish(request, stopped, progress)
            raise
        self._finish(request, result, progress)
        return result

    async def _handle(self, request: WriteRequest, progress: _Progress) -> WriteResult:
        policy = self.policy
        commands = policy.commands
        if request.refusal:  # the channel could not read it as a command
            raise Refused(request.refusal)
        well_formed(request)  # 1
        progress.signed = signature(commands, request)  # 2
        now = self._now()  # 3
        refuse_if(time_refusal(request.issued_at_ns, request.expires_at_ns, now, commands.max_age))
        refuse_if(self._ids.refusal(request.id, now))  # 4
        self._ids.remember(request.id, now)
        progress.id_taken = True
        tag, method = find_target(policy, request)  # 5
        if tag is not None:  # 6
            value: WriteValue | dict[str, WriteValue] = checked(check_value, tag, request.value)
        else:
            assert method is not None
            value = checked(check_arguments, method, request.args)
        driver = self._writer(request.device)
        prepared: PreparedWrite | None = None
        if tag is not None and not isinstance(value, dict):
            prepared = await self._driver_call(driver.prepare(tag.name, value), refuse=True)
            progress.sent = prepared.sent
        else:
            progress.sent = call_text(request.method or "", value)
        limit = tag.policy.max_per_minute if tag is not None else known(method).max_per_minute
        condition = tag.policy.only_when if tag is not None else known(method).only_when
        async with self._lock(request.device):
            # 7: the rate, counted under the device's lock: no two commands race past it.
            device_limit = policy.devices[request.device].max_per_minute
            target = tag.name if tag is not None else known(method).name
            self._rates.forget_idle(self._now())
            refuse_if(self._rates.refusal(request.device, target, limit, device_limit, self._now()))
            driver = self._writer(request.device, online=True)  # 8
            if condition is not None:  # 9
                await self._condition(driver, condition)
            if request.dry_run:  # 10
                return self._result(request, progress, Outcome.DRY_RUN)
            if self._audit_error:
                raise Refused(f"audit log not writable: {self._audit_error}")
            if prepared is None:
                return await self._call(request, progress, driver, target, value)
            assert tag is not None
            return await self._write(request, progress, driver, tag, prepared)

    # -- the steps

    def _writer(self, device: str, *, online: bool = False) -> Writes:
        """The device's driver, which must be able to write; ``online``: 8, its state."""
        access = self._devices.device(device)
        if access is None:
            raise Refused(f"device {device} is not running")
        driver, state = access
        if not isinstance(driver, Writes):
            raise Refused(f"the driver of device {device} cannot write")
        if online and state is not DeviceState.ONLINE:
            raise Refused(f"device {state.value}: writes go only to a device that is online")
        return driver

    async def _condition(self, driver: Writes, condition: WriteCondition) -> None:
        """9: the condition's tag, read now (never the last poll's value)."""
        wanted = f"only while {condition.tag} is {describe_values(condition.values)}"
        reading = await self._driver_call(driver.read_tag(condition.tag), refuse=True)
        if not reading.good:
            raise Refused(f"{wanted}; it cannot be read now: {reading.reason}")
        if not condition_met(condition, reading.value):
            raise Refused(f"{wanted}; it is {reading.value}")

    async def _write(
        self,
        request: WriteRequest,
        progress: _Progress,
        driver: Writes,
        tag: WritableTag,
        prepared: PreparedWrite,
    ) -> WriteResult:
        """11 and 12: the value before, one write, its read-back."""
        before: TagReading = await self._driver_call(driver.read_tag(tag.name), refuse=True)
        progress.before = before.value if before.good else None
        progress.written_ns = self._now()
        try:
            await self._driver_call(driver.write(prepared))
        except WriteRefused as exc:
            return self._result(request, progress, Outcome.REFUSED, str(exc))
        except DriverError as exc:  # the driver's word for "not sent": no connection
            return self._result(request, progress, Outcome.REFUSED, f"nothing was sent: {exc}")
        except WriteFailed as exc:
            self._rates.sent(request.device, tag.name, progress.written_ns)
            return self._result(request, progress, Outcome.FAILED, f"the device refused it: {exc}")
        except WriteOutcomeUnknown as exc:
            self._rates.sent(request.device, tag.name, progress.written_ns)
            return await self._unknown(request, progress, driver, tag, prepared, str(exc))
        self._rates.sent(request.device, tag.name, progress.written_ns)
        check = tag.policy.read_back
        if check is False:
            return self._result(request, progress, Outcome.APPLIED)
        seen = await self._read_back(driver, tag, prepared, check.tolerance, check.within)
        if seen.matched:
            return self._result(
                request, progress, Outcome.APPLIED, read=seen.value, confirmed=seen.at_ns
            )
        return self._result(
            request,
            progress,
            Outcome.MISMATCH,
            seen.mismatch(prepared.expected, tag.unit, check.tolerance, check.within),
            read=seen.value,
        )

    async def _unknown(
        self,
        request: WriteRequest,
        progress: _Progress,
        driver: Writes,
        tag: WritableTag,
        prepared: PreparedWrite,
        error: str,
    ) -> WriteResult:
        """No answer to the write: the read-back tells whether it took (never a retry)."""
        check = tag.policy.read_back
        if check is False:
            return self._result(
                request,
                progress,
                Outcome.UNKNOWN,
                f"no answer to the write ({error}) and the tag is not read back: "
                "it may or may not have been applied",
            )
        seen = await self._read_back(driver, tag, prepared, check.tolerance, check.within)
        if seen.matched:
            return self._result(
                request,
                progress,
                Outcome.APPLIED,
                f"no answer to the write ({error}), but the device shows the value",
                read=seen.value,
                confirmed=seen.at_ns,
            )
        before = progress.before
        if before is not None and values_match(seen.value, before, check.tolerance):
            return self._result(
                request,
                progress,
                Outcome.NOT_APPLIED,
                f"no answer to the write ({error}); the device still shows the value "
                f"from before ({before}), not {prepared.expected}",
                read=seen.value,
            )
        return self._result(
            request,
            progress,
            Outcome.UNKNOWN,
            f"no answer to the write ({error}) and the read-back does not tell: "
            + seen.mismatch(prepared.expected, tag.unit, check.tolerance, check.within),
            read=seen.value,
        )

    async def _read_back(
        self, driver: Writes, tag: WritableTag, prepared: PreparedWrite, tol: float, within: float
    ) -> ReadBackResult:
        async def read() -> TagReading:
            try:
                return await self._driver_call(driver.read_tag(tag.name))
            except WriteOutcomeUnknown as exc:  # the guard's words for a hung read
                raise DriverError(str(exc)) from None

        return await read_back(
            read, prepared.expected, tol, within, self._interval, self._now, self._sleep
        )

    async def _call(
        self,
        request: WriteRequest,
        progress: _Progress,
        driver: Writes,
        method: str,
        args: WriteValue | dict[str, WriteValue],
    ) -> WriteResult:
        """12 for a method: one call; its output arguments (no read-back: a call is an
        action, not a value the device keeps)."""
        assert isinstance(args, dict)
        progress.written_ns = self._now()
        try:
            output = await self._driver_call(driver.call(method, args))
        except WriteRefused as exc:
            return self._result(request, progress, Outcome.REFUSED, str(exc))
        except DriverError as exc:  # the driver's word for "not sent": no connection
            return self._result(request, progress, Outcome.REFUSED, f"nothing was sent: {exc}")
        except WriteFailed as exc:
            self._rates.sent(request.device, method, progress.written_ns)
            return self._result(request, progress, Outcome.FAILED, f"the device refused it: {exc}")
        except WriteOutcomeUnknown as exc:
            self._rates.sent(request.device, method, progress.written_ns)
            reason = f"no answer to the call ({exc}): it may or may not have run"
            return self._result(request, progress, Outcome.UNKNOWN, reason)
        self._rates.sent(request.device, method, progress.written_ns)
        confirmed = self._now()
        result = self._result(request, progress, Outcome.APPLIED, confirmed=confirmed)
        return replace(result, output=tuple(output))

    async def _driver_call(self, call: Coroutine[Any, Any, _T], *, refuse: bool = False) -> _T:
        """One driver call under the guard. ``refuse``: nothing has been written yet, so a
        device that does not answer (or a driver that fails) refuses the command; else
        its errors go to the caller (a write's WriteFailed / WriteOutcomeUnknown)."""
        try:
            async with asyncio.timeout(DRIVER_GUARD_S):
                return await call
        except TimeoutError:
            if refuse:
                raise Refused(f"device does not answer: no reply in {DRIVER_GUARD_S:g} s") from None
            raise WriteOutcomeUnknown(f"no reply in {DRIVER_GUARD_S:g} s") from None
        except WriteRefused as exc:
            if refuse:
                raise Refused(str(exc)) from None
            raise
        except DriverError as exc:
            if refuse:
                raise Refused(f"device does not answer: {exc}") from None
            raise
        except (WriteFailed, WriteOutcomeUnknown):
            raise
        except Exception as exc:  # noqa: BLE001 - a driver's bug must not leave a command unanswered
            if refuse:
                raise Refused(f"the driver failed: {type(exc).__name__}: {exc}") from None
            raise WriteOutcomeUnknown(f"the driver failed: {type(exc).__name__}: {exc}") from None

    def _lock(self, device: str) -> asyncio.Lock:
        return self._locks.setdefault(device, asyncio.Lock())

    # -- the result, the audit, the log line

    def _result(
        self,
        request: WriteRequest,
        progress: _Progress,
        outcome: Outcome,
        reason: str = "",
        *,
        read: WriteValue | None = None,
        confirmed: int = 0,
    ) -> WriteResult:
        is_tag = request.tag is not None or request.method is None
        return WriteResult(
            id=request.id if ID_PATTERN.fullmatch(request.id) else "",
            device=request.device,
            target=(request.tag if is_tag else request.method) or "",
            outcome=outcome,
            reason=reason,
            requested=request.value if is_tag else dict(request.args),
            before=progress.before,
            read_back=read,
            # A refused command sent nothing: it must not read as if it had.
            sent="" if outcome is Outcome.REFUSED else progress.sent,
            received_at_ns=progress.received_ns,
            written_at_ns=progress.written_ns,
            confirmed_at_ns=confirmed,
            finished_at_ns=self._now(),
            target_kind="tag" if is_tag else "method",
        )

    def _finish(self, request: WriteRequest, result: WriteResult, progress: _Progress) -> None:
        if progress.id_taken:
            self._ids.remember(request.id, result.finished_at_ns, result.outcome.value)
        # Cleaned once, for the file and the topic alike: no secret leaves the agent.
        record = clean(audit_record(request, result, self.policy.plant, signed=progress.signed))
        try:
            self._audit.append(record)
        except OSError as exc:
            self._audit_error = str(exc) or type(exc).__name__
            log.error(
                "audit log not writable: this command is not in the audit log, and "
                "writes are refused until it can be written again",
                id=result.id,
                device=result.device,
                outcome=result.outcome.value,
                error=self._audit_error,
            )
        else:
            self._audit_error = ""
        for listener in list(self._listeners):
            try:
                listener(record)
            except Exception as exc:  # noqa: BLE001 - a publisher's bug must not lose the result
                log.error("audit listener failed", error=f"{type(exc).__name__}: {exc}")
        level = log.info if result.outcome in (Outcome.APPLIED, Outcome.DRY_RUN) else log.warning
        level(
            "write command",
            id=result.id,
            channel=request.channel,
            identity=request.identity,
            device=result.device,
            tag=result.target,
            outcome=result.outcome.value,
            reason=result.reason,
        )
