"""``edge-agent simulate -c PROFILE``: serve a profile until Ctrl-C, SIGTERM or a duration.

``-c template:NAME[:PORT]`` serves a device template's register map (unit id 1) on
127.0.0.1, generated from the template file (:mod:`simulators.templates`).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from pathlib import Path
from typing import TextIO

from simulators.modbus_server import ServeError
from simulators.profile import PROFILES_DIR, Profile, ProfileError, load_profile
from simulators.serve import serve_profile

TEMPLATE_PREFIX = "template:"


def resolve_profile(name_or_path: str | Path) -> Path:
    """A path as given, or the name of a profile shipped with the package (``demo-plant``)."""
    path = Path(name_or_path)
    if path.exists() or path.suffix or len(path.parts) > 1:
        return path
    shipped = PROFILES_DIR / f"{path.name}.yaml"
    return shipped if shipped.exists() else path


def run_simulate(
    profile_path: str | Path,
    duration: float | None = None,
    *,
    out: TextIO | None = None,
) -> int:
    """Serve the profile, printing one line per server, until Ctrl-C, SIGTERM or ``duration``.

    Returns the exit code: 0 ok, 1 a server cannot start, 2 the profile is invalid.
    """
    stdout = out or sys.stdout
    try:
        profile = _load(str(profile_path))
    except ProfileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        asyncio.run(_serve(profile, duration, stdout))
    except ServeError as exc:
        cause = f": {exc.__cause__}" if exc.__cause__ else ""
        print(f"error: {exc}{cause}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass  # Ctrl-C is the normal way to stop; servers were closed on the way out
    return 0


def _load(name: str) -> Profile:
    """A profile file, a shipped profile's name, or ``template:NAME[:PORT]``."""
    if not name.startswith(TEMPLATE_PREFIX):
        path = resolve_profile(name)
        if not path.exists() and _is_template(name.partition(":")[0]):
            raise ProfileError(
                f"{name}: no such profile file or shipped profile; "
                f"did you mean -c {TEMPLATE_PREFIX}{name}? (it serves that template's registers)"
            )
        return load_profile(path)
    from simulators.templates import load_bundled, template_profile  # lazy: the agent's config

    template, _, port = name[len(TEMPLATE_PREFIX) :].partition(":")
    if port and not port.isdigit():
        raise ProfileError(f"{name}: the port after the template name is a number")
    return template_profile(load_bundled(template), port=int(port or 0))


def _is_template(name: str) -> bool:
    from edge_agent.config.template_files import library  # lazy: the agent's config

    return name in library()


async def _serve(profile: Profile, duration: float | None, out: TextIO) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError, RuntimeError):  # not on the main thread
        loop.add_signal_handler(signal.SIGTERM, stop.set)
    try:
        async with serve_profile(profile) as plant:
            print(f"simulating {profile.name!r} (Ctrl-C to stop)", file=out)
            for line in plant.describe():
                print(f"  {line}", file=out)
            out.flush()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), duration)
    finally:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.remove_signal_handler(signal.SIGTERM)
