"""Authentication: who sent a request, from its client certificate or bearer token.

Order as in Kubernetes' union authenticator: a verified client certificate (CN = user name,
O = groups) wins; else a bearer token (``Authorization: Bearer T``, or for WebSockets the
``base64url.bearer.authorization.k8s.io.<T>`` subprotocol) tried against each token
authenticator (static token file, ServiceAccount tokens); a token nobody accepts → 401.
No credentials at all → ``system:anonymous`` in ``system:unauthenticated`` when anonymous
requests are enabled (``--anonymous-auth``, default false here), else 401. Every
authenticated user also gets the group ``system:authenticated``.

The user of the request being served is in :data:`apiserver.auth.REQUEST_USER` (a contextvar
set by the gate in :mod:`apiserver.auth.filters` before the handler runs, in the request's task;
None when security is off). Admission plugins and review endpoints read it, or call
:func:`current_user` — e.g. NodeRestriction: ``user = current_user(); if user and NODES in
user.groups: ...``.
"""

from __future__ import annotations

import base64
import binascii
import csv
import hmac
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol

from apiserver.auth import ANONYMOUS, AUTHENTICATED, REQUEST_USER, UNAUTHENTICATED, UserInfo
from machinery import errors

WS_TOKEN_PREFIX = "base64url.bearer.authorization.k8s.io."
ANONYMOUS_USER = UserInfo(ANONYMOUS, groups=(UNAUTHENTICATED,))


def current_user() -> UserInfo | None:
    """The authenticated user of the request being served (None when security is off)."""
    return REQUEST_USER.get()


def unauthorized() -> errors.Unauthorized:
    """Kubernetes' answer to failed authentication: 401, message and reason Unauthorized."""
    return errors.Unauthorized("Unauthorized")


class TokenAuthenticator(Protocol):
    """Maps a bearer token to a user; None when the token is not one it knows or is invalid."""

    def authenticate_token(self, token: str) -> UserInfo | None: ...


class StaticTokens:
    """``--token-auth-file``: CSV lines ``token,user,uid[,"group1,group2"]`` (Kubernetes'
    format; lines may have more columns, which are ignored; ``#`` lines are comments)."""

    def __init__(self, users: dict[str, UserInfo]) -> None:
        self._users = users

    @classmethod
    def from_file(cls, path: str | Path) -> StaticTokens:
        users: dict[str, UserInfo] = {}
        with open(path, newline="") as f:
            for lineno, row in enumerate(csv.reader(f), 1):
                if not row or row[0].lstrip().startswith("#"):
                    continue
                if len(row) < 3 or not row[0] or not row[1]:
                    raise ValueError(f"{path}:{lineno}: want token,user,uid[,groups]")
                groups = (
                    tuple(g.strip() for g in row[3].split(",") if g.strip()) if len(row) > 3 else ()
                )
                users[row[0]] = _with_authenticated(UserInfo(row[1], uid=row[2], groups=groups))
        return cls(users)

    def authenticate_token(self, token: str) -> UserInfo | None:
        for known, user in self._users.items():
            if hmac.compare_digest(known.encode(), token.encode()):
                return user
        return None


def _header(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    for key, value in headers:
        if key == name:
            return value
    return None


def bearer_token(scope: dict[str, Any]) -> str | None:
    """The bearer token of a request (header, or WebSocket subprotocol), if any."""
    headers = scope.get("headers") or ()
    auth = _header(headers, b"authorization")
    if auth is not None:
        scheme, _, token = auth.decode("latin-1").strip().partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
        return None
    if scope.get("type") == "websocket":
        protocols = _header(headers, b"sec-websocket-protocol")
        for proto in (protocols or b"").decode("latin-1").split(","):
            proto = proto.strip()
            if proto.startswith(WS_TOKEN_PREFIX):
                encoded = proto[len(WS_TOKEN_PREFIX) :]
                try:
                    return base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
                except (binascii.Error, UnicodeDecodeError):
                    return None
    return None


def cert_user(scope: dict[str, Any]) -> UserInfo | None:
    """The user named by the verified client certificate (see :mod:`apiserver.auth.tls`)."""
    tls = (scope.get("extensions") or {}).get("tls")
    subject = tls.get("client_cert_subject") if tls else None
    if not subject:
        return None
    if "user" in tls:  # the tls dict lives as long as the connection: parse once
        return tls["user"]
    cn, orgs = "", []
    for rdn in subject:
        for key, value in rdn:
            if key == "commonName":
                cn = value
            elif key == "organizationName":
                orgs.append(value)
    tls["user"] = user = _with_authenticated(UserInfo(cn, groups=tuple(orgs))) if cn else None
    return user


def _with_authenticated(user: UserInfo) -> UserInfo:
    if AUTHENTICATED in user.groups:
        return user
    return UserInfo(user.name, user.uid, (*user.groups, AUTHENTICATED), user.extra)


class RequestAuthenticator:
    """The chain: client certificate, then bearer token authenticators, then anonymous."""

    def __init__(
        self,
        tokens: Sequence[TokenAuthenticator] = (),
        *,
        client_certs: bool = True,
        anonymous: bool = False,
    ) -> None:
        self.tokens = list(tokens)
        self.client_certs = client_certs
        self.anonymous = anonymous

    def authenticate(self, scope: dict[str, Any]) -> UserInfo:
        """The user of ``scope``; raises :class:`errors.Unauthorized` for bad or missing
        credentials (missing only when anonymous requests are disabled)."""
        if self.client_certs:
            user = cert_user(scope)
            if user is not None:
                return _with_authenticated(user)
        token = bearer_token(scope)
        if token is not None:
            for authenticator in self.tokens:
                user = authenticator.authenticate_token(token)
                if user is not None:
                    return _with_authenticated(user)
            raise unauthorized()
        if self.anonymous:
            return ANONYMOUS_USER
        raise unauthorized()
