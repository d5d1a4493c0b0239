"""Authentication, impersonation and the security gate, in process: the gate in front of a
small ASGI app, with a tiny authorizer standing in for RBAC."""

from __future__ import annotations

import csv
from typing import Any

import httpx
import pytest

from apiserver.auth import REQUEST_USER, Attributes, Decision, UserInfo
from apiserver.auth.attributes import forbidden, request_attributes
from apiserver.auth.authn import RequestAuthenticator, StaticTokens, bearer_token
from apiserver.auth.filters import AuthorizerChain, Gate, MastersAuthorizer
from machinery.pki import Pki

ALICE = UserInfo("alice")


class TinyAuthorizer:
    """Allows alice to read pods in ``dev`` and to impersonate ``bob``; nothing else."""

    def authorize(self, attrs: Attributes) -> tuple[Decision, str]:
        u = attrs.user.name
        reads = attrs.verb in ("get", "list", "watch")
        if u == "alice" and attrs.resource == "pods" and attrs.namespace == "dev" and reads:
            return Decision.ALLOW, ""
        if u == "alice" and attrs.verb == "impersonate" and attrs.name == "bob":
            return Decision.ALLOW, ""
        if u == "bob" and attrs.resource == "pods" and attrs.verb == "list":
            return Decision.ALLOW, ""
        return Decision.NO_OPINION, ""


async def whoami(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answers with the user the gate admitted (from the contextvar)."""
    user = REQUEST_USER.get()
    body = f"{user.name}|{','.join(user.groups)}".encode() if user else b"-"
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture
def tokens(tmp_path) -> StaticTokens:
    path = tmp_path / "tokens.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["# token", "user", "uid", "groups"])
        w.writerow(["tok-alice", "alice", "u-1", "dev,qa"])
        w.writerow(["tok-root", "root", "u-0", "system:masters"])
    return StaticTokens.from_file(path)


def gate(tokens: StaticTokens, anonymous: bool = False) -> httpx.AsyncClient:
    chain = AuthorizerChain([MastersAuthorizer(), TinyAuthorizer()])
    app = Gate(whoami, RequestAuthenticator([tokens], anonymous=anonymous), chain)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


def bearer(token: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **extra}


async def test_no_credentials_is_401_unauthorized_status(tokens):
    async with gate(tokens) as c:
        r = await c.get("/api/v1/namespaces/dev/pods")
    assert r.status_code == 401
    assert r.json() == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "Unauthorized",
        "reason": "Unauthorized",
        "code": 401,
    }


async def test_bad_token_is_401_even_with_anonymous_enabled(tokens):
    async with gate(tokens, anonymous=True) as c:
        r = await c.get("/api/v1/namespaces/dev/pods", headers=bearer("nope"))
    assert r.status_code == 401


async def test_anonymous_enabled_is_forbidden_not_unauthorized(tokens):
    async with gate(tokens, anonymous=True) as c:
        r = await c.get("/api/v1/namespaces/dev/pods")
    assert r.status_code == 403
    assert 'User "system:anonymous" cannot list resource "pods"' in r.json()["message"]


@pytest.mark.parametrize("path", ["/healthz", "/livez", "/readyz", "/version", "/readyz/ping"])
async def test_health_and_version_stay_open(tokens, path):
    async with gate(tokens) as c:
        r = await c.get(path)
    assert (r.status_code, r.text) == (200, "-")


async def test_token_user_reaches_the_handler_with_its_groups(tokens):
    async with gate(tokens) as c:
        r = await c.get("/api/v1/namespaces/dev/pods", headers=bearer("tok-alice"))
    assert (r.status_code, r.text) == (200, "alice|dev,qa,system:authenticated")


async def test_denied_request_gets_kubernetes_forbidden_message(tokens):
    async with gate(tokens) as c:
        r = await c.get("/api/v1/namespaces/kube-system/pods", headers=bearer("tok-alice"))
        secret = await c.get("/api/v1/namespaces/dev/secrets/s1", headers=bearer("tok-alice"))
        path = await c.get("/openapi/v3", headers=bearer("tok-alice"))
    assert r.status_code == 403
    assert r.json()["reason"] == "Forbidden"
    assert r.json()["message"] == (
        'pods is forbidden: User "alice" cannot list resource "pods" in API group "" '
        'in the namespace "kube-system"'
    )
    assert secret.json()["message"].startswith('secrets "s1" is forbidden: User "alice" cannot get')
    assert path.json()["message"] == 'forbidden: User "alice" cannot get path "/openapi/v3"'


async def test_exec_over_get_also_needs_create(tokens):
    async with gate(tokens) as c:
        r = await c.get("/api/v1/namespaces/dev/pods/p/exec", headers=bearer("tok-alice"))
    assert r.status_code == 403
    # alice may get pods/exec (the tiny authorizer allows reads of pods in dev), not create it
    assert 'cannot create resource "pods/exec"' in r.json()["message"]


async def test_masters_may_do_anything(tokens):
    async with gate(tokens) as c:
        r = await c.delete("/apis/apps/v1/deployments", headers=bearer("tok-root"))
    assert (r.status_code, r.text) == (200, "root|system:masters,system:authenticated")


async def test_impersonation_allowed_runs_as_the_impersonated_user(tokens):
    headers = bearer("tok-alice", **{"Impersonate-User": "bob"})
    async with gate(tokens) as c:
        r = await c.get("/api/v1/pods", headers=headers)
    assert (r.status_code, r.text) == (200, "bob|system:authenticated")


async def test_impersonation_denied_names_what_was_refused(tokens):
    headers = bearer("tok-alice", **{"Impersonate-User": "carol"})
    groups = bearer("tok-alice", **{"Impersonate-User": "bob", "Impersonate-Group": "ops"})
    async with gate(tokens) as c:
        r = await c.get("/api/v1/pods", headers=headers)
        g = await c.get("/api/v1/pods", headers=groups)
    assert r.status_code == 403
    assert r.json()["message"] == (
        'users "carol" is forbidden: User "alice" cannot impersonate resource "users" '
        'in API group "" at the cluster scope'
    )
    assert g.status_code == 403
    assert g.json()["message"].startswith('groups "ops" is forbidden')


async def test_masters_impersonate_service_accounts_with_their_groups(tokens):
    headers = bearer("tok-root", **{"Impersonate-User": "system:serviceaccount:dev:bot"})
    async with gate(tokens) as c:
        r = await c.get("/api/v1/namespaces/dev/pods", headers=headers)
    # the impersonated account is not allowed to list pods by the tiny authorizer
    assert r.status_code == 403
    assert 'User "system:serviceaccount:dev:bot"' in r.json()["message"]


async def test_impersonating_groups_without_a_user_is_bad_request(tokens):
    async with gate(tokens) as c:
        r = await c.get("/api/v1/pods", headers=bearer("tok-root", **{"Impersonate-Group": "x"}))
    assert r.status_code == 400


def test_websocket_bearer_subprotocol():
    scope = {
        "type": "websocket",
        "headers": [
            (b"sec-websocket-protocol", b"v5.channel.k8s.io, base64url.bearer.authorization."
             b"k8s.io.dG9rLWFsaWNl"),
        ],
    }  # fmt: skip
    assert bearer_token(scope) == "tok-alice"


def test_client_certificate_subject_names_user_and_groups():
    scope = {
        "type": "http",
        "headers": [],
        "extensions": {
            "tls": {
                "client_cert_subject": (
                    (("organizationName", "system:nodes"),),
                    (("commonName", "system:node:n1"),),
                )
            }
        },
    }
    user = RequestAuthenticator([]).authenticate(scope)
    assert user.name == "system:node:n1"
    assert user.groups == ("system:nodes", "system:authenticated")


U = UserInfo("u")


@pytest.mark.parametrize(
    ("method", "path", "query", "want"),
    [
        ("GET", "/api/v1/namespaces/ns/pods", "", ("list", "ns", "", "pods", "", "")),
        ("GET", "/api/v1/namespaces/ns/pods", "watch=true", ("watch", "ns", "", "pods", "", "")),
        ("GET", "/api/v1/pods", "watch=1", ("watch", "", "", "pods", "", "")),
        ("GET", "/api/v1/namespaces/ns/pods/p", "", ("get", "ns", "", "pods", "", "p")),
        ("POST", "/api/v1/namespaces/ns/pods", "", ("create", "ns", "", "pods", "", "")),
        ("PUT", "/api/v1/namespaces/ns/pods/p/status", "",
         ("update", "ns", "", "pods", "status", "p")),
        ("PATCH", "/apis/apps/v1/namespaces/ns/deployments/d/scale", "",
         ("patch", "ns", "apps", "deployments", "scale", "d")),
        ("DELETE", "/apis/apps/v1/namespaces/ns/deployments", "",
         ("deletecollection", "ns", "apps", "deployments", "", "")),
        ("DELETE", "/api/v1/namespaces/ns", "", ("delete", "ns", "", "namespaces", "", "ns")),
        ("PUT", "/api/v1/namespaces/ns/finalize", "",
         ("update", "ns", "", "namespaces", "finalize", "ns")),
        ("GET", "/api/v1/namespaces", "", ("list", "", "", "namespaces", "", "")),
        ("GET", "/api/v1/nodes/n1", "", ("get", "", "", "nodes", "", "n1")),
        ("GET", "/api/v1/watch/namespaces/ns/pods", "", ("watch", "ns", "", "pods", "", "")),
        ("GET", "/api/v1/namespaces/ns/pods", "fieldSelector=metadata.name%3Dp1",
         ("list", "ns", "", "pods", "", "p1")),
        ("POST", "/api/v1/namespaces/ns/serviceaccounts/sa/token", "",
         ("create", "ns", "", "serviceaccounts", "token", "sa")),
    ],
)  # fmt: skip
def test_request_attributes_match_kubernetes(method, path, query, want):
    a = request_attributes(U, method, path, query)
    assert a.resource_request
    assert (a.verb, a.namespace, a.api_group, a.resource, a.subresource, a.name) == want


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/api"), ("GET", "/api/v1"), ("GET", "/apis/apps"), ("GET", "/apis/apps/v1"),
     ("GET", "/healthz"), ("POST", "/openapi/v3")],
)  # fmt: skip
def test_non_resource_requests_use_the_http_method(method, path):
    a = request_attributes(U, method, path)
    assert (a.resource_request, a.verb, a.path) == (False, method.lower(), path)


def test_forbidden_for_a_named_resource_in_a_group():
    attrs = Attributes(ALICE, "delete", namespace="ns", api_group="apps", resource="deployments",
                       name="web")  # fmt: skip
    err = forbidden(attrs, "no RBAC policy matched")
    assert err.code == 403
    assert err.message == (
        'deployments.apps "web" is forbidden: User "alice" cannot delete resource "deployments" '
        'in API group "apps" in the namespace "ns": no RBAC policy matched'
    )
    assert err.details == {"name": "web", "group": "apps", "kind": "deployments"}


def test_pki_is_made_once_and_names_users(tmp_path):
    from cryptography import x509

    pki = Pki(tmp_path / "pki").ensure(("10.0.0.5",))
    ca_before = pki.ca.cert_pem()
    node = pki.client("system:node:n1", ("system:nodes",))
    again = Pki(tmp_path / "pki").ensure(("10.0.0.5",))
    assert again.ca.cert_pem() == ca_before
    cert = x509.load_pem_x509_certificate(node.cert_pem())
    assert cert.subject.rfc4514_string() == "CN=system:node:n1,O=system:nodes"
    sans = cert.issuer.rfc4514_string()
    assert sans == "CN=tugboat-ca"
    serving = x509.load_pem_x509_certificate(pki.serving.cert_pem())
    names = serving.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in names.get_values_for_type(x509.DNSName)
    assert {str(ip) for ip in names.get_values_for_type(x509.IPAddress)} >= {
        "127.0.0.1",
        "10.0.0.5",
    }
    assert (tmp_path / "pki" / "ca.key").stat().st_mode & 0o077 == 0


def _args(tmp_path, *argv: str):
    from apiserver.main import parse_args

    return parse_args(["--data-dir", str(tmp_path), *argv])


def test_flags_off_by_default_keep_plain_http(tmp_path):
    from apiserver.auth.flags import resolve

    sec = resolve(_args(tmp_path))
    assert (sec.security, sec.scheme, sec.uvicorn) == (None, "http", {})
    assert not (tmp_path / "pki").exists()


def test_secure_flag_makes_the_pki_and_turns_everything_on(tmp_path):
    from apiserver.auth.flags import resolve

    sec = resolve(_args(tmp_path, "--secure"), ("127.0.0.1", "10.1.2.3"))
    assert sec.scheme == "https" and sec.security is not None
    assert sec.security.authorization_mode == ("Node", "RBAC")
    assert sec.security.anonymous_auth is False
    assert sec.security.service_account_key_file == str(tmp_path / "pki" / "sa.key")
    assert sec.uvicorn["ssl_ca_certs"] == str(tmp_path / "pki" / "ca.crt")
    assert sec.ca_data and sec.admin_cert and sec.admin_key


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--tls-cert-file", "x.crt"], "--tls-cert-file and --tls-private-key-file go together"),
        (["--authorization-mode", "RBAC,Bogus"], "unknown --authorization-mode Bogus"),
    ],
    ids=["cert-without-key", "bad-mode"],
)
def test_bad_flags_are_refused_in_one_line(tmp_path, argv, message):
    from apiserver.auth.flags import resolve

    with pytest.raises(SystemExit) as err:
        resolve(_args(tmp_path, *argv))
    assert str(err.value) == message
