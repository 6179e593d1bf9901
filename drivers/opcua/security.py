"""Certificates: the agent's own application certificate and the server trust list.

Layout under the plant's state directory (``state_dir``)::

    opcua/own/cert.der      the agent's application instance certificate
    opcua/own/key.pem       its private key (mode 0600)
    opcua/trusted/*.der     server certificates the agent accepts
    opcua/rejected/*.der    server certificates it refused, for review

The own certificate is created on first use and reused afterwards: a server that
trusts it keeps trusting it. It is replaced only when it can no longer work (expired,
or made for another ApplicationUri); a warning is logged ahead of expiry so that it
can be renewed in a maintenance window. Its subjectAltName carries the ApplicationUri
the client announces in its session (servers check that they match).

An unknown server certificate is refused and written to ``rejected/``;
``edge-agent certs trust NAME`` moves it to ``trusted/``, the workflow engineers know
from UaExpert and PLC engineering tools. Trust is by exact certificate (SHA-1
thumbprint), as for the self-signed certificates nearly every machine ships with.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
import socket
from dataclasses import dataclass
from pathlib import Path

import structlog
from asyncua import ua
from asyncua.crypto import cert_gen, security_policies
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

log = structlog.get_logger("edge_agent.opcua")

POLICIES: dict[str, type[security_policies.SecurityPolicy]] = {
    "Basic256Sha256": security_policies.SecurityPolicyBasic256Sha256,
    "Aes128_Sha256_RsaOaep": security_policies.SecurityPolicyAes128Sha256RsaOaep,
    "Aes256_Sha256_RsaPss": security_policies.SecurityPolicyAes256Sha256RsaPss,
}
POLICY_URIS: dict[str, str] = {
    "None": security_policies.SecurityPolicyNone.URI,
    **{name: policy.URI for name, policy in POLICIES.items()},
}
MODES: dict[str, ua.MessageSecurityMode] = {
    "None": ua.MessageSecurityMode.None_,
    "Sign": ua.MessageSecurityMode.Sign,
    "SignAndEncrypt": ua.MessageSecurityMode.SignAndEncrypt,
}

#: Validity of a generated own certificate. Machines are commissioned for years;
#: a certificate that lapses every 12 months stops data collection every 12 months.
OWN_CERTIFICATE_DAYS = 5 * 365
#: A warning is logged (at every start) when the own certificate expires this soon.
EXPIRY_WARNING_DAYS = 30


def application_uri(plant: str) -> str:
    """The agent's ApplicationUri: stable across restarts and host renames."""
    return f"urn:edge-agent:{plant}"


def thumbprint(der: bytes) -> str:
    """SHA-1 of the DER certificate, hex: the thumbprint OPC UA tools show."""
    return hashlib.sha1(der, usedforsecurity=False).hexdigest()


def file_thumbprint(path: Path) -> str:
    """The thumbprint of a certificate file (DER or PEM); "" if it cannot be read."""
    try:
        data = path.read_bytes()
        if data.startswith(b"-----BEGIN"):
            data = x509.load_pem_x509_certificate(data).public_bytes(serialization.Encoding.DER)
        return thumbprint(data)
    except (OSError, ValueError):
        return ""


def first_certificate(der: bytes) -> bytes:
    """The leading certificate of a DER chain (servers may append their CA)."""
    length = int.from_bytes(der[2:4], "big") + 4 if len(der) > 4 and der[1] == 0x82 else len(der)
    return der[:length]


@dataclass(frozen=True, slots=True)
class CertificateInfo:
    """What ``certs list`` shows about one certificate file."""

    state: str
    path: Path
    subject: str
    application_uri: str
    thumbprint: str
    not_after: dt.datetime

    @property
    def name(self) -> str:
        return self.path.stem


def describe(der: bytes, state: str, path: Path) -> CertificateInfo:
    cert = x509.load_der_x509_certificate(der)
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    subject = str(names[0].value) if names else cert.subject.rfc4514_string()
    return CertificateInfo(
        state=state,
        path=path,
        subject=subject,
        application_uri=uri_of(cert),
        thumbprint=thumbprint(der),
        not_after=cert.not_valid_after_utc,
    )


def uri_of(cert: x509.Certificate) -> str:
    """The ApplicationUri in a certificate's subjectAltName ("" if none)."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return ""
    uris = san.value.get_values_for_type(x509.UniformResourceIdentifier)
    return uris[0] if uris else ""


class UntrustedCertificate(Exception):
    """A server presented a certificate that is not in the trust list."""

    def __init__(self, info: CertificateInfo, *, new: bool) -> None:
        self.info = info
        #: True the first time this certificate was refused (it was just saved).
        self.new = new
        super().__init__(info.name)


@dataclass(frozen=True, slots=True)
class OwnCertificate:
    cert_file: Path
    key_file: Path
    application_uri: str


class Pki:
    """The certificate directories of one plant (see the module docstring)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.own_dir = root / "own"
        self.trusted_dir = root / "trusted"
        self.rejected_dir = root / "rejected"

    @classmethod
    def for_state_dir(cls, state_dir: Path) -> Pki:
        return cls(Path(state_dir) / "opcua")

    # ------------------------------------------------------------ own certificate

    def own_certificate(
        self,
        uri: str,
        *,
        now: dt.datetime | None = None,
        hostname: str | None = None,
    ) -> OwnCertificate:
        """The own certificate for ``uri``: loaded if usable, else created (once)."""
        now = now or dt.datetime.now(dt.UTC)
        cert_file = self.own_dir / "cert.der"
        key_file = self.own_dir / "key.pem"
        if cert_file.exists() and key_file.exists():
            cert = x509.load_der_x509_certificate(cert_file.read_bytes())
            problem = _unusable(cert, uri, now)
            if not problem:
                left = cert.not_valid_after_utc - now
                if left < dt.timedelta(days=EXPIRY_WARNING_DAYS):
                    log.warning(
                        "OPC UA application certificate expires soon; renew it (delete "
                        "own/cert.der to have a new one made) and re-trust it on the servers",
                        certificate=str(cert_file),
                        expires=cert.not_valid_after_utc.isoformat(),
                        days_left=left.days,
                    )
                return OwnCertificate(cert_file, key_file, uri)
            retired = cert_file.with_name(f"cert.{now:%Y%m%dT%H%M%S}.{problem.split()[0]}.der")
            cert_file.rename(retired)
            log.warning(
                "OPC UA application certificate replaced; servers must trust the new one",
                reason=problem,
                old=str(retired),
            )
        self._create_own(cert_file, key_file, uri, now, hostname or socket.gethostname())
        log.info(
            "OPC UA application certificate created",
            certificate=str(cert_file),
            thumbprint=thumbprint(cert_file.read_bytes()),
            uri=uri,
            hint="servers that check their clients must trust this file",
        )
        return OwnCertificate(cert_file, key_file, uri)

    def _create_own(
        self, cert_file: Path, key_file: Path, uri: str, now: dt.datetime, hostname: str
    ) -> None:
        self.own_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        if key_file.exists():
            key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
        else:
            key = cert_gen.generate_private_key()
            _write_private(key_file, cert_gen.dump_private_key_as_pem(key))
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError(f"{key_file} is not an RSA private key")
        cert = cert_gen.generate_self_signed_app_certificate(
            key,
            f"edge-agent {uri.rsplit(':', 1)[-1]}",
            {"organizationName": "edge-agent"},
            [x509.UniformResourceIdentifier(uri), x509.DNSName(hostname)],
            extended=[ExtendedKeyUsageOID.CLIENT_AUTH],
            days=OWN_CERTIFICATE_DAYS,
        )
        tmp = cert_file.with_suffix(".tmp")
        tmp.write_bytes(cert.public_bytes(serialization.Encoding.DER))
        tmp.replace(cert_file)

    # --------------------------------------------------------------- trust list

    def check_server(self, der: bytes, server_uri: str, *, trust_on_first_use: bool) -> None:
        """Accept a server certificate, or raise :class:`UntrustedCertificate`.

        Trusted: the exact certificate is in ``trusted/``. With trust on first use, a
        certificate is trusted (and saved) when no certificate for the server's
        ApplicationUri is trusted yet; a changed certificate is still refused.
        """
        der = first_certificate(der)
        print_ = thumbprint(der)
        trusted = self._certificates(self.trusted_dir)
        if any(thumbprint(other) == print_ for other, _ in trusted):
            return
        if trust_on_first_use and not any(
            _uri_of_der(other) in (server_uri, _uri_of_der(der)) for other, _ in trusted
        ):
            path = self._store(self.trusted_dir, der)
            log.warning(
                "OPC UA server certificate trusted on first use",
                server=server_uri,
                certificate=str(path),
                thumbprint=print_,
            )
            return
        new = not self._stored_path(self.rejected_dir, der).exists()
        path = self._store(self.rejected_dir, der)
        raise UntrustedCertificate(describe(der, "rejected", path), new=new)

    def trust(self, name: str) -> CertificateInfo:
        """Move the rejected certificate ``name`` (file stem, name or thumbprint prefix)
        to ``trusted/``; raise LookupError if there is none or more than one."""
        match = self.find(name, states=("rejected",))
        target = self.trusted_dir / match.path.name
        self.trusted_dir.mkdir(parents=True, exist_ok=True)
        match.path.replace(target)
        return describe(target.read_bytes(), "trusted", target)

    def find(self, name: str, states: tuple[str, ...] = ("trusted", "rejected")) -> CertificateInfo:
        wanted = name.removesuffix(".der").lower()
        candidates = [c for c in self.certificates() if c.state in states]
        exact = [c for c in candidates if c.name.lower() == wanted]
        if exact:
            return exact[0]
        found = [
            c
            for c in candidates
            if c.thumbprint.startswith(wanted.replace(":", "")) or c.name.lower().startswith(wanted)
        ]
        if len(found) == 1:
            return found[0]
        where = " or ".join(states)
        if not found:
            raise LookupError(f"no {where} certificate named {name!r}")
        names = ", ".join(c.name for c in found)
        raise LookupError(f"{name!r} matches several {where} certificates: {names}")

    def certificates(self) -> list[CertificateInfo]:
        """Every trusted and rejected certificate (unreadable files are skipped)."""
        out: list[CertificateInfo] = []
        for state, folder in (("trusted", self.trusted_dir), ("rejected", self.rejected_dir)):
            for der, path in self._certificates(folder):
                out.append(describe(der, state, path))
        return out

    def _certificates(self, folder: Path) -> list[tuple[bytes, Path]]:
        if not folder.is_dir():
            return []
        found: list[tuple[bytes, Path]] = []
        for path in sorted(folder.iterdir()):
            if path.suffix.lower() not in (".der", ".pem", ".crt", ".cer"):
                continue
            data = path.read_bytes()
            try:
                if data.startswith(b"-----BEGIN"):
                    data = x509.load_pem_x509_certificate(data).public_bytes(
                        serialization.Encoding.DER
                    )
                else:
                    x509.load_der_x509_certificate(data)
            except ValueError:
                log.warning("not a certificate; ignored", file=str(path))
                continue
            found.append((data, path))
        return found

    @staticmethod
    def _stored_path(folder: Path, der: bytes) -> Path:
        """``<common name>_<thumbprint prefix>.der``: readable, and unique per certificate."""
        info = describe(der, folder.name, folder / "x.der")
        label = re.sub(r"[^A-Za-z0-9_.-]+", "-", info.subject).strip("-.") or "server"
        return folder / f"{label}_{info.thumbprint[:16]}.der"

    def _store(self, folder: Path, der: bytes) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        path = self._stored_path(folder, der)
        if not path.exists():
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(der)
            tmp.replace(path)
        return path


def _uri_of_der(der: bytes) -> str:
    return uri_of(x509.load_der_x509_certificate(der))


def _unusable(cert: x509.Certificate, uri: str, now: dt.datetime) -> str:
    """Why an existing own certificate cannot be used ("" if it can)."""
    if cert.not_valid_after_utc <= now:
        return "expired on " + cert.not_valid_after_utc.date().isoformat()
    if uri_of(cert) != uri:
        return f"made for {uri_of(cert) or 'no ApplicationUri'}, not {uri}"
    return ""


def _write_private(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    tmp.replace(path)


class OwnCertificateSource:
    """The agent's application certificate, loaded (or created) once for all devices.

    Loaded at the start of the first secured connect attempt, before the server's
    certificate is checked: so after one attempt both sides have a certificate to
    trust. Not at start: a plant without secured devices never writes one, and a broken
    state directory costs only the OPC UA devices that need it, with the reason on
    their samples.
    """

    def __init__(self, pki: Pki, uri: str) -> None:
        self.pki = pki
        self.uri = uri
        self._own: OwnCertificate | None = None

    def __call__(self) -> OwnCertificate:
        if self._own is None or not self._own.cert_file.exists():
            self._own = self.pki.own_certificate(self.uri)
        return self._own
