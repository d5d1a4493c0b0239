"""Deployment scaling, revisions and status: pure functions, no I/O."""

from __future__ import annotations

import pytest

from controllers.conditions import get_condition
from controllers.deployment import progress, revisions, scaling
from controllers.objects import format_time

T0 = 1_700_000_000.0


def deployment(
    replicas=10,
    surge=3,
    unavailable=1,
    *,
    status_replicas=None,
    generation=1,
    template=None,
    status=None,
    **spec,
):
    d = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "ns", "uid": "d-uid", "generation": generation},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": template
            or {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "c", "image": "a:1"}]},
            },
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable},
            },
            **spec,
        },
        "status": status or {},
    }
    if status_replicas is not None:
        d["status"]["replicas"] = status_replicas
    return d


def rs(
    name,
    replicas,
    *,
    available=None,
    created=0,
    revision=None,
    desired=None,
    max_rep=None,
    status_replicas=None,
    template=None,
    generation=1,
    observed=1,
):
    annotations = {}
    if revision is not None:
        annotations[revisions.REVISION] = str(revision)
    if desired is not None:
        annotations[revisions.DESIRED_REPLICAS] = str(desired)
    if max_rep is not None:
        annotations[revisions.MAX_REPLICAS] = str(max_rep)
    return {
        "metadata": {
            "name": name,
            "uid": name,
            "annotations": annotations,
            "creationTimestamp": format_time(T0 + created),
            "generation": generation,
        },
        "spec": {"replicas": replicas, "template": template or {}},
        "status": {
            "replicas": replicas if status_replicas is None else status_replicas,
            "availableReplicas": replicas if available is None else available,
            "readyReplicas": replicas if available is None else available,
            "observedGeneration": observed,
        },
    }


# -- scaling -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("replicas", "surge", "unavailable", "sets", "expected"),
    [
        # 10 → 12 during a rollout (maxSurge 3): 2 more shared by size, larger first.
        (12, 3, 1, [("old", 8, 0, 13), ("new", 5, 10, 13)], {"old": 9, "new": 6}),
        # 10 → 5 (maxSurge 0): 5 fewer, shared by size.
        (5, 0, 1, [("old", 6, 0, 10), ("new", 4, 10, 10)], {"old": 3, "new": 2}),
        # a tie when adding goes to the newer ReplicaSet first.
        (11, 0, 1, [("old", 5, 0, 10), ("new", 5, 10, 10)], {"old": 5, "new": 6}),
        # scale to zero empties every ReplicaSet.
        (0, 0, 1, [("old", 5, 0, 10), ("new", 5, 10, 10)], {"old": 0, "new": 0}),
    ],
    ids=["up", "down", "tie-newer", "to-zero"],
)
def test_proportional_scaling(replicas, surge, unavailable, sets, expected):
    d = deployment(replicas, surge, unavailable, status_replicas=10)
    rss = [rs(n, size, created=c, max_rep=m, desired=10) for n, size, c, m in sets]
    plan = scaling.plan_scale(d, rss[-1], rss[:-1])
    assert plan.as_dict() == expected


def test_single_active_replicaset_takes_the_whole_size():
    d = deployment(7)
    plan = scaling.plan_scale(d, rs("new", 3, created=5), [rs("old", 0)])
    assert plan.as_dict() == {"new": 7}


def test_saturated_new_replicaset_empties_the_old_ones():
    d = deployment(4, 1, 1)
    new = rs("new", 4, desired=4, created=5)
    olds = [rs("a", 1), rs("b", 2)]
    # two active olds plus new: not a single active one, and new is saturated
    assert scaling.plan_scale(d, new, olds).as_dict() == {"a": 0, "b": 0}


def test_scaling_event_detection():
    d = deployment(5)
    assert scaling.is_scaling_event(d, rs("new", 3, desired=3), [])
    assert not scaling.is_scaling_event(d, rs("new", 3, desired=5), [])
    assert not scaling.is_scaling_event(d, rs("new", 0, desired=3), [])  # inactive
    assert not scaling.is_scaling_event(d, rs("new", 3), [])  # no annotation


# -- revisions ---------------------------------------------------------------------------------


def test_find_new_rs_is_oldest_matching_template():
    d = deployment()
    tpl = d["spec"]["template"]
    labelled = {
        "metadata": {"labels": {"app": "web", "pod-template-hash": "x"}},
        "spec": tpl["spec"],
    }
    rss = [
        rs("b", 1, created=5, template=labelled),
        rs("a", 1, created=1, template=labelled),
        rs("other", 1, created=0, template={"spec": {"containers": [{"name": "z"}]}}),
    ]
    new, old = revisions.split_new_old(d, rss)
    assert new["metadata"]["name"] == "a"
    assert sorted(r["metadata"]["name"] for r in old) == ["b", "other"]


@pytest.mark.parametrize(
    ("old_rev", "history", "new_rev", "want_rev", "want_history"),
    [
        (None, None, 1, "1", None),  # first revision
        ("3", None, 3, "3", None),  # already current
        ("1", None, 4, "4", "1"),  # rollback: old number remembered
        ("2", "1", 5, "5", "1,2"),
    ],
    ids=["first", "current", "rollback", "rollback-again"],
)
def test_new_rs_revision_annotations(old_rev, history, new_rev, want_rev, want_history):
    d = deployment()
    d["metadata"]["annotations"] = {
        "team": "a",
        revisions.REVISION: "9",
        "kubectl.kubernetes.io/last-applied-configuration": "{}",
    }
    r = rs("x", 1, revision=old_rev)
    if history:
        r["metadata"]["annotations"][revisions.REVISION_HISTORY] = history
    revisions.set_new_rs_annotations(d, r, new_rev, exists=True)
    ann = r["metadata"]["annotations"]
    assert ann[revisions.REVISION] == want_rev
    assert ann.get(revisions.REVISION_HISTORY) == want_history
    assert ann["team"] == "a"
    assert "kubectl.kubernetes.io/last-applied-configuration" not in ann


def test_revision_history_drops_oldest_beyond_the_limit():
    r = rs("x", 1, revision=30)
    r["metadata"]["annotations"][revisions.REVISION_HISTORY] = "10,20"
    revisions.set_new_rs_annotations(deployment(), r, 31, exists=True, history_limit_chars=6)
    assert r["metadata"]["annotations"][revisions.REVISION_HISTORY] == "20,30"


def test_new_rs_gets_replicas_annotations_when_created():
    r = revisions.build_new_rs(deployment(10, 3), None)
    revisions.set_new_rs_annotations(deployment(10, 3), r, 1, exists=False)
    ann = r["metadata"]["annotations"]
    assert (ann[revisions.DESIRED_REPLICAS], ann[revisions.MAX_REPLICAS]) == ("10", "13")


def test_build_new_rs_names_labels_and_owner():
    d = deployment()
    r = revisions.build_new_rs(d, None)
    h = r["metadata"]["labels"]["pod-template-hash"]
    assert r["metadata"]["name"] == f"web-{h}"
    assert r["spec"]["selector"]["matchLabels"] == {"app": "web", "pod-template-hash": h}
    assert r["spec"]["template"]["metadata"]["labels"]["pod-template-hash"] == h
    assert r["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": "web",
            "uid": "d-uid",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    assert "pod-template-hash" not in d["spec"]["template"]["metadata"]["labels"]
    assert revisions.build_new_rs(d, 1)["metadata"]["name"] != r["metadata"]["name"]


def test_history_cleanup_keeps_limit_and_never_deletes_live_sets():
    d = deployment(revisionHistoryLimit=1)
    olds = [
        rs("r1", 0, revision=1),
        rs("r2", 2, revision=2),
        rs("r3", 0, revision=3),
        rs("r4", 0, revision=4, generation=2, observed=1),
    ]
    # 4 old, limit 1: the 3 lowest revisions are candidates; r2 has replicas.
    assert revisions.plan_history_cleanup(d, olds).delete == ("r1", "r3")
    assert revisions.plan_history_cleanup(deployment(), olds).delete == ()


# -- status and conditions ---------------------------------------------------------------------


def test_calculate_status_counts_and_available():
    d = deployment(4, 1, 1, generation=3)
    new = rs("new", 2, available=1, status_replicas=2)
    old = rs("old", 3, available=3)
    st = progress.calculate_status(d, [old, new], new, T0)
    assert st["observedGeneration"] == 3
    assert (st["replicas"], st["updatedReplicas"], st["availableReplicas"]) == (5, 2, 4)
    assert st["unavailableReplicas"] == 1
    cond = get_condition(st, "Available")
    assert (cond["status"], cond["reason"]) == ("True", "MinimumReplicasAvailable")
    st = progress.calculate_status(deployment(10, 1, 1), [old, new], new, T0)
    assert get_condition(st, "Available")["reason"] == "MinimumReplicasUnavailable"


def _progressing(reason, status="True", at=T0):
    return {
        "type": "Progressing",
        "status": status,
        "reason": reason,
        "message": "",
        "lastUpdateTime": format_time(at),
        "lastTransitionTime": format_time(at),
    }


def test_complete_rollout_reports_new_replicaset_available():
    d = deployment(2, status={"conditions": [_progressing("ReplicaSetUpdated")]})
    new = rs("web-abc", 2)
    st = progress.rollout_status(d, [new], new, T0 + 5)
    cond = get_condition(st, "Progressing")
    assert (cond["status"], cond["reason"]) == ("True", "NewReplicaSetAvailable")
    assert cond["message"] == 'ReplicaSet "web-abc" has successfully progressed.'


def test_progress_moves_last_update_time_but_keeps_transition_time():
    d = deployment(
        3,
        status={
            "updatedReplicas": 1,
            "replicas": 3,
            "conditions": [_progressing("ReplicaSetUpdated", at=T0)],
        },
    )
    new = rs("web-abc", 2, available=1)
    old = rs("old", 1)
    st = progress.rollout_status(d, [old, new], new, T0 + 100)
    cond = get_condition(st, "Progressing")
    assert cond["reason"] == "ReplicaSetUpdated"
    assert cond["lastUpdateTime"] == format_time(T0 + 100)
    assert cond["lastTransitionTime"] == format_time(T0)


@pytest.mark.parametrize(("elapsed", "timed_out"), [(599, False), (601, True)])
def test_progress_deadline(elapsed, timed_out):
    d = deployment(
        3,
        status={
            "updatedReplicas": 1,
            "replicas": 1,
            "availableReplicas": 0,
            "conditions": [_progressing("ReplicaSetUpdated", at=T0)],
        },
    )
    new = rs("web-abc", 1, available=0)
    st = progress.rollout_status(d, [new], new, T0 + elapsed)
    cond = get_condition(st, "Progressing")
    if timed_out:
        assert (cond["status"], cond["reason"]) == ("False", "ProgressDeadlineExceeded")
        assert cond["message"] == 'ReplicaSet "web-abc" has timed out progressing.'
    else:
        assert cond["reason"] == "ReplicaSetUpdated"
        assert progress.requeue_for_deadline(d, st, T0 + elapsed) == pytest.approx(2.0)


def test_replica_failure_is_copied_from_replicasets():
    new = rs("web-abc", 1, available=0)
    new["status"]["conditions"] = [
        {"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate", "message": "quota"}
    ]
    st = progress.rollout_status(deployment(1), [new], new, T0)
    assert get_condition(st, "ReplicaFailure")["reason"] == "FailedCreate"
    new["status"].pop("conditions")
    d = deployment(1, status={"conditions": [get_condition(st, "ReplicaFailure")]})
    assert get_condition(progress.rollout_status(d, [new], new, T0), "ReplicaFailure") is None


def test_paused_and_resumed_conditions():
    d = deployment(paused=True)
    st = progress.paused_condition(d, T0)
    cond = get_condition(st, "Progressing")
    assert (cond["status"], cond["reason"]) == ("Unknown", "DeploymentPaused")
    d = deployment(status=st)
    assert (
        get_condition(progress.paused_condition(d, T0), "Progressing")["reason"]
        == "DeploymentResumed"
    )
    assert progress.paused_condition(deployment(paused=True, status=st), T0) is None


def test_no_deadline_removes_progressing():
    d = deployment(
        1,
        progressDeadlineSeconds=2**31 - 1,
        status={"conditions": [_progressing("ReplicaSetUpdated")]},
    )
    new = rs("n", 1)
    assert get_condition(progress.rollout_status(d, [new], new, T0), "Progressing") is None
