"""The API server's security flags (Kubernetes' names) and what they resolve to.

Without any of them the server stays as it was: plain HTTP, no authentication, everything
allowed. ``--secure`` makes the PKI in ``--cert-dir`` (default ``DATA_DIR/pki``;
:mod:`machinery.pki`) and turns on TLS with client certificates, ServiceAccount tokens and
``--authorization-mode`` (default ``Node,RBAC`` then); flags given explicitly override what
``--secure`` picks. Several API servers sharing one store give ``--secure`` the same
``--cert-dir`` (a shared directory): the first to start makes the CA and the ServiceAccount key,
the others use them, so each trusts the client certificates and tokens the others issue. Anonymous
requests are refused (401) unless ``--anonymous-auth=true``: Kubernetes defaults it to true and
then lets RBAC refuse ``system:anonymous`` (403); refusing at authentication is the safer
default for a server that may run with ``AlwaysAllow``.
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import os
from dataclasses import dataclass
from typing import Any

from apiserver.auth.filters import AUTHORIZATION_MODES, SecurityOptions
from apiserver.auth.tls import uvicorn_options
from machinery.pki import Pki


def _bool(value: str) -> bool:
    if value.lower() in ("true", "1", "yes"):
        return True
    if value.lower() in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"want true or false, not {value!r}")


def add_flags(p: argparse.ArgumentParser) -> None:
    """Add the security flags to the API server's parser."""
    g = p.add_argument_group("security")
    g.add_argument(
        "--secure",
        action="store_true",
        help="generate a CA and certificates in --cert-dir and enable TLS, client "
        "certificates, ServiceAccount tokens and authorization (Node,RBAC)",
    )
    g.add_argument(
        "--cert-dir",
        help="where --secure keeps the CA, certificates and ServiceAccount key (default "
        "DATA_DIR/pki); API servers sharing a store share it",
    )
    g.add_argument("--tls-cert-file", help="serving certificate (PEM)")
    g.add_argument("--tls-private-key-file", help="key of --tls-cert-file (PEM)")
    g.add_argument("--client-ca-file", help="CA that signs client certificates (CN=user, O=groups)")
    g.add_argument("--token-auth-file", help='static tokens: CSV token,user,uid[,"g1,g2"]')
    g.add_argument(
        "--service-account-key-file",
        help="PEM RSA private key that signs and verifies ServiceAccount tokens (Kubernetes "
        "splits this into a verifying and a --service-account-signing-key-file)",
    )
    g.add_argument(
        "--anonymous-auth",
        type=_bool,
        default=False,
        metavar="BOOL",
        help="serve requests without credentials as system:anonymous (default false: 401)",
    )
    g.add_argument(
        "--authorization-mode",
        default=None,
        help=f"comma-separated, in order, from {','.join(AUTHORIZATION_MODES)} "
        "(default: Node,RBAC with --secure, else AlwaysAllow)",
    )


def _ensure_pki(directory: str, hosts: tuple[str, ...]) -> Pki:
    """The PKI in ``directory``, made if missing; servers starting together on one shared
    directory take turns (a file lock), so they end up with one CA and one key."""
    os.makedirs(directory, mode=0o700, exist_ok=True)
    with open(os.path.join(directory, ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return Pki(directory).ensure(tuple(h for h in hosts if h))


@dataclass
class Resolved:
    """What the flags mean for one start: ``security`` None means all off."""

    security: SecurityOptions | None
    scheme: str
    uvicorn: dict[str, Any]
    ca_data: bytes | None = None
    admin_cert: bytes | None = None
    admin_key: bytes | None = None


def resolve(
    args: argparse.Namespace, hosts: tuple[str, ...] = (), ws: type[asyncio.Protocol] | None = None
) -> Resolved:
    """Resolve the flags (making the PKI for ``--secure``, its serving certificate valid for
    ``hosts`` too); ``ws`` is the server's uvicorn WebSocket protocol class, which TLS
    extends."""
    admin = None
    ca_file = None
    if args.secure:
        pki = _ensure_pki(args.cert_dir or os.path.join(args.data_dir, "pki"), hosts)
        args.tls_cert_file = args.tls_cert_file or str(pki.serving.cert)
        args.tls_private_key_file = args.tls_private_key_file or str(pki.serving.key)
        args.client_ca_file = args.client_ca_file or str(pki.ca.cert)
        args.service_account_key_file = args.service_account_key_file or str(pki.sa_key)
        args.authorization_mode = args.authorization_mode or "Node,RBAC"
        admin, ca_file = pki.client("admin", ("system:masters",), file_name="admin"), pki.ca.cert
    on = any(
        (args.tls_cert_file, args.client_ca_file, args.token_auth_file,
         args.service_account_key_file, args.authorization_mode)
    )  # fmt: skip
    if not on:
        return Resolved(None, "http", {})
    if bool(args.tls_cert_file) != bool(args.tls_private_key_file):
        raise SystemExit("--tls-cert-file and --tls-private-key-file go together")
    modes = [m.strip() for m in (args.authorization_mode or "AlwaysAllow").split(",") if m.strip()]
    unknown = [m for m in modes if m not in AUTHORIZATION_MODES]
    if unknown:
        raise SystemExit(f"unknown --authorization-mode {','.join(unknown)}")
    security = SecurityOptions(
        tls_cert_file=args.tls_cert_file,
        tls_private_key_file=args.tls_private_key_file,
        client_ca_file=args.client_ca_file,
        token_auth_file=args.token_auth_file,
        service_account_key_file=args.service_account_key_file,
        anonymous_auth=args.anonymous_auth,
        authorization_mode=tuple(modes),
    )
    if not args.tls_cert_file:
        return Resolved(security, "http", {})
    return Resolved(
        security,
        "https",
        uvicorn_options(args.tls_cert_file, args.tls_private_key_file, args.client_ca_file, ws),
        ca_data=ca_file.read_bytes() if ca_file else None,
        admin_cert=admin.cert_pem() if admin else None,
        admin_key=admin.key_pem() if admin else None,
    )
