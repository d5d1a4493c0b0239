"""The security gate in front of the API server: authenticate → impersonate → attributes →
authorize → handler, as Kubernetes' handler chain filters do.

:class:`Gate` is a pure ASGI wrapper, installed only when security is on (so an insecure
server pays nothing per request). It covers every HTTP and WebSocket request, resource or not,
except ``/healthz``, ``/livez``, ``/readyz`` (and their sub-paths) and ``/version``, which stay
open as Kubernetes' ``system:public-info-viewer`` role leaves them. Failures are ``Status``
objects: 401 ``Unauthorized``, 403 ``Forbidden`` with Kubernetes' wording. The user is in
:data:`apiserver.auth.REQUEST_USER` while the handler runs.

Authorization is a chain (first ALLOW or DENY wins; nobody's opinion is a denial):
``system:masters`` is always allowed (Kubernetes' privileged-group authorizer), then the
``--authorization-mode`` authorizers in order (``Node``, ``RBAC``, ``AlwaysAllow``,
``AlwaysDeny``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from apiserver.auth import MASTERS, REQUEST_USER, Attributes, Authorizer, Decision, UserInfo
from apiserver.auth.attributes import forbidden, request_attributes
from apiserver.auth.authn import RequestAuthenticator, StaticTokens, TokenAuthenticator
from apiserver.auth.impersonation import impersonate, wants_impersonation
from apiserver.auth.serviceaccounts import ServiceAccountTokens
from machinery import errors

OPEN_PATHS = frozenset({"/healthz", "/livez", "/readyz", "/version", "/version/"})
OPEN_PREFIXES = ("/healthz/", "/livez/", "/readyz/")
#: Streaming pod subresources opened with GET (WebSocket) also need ``create``, as in
#: Kubernetes 1.31+ (AuthorizePodWebsocketUpgradeCreatePermission).
CREATE_ALSO = ("exec", "attach", "portforward")


@dataclass
class SecurityOptions:
    """The API server's security flags (Kubernetes' names), resolved to files."""

    tls_cert_file: str | None = None
    tls_private_key_file: str | None = None
    client_ca_file: str | None = None
    token_auth_file: str | None = None
    service_account_key_file: str | None = None
    anonymous_auth: bool = False
    authorization_mode: Sequence[str] = field(default_factory=lambda: ("Node", "RBAC"))


class MastersAuthorizer:
    """Allows everything to members of ``system:masters``; no opinion about anyone else."""

    def authorize(self, attrs: Attributes) -> tuple[Decision, str]:
        if MASTERS in attrs.user.groups:
            return Decision.ALLOW, ""
        return Decision.NO_OPINION, ""


class AlwaysAllow:
    def authorize(self, attrs: Attributes) -> tuple[Decision, str]:
        return Decision.ALLOW, ""


class AlwaysDeny:
    def authorize(self, attrs: Attributes) -> tuple[Decision, str]:
        return Decision.DENY, "Everything is forbidden."


class AuthorizerChain:
    """The first authorizer with an opinion decides; none → denied (reasons joined)."""

    def __init__(self, authorizers: Sequence[Authorizer]) -> None:
        self.authorizers = list(authorizers)

    def authorize(self, attrs: Attributes) -> tuple[Decision, str]:
        reasons = []
        for authorizer in self.authorizers:
            decision, reason = authorizer.authorize(attrs)
            if decision is not Decision.NO_OPINION:
                return decision, reason
            if reason:
                reasons.append(reason)
        return Decision.DENY, ", ".join(reasons)


class Gate:
    """ASGI wrapper enforcing authentication and authorization in front of ``app``."""

    def __init__(
        self, app: Any, authenticator: RequestAuthenticator, authorizer: Authorizer
    ) -> None:
        self.app = app
        self.authenticator = authenticator
        self.authorizer = authorizer

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        kind = scope["type"]
        path = scope.get("path", "")
        if (
            kind not in ("http", "websocket")
            or path in OPEN_PATHS
            or path.startswith(OPEN_PREFIXES)
        ):
            await self.app(scope, receive, send)
            return
        try:
            user = self.admit(scope)
        except errors.ApiError as err:
            await (_deny_http if kind == "http" else _deny_ws)(scope, receive, send, err)
            return
        token = REQUEST_USER.set(user)
        try:
            await self.app(scope, receive, send)
        finally:
            REQUEST_USER.reset(token)

    def admit(self, scope: dict[str, Any]) -> UserInfo:
        """The user ``scope`` runs as, if it may do what it asks; raises ApiError."""
        user = self.authenticator.authenticate(scope)
        headers = scope.get("headers") or ()
        if wants_impersonation(headers):
            user = impersonate(user, headers, self.authorizer)
        method = "GET" if scope["type"] == "websocket" else scope["method"]
        query = scope.get("query_string", b"").decode("latin-1")
        attrs = request_attributes(user, method, scope["path"], query)
        self.check(attrs)
        if attrs.verb == "get" and attrs.subresource in CREATE_ALSO:
            self.check(
                Attributes(
                    user,
                    "create",
                    namespace=attrs.namespace,
                    api_group=attrs.api_group,
                    api_version=attrs.api_version,
                    resource=attrs.resource,
                    subresource=attrs.subresource,
                    name=attrs.name,
                    path=attrs.path,
                )
            )
        return user

    def check(self, attrs: Attributes) -> None:
        decision, reason = self.authorizer.authorize(attrs)
        if decision is not Decision.ALLOW:
            raise forbidden(attrs, reason)


def _status_body(err: errors.ApiError) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    body = orjson.dumps(err.status())
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    return body, headers


async def _deny_http(scope: dict[str, Any], receive: Any, send: Any, err: errors.ApiError) -> None:
    body, headers = _status_body(err)
    await send({"type": "http.response.start", "status": err.code, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _deny_ws(scope: dict[str, Any], receive: Any, send: Any, err: errors.ApiError) -> None:
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    if "websocket.http.response" in (scope.get("extensions") or {}):
        body, headers = _status_body(err)
        await send(
            {"type": "websocket.http.response.start", "status": err.code, "headers": headers}
        )
        await send({"type": "websocket.http.response.body", "body": body})
    else:
        await send({"type": "websocket.close", "code": 1008, "reason": err.reason})


AUTHORIZATION_MODES = ("AlwaysAllow", "AlwaysDeny", "Node", "RBAC")


def build_authorizer(modes: Sequence[str], cache: Any) -> AuthorizerChain:
    """The chain for ``--authorization-mode`` (after ``system:masters``), over the loaded
    watch ``cache``."""
    chain: list[Authorizer] = [MastersAuthorizer()]
    for mode in modes:
        if mode == "AlwaysAllow":
            chain.append(AlwaysAllow())
        elif mode == "AlwaysDeny":
            chain.append(AlwaysDeny())
        elif mode == "Node":
            from apiserver.auth.node import NodeAuthorizer

            chain.append(NodeAuthorizer(cache))
        elif mode == "RBAC":
            from apiserver.auth.rbac import RBACAuthorizer

            chain.append(RBACAuthorizer(cache))
        else:
            raise ValueError(
                f"unknown authorization mode {mode!r} "
                f"(choose from {', '.join(AUTHORIZATION_MODES)})"
            )
    return AuthorizerChain(chain)


def secure(app: Any, server: Any, options: SecurityOptions) -> Gate:
    """``app`` behind a :class:`Gate` configured by ``options``; ``server`` (an
    :class:`apiserver.app.ApiServer`) gets its authorization modes, built at its start, and the
    TokenRequest endpoint when a ServiceAccount key is given."""
    tokens: list[TokenAuthenticator] = []
    if options.token_auth_file:
        tokens.append(StaticTokens.from_file(options.token_auth_file))
    if options.service_account_key_file:
        sa = ServiceAccountTokens(
            server.registry, Path(options.service_account_key_file).read_bytes()
        )
        tokens.append(sa)
        server.handler.token_requests = sa
    server.authorization_modes = tuple(options.authorization_mode)
    authenticator = RequestAuthenticator(
        tokens, client_certs=bool(options.client_ca_file), anonymous=options.anonymous_auth
    )
    return Gate(app, authenticator, server)
