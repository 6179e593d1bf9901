"""``read`` and ``probe`` against a Modbus server we did not write: libmodbus 3.1 in C.

The server (tests/peers/libmodbus_image_server.c, compiled here with gcc) serves the image
below: floats in ABCD and CDAB, a scaled uint16, a hole that answers illegal data address,
a second unit id, silence for every other id. ``mbpoll`` (another independent client)
cross-checks one read.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_agent.cli import main
from tests.libmodbus_peer import compile_image_server, float32_words, image_server, registers
from tests.servers import free_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


#: Unit 1, input registers: 230.1 float32 ABCD at 0, 231.4 float32 CDAB at 2, 2325 (x0.1 =
#: 232.5 V) at 4, -120 int16 at 5, a hole at 6-9 (exception 2), 123456789 uint32 at 10;
#: holding 0-3: 1 2 3 4; coils 0-7: 1 0 1 1 0 0 0 1. Unit 7, holding 0-1: 0.93 float32
#: ABCD (a power factor). Any other unit id: no answer at all.
IMAGE = [
    *registers(1, "input", 0, float32_words(230.1)),
    *registers(1, "input", 2, float32_words(231.4, word_swap=True)),
    *registers(1, "input", 4, [2325, -120 & 0xFFFF]),
    *registers(1, "input", 10, [123456789 >> 16, 123456789 & 0xFFFF]),
    *registers(1, "holding", 0, [1, 2, 3, 4]),
    *registers(1, "coil", 0, [1, 0, 1, 1, 0, 0, 0, 1]),
    *registers(7, "holding", 0, float32_words(0.93)),
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``tcp://127.0.0.1:PORT`` of a running libmodbus server with the map above."""
    directory = tmp_path_factory.mktemp("libmodbus")
    with image_server(compile_image_server(directory), IMAGE, directory) as port:
        yield f"tcp://127.0.0.1:{port}"


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def _row(text: str, type_: str) -> list[str]:
    """The cells of one row of read's decode table."""
    (line,) = [line for line in text.splitlines() if line.split()[:1] == [type_]]
    return line.split()


def test_read_prints_registers_and_every_decoding(
    server: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = _run(capsys, "read", server, "--table", "input", "--address", "0", "--count", "4")
    assert code == 0, out
    assert "unit 1, input 0-3 (function 4): answered" in out
    for hex_word in ("0x4366", "0x199A", "0x6666", "0x4367"):  # 230.1 ABCD, 231.4 CDAB
        assert hex_word in out
    assert _row(out, "float32")[1] == "230.1"  # the ABCD column


def test_read_one_type_and_byte_order(server: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = _run(
        capsys,
        "read",
        server,
        "--table",
        "input",
        "--address",
        "2",
        "--type",
        "float32",
        "--byte-order",
        "cdab",
    )
    assert code == 0, out
    assert "float32 CDAB at input 2: 231.4" in out
    code, out = _run(
        capsys,
        "read",
        server,
        "--table",
        "input",
        "--address",
        "4",
        "--type",
        "uint16",
        "--scale",
        "0.1",
    )
    assert "uint16 ABCD x0.1 at input 4: 232.5" in out
    code, out = _run(capsys, "read", server, "--table", "coil", "--address", "0", "--count", "8")
    assert code == 0
    bits = [line.split()[1] for line in out.splitlines()[1:]]
    assert bits == ["1", "0", "1", "1", "0", "0", "0", "1"]


def test_exceptions_and_timeouts_are_explained_with_exit_1(
    server: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = _run(capsys, "read", server, "--table", "input", "--address", "6")
    assert code == 1
    assert "exception 2 (illegal data address)" in out
    assert "no readable register at input 6-7" in out
    assert "try --address 5" in out
    code, out = _run(capsys, "read", server, "--unit", "9", "--address", "0", "--timeout", "0.3")
    assert code == 1
    assert "no answer from unit 9 within 0.3 s" in out
    assert "wrong unit id" in out


def test_usage_and_connection_errors(server: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = _run(capsys, "read", "192.168.1.10:502", "--address", "0")
    assert code == 2
    assert "tcp://192.168.1.10:502" in out  # how to write it
    code, out = _run(capsys, "read", server, "--address", "0", "--type", "float")
    assert code == 2
    assert "did you mean float32?" in out
    code, out = _run(capsys, "read", server, "--unit", "0", "--address", "0")
    assert code == 2
    assert "broadcast" in out
    code, out = _run(capsys, "probe", server, "--address", "0", "--expect", "230")
    assert code == 2
    assert "LOW..HIGH" in out
    code, out = _run(capsys, "read", f"tcp://127.0.0.1:{free_port()}", "--address", "0")
    assert code == 3
    assert "connection refused" in out


@pytest.mark.parametrize(
    ("args", "likeliest", "tag"),
    [
        (
            ("--table", "input", "--address", "0", "--expect", "220..240"),
            "likeliest: float32 ABCD at address 0 = 230.1",
            "- {name: value, table: input, address: 0, type: float32}",
        ),
        (
            ("--table", "input", "--address", "2", "--expect", "220..240"),
            "likeliest: float32 CDAB at address 2 = 231.4",
            "- {name: value, table: input, address: 2, type: float32, byte_order: CDAB}",
        ),
        (
            ("--table", "input", "--address", "4", "--expect", "220..240"),
            "likeliest: uint16 ABCD x0.1 at address 4 = 232.5",
            "- {name: value, table: input, address: 4, type: uint16, scale: 0.1}",
        ),
        (
            ("--unit", "7", "--address", "0", "--expect", "0.9..1.0"),
            "likeliest: float32 ABCD at address 0 = 0.93",
            "- {name: value, table: holding, address: 0, type: float32}",
        ),
        (
            ("--table", "input", "--address", "5", "--expect=-15..-10"),
            "likeliest: int16 ABCD x0.1 at address 5 = -12.0",
            "- {name: value, table: input, address: 5, type: int16, scale: 0.1}",
        ),
    ],
)
def test_probe_ranks_the_true_decoding_first(
    server: str,
    capsys: pytest.CaptureFixture[str],
    args: tuple[str, ...],
    likeliest: str,
    tag: str,
) -> None:
    code, out = _run(capsys, "probe", server, *args)
    assert code == 0, out
    assert likeliest in out
    assert tag in out


def test_probe_with_nothing_in_range_exits_1(
    server: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = _run(capsys, "probe", server, "--address", "0", "--expect", "220..240")
    assert code == 1
    assert "no decoding falls in 220..240" in out


def test_scan_units_finds_both_units(server: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = _run(
        capsys, "probe", server, "--scan-units", "1..8", "--timeout", "0.2", "--pause", "0"
    )
    assert code == 0, out
    assert out.splitlines()[0].startswith("scanning unit ids 1..8: 8 requests")
    assert "8 unit ids asked; devices at: 1, 7" in out


def test_scan_registers_maps_the_hole(server: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = _run(
        capsys,
        "probe",
        server,
        "--table",
        "input",
        "--scan-registers",
        "--from",
        "0",
        "--to",
        "19",
        "--block",
        "8",
        "--pause",
        "0",
    )
    assert code == 0, out
    spans = [line.split() for line in out.splitlines() if line.startswith("  ")]
    assert [(s[0], " ".join(s[3:])) for s in spans] == [
        ("0-5", "readable"),
        ("6-9", "hole: exception 2 (illegal data address)"),
        ("10-11", "readable"),
        ("12-19", "hole: exception 2 (illegal data address)"),
    ]


def test_scan_registers_of_an_empty_table_finds_only_holes(
    server: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = _run(
        capsys,
        "probe",
        server,
        "--unit",
        "7",
        "--table",
        "coil",
        "--scan-registers",
        "--to",
        "15",
        "--pause",
        "0",
    )
    # libmodbus answers exception 2 for a table of size 0: every address is a hole.
    assert code == 1
    assert "0-15" in out


def test_mbpoll_reads_the_same(server: str, capsys: pytest.CaptureFixture[str]) -> None:
    """An independent client agrees on the raw registers and on the float32 ABCD value."""
    if shutil.which("mbpoll") is None:
        pytest.fail("needs mbpoll (apt-get install mbpoll)")
    port = server.rsplit(":", 1)[1]
    mbpoll = ["mbpoll", "-m", "tcp", "-a", "1", "-r", "1", "-1", "-p", port, "127.0.0.1"]
    raw = subprocess.run(
        [*mbpoll[:-1], "-t", "3:hex", "-c", "4", "127.0.0.1"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    theirs = [line.split()[-1] for line in raw.splitlines() if line.startswith("[")]
    as_float = subprocess.run(
        [*mbpoll[:-1], "-t", "3:float", "-B", "-c", "1", "127.0.0.1"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    (their_float,) = [line.split()[-1] for line in as_float.splitlines() if line.startswith("[")]
    code, out = _run(capsys, "read", server, "--table", "input", "--address", "0", "--count", "4")
    assert code == 0
    ours = [
        line.split()[1]
        for line in out.splitlines()
        if line.strip().startswith(("0 ", "1 ", "2 ", "3 "))
    ]
    assert ours == theirs == ["0x4366", "0x199A", "0x6666", "0x4367"]
    assert _row(out, "float32")[1] == their_float == "230.1"


def test_ctrl_c_ends_a_scan_with_what_it_found(server: str) -> None:
    # A process started in the background by a shell without job control (`cmd &` in a
    # script, as a CI runner may start the suite) has SIGINT ignored, and its children
    # inherit that: the probe would never see this test's Ctrl-C. A handled signal is
    # reset to its default in the child, so the probe starts as from a terminal.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        process = _start_scan(server)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert process.stdout is not None
    try:
        plan = process.stdout.readline()
        assert "at most 2 min 4 s" in plan  # 247 x 0.5 s, said before the first request
        for line in process.stdout:
            if line.strip().startswith("unit   1:"):
                break
        process.send_signal(signal.SIGINT)
        rest, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 130, err
    assert "devices at: 1" in rest
    assert "stopped early: interrupted" in rest


def _start_scan(server: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "edge_agent",
            "probe",
            server,
            "--scan-units",
            "1..247",
            "--timeout",
            "0.5",
            "--pause",
            "0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
    )
