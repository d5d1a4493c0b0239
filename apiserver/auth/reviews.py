"""Access reviews: "may this user do that?" asked through the API, answered, never stored.

``authorization.k8s.io/v1`` SelfSubjectAccessReview (``kubectl auth can-i``), SubjectAccessReview,
LocalSubjectAccessReview and SelfSubjectRulesReview (``kubectl auth can-i --list``), and
``authentication.k8s.io/v1`` SelfSubjectReview (``kubectl auth whoami``). Each is a create that
returns the request with ``status`` filled in (201). "Self" means the request's user
(:data:`apiserver.auth.REQUEST_USER`); with security off there is none, every request is allowed,
and the reviews say so.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from apiserver import codec
from apiserver.auth import ANONYMOUS, REQUEST_USER, UNAUTHENTICATED, Attributes, Decision, UserInfo
from apiserver.auth.node import STATIC, node_name
from apiserver.auth.rbac import RBACAuthorizer, Rule
from machinery import errors

AUTHZ, AUTHN = "authorization.k8s.io", "authentication.k8s.io"
#: (group, plural) → kind of the review resources served here.
RESOURCES = {
    (AUTHZ, "selfsubjectaccessreviews"): "SelfSubjectAccessReview",
    (AUTHZ, "subjectaccessreviews"): "SubjectAccessReview",
    (AUTHZ, "localsubjectaccessreviews"): "LocalSubjectAccessReview",
    (AUTHZ, "selfsubjectrulesreviews"): "SelfSubjectRulesReview",
    (AUTHN, "selfsubjectreviews"): "SelfSubjectReview",
}
INSECURE = "authorization is off (the API server runs without security)"


def target(group: str, rest: str) -> tuple[str, str] | None:
    """(kind, namespace) when ``/apis/{group}/v1/{rest}`` names a review collection."""
    parts = [p for p in rest.split("/") if p]
    namespace = ""
    if len(parts) == 3 and parts[0] == "namespaces":
        namespace, parts = parts[1], parts[2:]
    if len(parts) != 1:
        return None
    kind = RESOURCES.get((group, parts[0]))
    if kind is None or (kind == "LocalSubjectAccessReview") != bool(namespace):
        return None
    return kind, namespace


class Reviews:
    """Answers review creates with ``authorize`` (the server's chain) and ``rbac`` (for rules
    reviews; None when RBAC is not an authorization mode)."""

    def __init__(
        self,
        authorize: Callable[[Attributes], tuple[Decision, str]],
        rbac: Callable[[], RBACAuthorizer | None],
    ) -> None:
        self.authorize = authorize
        self.rbac = rbac

    async def handle(self, request: Request, group: str, version: str, rest: str) -> Response:
        try:
            found = target(group, rest) if version == "v1" else None
            if found is None:
                raise errors.NotFound("the server could not find the requested resource")
            if request.method != "POST":
                raise errors.MethodNotAllowed(
                    f"the server does not allow this method on the requested resource: "
                    f"{request.method}"
                )
            kind, namespace = found
            body = codec.decode(await request.body(), request.headers.get("content-type"))
            if not isinstance(body, dict):
                raise errors.BadRequest("the request body must be a JSON object")
            if body.get("kind") not in (None, kind):
                raise errors.BadRequest(
                    f"the kind in the data ({body.get('kind')}) does not match the expected "
                    f"kind ({kind})"
                )
            return codec.json_response(self.review(kind, namespace, body, f"{group}/v1"), 201)
        except errors.ApiError as err:
            return codec.error_response(err)

    def review(
        self, kind: str, namespace: str, body: dict[str, Any], api_version: str
    ) -> dict[str, Any]:
        """The answered review object."""
        spec = body.get("spec") or {}
        if not isinstance(spec, dict):
            raise errors.BadRequest("spec must be an object")
        out: dict[str, Any] = {
            "kind": kind,
            "apiVersion": api_version,
            "metadata": {**(body.get("metadata") or {}), "creationTimestamp": None},
        }
        if kind == "SelfSubjectReview":
            out["status"] = {"userInfo": _user_info(REQUEST_USER.get())}
            return out
        out["spec"] = spec
        if kind == "SelfSubjectRulesReview":
            out["status"] = self._rules(REQUEST_USER.get(), spec.get("namespace") or "")
            return out
        if kind in ("SubjectAccessReview", "LocalSubjectAccessReview"):
            user: UserInfo | None = _spec_user(kind, spec)
        else:
            user = REQUEST_USER.get()
        attrs_spec = spec.get("resourceAttributes")
        if kind == "LocalSubjectAccessReview":
            if not isinstance(attrs_spec, dict):
                raise _invalid(kind, "spec.resourceAttributes", "Required value")
            if attrs_spec.get("namespace") not in (None, "", namespace):
                raise _invalid(
                    kind, "spec.resourceAttributes.namespace", "must match metadata.namespace"
                )
            attrs_spec = {**attrs_spec, "namespace": namespace}
            out["metadata"]["namespace"] = namespace
        out["status"] = self._access(kind, user, attrs_spec, spec.get("nonResourceAttributes"))
        return out

    def _access(self, kind: str, user: UserInfo | None, res: Any, non_res: Any) -> dict[str, Any]:
        if bool(res) == bool(non_res):
            raise _invalid(
                kind,
                "spec.resourceAttributes",
                "exactly one of nonResourceAttributes or resourceAttributes must be specified",
            )
        if user is None:
            return {"allowed": True, "reason": INSECURE}
        if res:
            if not isinstance(res, dict):
                raise errors.BadRequest("spec.resourceAttributes must be an object")
            attrs = Attributes(
                user,
                str(res.get("verb") or ""),
                namespace=str(res.get("namespace") or ""),
                api_group=str(res.get("group") or ""),
                api_version=str(res.get("version") or ""),
                resource=str(res.get("resource") or ""),
                subresource=str(res.get("subresource") or ""),
                name=str(res.get("name") or ""),
            )
        else:
            if not isinstance(non_res, dict):
                raise errors.BadRequest("spec.nonResourceAttributes must be an object")
            attrs = Attributes(
                user,
                str(non_res.get("verb") or ""),
                resource_request=False,
                path=str(non_res.get("path") or ""),
            )
        decision, reason = self.authorize(attrs)
        status: dict[str, Any] = {"allowed": decision is Decision.ALLOW}
        if decision is Decision.DENY and reason:
            status["denied"] = True
        if reason:
            status["reason"] = reason
        return status

    def _rules(self, user: UserInfo | None, namespace: str) -> dict[str, Any]:
        if user is None:
            return {
                "resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}],
                "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
                "incomplete": False,
            }
        rbac = self.rbac()
        rules: list[Rule] = list(rbac.rules_for(user, namespace)) if rbac is not None else []
        node = node_name(user)
        if node is not None:
            rules += [Rule(verbs, (group,), (res,)) for (group, res), verbs in STATIC.items()]
        status: dict[str, Any] = {
            "resourceRules": [_resource_rule(r) for r in rules if r.resources],
            "nonResourceRules": [
                {"verbs": list(r.verbs), "nonResourceURLs": list(r.non_resource_urls)}
                for r in rules
                if r.non_resource_urls
            ],
            # the node authorizer's relationship rules and system:masters are not rules
            "incomplete": rbac is None or node is not None,
        }
        return status


def _resource_rule(r: Rule) -> dict[str, Any]:
    out: dict[str, Any] = {
        "verbs": list(r.verbs),
        "apiGroups": list(r.api_groups),
        "resources": list(r.resources),
    }
    if r.resource_names:
        out["resourceNames"] = list(r.resource_names)
    return out


def _spec_user(kind: str, spec: dict[str, Any]) -> UserInfo:
    name, groups = spec.get("user") or "", spec.get("groups") or []
    if not name and not groups:
        raise _invalid(kind, "spec.user", "at least one of user or group must be specified")
    extra = spec.get("extra") or {}
    return UserInfo(
        str(name),
        uid=str(spec.get("uid") or ""),
        groups=tuple(str(g) for g in groups),
        extra={str(k): tuple(v or ()) for k, v in extra.items()} if isinstance(extra, dict) else {},
    )


def _user_info(user: UserInfo | None) -> dict[str, Any]:
    if user is None:
        user = UserInfo(ANONYMOUS, groups=(UNAUTHENTICATED,))
    out: dict[str, Any] = {"username": user.name, "groups": list(user.groups)}
    if user.uid:
        out["uid"] = user.uid
    if user.extra:
        out["extra"] = {k: list(v) for k, v in user.extra.items()}
    return out


def _invalid(kind: str, field: str, message: str) -> errors.Invalid:
    return errors.invalid(
        kind, "", [{"reason": "FieldValueInvalid", "field": field, "message": message}], AUTHZ
    )
