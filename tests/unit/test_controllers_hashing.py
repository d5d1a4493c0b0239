"""Pod template hashing and normalisation (COMPAT.md section 6)."""

import pytest

from controllers.deployment.hashing import (
    SAFE_ALPHABET,
    compute_hash,
    default_image_pull_policy,
    equal_ignore_hash,
    fnv32a,
    normalize_template,
    safe_encode,
)

TEMPLATE = {
    "metadata": {"labels": {"app": "web"}},
    "spec": {
        "containers": [{"name": "c", "image": "nginx:1.25", "ports": [{"containerPort": 80}]}]
    },
}


def test_fnv32a_known_vectors():
    # Published FNV-1a 32-bit test vectors.
    assert fnv32a(b"") == 0x811C9DC5
    assert fnv32a(b"a") == 0xE40C292C
    assert fnv32a(b"foobar") == 0xBF9CF968


def test_safe_encode_uses_only_the_safe_alphabet():
    encoded = safe_encode("0123456789")
    assert len(encoded) == 10
    assert set(encoded) <= set(SAFE_ALPHABET)
    assert encoded == "".join(SAFE_ALPHABET[ord(c) % 27] for c in "0123456789")


@pytest.mark.parametrize(
    ("image", "policy"),
    [
        ("nginx", "Always"),
        ("nginx:latest", "Always"),
        ("nginx:1.25", "IfNotPresent"),
        ("localhost:5000/nginx", "Always"),
        ("localhost:5000/nginx:1", "IfNotPresent"),
        ("nginx@sha256:abc", "IfNotPresent"),
    ],
    ids=lambda v: str(v),
)
def test_default_image_pull_policy(image, policy):
    assert default_image_pull_policy(image) == policy


def _go_round_trip(template: dict) -> dict:
    """What `kubectl rollout undo` sends back: Go artefacts, no pod-template-hash, defaults."""
    return {
        "metadata": {"creationTimestamp": None, "labels": {"app": "web"}},
        "spec": {
            "containers": [
                {
                    "name": "c",
                    "image": "nginx:1.25",
                    "ports": [{"containerPort": 80, "protocol": "TCP"}],
                    "resources": {},
                    "terminationMessagePath": "/dev/termination-log",
                    "terminationMessagePolicy": "File",
                    "imagePullPolicy": "IfNotPresent",
                }
            ],
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 30,
            "dnsPolicy": "ClusterFirst",
            "securityContext": {},
            "schedulerName": "default-scheduler",
        },
    }


def test_round_tripped_template_hashes_the_same():
    assert compute_hash(_go_round_trip(TEMPLATE)) == compute_hash(TEMPLATE)
    assert equal_ignore_hash(_go_round_trip(TEMPLATE), TEMPLATE)


def test_pod_template_hash_label_is_ignored():
    labelled = normalize_template(TEMPLATE)
    labelled["metadata"]["labels"]["pod-template-hash"] = "abc"
    assert compute_hash(labelled) == compute_hash(TEMPLATE)


@pytest.mark.parametrize(
    "change",
    [
        lambda t: t["spec"]["containers"][0].update(image="nginx:1.26"),
        lambda t: t["metadata"]["labels"].update(tier="front"),
        lambda t: t["spec"].update(terminationGracePeriodSeconds=0),
        lambda t: t["spec"].update(volumes=[{"name": "v", "emptyDir": {}}]),
    ],
    ids=["image", "label", "grace-zero-kept", "emptydir-kept"],
)
def test_meaningful_changes_change_the_hash(change):
    changed = normalize_template(TEMPLATE)
    change(changed)
    assert compute_hash(changed) != compute_hash(TEMPLATE)


def test_go_zero_booleans_equal_absence():
    with_false = normalize_template(TEMPLATE)
    with_false["spec"]["hostNetwork"] = False
    assert compute_hash(with_false) == compute_hash(TEMPLATE)


def test_collision_count_changes_the_hash_and_is_deterministic():
    hashes = {compute_hash(TEMPLATE, n) for n in (None, 0, 1, 2)}
    assert len(hashes) == 4
    assert compute_hash(TEMPLATE, 1) == compute_hash(TEMPLATE, 1)
    assert all(set(h) <= set(SAFE_ALPHABET) for h in hashes)


def test_normalize_does_not_mutate_input():
    before = repr(TEMPLATE)
    normalize_template(TEMPLATE)
    assert repr(TEMPLATE) == before
