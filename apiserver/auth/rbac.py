"""RBAC: Roles, ClusterRoles and their bindings decide what a user may do.

Agreement with authentication (apiserver/auth/authn.py and the wiring in apiserver/app.py):

* authentication sets :data:`apiserver.auth.REQUEST_USER` for the request's task; everything
  here that needs "who is asking" outside :meth:`RBACAuthorizer.authorize` (escalation checks at
  admission, the review endpoints in :mod:`apiserver.auth.reviews`, NodeRestriction) reads it;
  ``None`` means authentication is off and the checks step aside;
* the chain is ``[system:masters, NodeAuthorizer, RBACAuthorizer]`` (``--authorization-mode
  Node,RBAC``), built by :func:`apiserver.auth.filters.build_authorizer` and asked through
  :meth:`apiserver.app.ApiServer.authorize`; the first ALLOW or DENY wins. The API server takes
  the chain's RBACAuthorizer for escalation checks and rules reviews (``ApiServer._start_rbac``).

Semantics follow Kubernetes: ClusterRoleBindings grant everywhere, RoleBindings grant in their
namespace (their roleRef may name a ClusterRole); a rule matches verb, API group, resource
(``res/sub``, ``*``, ``*/sub``), resource name and non-resource URL (trailing ``*``). An
aggregated ClusterRole (``aggregationRule.clusterRoleSelectors``) holds the union of the rules of
the ClusterRoles its selectors pick (the rules are also written into the stored object, see
:class:`Aggregator`). RBAC never denies: without a matching rule it has no opinion, with
Kubernetes' reason (empty, or the bindings whose role is missing).

Cost: bindings are indexed by subject (user name, group; a ServiceAccount subject is its user
name) and kept current from watch-cache events, so a decision reads only the bindings of this
user and its groups.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from apiserver.auth import MASTERS, REQUEST_USER, Attributes, Decision, UserInfo
from apiserver.registry import WriteOptions
from machinery import errors
from machinery.selectors import LabelSelector

if TYPE_CHECKING:
    from apiserver.cache import WatchCache
    from apiserver.registry import Registry
    from machinery.kinds import ResourceType

GROUP = "rbac.authorization.k8s.io"
ROLES = f"{GROUP}/roles"
CLUSTER_ROLES = f"{GROUP}/clusterroles"
ROLE_BINDINGS = f"{GROUP}/rolebindings"
CLUSTER_ROLE_BINDINGS = f"{GROUP}/clusterrolebindings"
KEYS = (ROLES, CLUSTER_ROLES, ROLE_BINDINGS, CLUSTER_ROLE_BINDINGS)
SA_PREFIX = "system:serviceaccount:"

log = logging.getLogger(__name__)


# -- rules --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """One PolicyRule, parsed once."""

    verbs: tuple[str, ...] = ()
    api_groups: tuple[str, ...] = ()
    resources: tuple[str, ...] = ()
    resource_names: tuple[str, ...] = ()
    non_resource_urls: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, rule: dict[str, Any]) -> Rule:
        def strs(key: str) -> tuple[str, ...]:
            return tuple(str(v) for v in rule.get(key) or ())

        return cls(
            strs("verbs"),
            strs("apiGroups"),
            strs("resources"),
            strs("resourceNames"),
            strs("nonResourceURLs"),
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"verbs": list(self.verbs)}
        for key, value in (
            ("apiGroups", self.api_groups),
            ("resources", self.resources),
            ("resourceNames", self.resource_names),
            ("nonResourceURLs", self.non_resource_urls),
        ):
            if value:
                out[key] = list(value)
        return out

    def __str__(self) -> str:
        parts = []
        for label, value in (
            ("APIGroups", self.api_groups),
            ("Resources", self.resources),
            ("ResourceNames", self.resource_names),
            ("NonResourceURLs", self.non_resource_urls),
            ("Verbs", self.verbs),
        ):
            if value:
                parts.append(label + ":[" + " ".join(f'"{v}"' for v in value) + "]")
        return "{" + ", ".join(parts) + "}"


def rules_of(obj: dict[str, Any]) -> tuple[Rule, ...]:
    return tuple(Rule.from_dict(r) for r in obj.get("rules") or () if isinstance(r, dict))


def resource_matches(rule: Rule, resource: str, subresource: str) -> bool:
    """``*`` matches everything; ``res/sub`` the subresource; ``*/sub`` that subresource of
    any resource."""
    combined = f"{resource}/{subresource}" if subresource else resource
    for r in rule.resources:
        if r == "*" or r == combined:
            return True
        if subresource and r == "*/" + subresource:
            return True
    return False


def url_matches(rule: Rule, path: str) -> bool:
    for u in rule.non_resource_urls:
        if u == "*" or u == path or (u.endswith("*") and path.startswith(u[:-1])):
            return True
    return False


def rule_allows(rule: Rule, attrs: Attributes) -> bool:
    """Kubernetes' ``RuleAllows``."""
    if "*" not in rule.verbs and attrs.verb not in rule.verbs:
        return False
    if not attrs.resource_request:
        return url_matches(rule, attrs.path)
    if "*" not in rule.api_groups and attrs.api_group not in rule.api_groups:
        return False
    if not resource_matches(rule, attrs.resource, attrs.subresource):
        return False
    return not rule.resource_names or attrs.name in rule.resource_names


# -- covering (escalation) ----------------------------------------------------------------------


def _atoms(rule: Rule) -> Iterator[Rule]:
    """A rule broken into one-verb, one-group, one-resource, one-name rules."""
    for verb in rule.verbs:
        for group in rule.api_groups:
            for res in rule.resources:
                for name in rule.resource_names or ("",):
                    yield Rule((verb,), (group,), (res,), (name,) if name else ())
        for url in rule.non_resource_urls:
            yield Rule((verb,), non_resource_urls=(url,))


def _covers_atom(owner: Rule, atom: Rule) -> bool:
    verb = atom.verbs[0]
    if "*" not in owner.verbs and verb not in owner.verbs:
        return False
    if atom.non_resource_urls:
        url = atom.non_resource_urls[0]
        return any(
            u == "*" or u == url or (u.endswith("*") and url.startswith(u[:-1]))
            for u in owner.non_resource_urls
        )
    if "*" not in owner.api_groups and atom.api_groups[0] not in owner.api_groups:
        return False
    res = atom.resources[0]
    if "*" not in owner.resources and res not in owner.resources:
        sub = res.partition("/")[2]
        if not sub or "*/" + sub not in owner.resources:
            return False
    if not owner.resource_names:
        return True
    return bool(atom.resource_names) and atom.resource_names[0] in owner.resource_names


def uncovered(owner: Iterable[Rule], servant: Iterable[Rule]) -> list[Rule]:
    """The parts of ``servant`` that no rule of ``owner`` covers (Kubernetes' ``Covers``: a
    wildcard is covered only by a wildcard)."""
    owned = list(owner)
    return [a for r in servant for a in _atoms(r) if not any(_covers_atom(o, a) for o in owned)]


# -- the index ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Binding:
    """One subject's share of a binding: where it came from and which role it names."""

    kind: str  # RoleBinding | ClusterRoleBinding
    namespace: str  # "" for a ClusterRoleBinding
    name: str
    role_kind: str  # Role | ClusterRole
    role_name: str
    subject: str  # 'User "alice"' as Kubernetes describes it

    def describe(self) -> str:
        name = f"{self.name}/{self.namespace}" if self.namespace else self.name
        return f'{self.kind} "{name}" of {self.role_kind} "{self.role_name}" to {self.subject}'


def _subject_keys(subject: dict[str, Any], binding_ns: str) -> tuple[tuple[str, str], str] | None:
    """The index key of a subject (("u", user name) or ("g", group)) and its description."""
    kind, name = subject.get("kind"), subject.get("name") or ""
    if kind == "User":
        return ("u", name), f'User "{name}"'
    if kind == "Group":
        return ("g", name), f'Group "{name}"'
    if kind == "ServiceAccount":
        ns = subject.get("namespace") or binding_ns
        if not ns:
            return None
        shown = f"{ns}/{name}" if ns != binding_ns else name
        return ("u", f"{SA_PREFIX}{ns}:{name}"), f'ServiceAccount "{shown}"'
    return None


class RBACAuthorizer:
    """Kubernetes RBAC over the watch cache; see the module docstring."""

    def __init__(self, cache: WatchCache) -> None:
        self.cache = cache
        self._roles: dict[tuple[str, str], tuple[Rule, ...]] = {}
        self._cluster_roles: dict[str, dict[str, Any]] = {}
        self._effective: dict[str, tuple[Rule, ...]] = {}
        self._by_subject: dict[tuple[str, str], dict[tuple[str, str, str], Binding]] = {}
        self._loaded = False
        for key in KEYS:
            cache.listen(key, self._listener(key))

    # -- keeping the index current --------------------------------------------------------------
    def _ensure(self) -> None:
        """Build the index from the cache on first use (the cache may still be loading when
        the authorizer is made); from then on, events keep it current."""
        if not self._loaded:
            self._loaded = True
            for key in KEYS:
                for _, entry in self.cache.list(key):
                    self._apply(key, entry.obj, None)

    def _listener(self, key: str) -> Callable[[str, Any, Any], None]:
        def follow(_typ: str, new: dict[str, Any] | None, old: dict[str, Any] | None) -> None:
            if self._loaded:
                self._apply(key, new, old)

        return follow

    def _apply(self, key: str, new: dict[str, Any] | None, old: dict[str, Any] | None) -> None:
        obj = new if new is not None else old
        if obj is None:
            return
        m = obj.get("metadata") or {}
        ns, name = m.get("namespace") or "", m.get("name") or ""
        if key == ROLES:
            if new is None:
                self._roles.pop((ns, name), None)
            else:
                self._roles[(ns, name)] = rules_of(new)
        elif key == CLUSTER_ROLES:
            if new is None:
                self._cluster_roles.pop(name, None)
            else:
                self._cluster_roles[name] = new
            self._effective.clear()
        else:
            if old is not None:
                self._unindex(key, old)
            if new is not None:
                self._index(key, new)

    def _index(self, key: str, obj: dict[str, Any]) -> None:
        m = obj.get("metadata") or {}
        ns = (m.get("namespace") or "") if key == ROLE_BINDINGS else ""
        ref = obj.get("roleRef") or {}
        kind = "RoleBinding" if key == ROLE_BINDINGS else "ClusterRoleBinding"
        for subject in obj.get("subjects") or ():
            found = _subject_keys(subject, ns) if isinstance(subject, dict) else None
            if found is None:
                continue
            skey, described = found
            b = Binding(
                kind, ns, m.get("name", ""), ref.get("kind", ""), ref.get("name", ""), described
            )
            self._by_subject.setdefault(skey, {})[(kind, ns, b.name)] = b

    def _unindex(self, key: str, obj: dict[str, Any]) -> None:
        m = obj.get("metadata") or {}
        ns = (m.get("namespace") or "") if key == ROLE_BINDINGS else ""
        kind = "RoleBinding" if key == ROLE_BINDINGS else "ClusterRoleBinding"
        for subject in obj.get("subjects") or ():
            found = _subject_keys(subject, ns) if isinstance(subject, dict) else None
            if found is None:
                continue
            bucket = self._by_subject.get(found[0])
            if bucket is not None:
                bucket.pop((kind, ns, m.get("name", "")), None)
                if not bucket:
                    del self._by_subject[found[0]]

    # -- roles ----------------------------------------------------------------------------------
    def cluster_role_rules(self, name: str) -> tuple[Rule, ...] | None:
        """A ClusterRole's rules (for an aggregated one: the union of the roles it selects);
        None when it does not exist."""
        self._ensure()
        if name not in self._cluster_roles:
            return None
        found = self._effective.get(name)
        if found is None:
            found = self._effective[name] = tuple(self._resolve(name, set()))
        return found

    def _resolve(self, name: str, seen: set[str]) -> list[Rule]:
        role = self._cluster_roles.get(name)
        if role is None or name in seen:
            return []
        seen.add(name)
        agg = role.get("aggregationRule")
        if not isinstance(agg, dict):
            return list(rules_of(role))
        out: list[Rule] = []
        for other in self.aggregated_from(role):
            for rule in self._resolve(other, seen):
                if rule not in out:
                    out.append(rule)
        return out

    def aggregated_from(self, role: dict[str, Any]) -> list[str]:
        """Names of the ClusterRoles an aggregated ClusterRole selects, sorted (itself
        excluded)."""
        self._ensure()
        me = (role.get("metadata") or {}).get("name")
        selectors = []
        for sel in (role.get("aggregationRule") or {}).get("clusterRoleSelectors") or ():
            with contextlib.suppress(ValueError):
                selectors.append(LabelSelector.from_dict(sel))
        return sorted(
            name
            for name, other in self._cluster_roles.items()
            if name != me
            and any(s.matches((other.get("metadata") or {}).get("labels")) for s in selectors)
        )

    def role_ref_rules(self, ref: dict[str, Any], namespace: str) -> tuple[Rule, ...] | None:
        """The rules a roleRef names (a Role of ``namespace`` or a ClusterRole); None if
        missing."""
        self._ensure()
        if ref.get("kind") == "Role":
            return self._roles.get((namespace, ref.get("name", "")))
        if ref.get("kind") == "ClusterRole":
            return self.cluster_role_rules(ref.get("name", ""))
        return None

    # -- decisions ------------------------------------------------------------------------------
    def _bindings(self, user: UserInfo) -> Iterator[Binding]:
        for skey in (("u", user.name), *(("g", g) for g in user.groups)):
            yield from self._by_subject.get(skey, {}).values()

    def _visit(
        self, user: UserInfo, namespace: str
    ) -> Iterator[tuple[Binding, tuple[Rule, ...] | None]]:
        """(binding, its role's rules or None when missing) for the bindings that apply in
        ``namespace`` ("" = cluster-wide only)."""
        for b in self._bindings(user):
            if b.namespace and b.namespace != namespace:
                continue
            if b.role_kind == "Role":
                yield b, self._roles.get((b.namespace, b.role_name))
            elif b.role_kind == "ClusterRole":
                yield b, self.cluster_role_rules(b.role_name)

    def authorize(self, attrs: Attributes) -> tuple[Decision, str]:
        self._ensure()
        missing: list[str] = []
        for b, rules in self._visit(attrs.user, attrs.namespace):
            if rules is None:
                plural = "roles" if b.role_kind == "Role" else "clusterroles"
                msg = f'{plural}.{GROUP} "{b.role_name}" not found'
                if msg not in missing:
                    missing.append(msg)
                continue
            for rule in rules:
                if rule_allows(rule, attrs):
                    return Decision.ALLOW, f"RBAC: allowed by {b.describe()}"
        if not missing:
            return Decision.NO_OPINION, ""
        if len(missing) == 1:
            return Decision.NO_OPINION, f"RBAC: {missing[0]}"
        return Decision.NO_OPINION, "RBAC: [" + ", ".join(missing) + "]"

    def rules_for(self, user: UserInfo, namespace: str) -> list[Rule]:
        """Every rule granted to ``user`` in ``namespace`` ("" = the cluster-wide ones)."""
        self._ensure()
        out: list[Rule] = []
        for _, rules in self._visit(user, namespace):
            for rule in rules or ():
                if rule not in out:
                    out.append(rule)
        return out


# -- escalation prevention ----------------------------------------------------------------------


def _is_gc_only_change(obj: dict[str, Any], old: dict[str, Any]) -> bool:
    """Only ownerReferences/finalizers changed (Kubernetes lets those through unchecked)."""

    def rest(o: dict[str, Any]) -> dict[str, Any]:
        m = {
            k: v
            for k, v in (o.get("metadata") or {}).items()
            if k not in ("ownerReferences", "finalizers", "resourceVersion", "managedFields")
        }
        return {**o, "metadata": m}

    return rest(obj) == rest(old)


class EscalationCheck:
    """Admission for RBAC objects: a user may only write a Role/ClusterRole whose rules it
    holds (or with the ``escalate`` verb on it) and a binding to a role whose rules it holds (or
    with the ``bind`` verb on that role); members of system:masters, and the server itself (no
    request user), are exempt. Setting an aggregationRule needs full authority (``*`` on
    ``*``), as in Kubernetes."""

    FULL = (Rule(("*",), ("*",), ("*",)), Rule(("*",), non_resource_urls=("*",)))

    def __init__(
        self,
        rbac: RBACAuthorizer,
        authorize: Callable[[Attributes], tuple[Decision, str]] | None = None,
    ) -> None:
        self.rbac = rbac
        self.authorize = authorize or rbac.authorize

    def __call__(self, rt: ResourceType, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
        if rt.storage_key not in KEYS:
            return
        user = REQUEST_USER.get()
        if user is None or MASTERS in user.groups:
            return
        if old is not None and _is_gc_only_change(obj, old):
            return
        m = obj.get("metadata") or {}
        ns = (m.get("namespace") or "") if rt.namespaced else ""
        name = m.get("name") or ""
        if rt.storage_key in (ROLES, CLUSTER_ROLES):
            self._check_role(rt, user, ns, name, obj, old)
        else:
            self._check_binding(rt, user, ns, name, obj)

    def _allowed(self, user: UserInfo, verb: str, resource: str, ns: str, name: str) -> bool:
        attrs = Attributes(
            user,
            verb,
            namespace=ns,
            api_group=GROUP,
            api_version="v1",
            resource=resource,
            name=name,
        )
        return self.authorize(attrs)[0] is Decision.ALLOW

    def _check_role(
        self,
        rt: ResourceType,
        user: UserInfo,
        ns: str,
        name: str,
        obj: dict[str, Any],
        old: dict[str, Any] | None,
    ) -> None:
        if self._allowed(user, "escalate", rt.plural, ns, name):
            return
        owner = self.rbac.rules_for(user, ns)
        agg = obj.get("aggregationRule")
        if (
            agg
            and (old is None or old.get("aggregationRule") != agg)
            and uncovered(owner, self.FULL)
        ):
            raise errors.Forbidden(
                f'{rt.plural}.{GROUP} "{name}" is forbidden: must have cluster-admin privileges '
                "to use the aggregationRule",
                details={"name": name, "group": GROUP, "kind": rt.plural},
            )
        missing = uncovered(owner, rules_of(obj))
        if missing:
            raise _escalation(rt.plural, name, user, missing)

    def _check_binding(
        self, rt: ResourceType, user: UserInfo, ns: str, name: str, obj: dict[str, Any]
    ) -> None:
        ref = obj.get("roleRef") or {}
        ref_plural = "roles" if ref.get("kind") == "Role" else "clusterroles"
        if self._allowed(user, "bind", ref_plural, ns, ref.get("name", "")):
            return
        rules = self.rbac.role_ref_rules(ref, ns)
        if rules is None:
            raise errors.NotFound(
                f'{ref_plural}.{GROUP} "{ref.get("name", "")}" not found',
                details={"name": ref.get("name", ""), "group": GROUP, "kind": ref_plural},
            )
        missing = uncovered(self.rbac.rules_for(user, ns), rules)
        if missing:
            raise _escalation(rt.plural, name, user, missing)


def _escalation(plural: str, name: str, user: UserInfo, missing: list[Rule]) -> Exception:
    groups = "[" + " ".join(f'"{g}"' for g in user.groups) + "]"
    shown = "\n".join(str(r) for r in missing[:20])
    return errors.Forbidden(
        f'{plural}.{GROUP} "{name}" is forbidden: user "{user.name}" (groups={groups}) is '
        f"attempting to grant RBAC permissions not currently held:\n{shown}",
        details={"name": name, "group": GROUP, "kind": plural},
    )


# -- aggregation controller ---------------------------------------------------------------------


class Aggregator:
    """Writes the union of the selected ClusterRoles' rules into each aggregated ClusterRole
    (what Kubernetes' clusterrole-aggregation controller does), so ``kubectl get clusterrole
    admin -o yaml`` shows them. Runs in every API server: the write is idempotent (no change,
    no write), and authorization does not wait for it (the authorizer computes the same union).
    """

    def __init__(self, registry: Registry, rbac: RBACAuthorizer, rt: ResourceType) -> None:
        self.registry = registry
        self.rbac = rbac
        self.rt = rt
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.registry.store.cache.listen(CLUSTER_ROLES, lambda *_: self._wake.set())
        self._wake.set()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="rbac aggregation")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self.sync()
            except Exception:  # retried on the next change; never stop aggregating
                log.exception("ClusterRole aggregation failed")

    async def sync(self) -> None:
        """Bring every aggregated ClusterRole's stored rules up to date once."""
        for (_, name), entry in self.registry.list(self.rt, None):
            if not isinstance(entry.obj.get("aggregationRule"), dict):
                continue
            rules = self.rbac.cluster_role_rules(name) or ()
            if rules_of(entry.obj) == rules:
                continue
            want = [r.to_dict() for r in rules]

            def change(cur: dict[str, Any], want: list[dict[str, Any]] = want) -> dict[str, Any]:
                cur["rules"] = want
                return cur

            token = REQUEST_USER.set(None)
            try:
                await self.registry.mutate(self.rt, None, name, change, WriteOptions())
            except errors.NotFound:
                pass
            finally:
                REQUEST_USER.reset(token)
