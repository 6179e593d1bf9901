"""The ``service.console:`` section: the web console on the health listener.

Off unless the section is present. On a loopback listener it may run without users
(whoever can reach 127.0.0.1 is already on the gateway); on any other address it
requires a login, which the plant file's validation enforces (a console open to the
plant network without a password is refused at load, not discovered later).
Passwords are never in the file: each user has an argon2 hash (``edge-agent console
hash-password`` makes one), best given from the environment (``${CONSOLE_HASH}``).
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated

from argon2 import extract_parameters
from argon2.exceptions import InvalidHashError
from pydantic import Field, field_validator

from edge_agent.config.base import Duration, Name, Strict
from edge_agent.config.outbox import ByteSize

#: A user name as typed at the login form.
UserName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.@-]{1,64}$")]

#: argon2's encoded form: ``$argon2id$v=19$m=65536,t=3,p=4$<salt>$<hash>``.
ARGON2_PREFIXES = ("$argon2id$", "$argon2i$", "$argon2d$")


class ConsoleUser(Strict):
    name: UserName
    password_hash: str = Field(
        repr=False,
        description=(
            "argon2 hash of the password (`edge-agent console hash-password`); write "
            "${VAR} to take it from the environment. Never the password itself."
        ),
    )
    commissioning: bool = Field(
        default=False,
        description="May use the commissioning page (read, probe, read a device once).",
    )
    writes: bool = Field(
        default=False,
        description="May send write commands (to tags whose write: block lists console).",
    )

    @field_validator("password_hash")
    @classmethod
    def _argon2(cls, value: str) -> str:
        if not value.startswith(ARGON2_PREFIXES):
            # Say what it is without echoing it: it may be a password typed by mistake.
            raise ValueError(
                "not an argon2 hash (it must start with $argon2id$); make one with "
                "`edge-agent console hash-password` and never write the password itself"
            )
        try:
            extract_parameters(value)
        except InvalidHashError:
            # Else no password would ever match, and nobody would be told why.
            raise ValueError(
                "a damaged argon2 hash (cut short or edited?); make a new one with "
                "`edge-agent console hash-password`"
            ) from None
        return value


class ConsoleConfig(Strict):
    """The web console: live devices, tags, energy and OEE in a browser."""

    users: list[ConsoleUser] = Field(
        default_factory=list,
        description="Who may log in. Required when service.health.listen is not loopback.",
    )
    commissioning: bool = Field(
        default=False,
        description="Offer the commissioning page (read, probe, read a device once) to "
        "users with commissioning: true.",
    )
    history: Duration = Field(
        default=600.0,
        gt=0,
        le=86_400,
        description="How far back the live charts go (kept in memory, per tag).",
    )
    history_points: int = Field(
        default=600,
        ge=2,
        le=100_000,
        description="At most this many points per tag, whatever the poll interval.",
    )
    history_memory: ByteSize = Field(
        default=64 * 1024 * 1024,
        ge=1024 * 1024,
        description="Memory the kept history may take (about 50 bytes per point and tag): "
        "fewer points per tag on a large plant, e.g. '64MiB' keeps 134 points of 10,000 tags.",
    )
    session_timeout: Duration = Field(
        default=8 * 3600.0,
        ge=60,
        le=7 * 86_400,
        description="A login ends after this long without a request.",
    )
    key_tags: dict[Name, Name] = Field(
        default_factory=dict,
        description="Per device, the tag drawn as the plant page's sparkline; default: the "
        "meter's power, else the first numeric tag.",
    )

    @field_validator("users")
    @classmethod
    def _unique(cls, users: list[ConsoleUser]) -> list[ConsoleUser]:
        names = [user.name for user in users]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise ValueError(f"user {', '.join(twice)} is listed twice")
        return users


class HealthTls(Strict):
    """HTTPS on the health listener (console, /healthz, /metrics and /status alike)."""

    cert_file: Path = Field(description="PEM certificate chain, the server's first.")
    key_file: Path = Field(description="PEM private key of the certificate.")


def is_loopback(host: str) -> bool:
    """True for an address only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name: it may resolve to anything
