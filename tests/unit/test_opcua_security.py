"""The agent's own OPC UA certificate and the server trust list (files only, no network)."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import stat
from pathlib import Path

import pytest
from cryptography import x509
from structlog.testing import capture_logs

from drivers.opcua.security import (
    EXPIRY_WARNING_DAYS,
    Pki,
    UntrustedCertificate,
    application_uri,
    thumbprint,
    uri_of,
)
from tests.opcua_support import Keys, session_keys

URI = application_uri("hall-2")


@pytest.fixture(scope="session")
def opcua_keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    return session_keys(tmp_path_factory)


def test_the_own_certificate_is_made_once_and_reused(tmp_path: Path) -> None:
    pki = Pki(tmp_path / "opcua")
    with capture_logs() as logs:
        first = pki.own_certificate(URI, hostname="gw-17")
    assert [e["event"] for e in logs] == ["OPC UA application certificate created"]
    cert = x509.load_der_x509_certificate(first.cert_file.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [URI]
    assert "gw-17" in san.get_values_for_type(x509.DNSName)
    assert cert.not_valid_after_utc - cert.not_valid_before_utc > dt.timedelta(days=4 * 365)
    assert stat.S_IMODE(os.stat(first.key_file).st_mode) == 0o600
    der, key = first.cert_file.read_bytes(), first.key_file.read_bytes()
    with capture_logs() as logs:
        again = Pki(tmp_path / "opcua").own_certificate(URI)  # a restart of the agent
    assert logs == []
    assert again == first
    assert (again.cert_file.read_bytes(), again.key_file.read_bytes()) == (der, key)


def test_a_warning_ahead_of_expiry_then_a_new_certificate_once_expired(tmp_path: Path) -> None:
    pki = Pki(tmp_path / "opcua")
    own = pki.own_certificate(URI)
    old = own.cert_file.read_bytes()
    expires = x509.load_der_x509_certificate(old).not_valid_after_utc
    with capture_logs() as logs:
        pki.own_certificate(URI, now=expires - dt.timedelta(days=EXPIRY_WARNING_DAYS + 1))
    assert logs == []
    with capture_logs() as logs:
        pki.own_certificate(URI, now=expires - dt.timedelta(days=5))
    (warning,) = logs
    assert warning["log_level"] == "warning"
    assert "expires soon" in warning["event"]
    assert warning["days_left"] == 5
    assert own.cert_file.read_bytes() == old  # still valid: never replaced
    with capture_logs() as logs:
        pki.own_certificate(URI, now=expires + dt.timedelta(days=1))
    assert "replaced" in logs[0]["event"]
    assert own.cert_file.read_bytes() != old
    (retired,) = pki.own_dir.glob("cert.*.expired.der")
    assert retired.read_bytes() == old


def test_a_certificate_for_another_application_uri_is_replaced(tmp_path: Path) -> None:
    pki = Pki(tmp_path / "opcua")
    pki.own_certificate(application_uri("old-name"))
    own = pki.own_certificate(URI)
    assert uri_of(x509.load_der_x509_certificate(own.cert_file.read_bytes())) == URI


def test_an_unknown_server_is_rejected_and_can_be_trusted(tmp_path: Path, opcua_keys: Keys) -> None:
    pki = Pki(tmp_path / "opcua")
    der = opcua_keys.server_cert.read_bytes()
    with pytest.raises(UntrustedCertificate) as first:
        pki.check_server(der, "urn:edge-agent:simulator", trust_on_first_use=False)
    assert first.value.new
    with pytest.raises(UntrustedCertificate) as second:
        pki.check_server(der, "urn:edge-agent:simulator", trust_on_first_use=False)
    assert not second.value.new  # kept once, logged once
    (listed,) = pki.certificates()
    assert (listed.state, listed.subject, listed.thumbprint) == (
        "rejected",
        "edge-agent simulator",
        thumbprint(der),
    )
    assert listed.application_uri == "urn:edge-agent:simulator"
    assert listed.name.startswith("edge-agent-simulator_")
    trusted = pki.trust(thumbprint(der)[:8])  # a thumbprint prefix is enough
    assert trusted.state == "trusted"
    assert [c.state for c in pki.certificates()] == ["trusted"]
    pki.check_server(der, "urn:edge-agent:simulator", trust_on_first_use=False)


def test_trust_names_must_be_unambiguous(tmp_path: Path, opcua_keys: Keys) -> None:
    pki = Pki(tmp_path / "opcua")
    for cert in (opcua_keys.server_cert, opcua_keys.other_server_cert):
        with pytest.raises(UntrustedCertificate):
            pki.check_server(
                cert.read_bytes(), "urn:edge-agent:simulator", trust_on_first_use=False
            )
    with pytest.raises(LookupError, match="matches several"):
        pki.trust("edge-agent-simulator")
    with pytest.raises(LookupError, match="no rejected certificate named 'nope'"):
        pki.trust("nope")


def test_trust_on_first_use_only_for_a_server_not_seen_before(
    tmp_path: Path, opcua_keys: Keys
) -> None:
    pki = Pki(tmp_path / "opcua")
    server = opcua_keys.server_cert.read_bytes()
    with capture_logs() as logs:
        pki.check_server(server, "urn:edge-agent:simulator", trust_on_first_use=True)
    assert logs[0]["event"] == "OPC UA server certificate trusted on first use"
    assert [c.state for c in pki.certificates()] == ["trusted"]
    changed = opcua_keys.other_server_cert.read_bytes()
    with pytest.raises(UntrustedCertificate):
        pki.check_server(changed, "urn:edge-agent:simulator", trust_on_first_use=True)
    assert sorted(c.state for c in pki.certificates()) == ["rejected", "trusted"]


def test_pem_files_in_the_trust_list_count(tmp_path: Path, opcua_keys: Keys) -> None:
    pki = Pki(tmp_path / "opcua")
    pki.trusted_dir.mkdir(parents=True)
    cert = x509.load_der_x509_certificate(opcua_keys.server_cert.read_bytes())
    from cryptography.hazmat.primitives import serialization

    (pki.trusted_dir / "server.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (pki.trusted_dir / "notes.der").write_text("not a certificate")
    shutil.copy(opcua_keys.user_cert, pki.trusted_dir / "user.der")
    pki.check_server(opcua_keys.server_cert.read_bytes(), "urn:x", trust_on_first_use=False)
    assert len(pki.certificates()) == 2
