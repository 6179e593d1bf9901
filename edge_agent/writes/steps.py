"""The gate's checks that need no device: 1 (well formed), 2 (signature), 5 (target).

Pure functions of the request and the plant's write policy, each raising
:class:`Refused` with its own sentence; :mod:`edge_agent.writes.service` runs them in
the contract's order with the checks that need the device.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from edge_agent.config.writes import CommandsConfig
from edge_agent.writes.model import WriteRequest, WriteValue
from edge_agent.writes.policy import CallableMethod, PlantWrites, ValueRefused, WritableTag
from edge_agent.writes.signing import signature_ok

#: A command's id: what the MQTT schema allows, so it is safe in logs and file names.
ID_PATTERN = re.compile(r"[A-Za-z0-9_.:-]{1,128}")

_T = TypeVar("_T")


class Refused(Exception):
    """The command is refused, before anything was sent; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def signature(commands: CommandsConfig, request: WriteRequest) -> bool:
    """2: True when a signature was checked and is good."""
    if commands.signatures == "off":
        return False
    if request.signed is None:
        if commands.signatures == "required" and request.channel == "mqtt":
            raise Refused("unsigned command: this plant requires signatures")
        return False
    if not commands.key:
        raise Refused("signed command but no key configured")
    if not signature_ok(commands.key, request.signed.canonical, request.signed.signature):
        raise Refused("bad signature")
    return True


def find_target(
    policy: PlantWrites, request: WriteRequest
) -> tuple[WritableTag | None, CallableMethod | None]:
    """5: the device, the tag (or method), its write: block, the channel, the user."""
    targets = policy.devices.get(request.device)
    if targets is None:
        raise Refused(f"no device named {request.device!r} in this plant")
    channels: tuple[str, ...]
    if request.tag is not None:
        tag = targets.tags.get(request.tag)
        if tag is None:
            if request.tag not in targets.all_tags:
                raise Refused(f"device {request.device} has no tag {request.tag!r}")
            raise Refused(
                f"tag {request.tag} of device {request.device} is not writable (no write: block)"
            )
        found: tuple[WritableTag | None, CallableMethod | None] = (tag, None)
        channels, what = tuple(tag.policy.channels), f"tag {tag.name}"
    else:
        method = targets.methods.get(request.method or "")
        if method is None:
            raise Refused(
                f"device {request.device} has no method {request.method!r} a command "
                "may call (only those under methods: may be called)"
            )
        found = (None, method)
        channels, what = tuple(method.channels), f"method {method.name}"
    if request.channel not in channels:
        raise Refused(
            f"{what} may not be written over {request.channel} (its channels: "
            f"{', '.join(channels)})"
        )
    if request.channel == "console" and request.identity not in policy.console_writers:
        raise Refused(
            f"console user {request.identity!r} may not write (the user needs "
            "writes: true under service.console.users)"
        )
    return found


def well_formed(request: WriteRequest) -> None:
    """1: one target, a value for a tag, an id that can be logged and remembered."""
    if not ID_PATTERN.fullmatch(request.id):
        raise Refused("malformed command: id must be 1-128 letters, digits or _ . : -")
    if not request.device:
        raise Refused("malformed command: no device")
    if (request.tag is None) == (request.method is None):
        raise Refused("malformed command: name exactly one of tag and method")
    if request.tag is not None:
        if request.value is None:
            raise Refused(f"malformed command: no value for tag {request.tag}")
        if not isinstance(request.value, bool | int | float | str):
            raise Refused("malformed command: a value is a number, true/false or a text")
    elif not all(isinstance(v, bool | int | float | str) for v in request.args.values()):
        raise Refused("malformed command: an argument is a number, true/false or a text")
    if request.channel == "mqtt" and request.issued_at_ns is None:
        raise Refused("malformed command: an MQTT command needs issued_at")


def refuse_if(reason: str) -> None:
    if reason:
        raise Refused(reason)


def checked(check: Callable[[Any, Any], _T], target: Any, value: Any) -> _T:
    try:
        return check(target, value)
    except ValueRefused as exc:
        raise Refused(str(exc)) from None


def known(method: CallableMethod | None) -> CallableMethod:
    assert method is not None
    return method


def call_text(method: str, args: Mapping[str, WriteValue] | WriteValue) -> str:
    shown = ", ".join(f"{k}={v!r}" for k, v in args.items()) if isinstance(args, Mapping) else ""
    return f"call {method}({shown})"
