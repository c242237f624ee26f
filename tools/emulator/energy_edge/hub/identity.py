"""Identities, keys, shared access signatures and TLS certificates of the emulator.

SAS tokens follow IoT Hub: `SharedAccessSignature sr=<url-encoded resource>&sig=<url-encoded
base64 HMAC-SHA256 of "<sr>\\n<se>" under the base64-decoded key>&se=<expiry epoch>[&skn=<policy>]`.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import ipaddress
import secrets
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

SERVICE_POLICY_NAME = "iothubowner"


def new_key() -> str:
    """A 256-bit symmetric key, base64, as IoT Hub generates them."""
    return base64.b64encode(secrets.token_bytes(32)).decode()


def sign(key_b64: str, data: bytes) -> str:
    digest = hmac.new(base64.b64decode(key_b64), data, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def make_sas(resource: str, key_b64: str, ttl_s: int = 3600, policy: str | None = None,
             now: float | None = None) -> str:
    """A SAS token for `resource` (already in the form the verifier expects, unencoded)."""
    expiry = int((time.time() if now is None else now) + ttl_s)
    sr = urllib.parse.quote(resource, safe="")
    sig = urllib.parse.quote(sign(key_b64, f"{sr}\n{expiry}".encode()), safe="")
    token = f"SharedAccessSignature sr={sr}&sig={sig}&se={expiry}"
    return f"{token}&skn={policy}" if policy else token


class SasError(Exception):
    """Why a SAS token was refused; `malformed` separates bad syntax from a bad signature or expiry."""

    def __init__(self, reason: str, malformed: bool = False) -> None:
        super().__init__(reason)
        self.malformed = malformed


@dataclass(frozen=True)
class SasToken:
    resource: str  # decoded `sr`
    resource_raw: str  # `sr` exactly as signed
    signature: str
    expiry: int
    policy: str | None

    @classmethod
    def parse(cls, text: str) -> SasToken:
        prefix = "SharedAccessSignature "
        if not text.startswith(prefix):
            raise SasError("not a SharedAccessSignature", malformed=True)
        fields: dict[str, str] = {}
        for part in text[len(prefix) :].split("&"):
            key, sep, value = part.partition("=")
            if not sep:
                raise SasError(f"SAS field {part!r} has no value", malformed=True)
            fields[key] = value
        missing = {"sr", "sig", "se"} - fields.keys()
        if missing:
            raise SasError(f"SAS token lacks {', '.join(sorted(missing))}", malformed=True)
        try:
            expiry = int(fields["se"])
        except ValueError as exc:
            raise SasError("SAS expiry is not an integer", malformed=True) from exc
        return cls(
            resource=urllib.parse.unquote_plus(fields["sr"]),
            resource_raw=fields["sr"],
            signature=urllib.parse.unquote(fields["sig"]),
            expiry=expiry,
            policy=fields.get("skn"),
        )

    def verify(self, key_b64: str, expected_resource: str, now: float | None = None) -> None:
        """Raise SasError unless this token is for `expected_resource`, signed by `key_b64`, unexpired."""
        if self.resource.rstrip("/").lower() != expected_resource.rstrip("/").lower():
            raise SasError(f"token is for {self.resource!r}, not {expected_resource!r}")
        if self.expiry < (time.time() if now is None else now):
            raise SasError("token expired")
        expected = sign(key_b64, f"{self.resource_raw}\n{self.expiry}".encode())
        if not hmac.compare_digest(expected, self.signature):
            raise SasError("signature does not match the key")


def module_resource(hostname: str, device_id: str, module_id: str) -> str:
    return f"{hostname}/devices/{device_id}/modules/{module_id}"


# ---------------------------------------------------------------- TLS


@dataclass(frozen=True)
class TlsFiles:
    ca_cert: Path
    server_cert: Path  # leaf + CA chain
    server_key: Path


def ensure_tls(directory: Path, host: str, validity_days: int = 825) -> TlsFiles:
    """Create a CA and a server certificate for `host` once; reuse them afterwards.

    The server certificate is re-issued if `host` changed, so its subjectAltName always
    matches the GatewayHostName the SDKs check.
    """
    directory.mkdir(parents=True, exist_ok=True)
    files = TlsFiles(directory / "ca.pem", directory / "server.pem", directory / "server-key.pem")
    ca_key_path = directory / "ca-key.pem"
    if not files.ca_cert.exists() or not ca_key_path.exists():
        ca_key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "energy-edge emulator CA")])
        now = dt.datetime.now(dt.timezone.utc)
        ca_cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        _write_private(ca_key_path, _key_pem(ca_key))
        files.ca_cert.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
        files.server_cert.unlink(missing_ok=True)
    marker = directory / "server.host"
    if not files.server_cert.exists() or not marker.exists() or marker.read_text() != host:
        _issue_server_cert(files, ca_key_path, host, validity_days)
        marker.write_text(host)
    return files


def _issue_server_cert(files: TlsFiles, ca_key_path: Path, host: str, validity_days: int) -> None:
    ca_key = serialization.load_pem_private_key(ca_key_path.read_bytes(), password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    ca_cert = x509.load_pem_x509_certificate(files.ca_cert.read_bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = [x509.DNSName("localhost")]
    try:
        names.append(x509.IPAddress(ipaddress.ip_address(host)))
    except ValueError:
        names.append(x509.DNSName(host))
    if host != "127.0.0.1":
        names.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=validity_days))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    _write_private(files.server_key, _key_pem(key))
    files.server_cert.write_bytes(
        cert.public_bytes(serialization.Encoding.PEM) + files.ca_cert.read_bytes()
    )


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _write_private(path: Path, data: bytes) -> None:
    path.touch(mode=0o600, exist_ok=True)
    path.write_bytes(data)
