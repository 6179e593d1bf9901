"""The ``remote_config:`` section: this agent takes its plant file, signed, over MQTT.

The local "bootstrap" part of remote configuration (docs/REMOTE_CONFIG.md): which MQTT
sink's connection carries ``edge/{plant}/config/set`` and ``.../config/state``, which
Ed25519 public keys may sign a document, and whether an applied document is undone
when devices that were online do not come back. A pushed document replaces the whole
plant file, this section included: that is how keys are rotated. Cross-field rules (the
sink exists and is an MQTT sink) are in :mod:`edge_agent.config.checks.remote_config`.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field

from edge_agent.config.base import Duration, Name, Strict


def _ed25519_public_key(text: str) -> str:
    """Refused at the key's own line when it is not an Ed25519 public key."""
    from edge_agent.remote_config.keys import KeyProblem, parse_public_key  # lazy: cryptography

    try:
        parse_public_key(text)
    except KeyProblem as exc:
        raise ValueError(str(exc)) from None
    return text


PublicKey = Annotated[str, AfterValidator(_ed25519_public_key)]


class RemoteConfigSettings(Strict):
    """Signed plant files pushed over MQTT (docs/REMOTE_CONFIG.md)."""

    sink: Name = Field(
        description="The MQTT sink (type: mqtt) whose connection carries config/set and "
        "config/state."
    )
    public_keys: list[PublicKey] = Field(
        min_length=1,
        description="Ed25519 public keys allowed to sign a plant file: base64 of the raw 32 "
        "bytes or of the DER key (what `edge-agent config keygen` prints), or PEM.",
    )
    rollback_after: Duration = Field(
        default=0.0,
        ge=0,
        le=86_400,
        description="After applying a document, put the last known good file back when "
        "devices that were online before are not online again within this time; 0: off.",
    )
    max_age: Duration = Field(
        default=300.0,
        gt=0,
        le=7 * 86_400,
        description="A document signed (issued_at) longer ago than this, or this far in "
        "the future, is refused: a copy kept on the broker (retained) or captured cannot "
        "be applied later. The gateway's clock must be synchronised.",
    )
