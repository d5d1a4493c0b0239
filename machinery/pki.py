"""The cluster's PKI in ``DATA_DIR/pki``, made on first start with the ``cryptography`` library
(here in machinery because both the API server and ``tug up``, which issues the components'
client certificates, need it).

Files (PEM; keys mode 0600), named as kubeadm names them where there is a counterpart:

- ``ca.crt`` / ``ca.key``: the cluster CA (signs serving and client certificates);
- ``apiserver.crt`` / ``apiserver.key``: the serving certificate for 127.0.0.1, ::1, localhost,
  the ``kubernetes`` Service names and IP, and any extra addresses asked for;
- ``sa.key`` / ``sa.pub``: the key pair that signs ServiceAccount tokens;
- ``<name>.crt`` / ``<name>.key``: client certificates (:meth:`Pki.client`), CN = user name,
  O = groups, as Kubernetes' x509 authenticator reads them.

Existing files are kept: a second start reuses them; the serving certificate is remade when it
lacks an address asked for.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_DAYS = 3650
CERT_DAYS = 365
SERVICE_IP = "10.96.0.1"
SERVICE_NAMES = (
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
)
ADMIN_USER, ADMIN_GROUP = "admin", "system:masters"


@dataclass(frozen=True)
class CertPair:
    """A certificate and its key on disk."""

    cert: Path
    key: Path

    def cert_pem(self) -> bytes:
        return self.cert.read_bytes()

    def key_pem(self) -> bytes:
        return self.key.read_bytes()


def _write(path: Path, data: bytes, private: bool) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def _key_pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _name(cn: str, orgs: tuple[str, ...] = ()) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs]
    return x509.Name([*attrs, x509.NameAttribute(NameOID.COMMON_NAME, cn)])


class Pki:
    """The CA and the certificates it issued, under one directory."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.dir = Path(directory)
        self.ca = CertPair(self.dir / "ca.crt", self.dir / "ca.key")
        self.serving = CertPair(self.dir / "apiserver.crt", self.dir / "apiserver.key")
        self.sa_key = self.dir / "sa.key"
        self.sa_pub = self.dir / "sa.pub"

    # -- making ---------------------------------------------------------------------------
    def ensure(self, hosts: tuple[str, ...] = ()) -> Pki:
        """Create whatever is missing: CA, serving certificate (for ``hosts`` too), the admin
        client certificate and the ServiceAccount signing key. Idempotent."""
        self.dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o700)
        if not (self.ca.cert.exists() and self.ca.key.exists()):
            self._make_ca()
        wanted = {"127.0.0.1", "::1", "localhost", SERVICE_IP, *SERVICE_NAMES, *hosts}
        have = self._sans(self.serving.cert) if self.serving.cert.exists() else set()
        if not wanted <= have:  # keeps the names it had: servers may share the directory
            self._issue(self.serving, "kube-apiserver", (), sorted(wanted | have), server=True)
        self.client(ADMIN_USER, (ADMIN_GROUP,), file_name="admin")
        if not self.sa_key.exists():
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            pub = key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            _write(self.sa_key, _key_pem(key), private=True)
            _write(self.sa_pub, pub, private=False)
        return self

    def client(self, user: str, groups: tuple[str, ...] = (), *, file_name: str = "") -> CertPair:
        """The client certificate for ``user`` in ``groups`` (made if missing or different)."""
        name = file_name or user.replace(":", "-")
        pair = CertPair(self.dir / f"{name}.crt", self.dir / f"{name}.key")
        if (
            not pair.cert.exists()
            or not pair.key.exists()
            or self._subject(pair.cert)
            != (
                user,
                tuple(groups),
            )
        ):
            self._issue(pair, user, tuple(groups), [], server=False)
        return pair

    def _make_ca(self) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        name = _name("tugboat-ca")
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=CA_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(_key_usage(ca=True), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .sign(key, hashes.SHA256())
        )
        _write(self.ca.key, _key_pem(key), private=True)
        _write(self.ca.cert, cert.public_bytes(serialization.Encoding.PEM), private=False)

    def _issue(
        self, pair: CertPair, cn: str, orgs: tuple[str, ...], sans: list[str], *, server: bool
    ) -> None:
        ca_cert = x509.load_pem_x509_certificate(self.ca.cert_pem())
        ca_key = serialization.load_pem_private_key(self.ca.key_pem(), password=None)
        assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(cn, orgs))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=CERT_DAYS))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(ca=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
            )
        )
        if sans:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([_general_name(h) for h in sans]), critical=False
            )
        cert = builder.sign(ca_key, hashes.SHA256())
        _write(pair.key, _key_pem(key), private=True)
        _write(pair.cert, cert.public_bytes(serialization.Encoding.PEM), private=False)

    # -- reading --------------------------------------------------------------------------
    @staticmethod
    def _sans(path: Path) -> set[str]:
        cert = x509.load_pem_x509_certificate(path.read_bytes())
        try:
            ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        except x509.ExtensionNotFound:
            return set()
        ips = {str(ip) for ip in ext.get_values_for_type(x509.IPAddress)}
        return ips | set(ext.get_values_for_type(x509.DNSName))

    @staticmethod
    def _subject(path: Path) -> tuple[str, tuple[str, ...]]:
        subject = x509.load_pem_x509_certificate(path.read_bytes()).subject
        cn = subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        orgs = subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
        return (str(cn[0].value) if cn else "", tuple(str(o.value) for o in orgs))


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    """Signatures for every certificate (ECDSA keys); certificate and CRL signing for the CA."""
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _general_name(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)
