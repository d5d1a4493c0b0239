"""Who is asking and may they: the types shared by authentication and authorization.

Authentication turns a request into a :class:`UserInfo`; authorization decides on
:class:`Attributes` (the user plus what the request does) with an :class:`Authorizer`.
Names follow Kubernetes' ``user.Info`` and ``authorizer.Attributes``.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Protocol

ANONYMOUS = "system:anonymous"
UNAUTHENTICATED = "system:unauthenticated"
AUTHENTICATED = "system:authenticated"
MASTERS = "system:masters"
NODES = "system:nodes"
NODE_PREFIX = "system:node:"
SERVICEACCOUNTS = "system:serviceaccounts"
SERVICEACCOUNT_PREFIX = "system:serviceaccount:"


@dataclass(frozen=True)
class UserInfo:
    """An authenticated (or anonymous) user: name, uid, groups and extra attributes."""

    name: str
    uid: str = ""
    groups: tuple[str, ...] = ()
    extra: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class Attributes:
    """What a request does, as authorization sees it.

    ``verb`` is the Kubernetes API verb for resource requests (get, list, watch, create,
    update, patch, delete, deletecollection, or impersonate/bind/escalate/use) and the
    lower-case HTTP method for non-resource requests (``path`` set, ``resource_request``
    False).
    """

    user: UserInfo
    verb: str
    resource_request: bool = True
    namespace: str = ""
    api_group: str = ""
    api_version: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""
    path: str = ""


class Decision(enum.Enum):
    """An authorizer's answer; NO_OPINION lets the next authorizer in a chain decide."""

    ALLOW = "allow"
    DENY = "deny"
    NO_OPINION = "no-opinion"


class Authorizer(Protocol):
    """Decides one request; the reason is shown to the user on 403."""

    def authorize(self, attrs: Attributes) -> tuple[Decision, str]: ...


#: The user of the request being served: set by authentication in the request's task, read by
#: authorization, admission (NodeRestriction, RBAC escalation checks) and the review endpoints.
#: None means no authentication is in force (``--insecure``, or the server's own writes).
REQUEST_USER: ContextVar[UserInfo | None] = ContextVar("tugboat_request_user", default=None)
