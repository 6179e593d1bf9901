"""A Modbus peer that shares no code with us: libmodbus 3.1 serving a register image.

tests/peers/libmodbus_image_server.c is compiled with gcc; the tests write the image (one
``UNIT TABLE ADDRESS VALUE`` line per register or bit) and this module starts the server
on a free loopback port and stops it again. :func:`writable_server` starts it taking
writes (over TCP, or RTU on a tty), and :class:`ServerState` reads what it holds and
which requests it received from its state files, without asking it over Modbus.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.servers import free_port, wait_for_port

SOURCE = Path(__file__).resolve().parent / "peers" / "libmodbus_image_server.c"


def compile_image_server(directory: Path) -> Path:
    """The image server, compiled into ``directory``."""
    if shutil.which("gcc") is None or not Path("/usr/include/modbus/modbus.h").exists():
        pytest.fail("needs gcc and libmodbus-dev (apt-get install gcc libmodbus-dev)")
    binary = directory / SOURCE.stem
    command = ["gcc", "-Wall", "-Wextra", "-Werror", "-O1", "-I/usr/include/modbus"]
    command += ["-o", str(binary), str(SOURCE), "-lmodbus"]
    subprocess.run(command, check=True, capture_output=True, timeout=120)
    return binary


@contextmanager
def image_server(binary: Path, image: Iterable[str], directory: Path) -> Iterator[int]:
    """Serve ``image`` on 127.0.0.1; yields the port."""
    port = free_port()
    with _server(binary, str(port), image, directory, None):
        wait_for_port(port)
        yield port


@dataclass(frozen=True)
class ServerState:
    """The state files of a writable server: what it holds now, what it was asked."""

    path: Path

    def image(self) -> dict[tuple[int, str, int], int]:
        """(unit, table, address) -> value, as the server holds it after its last request."""
        held = {}
        for line in self.path.read_text().splitlines():
            unit, table, address, value = line.split()
            held[int(unit), table, int(address)] = int(value)
        return held

    def registers(self, unit: int, address: int, count: int) -> list[int]:
        image = self.image()
        return [image[unit, "holding", address + i] for i in range(count)]

    def requests(self) -> list[tuple[int, int, int, int]]:
        """(unit, function, address, quantity or value) of every request, in order."""
        log = self.path.with_name(self.path.name + ".log")
        if not log.exists():
            return []
        asked = []
        for line in log.read_text().splitlines():
            unit, function, address, count = map(int, line.split())
            asked.append((unit, function, address, count))
        return asked


@contextmanager
def writable_server(
    binary: Path, image: Iterable[str], directory: Path, tty: Path | None = None
) -> Iterator[tuple[int, ServerState]]:
    """Serve ``image`` taking writes, on 127.0.0.1 (yields its port) or as an RTU slave on
    ``tty`` (yields 0), with its :class:`ServerState`."""
    state = directory / f"state-{free_port()}.txt"
    port = 0 if tty is not None else free_port()
    with _server(binary, str(tty) if tty is not None else str(port), image, directory, state):
        if tty is None:
            wait_for_port(port)
        else:
            _wait_for(state)
        yield port, ServerState(state)


def _wait_for(path: Path, timeout: float = 10.0) -> None:
    """Until the server wrote its first state (it then serves the line)."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"the libmodbus server did not start ({path} missing)")
        time.sleep(0.02)


@contextmanager
def _server(
    binary: Path, endpoint: str, image: Iterable[str], directory: Path, state: Path | None
) -> Iterator[None]:
    path = directory / f"image-{free_port()}.txt"
    path.write_text("".join(f"{line}\n" for line in image))
    command = [str(binary), endpoint, str(path)] + ([str(state)] if state is not None else [])
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def registers(unit: int, table: str, address: int, words: Iterable[int]) -> list[str]:
    """Image lines for consecutive registers (or bits) from ``address``."""
    return [f"{unit} {table} {address + i} {w}" for i, w in enumerate(words)]


def float32_words(value: float, word_swap: bool = False) -> list[int]:
    """The two registers of a float32, high word first (ABCD) or low word first (CDAB)."""
    high, low = struct.unpack(">HH", struct.pack(">f", value))
    return [low, high] if word_swap else [high, low]
