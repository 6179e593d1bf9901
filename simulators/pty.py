"""A connected pair of pseudo-terminals (socat) to run Modbus RTU without hardware.

Linux ptys accept 8 data bits without parity only: serve and connect with
``parity="N"``, ``bytesize=8`` (other settings fail with EINVAL). The baud rate
is accepted and ignored, so RTU over a pty runs at memory speed.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from asyncio.subprocess import DEVNULL, PIPE, Process
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

_START_TIMEOUT_S = 5.0
_STOP_TIMEOUT_S = 5.0
_READY = "starting data transfer loop"
"""What ``socat -d -d`` logs once both ptys exist and bytes flow."""


@dataclass(frozen=True)
class PtyPair:
    """Two linked serial devices: bytes written to one are read from the other."""

    server_end: Path
    client_end: Path
    pid: int


@asynccontextmanager
async def pty_pair(
    directory: Path, *, names: tuple[str, str] = ("tty-server", "tty-client")
) -> AsyncIterator[PtyPair]:
    """Run ``socat`` linking two ptys as ``directory/names[0]`` and ``directory/names[1]``.

    ``directory`` must exist. The links are usable when the block is entered;
    socat is terminated (killed if it lingers) and reaped on exit, which also
    removes the links.
    """
    binary = shutil.which("socat")
    if binary is None:
        raise FileNotFoundError("socat is not installed (Debian: apt-get install socat)")
    server_end, client_end = directory / names[0], directory / names[1]
    process = await asyncio.create_subprocess_exec(
        binary,
        "-d",
        "-d",
        f"pty,raw,echo=0,link={server_end}",
        f"pty,raw,echo=0,link={client_end}",
        stdin=DEVNULL,
        stdout=DEVNULL,
        stderr=PIPE,
    )
    try:
        await asyncio.wait_for(_until_ready(process), _START_TIMEOUT_S)
        yield PtyPair(server_end=server_end, client_end=client_end, pid=process.pid)
    finally:
        await _terminate(process)


async def _until_ready(process: Process) -> None:
    if process.stderr is None:
        raise RuntimeError("socat's stderr is not a pipe")
    seen: list[str] = []
    while line := await process.stderr.readline():
        text = line.decode(errors="replace").strip()
        if _READY in text:
            return
        seen.append(text)
    raise RuntimeError("socat exited before linking the ptys: " + " | ".join(seen))


async def _terminate(process: Process) -> None:
    """Terminate, then kill after a grace period; always reap (no zombie left)."""
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):  # exited, not yet reaped
            process.terminate()
        try:
            await asyncio.wait_for(process.wait(), _STOP_TIMEOUT_S)
        except TimeoutError:
            process.kill()
            await process.wait()
