"""What a pushed file must not do, whatever ``check`` says of it: write a secret in
clear (it passes through the broker), leave the agent unreachable (no
``remote_config:``), rename the plant (its topics would change under it).

The secrets rule runs before validation (:func:`secrets_problems`): a secret in clear
that YAML cannot read (an alias with no anchor, an unknown tag) would otherwise be
quoted by the loader's message into the retained report and the log. The problems of
a file that fails validation are passed through :func:`unquoted` as well: a problem
about a secret field says where, never what was written there.
"""

from __future__ import annotations

import re

from edge_agent.config import PlantConfig
from edge_agent.remote_config.document import ConfigDocument
from edge_agent.remote_config.secrets import is_secret_field, secrets_in_clear
from edge_agent.remote_config.verify import Refusal

#: ``<file>:<line>: <field path>: <message>``: the shape of a loader's problem.
_PROBLEM = re.compile(r"^(?P<where>.*?:\d+: )(?P<path>[\w.\[\]-]+): (?P<message>.*)$", re.S)


def refusal(document: ConfigDocument, check: str, reason: str, problems: list[str]) -> Refusal:
    """A refusal of a verified document (it names it)."""
    return Refusal(
        check, reason, tuple(problems), document.version, document.sha256, document.digest
    )


def secrets_problems(document: ConfigDocument) -> Refusal | None:
    """The refusal of a file that writes a secret in clear, or None."""
    clear = secrets_in_clear(document.file.decode("utf-8", errors="replace"), document.name)
    if not clear:
        return None
    return refusal(
        document,
        "secrets",
        f"{document.name} writes a secret (a password, token or key) in clear; "
        "a pushed file refers to secrets as ${VAR}, set on the gateway",
        clear,
    )


def lock_out(new: PlantConfig, plant: str, document: ConfigDocument) -> Refusal | None:
    """The refusal of a file that would leave the agent unreachable, or None."""
    if new.remote_config is None:
        return refusal(
            document,
            "lockout",
            f"{document.name} has no remote_config: section: the agent would take no "
            "further document; keep it (with the keys that sign the next one)",
            [],
        )
    if new.plant.name != plant:
        return refusal(
            document,
            "lockout",
            f"{document.name} renames the plant to {new.plant.name!r}: its topics would "
            f"change under it; this agent stays {plant!r}",
            [],
        )
    return None


def unquoted(problems: list[str]) -> list[str]:
    """``problems`` with the message of each about a secret field replaced: a loader's
    message may quote the value, which a pushed file must not publish."""
    shown = []
    for problem in problems:
        match = _PROBLEM.match(problem)
        if match is not None:
            field = re.sub(r"\[\d+\]", "", match["path"]).rsplit(".", 1)[-1]
            if is_secret_field(field):
                problem = (
                    f"{match['where']}{match['path']}: not valid (the value of a secret "
                    "field is not shown)"
                )
        shown.append(problem)
    return shown
