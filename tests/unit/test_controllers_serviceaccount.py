"""ServiceAccount controller and root CA publisher: reconcile(namespace) against a fake client."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from controllers.rootcacert import (
    CONFIGMAP_NAME,
    CONFIGMAPS,
    DESCRIPTION,
    DESCRIPTION_ANNOTATION,
    RootCACertPublisher,
)
from controllers.serviceaccount import NAMESPACES, SERVICEACCOUNTS, ServiceAccountController
from controllers.testing import FakeClient, store_of
from machinery import errors
from machinery.informer import InformerFactory, Store

CA = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
Obj = dict[str, Any]


def namespace(name: str = "team", *, terminating: bool = False) -> Obj:
    ns: Obj = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
    if terminating:
        ns["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
        ns["status"] = {"phase": "Terminating"}
    return ns


def sa_controller(client: FakeClient) -> ServiceAccountController:
    sas = Store()
    client.sync(SERVICEACCOUNTS, sas)
    return ServiceAccountController(
        client, namespaces=store_of(*client.all(NAMESPACES)), service_accounts=sas
    )


async def test_creates_the_default_service_account() -> None:
    client = FakeClient((NAMESPACES, namespace()))
    await sa_controller(client).reconcile("team")
    [create] = client.writes("create", "serviceaccounts")
    assert create.namespace == "team" and create.name == "default"
    assert client.stored(SERVICEACCOUNTS, "team", "default") is not None


async def test_present_account_means_no_write() -> None:
    client = FakeClient(
        (NAMESPACES, namespace()),
        (SERVICEACCOUNTS, {"metadata": {"name": "default", "namespace": "team"}}),
    )
    await sa_controller(client).reconcile("team")
    assert client.writes() == []


async def test_deleted_account_is_recreated_through_its_namespace_key() -> None:
    client = FakeClient((NAMESPACES, namespace()))
    ctl = sa_controller(client)
    ctl.enqueue_owner({"metadata": {"name": "default", "namespace": "team"}})
    ctl.enqueue_owner({"metadata": {"name": "robot", "namespace": "other"}})
    assert len(ctl.queue) == 1
    key = await ctl.queue.get()
    assert key == "team"
    await ctl.reconcile(key)
    assert client.stored(SERVICEACCOUNTS, "team", "default") is not None


@pytest.mark.parametrize("which", ["missing", "terminating"])
async def test_gone_or_terminating_namespace_is_left_alone(which: str) -> None:
    objects = [] if which == "missing" else [(NAMESPACES, namespace(terminating=True))]
    client = FakeClient(*objects)
    await sa_controller(client).reconcile("team")
    assert client.writes() == []


async def test_stale_cache_already_exists_is_success() -> None:
    client = FakeClient((NAMESPACES, namespace()))
    ctl = sa_controller(client)
    client.seed(SERVICEACCOUNTS, {"metadata": {"name": "default", "namespace": "team"}})
    assert await ctl.reconcile("team") is None


async def test_terminating_race_is_done_but_authorization_failure_retries() -> None:
    client = FakeClient((NAMESPACES, namespace()))
    client.fail(
        "create",
        "serviceaccounts",
        errors.Forbidden(
            "unable to create new content in namespace team because it is being terminated"
        ),
    )
    ctl = sa_controller(client)
    assert await ctl.reconcile("team") is None
    client.fail("create", "serviceaccounts", errors.Forbidden("cannot create serviceaccounts"))
    with pytest.raises(errors.Forbidden):
        await ctl.reconcile("team")


# -- root CA publisher ------------------------------------------------------------------------


def publisher(client: FakeClient, ca: str | None = CA) -> RootCACertPublisher:
    cms = Store()
    client.sync(CONFIGMAPS, cms)
    return RootCACertPublisher(
        client, namespaces=store_of(*client.all(NAMESPACES)), configmaps=cms, root_ca=ca
    )


def root_cm(data: dict[str, str], annotated: bool = True) -> Obj:
    meta: Obj = {"name": CONFIGMAP_NAME, "namespace": "team"}
    if annotated:
        meta["annotations"] = {DESCRIPTION_ANNOTATION: DESCRIPTION}
    return {"metadata": meta, "data": data}


async def test_publishes_the_ca() -> None:
    client = FakeClient((NAMESPACES, namespace()))
    await publisher(client).reconcile("team")
    cm = client.stored(CONFIGMAPS, "team", CONFIGMAP_NAME)
    assert cm is not None and cm["data"] == {"ca.crt": CA}
    assert cm["metadata"]["annotations"][DESCRIPTION_ANNOTATION] == DESCRIPTION


async def test_current_configmap_means_no_write() -> None:
    client = FakeClient((NAMESPACES, namespace()), (CONFIGMAPS, root_cm({"ca.crt": CA})))
    await publisher(client).reconcile("team")
    assert client.writes() == []


@pytest.mark.parametrize(
    "cm",
    [
        root_cm({"ca.crt": "tampered"}),
        root_cm({"ca.crt": CA, "extra": "x"}),
        root_cm({"ca.crt": CA}, annotated=False),
    ],
    ids=["changed", "extra-key", "no-annotation"],
)
async def test_changed_configmap_is_put_back(cm: Obj) -> None:
    client = FakeClient((NAMESPACES, namespace()), (CONFIGMAPS, cm))
    await publisher(client).reconcile("team")
    [update] = client.writes("update", "configmaps")
    assert update.body["metadata"]["resourceVersion"]  # guarded by the cached version
    stored = client.stored(CONFIGMAPS, "team", CONFIGMAP_NAME)
    assert stored is not None and stored["data"] == {"ca.crt": CA}


async def test_conflict_waits_for_the_next_event() -> None:
    client = FakeClient((NAMESPACES, namespace()), (CONFIGMAPS, root_cm({"ca.crt": "old"})))
    client.fail("update", "configmaps", errors.Conflict("modified"))
    assert await publisher(client).reconcile("team") is None


async def test_no_ca_publishes_nothing() -> None:
    client = FakeClient((NAMESPACES, namespace()))
    await publisher(client, ca=None).reconcile("team")
    assert client.writes() == []


async def test_terminating_namespace_gets_nothing() -> None:
    client = FakeClient((NAMESPACES, namespace(terminating=True)))
    await publisher(client).reconcile("team")
    assert client.writes() == []


def test_without_a_ca_the_publisher_says_so(caplog) -> None:  # type: ignore[no-untyped-def]
    factory = InformerFactory(FakeClient())  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING, logger="controllers.rootcacert"):
        ctl = RootCACertPublisher.from_factory(factory, root_ca=None)
    assert ctl.root_ca is None
    assert "not publishing kube-root-ca.crt" in caplog.text
