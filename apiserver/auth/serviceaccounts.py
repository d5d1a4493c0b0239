"""ServiceAccount tokens: issued by the ``serviceaccounts/token`` subresource (TokenRequest),
checked on every request that presents one.

Tokens are JWTs signed RS256 with ``--service-account-key-file`` (``DATA_DIR/pki/sa.key`` with
``--secure``), with Kubernetes' claims: ``iss``, ``sub`` (``system:serviceaccount:NS:NAME``),
``aud``, ``exp``, ``iat``, ``nbf`` and ``kubernetes.io`` (namespace, serviceaccount name and uid,
and the bound pod or secret if any). A token authenticates while it is unexpired, its audience
is one the API server accepts, and its ServiceAccount (and bound object) still exists with the
same uid: deleting the ServiceAccount revokes its tokens at once.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from starlette.requests import Request
from starlette.responses import Response

from apiserver import codec
from apiserver.auth import SERVICEACCOUNT_PREFIX, SERVICEACCOUNTS, UserInfo
from machinery import errors
from machinery.kinds import lookup

ISSUER = "https://kubernetes.default.svc.cluster.local"
DEFAULT_EXPIRATION = 3600
MIN_EXPIRATION = 600
MAX_EXPIRATION = 1 << 32
SERVICEACCOUNTS_RT = lookup("serviceaccounts")
BOUND_KINDS = {"Pod": lookup("pods"), "Secret": lookup("secrets")}


def service_account_user(namespace: str, name: str, uid: str = "") -> UserInfo:
    """The user a ServiceAccount authenticates as."""
    return UserInfo(
        f"{SERVICEACCOUNT_PREFIX}{namespace}:{name}",
        uid=uid,
        groups=(SERVICEACCOUNTS, f"{SERVICEACCOUNTS}:{namespace}"),
    )


class ServiceAccountTokens:
    """Issues and verifies ServiceAccount JWTs; ``registry`` answers whether the account (and
    bound object) still exists."""

    def __init__(
        self,
        registry: Any,
        key_pem: bytes,
        *,
        issuer: str = ISSUER,
        audiences: tuple[str, ...] = (ISSUER,),
    ) -> None:
        self.registry = registry
        key = serialization.load_pem_private_key(key_pem, password=None)
        self._private = key
        self._public = key.public_key()
        self.issuer = issuer
        self.audiences = audiences

    # -- issuing --------------------------------------------------------------------------
    def issue(
        self,
        sa: dict[str, Any],
        audiences: list[str],
        expiration_seconds: int,
        bound: dict[str, Any] | None = None,
    ) -> tuple[str, int]:
        """A token for ServiceAccount object ``sa``; returns (token, expiry as epoch seconds)."""
        meta = sa["metadata"]
        now = int(time.time())
        exp = now + expiration_seconds
        private: dict[str, Any] = {
            "namespace": meta["namespace"],
            "serviceaccount": {"name": meta["name"], "uid": meta.get("uid", "")},
        }
        if bound:
            private[bound["kind"].lower()] = {"name": bound["name"], "uid": bound.get("uid", "")}
        claims = {
            "iss": self.issuer,
            "sub": f"{SERVICEACCOUNT_PREFIX}{meta['namespace']}:{meta['name']}",
            "aud": audiences or list(self.audiences),
            "exp": exp,
            "iat": now,
            "nbf": now,
            "kubernetes.io": private,
        }
        return jwt.encode(claims, self._private, algorithm="RS256"), exp  # type: ignore[arg-type]

    async def token_request(self, request: Request, namespace: str, name: str) -> Response:
        """``POST .../serviceaccounts/NAME/token``: a TokenRequest answered with its token."""
        if request.method != "POST":
            raise errors.MethodNotAllowed(f"{request.method} is not allowed on token")
        body = codec.decode(await request.body(), request.headers.get("content-type")) or {}
        spec = body.get("spec") or {}
        expiration = int(spec.get("expirationSeconds") or DEFAULT_EXPIRATION)
        if expiration < MIN_EXPIRATION:
            raise errors.Invalid(
                'TokenRequest.authentication.k8s.io "" is invalid: spec.expirationSeconds: '
                "Invalid value: may not specify a duration less than 10 minutes",
                causes=[
                    {
                        "reason": "FieldValueInvalid",
                        "message": "may not specify a duration less than 10 minutes",
                        "field": "spec.expirationSeconds",
                    }
                ],
            )
        expiration = min(expiration, MAX_EXPIRATION)
        entry = self.registry.get(SERVICEACCOUNTS_RT, namespace, name)
        bound = self._bound(namespace, spec.get("boundObjectRef"))
        token, exp = self.issue(entry.obj, list(spec.get("audiences") or []), expiration, bound)
        out = {
            "kind": "TokenRequest",
            "apiVersion": "authentication.k8s.io/v1",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "creationTimestamp": _rfc3339(int(time.time())),
            },
            "spec": {
                "audiences": list(spec.get("audiences") or self.audiences),
                "expirationSeconds": expiration,
                "boundObjectRef": spec.get("boundObjectRef"),
            },
            "status": {"token": token, "expirationTimestamp": _rfc3339(exp)},
        }
        return codec.json_response(out, 201)

    def _bound(self, namespace: str, ref: dict[str, Any] | None) -> dict[str, Any] | None:
        if not ref:
            return None
        rt = BOUND_KINDS.get(ref.get("kind") or "")
        if rt is None:
            raise errors.BadRequest(f"cannot bind token to object of kind {ref.get('kind')!r}")
        obj = self.registry.get(rt, namespace, ref.get("name") or "").obj
        uid = obj["metadata"].get("uid", "")
        if ref.get("uid") and ref["uid"] != uid:
            raise errors.Conflict(
                f"the UID in the bound object reference ({ref['uid']}) does not match "
                f"the UID in record. The object might have been deleted and then recreated"
            )
        return {"kind": ref["kind"], "name": ref["name"], "uid": uid}

    # -- verifying ------------------------------------------------------------------------
    def authenticate_token(self, token: str) -> UserInfo | None:
        if token.count(".") != 2:
            return None
        try:
            claims = jwt.decode(
                token,
                self._public,  # type: ignore[arg-type]
                algorithms=["RS256"],
                audience=list(self.audiences),
                issuer=self.issuer,
                options={"require": ["exp", "sub", "iss"]},
            )
        except jwt.PyJWTError:
            return None
        private = claims.get("kubernetes.io")
        if not isinstance(private, dict):
            return None
        namespace = private.get("namespace") or ""
        sa = private.get("serviceaccount") or {}
        entry = self.registry.find(SERVICEACCOUNTS_RT, namespace, sa.get("name") or "")
        if entry is None or not self._alive(entry.obj, sa.get("uid")):
            return None
        for kind, rt in BOUND_KINDS.items():
            ref = private.get(kind.lower())
            if isinstance(ref, dict):
                bound = self.registry.find(rt, namespace, ref.get("name") or "")
                if bound is None or not self._alive(bound.obj, ref.get("uid")):
                    return None
        return service_account_user(namespace, entry.obj["metadata"]["name"], sa.get("uid", ""))

    @staticmethod
    def _alive(obj: dict[str, Any], uid: str | None) -> bool:
        meta = obj.get("metadata") or {}
        return meta.get("uid") == uid and not meta.get("deletionTimestamp")


def _rfc3339(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
