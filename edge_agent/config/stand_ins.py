"""The environment for a command that reads the plant file only to find the agent.

``edge-agent status``, ``write`` and ``audit`` need the health address or the state
directory, not the secrets: a variable the file needs but the operator's shell lacks
(the command key, a sink's password, kept in the service's environment file) gets a
stand-in that is used for nothing, so the command runs without the secret.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

from edge_agent.config.loader import load_report
from edge_agent.errors import ConfigError

#: The name in "environment variable NAME is not set" (config/builder.py).
_UNSET_VARIABLE = re.compile(r"environment variable (\w+) is not set")
#: What an unset variable stands in as.
STAND_IN = "(not set here)"


def stand_in_environment(
    path: Path | str, env: Mapping[str, str] | None = None
) -> dict[str, str] | None:
    """``env`` (the process environment) with a stand-in for every variable the file
    needs and lacks; again until none is left, so a rule that follows from a value
    (``signatures: required`` needs a key) is not reported for a stand-in. None when
    the file has other problems, or cannot be read: the caller loads it as usual and
    reports them."""
    filled = dict(os.environ if env is None else env)
    while True:
        try:
            load_report(path, filled)
        except ConfigError as exc:
            unset = {m.group(1) for p in exc.problems if (m := _UNSET_VARIABLE.search(p))}
            if not unset or unset <= filled.keys():
                return None
            filled.update(dict.fromkeys(unset, STAND_IN))
        except OSError:
            return None
        else:
            return filled
