"""A Modbus peer that shares no code with us: libmodbus 3.1 serving a register image.

tests/peers/libmodbus_image_server.c is compiled with gcc; the tests write the image (one
``UNIT TABLE ADDRESS VALUE`` line per register or bit) and this module starts the server
on a free loopback port and stops it again.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
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
    path = directory / f"image-{free_port()}.txt"
    path.write_text("".join(f"{line}\n" for line in image))
    port = free_port()
    process = subprocess.Popen(
        [str(binary), str(port), str(path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_for_port(port)
        yield port
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
