"""Impersonation: ``Impersonate-User``, ``-Group``, ``-Uid`` and ``-Extra-KEY`` headers.

As in Kubernetes, the requester needs the verb ``impersonate`` on each thing it claims:
``users`` (or ``serviceaccounts`` in the account's namespace, for a
``system:serviceaccount:NS:NAME`` user) and ``groups`` in the core group, ``uids`` and
``userextras/KEY`` in ``authentication.k8s.io``. The request then runs as the impersonated
user, who gets ``system:authenticated`` (or ``system:unauthenticated`` for
``system:anonymous``) and, for a ServiceAccount, its groups; the impersonator is recorded in
nothing else. Any impersonation header without ``Impersonate-User`` is a 400.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import unquote

from apiserver.auth import (
    ANONYMOUS,
    AUTHENTICATED,
    SERVICEACCOUNT_PREFIX,
    SERVICEACCOUNTS,
    UNAUTHENTICATED,
    Attributes,
    Authorizer,
    Decision,
    UserInfo,
)
from apiserver.auth.attributes import forbidden
from machinery import errors

USER, GROUP, UID, EXTRA = (
    b"impersonate-user",
    b"impersonate-group",
    b"impersonate-uid",
    b"impersonate-extra-",
)
AUTHN_GROUP = "authentication.k8s.io"


def wants_impersonation(headers: Iterable[tuple[bytes, bytes]]) -> bool:
    """Whether any impersonation header is present (cheap: no decoding)."""
    return any(k.startswith(b"impersonate-") for k, _ in headers)


def impersonate(
    requester: UserInfo, headers: Iterable[tuple[bytes, bytes]], authorizer: Authorizer
) -> UserInfo:
    """The user ``requester`` asks to act as; raises Forbidden or BadRequest."""
    name: str | None = None
    uid = ""
    groups: list[str] = []
    extra: dict[str, list[str]] = {}
    for key, raw in headers:
        if not key.startswith(b"impersonate-"):
            continue
        value = raw.decode("latin-1").strip()
        if key == USER:
            name = value
        elif key == GROUP:
            groups.append(value)
        elif key == UID:
            uid = value
        elif key.startswith(EXTRA):
            extra.setdefault(unquote(key[len(EXTRA) :].decode("latin-1")).lower(), []).append(value)
    if not name:
        raise errors.BadRequest(
            "requested impersonation of groups, uid or extra without impersonating a user"
        )

    checks: list[Attributes] = []
    sa_groups: tuple[str, ...] = ()
    if name.startswith(SERVICEACCOUNT_PREFIX) and name.count(":") == 3:
        namespace, sa = name[len(SERVICEACCOUNT_PREFIX) :].split(":")
        checks.append(_attrs(requester, "serviceaccounts", sa, namespace=namespace))
        sa_groups = (SERVICEACCOUNTS, f"{SERVICEACCOUNTS}:{namespace}")
    else:
        checks.append(_attrs(requester, "users", name))
    checks += [_attrs(requester, "groups", g) for g in groups]
    if uid:
        checks.append(_attrs(requester, "uids", uid, group=AUTHN_GROUP))
    for key, values in extra.items():
        checks += [
            _attrs(requester, "userextras", v, group=AUTHN_GROUP, subresource=key) for v in values
        ]
    for attrs in checks:
        decision, reason = authorizer.authorize(attrs)
        if decision is not Decision.ALLOW:
            raise forbidden(attrs, reason)

    all_groups = list(sa_groups) + [g for g in groups if g not in sa_groups]
    marker = UNAUTHENTICATED if name == ANONYMOUS else AUTHENTICATED
    if marker not in all_groups:
        all_groups.append(marker)
    return UserInfo(
        name, uid=uid, groups=tuple(all_groups), extra={k: tuple(v) for k, v in extra.items()}
    )


def _attrs(
    user: UserInfo,
    resource: str,
    name: str,
    *,
    namespace: str = "",
    group: str = "",
    subresource: str = "",
) -> Attributes:
    return Attributes(
        user,
        "impersonate",
        namespace=namespace,
        api_group=group,
        resource=resource,
        subresource=subresource,
        name=name,
    )
