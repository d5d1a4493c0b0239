"""What a request does, from its method, path and query: Kubernetes' ``RequestInfoFactory``.

Resource requests are ``/api/VERSION/...`` and ``/apis/GROUP/VERSION/...`` with at least a
resource; anything else (``/api``, ``/apis/GROUP``, ``/healthz``, ``/openapi/v3``, ...) is a
non-resource request whose verb is the lower-case HTTP method. Resource verbs: GET → get, or
list / watch without a name (``?watch=true``); POST → create; PUT → update; PATCH → patch;
DELETE → delete, or deletecollection without a name. ``/namespaces/NS/RESOURCE/...`` sets the
namespace; ``/namespaces/NS`` (and its ``status`` and ``finalize``) is the Namespace itself;
the legacy ``/watch/`` and ``/proxy/`` path prefixes set those verbs. A list or watch whose
field selector pins ``metadata.name`` is authorized for that name, as in Kubernetes.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from apiserver.auth import Attributes, UserInfo
from machinery import errors

RESOURCE_VERBS = {"POST": "create", "GET": "get", "HEAD": "get", "PUT": "update", "PATCH": "patch"}
SPECIAL_VERBS = ("proxy", "watch")
NAMESPACE_SUBRESOURCES = ("status", "finalize")
TRUE = ("1", "true", "True")


def request_attributes(user: UserInfo, method: str, path: str, query: str = "") -> Attributes:
    """The :class:`Attributes` of ``method path?query`` sent by ``user``."""
    parts = [p for p in path.split("/") if p]
    non_resource = Attributes(user, method.lower(), resource_request=False, path=path)
    if len(parts) < 3 or parts[0] not in ("api", "apis"):
        return non_resource
    group = ""
    rest = parts[1:]
    if parts[0] == "apis":
        if len(rest) < 3:
            return non_resource
        group, rest = rest[0], rest[1:]
    version, rest = rest[0], rest[1:]

    if rest[0] in SPECIAL_VERBS:
        if len(rest) < 2:
            return non_resource
        verb, rest = rest[0], rest[1:]
    elif method == "DELETE":
        verb = "delete"
    else:
        verb = RESOURCE_VERBS.get(method, "")

    namespace = ""
    if rest[0] == "namespaces" and len(rest) > 1:
        namespace = rest[1]
        if len(rest) > 2 and rest[2] not in NAMESPACE_SUBRESOURCES:
            rest = rest[2:]

    resource = rest[0]
    name = rest[1] if len(rest) >= 2 else ""
    subresource = rest[2] if len(rest) >= 3 and verb != "proxy" else ""

    if not name and verb == "get":
        verb = "list"
        if "watch" in query or "fieldSelector" in query:  # parse only when it may matter
            params = dict(parse_qsl(query))
            verb = "watch" if params.get("watch") in TRUE else "list"
            name = _pinned_name(params.get("fieldSelector") or "")
    elif not name and verb == "delete":
        verb = "deletecollection"
    return Attributes(
        user,
        verb,
        namespace=namespace,
        api_group=group,
        api_version=version,
        resource=resource,
        subresource=subresource,
        name=name,
        path=path,
    )


def _pinned_name(selector: str) -> str:
    """The name a field selector requires exactly (``metadata.name=N``), else ''."""
    for term in selector.split(","):
        key, sep, value = term.partition("==") if "==" in term else term.partition("=")
        if sep and key.strip() == "metadata.name" and not key.endswith("!"):
            value = value.strip()
            return value if value and "/" not in value and value not in (".", "..") else ""
    return ""


def forbidden_message(attrs: Attributes) -> str:
    """Kubernetes' text for a denied request (without the resource prefix)."""
    user = attrs.user.name
    if not attrs.resource_request:
        return f'User "{user}" cannot {attrs.verb} path "{attrs.path}"'
    resource = f"{attrs.resource}/{attrs.subresource}" if attrs.subresource else attrs.resource
    where = f'in the namespace "{attrs.namespace}"' if attrs.namespace else "at the cluster scope"
    return (
        f'User "{user}" cannot {attrs.verb} resource "{resource}" '
        f'in API group "{attrs.api_group}" {where}'
    )


def forbidden(attrs: Attributes, reason: str = "") -> errors.Forbidden:
    """The 403 Status for a denied request, worded as Kubernetes words it."""
    text = forbidden_message(attrs) + (f": {reason}" if reason else "")
    qualified = f"{attrs.resource}.{attrs.api_group}" if attrs.api_group else attrs.resource
    if not attrs.resource_request or not qualified:
        message = f"forbidden: {text}"
    elif attrs.name:
        message = f'{qualified} "{attrs.name}" is forbidden: {text}'
    else:
        message = f"{qualified} is forbidden: {text}"
    details = {"name": attrs.name, "group": attrs.api_group, "kind": attrs.resource}
    return errors.Forbidden(message, details={k: v for k, v in details.items() if v})
