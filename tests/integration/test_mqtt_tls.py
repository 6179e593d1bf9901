"""MqttSink over TLS: a throw-away CA made with openssl, a real mosquitto TLS listener."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from edge_agent.config import MqttTls, PlantIdentity
from tests.mqtt_support import batch, make_sink, wait_connected
from tests.servers import LOOPBACK, Mosquitto, free_port, wait_for_port

pytestmark = pytest.mark.integration


# --------------------------------------------------------------------------- TLS


@dataclass(frozen=True, slots=True)
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path


def _openssl(*args: str | Path, cwd: Path) -> None:
    subprocess.run(["openssl", *map(str, args)], cwd=cwd, check=True, capture_output=True)


def _new_ca(directory: Path, name: str) -> tuple[Path, Path]:
    key, cert = directory / f"{name}.key", directory / f"{name}.crt"
    _openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", key, "-out", cert, "-subj", f"/CN={name}", "-days", "2",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=directory,
    )  # fmt: skip
    return cert, key


def _issue(directory: Path, ca: tuple[Path, Path], name: str, extensions: str) -> tuple[Path, Path]:
    key, csr, cert = directory / f"{name}.key", directory / f"{name}.csr", directory / f"{name}.crt"
    ext = directory / f"{name}.ext"
    ext.write_text(extensions)
    _openssl(
        "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", key, "-out", csr, "-subj", f"/CN={name}",
        cwd=directory,
    )  # fmt: skip
    _openssl(
        "x509", "-req", "-in", csr, "-CA", ca[0], "-CAkey", ca[1], "-CAcreateserial",
        "-out", cert, "-days", "2", "-extfile", ext,
        cwd=directory,
    )  # fmt: skip
    return cert, key


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    ca = _new_ca(directory, "test-ca")
    server = _issue(
        directory, ca, "broker", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"
    )
    client = _issue(directory, ca, "agent", "extendedKeyUsage=clientAuth\n")
    other = _new_ca(directory, "other-ca")
    return Pki(ca[0], server[0], server[1], client[0], client[1], other[0])


@pytest.fixture
def tls_mosquitto(tmp_path: Path, pki: Pki) -> Iterator[tuple[Mosquitto, int]]:
    """A broker with a TLS listener requiring a client certificate, plus a plain one."""
    plain_port = free_port()
    broker = Mosquitto(
        port=free_port(),
        workdir=tmp_path / "mosquitto",
        extra_config=(
            # listener options apply to the last "listener" line above: the TLS one.
            f"cafile {pki.ca}\ncertfile {pki.server_cert}\nkeyfile {pki.server_key}\n"
            "require_certificate true\n"
            # As root, mosquitto reads the files after switching to the "mosquitto"
            # user, who cannot enter pytest's private tmp dir; stay root.
            "user root\n"
            f"listener {plain_port} {LOOPBACK}\n"
        ),
    )
    broker.start()  # waits for the TLS listener only
    wait_for_port(plain_port)
    try:
        yield broker, plain_port
    finally:
        broker.stop()


async def test_tls_with_verification_and_client_certificate(
    tls_mosquitto: tuple[Mosquitto, int], pki: Pki, plant: PlantIdentity, subscriber_factory: Any
) -> None:
    broker, plain_port = tls_mosquitto
    sub = await subscriber_factory(plain_port, f"edge/{plant.name}/+/data")
    tls = MqttTls(ca_file=pki.ca, cert_file=pki.client_cert, key_file=pki.client_key)
    sink = make_sink(broker, plant, tls=tls)
    await sink.start()
    try:
        await wait_connected(sink)
        await sink.send([batch("press-1", seq) for seq in range(20)])
        got = await sub.wait_count(20)
    finally:
        await sink.stop()
    assert json.loads(got[-1].payload)["values"]["seq"]["v"] == 19


async def test_tls_rejects_a_broker_signed_by_an_unknown_ca(
    tls_mosquitto: tuple[Mosquitto, int], pki: Pki, plant: PlantIdentity
) -> None:
    broker, _ = tls_mosquitto
    tls = MqttTls(ca_file=pki.other_ca, cert_file=pki.client_cert, key_file=pki.client_key)
    sink = make_sink(broker, plant, tls=tls)
    with capture_logs() as logs:
        await sink.start()
        await asyncio.sleep(0.5)
        connected = sink.connected
        await sink.stop()
    assert not connected
    failures = [e for e in logs if e["event"].startswith("mqtt broker unreachable")]
    assert "certificate verify failed" in failures[0]["error"]


async def test_tls_without_verification_connects_and_warns(
    tls_mosquitto: tuple[Mosquitto, int], pki: Pki, plant: PlantIdentity
) -> None:
    broker, _ = tls_mosquitto
    tls = MqttTls(
        ca_file=pki.other_ca, cert_file=pki.client_cert, key_file=pki.client_key, verify=False
    )
    with capture_logs() as logs:
        sink = make_sink(broker, plant, tls=tls)
    assert any("verification is off" in e["event"] for e in logs)
    await sink.start()
    try:
        await wait_connected(sink)
        await sink.send([batch("press-1", 0)])
    finally:
        await sink.stop()
