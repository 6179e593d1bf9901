"""The console's commissioning page: ``read``, ``probe`` and ``run --once`` over HTTP.

``POST /console/api/commission/read``, ``/probe`` and ``/once`` (docs/CONSOLE.md). The
tools are the command line's own (:mod:`drivers.modbus.tools`,
:func:`edge_agent.oneshot.read_device_once`): the answers carry the same values and the
same lines a terminal shows, as data (:mod:`drivers.modbus.results`).

What keeps this safe beside a running agent:

* one commissioning request at a time per agent (:class:`CommissioningGate`): a second
  one is answered 409 ``busy`` at once, never queued;
* every request bounded in time (the reply timeout at most
  :data:`~edge_agent.console.commission_requests.MAX_TIMEOUT_S`, the whole request
  :func:`read_budget` / :data:`ONCE_BUDGET_S`);
* a serial port the agent polls is never opened a second time: a second opener would
  fight the poller for the port (and on most systems fail, or garble both). The request
  is refused with words that say so; the device page shows that device live. A TCP
  device gets a connection of its own;
* every call is audited: one log line ``console commissioning`` with user, action,
  target and outcome.

The lead's app mounts the handlers after its own checks (session, CSRF, the
``commission`` permission, the commissioning switch); they are not repeated here.
Protocol code stays in drivers/: it is imported when a request comes, as the command
line does.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import stat
from collections.abc import Callable, Coroutine, Iterable
from functools import partial
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Final, TypeVar

import structlog
from aiohttp import web

from edge_agent.config import DeviceConfig, PlantConfig
from edge_agent.console.commission_requests import (
    BadRequest,
    OnceBody,
    ProbeBody,
    ReadBody,
    form_words,
    parse_body,
)
from edge_agent.errors import DriverConnectError

if TYPE_CHECKING:
    from drivers.modbus.tools import Device

log = structlog.get_logger("edge_agent.console")

AUDIT_EVENT: Final = "console commissioning"
#: Seconds a ``once`` may take at most (each group is bounded by its read budget too).
ONCE_BUDGET_S: Final = 60.0

Document = dict[str, Any]
T = TypeVar("T")
#: A read or a probe request body.
B = TypeVar("B", ReadBody, ProbeBody)


def read_budget(timeout: float) -> float:
    """Seconds a read or probe may take at most: connecting and up to three requests
    (a probe retries with fewer registers), each within ``timeout``, and a margin."""
    return 4 * timeout + 1.0


class CommissioningGate:
    """One commissioning request at a time per agent: a field device (or a gateway) is
    not asked by two browsers at once, and the agent's own polling keeps its pace.

    A plain flag, not a lock: a second request is refused at once, never queued (one
    event loop, so taking the slot cannot race)."""

    def __init__(self) -> None:
        self._holder = ""

    @property
    def busy(self) -> bool:
        return bool(self._holder)

    def enter(self, what: str) -> str:
        """Take the slot for ``what`` and return ""; or what holds it, when taken."""
        if self._holder:
            return self._holder
        self._holder = what
        return ""

    def leave(self) -> None:
        self._holder = ""


class _Refused(Exception):
    """An answer given without asking any device: a 4xx, or a refusal (ok false)."""

    def __init__(self, status: HTTPStatus, document: Document, outcome: str, target: str) -> None:
        super().__init__(outcome)
        self.status = status
        self.document = document
        self.outcome = outcome
        self.target = target


def _bad(exc: BadRequest, target: str = "") -> _Refused:
    outcome = f"bad request ({exc.field or 'body'})"
    return _Refused(HTTPStatus.BAD_REQUEST, exc.document(), outcome, target)


_dumps = partial(json.dumps, allow_nan=False, default=str)


def _reply(document: Document, status: HTTPStatus = HTTPStatus.OK) -> web.Response:
    response = web.json_response(document, status=status.value, dumps=_dumps)
    response.headers["Cache-Control"] = "no-store"
    return response


def _audit(user: str, action: str, target: str, outcome: str) -> None:
    log.info(AUDIT_EVENT, user=user, action=action, target=target, outcome=outcome)


def _polled_ports(config: PlantConfig) -> dict[str, str]:
    """The serial ports the running agent polls: resolved path -> its devices' names."""
    from drivers.registry import exclusive_resource  # lazy: protocol packages

    ports: dict[str, list[str]] = {}
    for device in config.devices:
        port = exclusive_resource(device)
        if port is not None:
            ports.setdefault(os.path.realpath(port), []).append(device.name)
    return {port: ", ".join(names) for port, names in ports.items()}


def _port_in_use(port: str, devices: str, target: str) -> _Refused:
    document = {
        "ok": False,
        "refused": True,
        "outcome": "refused",
        "error": f"the agent is polling the serial port {port} ({devices}): a second "
        "opener would fight it for the port and garble both",
        "hint": f"the device page shows {devices} live; to commission on this port "
        "with read or probe, stop the agent (or take the device out of its config) first",
    }
    return _Refused(HTTPStatus.OK, document, "refused: serial port in use", target)


def _device(body: ReadBody | ProbeBody, config: PlantConfig, target: str) -> Device:
    """The body's device, checked by the tools' rules; never one on a polled serial port."""
    from drivers.modbus.tools import UsageError, device  # lazy: protocol packages

    try:
        where = device(body.target, body.unit, body.timeout)
    except UsageError as exc:
        raise _bad(BadRequest(form_words(str(exc)), exc.field), target) from None
    if where.serial_port is not None:
        real = os.path.realpath(where.serial_port)
        devices = _polled_ports(config).get(real)
        if devices is not None:
            raise _port_in_use(where.serial_port, devices, target)
        if not _is_serial_port(real):
            # Opening an arbitrary device file has effects of its own (/dev/watchdog
            # arms a reboot): only terminals are serial ports.
            raise _bad(
                BadRequest(
                    f"{where.serial_port} is not a serial port (a terminal device under "
                    "/dev: ttyS*, ttyUSB*, ttyACM*, ttyAMA*, serial/by-id/..., pts/*)",
                    "target",
                ),
                target,
            )
    return where


#: Serial ports by name: tty + letters + a number, or a pseudo-terminal.
_SERIAL_PORT = re.compile(r"/dev/(tty[A-Za-z]+[0-9]+|pts/[0-9]+)")


def _checked(
    body: B, config: PlantConfig, shape: Callable[[], object]
) -> tuple[tuple[B, Device], str]:
    """A read or probe body's device and its request ``shape`` checked by the tools' own
    rules (a 400 naming the field); the target as the audit line says it."""
    from drivers.modbus.tools import UsageError  # lazy: protocol packages

    target = _target(body)
    where = _device(body, config, target)
    try:
        shape()
    except UsageError as exc:
        raise _bad(BadRequest(form_words(str(exc)), exc.field), target) from None
    return (body, where), target


def _is_serial_port(real: str) -> bool:
    """True for a serial terminal device (``real``: the path with links resolved):
    ttyS0, ttyUSB0, ttyACM0, ttyAMA0, a pseudo-terminal; not a virtual console (tty1)."""
    if _SERIAL_PORT.fullmatch(real) is None:
        return False
    try:
        return stat.S_ISCHR(os.stat(real).st_mode)
    except OSError:
        return False


def _cannot_connect(exc: DriverConnectError, where: str) -> Document:
    return {
        "ok": False,
        "device": where,
        "outcome": "no connection",
        "error": f"cannot connect: {exc.detail or exc.reason}",
        "hint": "check the host and port (or the serial port and its settings), and that "
        "the device or gateway is powered and reachable",
    }


def _too_long(seconds: float, where: str) -> Document:
    return {
        "ok": False,
        "device": where,
        "outcome": "timeout",
        "error": f"no result within {seconds:g} s",
        "hint": "the device or the network is slow: try again, or with a longer timeout",
    }


def _outcome(document: Document) -> str:
    if document.get("ok"):
        return "found nothing" if document.get("found") is False else "ok"
    return str(document.get("outcome") or "failed")


async def _serve(
    request: web.Request,
    *,
    user: str,
    action: str,
    gate: CommissioningGate,
    check: Callable[[bytes], tuple[T, str]],
    work: Callable[[T], Coroutine[Any, Any, Document]],
) -> web.Response:
    """Check the body (``check``: body -> what to do, and the audit's target), take the
    gate, do ``work`` and answer; every way out is audited once."""
    try:
        # The app bounds the size of a body (client_max_size); parse_body a form's.
        what, target = check(await request.read())
    except BadRequest as exc:
        refused = _bad(exc)
    except _Refused as exc:
        refused = exc
    else:
        holder = gate.enter(f"{action} {target} by {user}")
        if holder:
            refused = _Refused(
                HTTPStatus.CONFLICT,
                {
                    "error": "busy",
                    "detail": f"another commissioning request is running ({holder}); "
                    "one at a time per agent: try again when it is done",
                },
                "busy",
                target,
            )
        else:
            try:
                document = await work(what)
            except BaseException as exc:  # audited, then raised on: cancellation included
                _audit(user, action, target, f"failed: {type(exc).__name__}")
                raise
            finally:
                gate.leave()
            _audit(user, action, target, _outcome(document))
            return _reply(document)
    _audit(user, action, refused.target, refused.outcome)
    return _reply(refused.document, refused.status)


async def _bounded(seconds: float, where: str, coroutine: Coroutine[Any, Any, Any]) -> Document:
    """The tool's result document, or why there is none, within ``seconds``."""
    try:
        async with asyncio.timeout(seconds):
            result = await coroutine
    except DriverConnectError as exc:
        return _cannot_connect(exc, where)
    except TimeoutError:
        return _too_long(seconds, where)
    document: Document = result.document()
    return document


# ---------------------------------------------------------------------- handlers


async def commission_read(
    request: web.Request, *, user: str, gate: CommissioningGate, config: PlantConfig
) -> web.Response:
    """``POST /console/api/commission/read``: ``edge-agent read`` (``config``: the
    running config, for the serial ports the agent polls)."""
    from drivers.modbus.tools import read_result, read_shape, table_of

    def check(raw: bytes) -> tuple[tuple[ReadBody, Device], str]:
        body = parse_body(ReadBody, raw)
        return _checked(
            body,
            config,
            lambda: read_shape(
                table_of(body.table),
                body.address,
                body.count,
                body.type,
                body.byte_order,
                body.scale,
            ),
        )

    async def work(what: tuple[ReadBody, Device]) -> Document:
        body, where = what
        read = read_result(
            where,
            table=table_of(body.table),
            address=body.address,
            count=body.count,
            type_=body.type,
            byte_order=body.byte_order,
            scale=body.scale,
        )
        return await _bounded(read_budget(body.timeout), where.describe(), read)

    return await _serve(request, user=user, action="read", gate=gate, check=check, work=work)


async def commission_probe(
    request: web.Request, *, user: str, gate: CommissioningGate, config: PlantConfig
) -> web.Response:
    """``POST /console/api/commission/probe``: ``edge-agent probe --expect`` (``config``
    as for read)."""
    from drivers.modbus.tools import check_probe, probe_result, table_of

    def check(raw: bytes) -> tuple[tuple[ProbeBody, Device], str]:
        body = parse_body(ProbeBody, raw)
        return _checked(
            body, config, lambda: check_probe(table_of(body.table), body.address, body.count)
        )

    async def work(what: tuple[ProbeBody, Device]) -> Document:
        body, where = what
        probe = probe_result(
            where,
            table=table_of(body.table),
            address=body.address,
            low=body.low,
            high=body.high,
            count=body.count,
            scales=body.scales,
            top=body.top,
        )
        return await _bounded(read_budget(body.timeout), where.describe(), probe)

    return await _serve(request, user=user, action="probe", gate=gate, check=check, work=work)


async def commission_once(
    request: web.Request, *, user: str, gate: CommissioningGate, config: PlantConfig
) -> web.Response:
    """``POST /console/api/commission/once``: every group of one device of the running
    ``config`` read once, on a connection of its own: the ``run --once --json`` document
    for it, with ``ok`` and the terminal's lines in ``text``."""
    from drivers.registry import exclusive_resource  # lazy: protocol packages
    from edge_agent.oneshot import json_document, read_device_once, render_text

    def check(raw: bytes) -> tuple[DeviceConfig, str]:
        body = parse_body(OnceBody, raw)
        found = next((d for d in config.devices if d.name == body.device), None)
        if found is None:
            names = _names(d.name for d in config.devices)
            problem = BadRequest(
                f"no device {body.device!r} in the running config (it has {names})", "device"
            )
            raise _bad(problem, body.device)
        port = exclusive_resource(found)
        if port is not None:
            raise _port_in_use(port, _polled_ports(config)[os.path.realpath(port)], found.name)
        return found, found.name

    async def work(found: DeviceConfig) -> Document:
        try:
            async with asyncio.timeout(ONCE_BUDGET_S):
                reading = await read_device_once(config, found)
        except TimeoutError:
            return _too_long(ONCE_BUDGET_S, found.name)
        text = render_text([reading]).splitlines()
        return {"ok": True, **json_document([reading]), "text": text}

    return await _serve(request, user=user, action="once", gate=gate, check=check, work=work)


def _target(body: ReadBody | ProbeBody) -> str:
    """The audit's target: where, whom, what (a Modbus target carries no secret)."""
    return f"{body.target} unit {body.unit} {body.table} {body.address}"


def _names(names: Iterable[str]) -> str:
    listed = list(names)
    if not listed:
        return "no devices"
    more = f" and {len(listed) - 20} more" if len(listed) > 20 else ""
    return ", ".join(listed[:20]) + more
