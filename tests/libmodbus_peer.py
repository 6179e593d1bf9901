"""Build the libmodbus C servers of tests/peers/ (Modbus peers that share no code with us)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

PEERS = Path(__file__).resolve().parent / "peers"


def compile_peer(source: str, directory: Path) -> Path:
    """``tests/peers/<source>`` compiled with gcc against libmodbus, into ``directory``."""
    if shutil.which("gcc") is None or not Path("/usr/include/modbus/modbus.h").exists():
        pytest.fail("needs gcc and libmodbus-dev (apt-get install gcc libmodbus-dev)")
    binary = directory / Path(source).stem
    command = ["gcc", "-Wall", "-Wextra", "-Werror", "-O1", "-I/usr/include/modbus"]
    command += ["-o", str(binary), str(PEERS / source), "-lmodbus"]
    subprocess.run(command, check=True, capture_output=True, timeout=120)
    return binary
