"""machinery.selectors: label and field selector syntax and Kubernetes matching semantics."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from machinery.selectors import (
    EQUALS,
    EXISTS,
    IN,
    NOT_EQUALS,
    NOT_EXISTS,
    NOT_IN,
    FieldSelector,
    LabelSelector,
    parse_field_selector,
    parse_label_selector,
    validate_label_key,
    validate_label_value,
)

# --- label selector parsing ------------------------------------------------------------------

PARSE = [
    ("a=b", [("a", EQUALS, ("b",))]),
    ("a==b", [("a", EQUALS, ("b",))]),
    ("a!=b", [("a", NOT_EQUALS, ("b",))]),
    ("a in (x,y)", [("a", IN, ("x", "y"))]),
    ("a notin (y,x)", [("a", NOT_IN, ("x", "y"))]),
    ("a", [("a", EXISTS, ())]),
    ("!a", [("a", NOT_EXISTS, ())]),
    ("a=", [("a", EQUALS, ("",))]),
    ("a in (x,)", [("a", IN, ("", "x"))]),
    (
        "  a = b ,  c in ( d , e ) , ! f ",
        [
            ("a", EQUALS, ("b",)),
            ("c", IN, ("d", "e")),
            ("f", NOT_EXISTS, ()),
        ],
    ),
    ("z=1,a=2", [("a", EQUALS, ("2",)), ("z", EQUALS, ("1",))]),
    ("example.com/app=web", [("example.com/app", EQUALS, ("web",))]),
    ("a=in", [("a", EQUALS, ("in",))]),
    ("a in (x,x)", [("a", IN, ("x",))]),
    ("a in ()", [("a", IN, ("",))]),  # as Kubernetes: "()" is the set holding ""
    ("", []),
]


@pytest.mark.parametrize(("text", "expected"), PARSE, ids=[repr(p[0]) for p in PARSE])
def test_parse_label_selector(text: str, expected: list[tuple[str, str, tuple[str, ...]]]) -> None:
    selector = parse_label_selector(text)
    assert [tuple(r) for r in selector.requirements] == expected
    assert parse_label_selector(str(selector)) == selector


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("a==b", "a=b"),
        ("b in (y, x),a", "a,b in (x,y)"),
        (" ! a ", "!a"),
        ("a notin (b)", "a notin (b)"),
        ("", ""),
    ],
    ids=["double-equals", "sorted", "not-exists", "notin", "empty"],
)
def test_canonical_string(text: str, canonical: str) -> None:
    assert str(parse_label_selector(text)) == canonical


BAD_SELECTORS = {
    "trailing-comma": ("a=b,", "expected a label key"),
    "leading-comma": (",a", "expected a label key"),
    "bare-bang": ("!", "expected a label key"),
    "no-paren": ("a in b", "expected '('"),
    "unclosed": ("a in (b", "expected ',' or ')'"),
    "two-words": ("a b", "expected '='"),
    "junk-after-value": ("a=b c", "expected ',' or end of string"),
    "keyword-key": ("in", "keyword"),
    "operator-first": ("=b", "expected a label key"),
    "bad-key": ("-a=b", "invalid label key '-a'"),
    "bad-prefix": ("Ex.com/a=b", "prefix part"),
    "bad-value": ("a=b-", "invalid label value 'b-'"),
    "long-value": ("a=" + "v" * 64, "no more than 63"),
    "unsupported-gt": ("a>1", "unable to parse"),
}


@pytest.mark.parametrize(("text", "message"), BAD_SELECTORS.values(), ids=BAD_SELECTORS.keys())
def test_parse_label_selector_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError, match="unable to parse label selector") as info:
        parse_label_selector(text)
    assert message in str(info.value)


# --- label selector matching -----------------------------------------------------------------

LABELS = {"app": "web", "tier": "front", "empty": ""}
MATCH = [
    ("app=web", True),
    ("app=db", False),
    ("app!=db", True),
    ("app!=web", False),
    ("missing!=x", True),  # != selects objects without the label
    ("app in (web,db)", True),
    ("app in (db)", False),
    ("missing in (x)", False),
    ("app notin (db)", True),
    ("app notin (web)", False),
    ("missing notin (x)", True),
    ("app", True),
    ("missing", False),
    ("!missing", True),
    ("!app", False),
    ("empty=", True),
    ("missing=", False),
    ("app=web,tier=front", True),
    ("app=web,tier=back", False),
    ("", True),
]


@pytest.mark.parametrize(("text", "expected"), MATCH, ids=[repr(m[0]) for m in MATCH])
def test_label_selector_matches(text: str, expected: bool) -> None:
    assert parse_label_selector(text).matches(LABELS) is expected


def test_matches_none_labels_as_no_labels() -> None:
    assert parse_label_selector("!app").matches(None)
    assert not parse_label_selector("app").matches(None)
    assert parse_label_selector("").matches(None)


# --- API form, everything and nothing --------------------------------------------------------


def test_none_selector_matches_nothing_and_empty_matches_everything() -> None:
    nothing = LabelSelector.from_dict(None)
    everything = LabelSelector.from_dict({})
    assert nothing.matches_nothing and not nothing.empty
    assert not nothing.matches({}) and not nothing.matches(LABELS)
    assert everything.empty and not everything.matches_nothing
    assert everything.matches({}) and everything.matches(LABELS)
    assert nothing != everything
    assert nothing == LabelSelector.nothing() and everything == LabelSelector.everything()
    assert nothing.exact_labels() == {}
    with pytest.raises(ValueError):
        nothing.to_dict()


FROM_DICT = [
    ({"matchLabels": {"app": "web"}}, "app=web"),
    ({"matchExpressions": [{"key": "a", "operator": "In", "values": ["y", "x"]}]}, "a in (x,y)"),
    ({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["x"]}]}, "a notin (x)"),
    ({"matchExpressions": [{"key": "a", "operator": "Exists"}]}, "a"),
    ({"matchExpressions": [{"key": "a", "operator": "DoesNotExist"}]}, "!a"),
    (
        {"matchLabels": {"z": "1"}, "matchExpressions": [{"key": "a", "operator": "Exists"}]},
        "a,z=1",
    ),
    ({"matchLabels": None, "matchExpressions": None}, ""),
]


@pytest.mark.parametrize(("api", "text"), FROM_DICT, ids=[f[1] or "nulls" for f in FROM_DICT])
def test_from_dict(api: dict, text: str) -> None:
    selector = LabelSelector.from_dict(api)
    assert selector == parse_label_selector(text)
    assert LabelSelector.from_dict(selector.to_dict()) == selector


BAD_DICTS = {
    "unknown-operator": {"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["1"]}]},
    "in-without-values": {"matchExpressions": [{"key": "a", "operator": "In"}]},
    "exists-with-values": {
        "matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]
    },
    "bad-key": {"matchLabels": {"a b": "x"}},
    "bad-value": {"matchLabels": {"a": "x y"}},
    "labels-not-map": {"matchLabels": ["a"]},
    "expressions-not-list": {"matchExpressions": {"key": "a"}},
    "not-a-map": ["a"],
}


@pytest.mark.parametrize("api", BAD_DICTS.values(), ids=BAD_DICTS.keys())
def test_from_dict_errors(api: object) -> None:
    with pytest.raises(ValueError):
        LabelSelector.from_dict(api)  # type: ignore[arg-type]


def test_not_equals_becomes_notin_in_api_form() -> None:
    assert parse_label_selector("a!=b").to_dict() == {
        "matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["b"]}]
    }


def test_from_labels() -> None:
    assert LabelSelector.from_labels({"app": "web", "a": "b"}) == parse_label_selector(
        "a=b,app=web"
    )
    assert LabelSelector.from_labels(None).empty


@pytest.mark.parametrize(
    ("text", "exact"),
    [
        ("app=web,tier in (a,b),x!=y", {"app": "web"}),
        ("app in (web)", {"app": "web"}),
        ("app", {}),
        ("", {}),
    ],
    ids=["mixed", "single-in", "exists", "empty"],
)
def test_exact_labels(text: str, exact: dict[str, str]) -> None:
    assert parse_label_selector(text).exact_labels() == exact


def test_selectors_are_hashable_values() -> None:
    assert hash(parse_label_selector("b,a=1")) == hash(parse_label_selector("a==1, b"))
    assert len({parse_label_selector("a"), parse_label_selector(" a ")}) == 1


# --- label key / value validation ------------------------------------------------------------

KEYS = {
    "simple": ("app", None),
    "prefixed": ("example.com/app", None),
    "dots-dashes": ("a.b_c-d", None),
    "uppercase-name": ("App", None),
    "63-chars": ("a" * 63, None),
    "64-chars": ("a" * 64, "name part must be no more than 63 characters"),
    "empty": ("", "name part must be non-empty"),
    "empty-prefix": ("/app", "prefix part must be non-empty"),
    "empty-name": ("example.com/", "name part must be non-empty"),
    "two-slashes": ("a/b/c", "a qualified name must consist of"),
    "upper-prefix": ("Example.com/a", "prefix part a lowercase RFC 1123 subdomain"),
    "long-prefix": ("a" * 254 + "/b", "prefix part must be no more than 253 characters"),
    "starts-with-dash": ("-app", "name part must consist of alphanumeric characters"),
    "ends-with-dot": ("app.", "name part must consist of alphanumeric characters"),
    "space": ("my app", "name part must consist of alphanumeric characters"),
}


@pytest.mark.parametrize(("key", "error"), KEYS.values(), ids=KEYS.keys())
def test_validate_label_key(key: str, error: str | None) -> None:
    result = validate_label_key(key)
    if error is None:
        assert result is None
    else:
        assert result is not None and error in result


VALUES = {
    "simple": ("web", None),
    "empty": ("", None),
    "mixed": ("v1.2_beta-3", None),
    "63-chars": ("v" * 63, None),
    "64-chars": ("v" * 64, "must be no more than 63 characters"),
    "slash": ("a/b", "a valid label must be an empty string"),
    "trailing-dash": ("a-", "a valid label must be an empty string"),
    "not-a-string": (1, "must be a string"),
}


@pytest.mark.parametrize(("value", "error"), VALUES.values(), ids=VALUES.keys())
def test_validate_label_value(value: str, error: str | None) -> None:
    result = validate_label_value(value)
    if error is None:
        assert result is None
    else:
        assert result is not None and error in result


# --- property: canonical strings round-trip -------------------------------------------------

_names = st.from_regex(r"[a-z][a-z0-9]{0,5}", fullmatch=True).filter(
    lambda s: s not in ("in", "notin")
)
_values = st.from_regex(r"([a-z0-9]{1,4})?", fullmatch=True)
_requirement_text = st.one_of(
    st.builds(lambda k, v: f"{k}={v}", _names, _values),
    st.builds(lambda k, v: f"{k}!={v}", _names, _values),
    st.builds(lambda k, vs: f"{k} in ({','.join(vs)})", _names, st.lists(_values, min_size=1)),
    st.builds(lambda k, vs: f"{k} notin ({','.join(vs)})", _names, st.lists(_values, min_size=1)),
    _names,
    st.builds(lambda k: f"!{k}", _names),
)


@settings(deadline=None)
@given(st.lists(_requirement_text, max_size=5), st.dictionaries(_names, _values, max_size=4))
def test_round_trip_preserves_meaning(terms: list[str], labels: dict[str, str]) -> None:
    selector = parse_label_selector(",".join(terms))
    again = parse_label_selector(str(selector))
    assert again == selector
    assert again.matches(labels) == selector.matches(labels)
    assert LabelSelector.from_dict(selector.to_dict()).matches(labels) == selector.matches(labels)


# --- field selectors -------------------------------------------------------------------------

POD = {
    "metadata": {"name": "web-1", "namespace": "default"},
    "spec": {"nodeName": "node-a", "unschedulable": True, "containers": [{"name": "c"}]},
    "status": {"phase": "Running"},
}
UNBOUND = {"metadata": {"name": "web-2", "namespace": "default"}, "spec": {}}
FIELD_MATCH = [
    ("metadata.name=web-1", POD, True),
    ("metadata.name==web-1", POD, True),
    ("metadata.name!=web-1", POD, False),
    ("metadata.name=web-2", POD, False),
    ("spec.nodeName=", UNBOUND, True),
    ("spec.nodeName=", POD, False),
    ("spec.nodeName!=", POD, True),
    ("status.phase=Running,metadata.namespace=default", POD, True),
    ("status.phase=Running,metadata.namespace=kube-system", POD, False),
    ("status.phase!=Running", UNBOUND, True),
    ("spec.unschedulable=true", POD, True),
    ("spec.containers=", POD, False),  # a list is not a scalar field, equals nothing
    ("metadata.name.deeper=", POD, True),  # a path through a scalar is missing
    ("", POD, True),
]


@pytest.mark.parametrize(
    ("text", "obj", "expected"), FIELD_MATCH, ids=[f"{m[0]!r}-{m[2]}" for m in FIELD_MATCH]
)
def test_field_selector_matches(text: str, obj: dict, expected: bool) -> None:
    assert parse_field_selector(text).matches(obj) is expected


def test_field_selector_requirements_and_exact() -> None:
    selector = parse_field_selector(" involvedObject.uid = u1 ,type!=Normal,spec.nodeName==")
    assert selector.requirements == [
        ("involvedObject.uid", EQUALS, "u1"),
        ("type", NOT_EQUALS, "Normal"),
        ("spec.nodeName", EQUALS, ""),
    ]
    assert selector.exact("involvedObject.uid") == "u1"
    assert selector.exact("spec.nodeName") == ""
    assert selector.exact("type") is None
    assert selector.exact("metadata.name") is None
    assert selector.fields == {"involvedObject.uid", "type", "spec.nodeName"}
    assert (
        not selector.empty and parse_field_selector("").empty and parse_field_selector(None).empty
    )


@pytest.mark.parametrize(
    "value", ["a,b", "x=y", "back\\slash", "a!=b", "plain"], ids=lambda v: repr(v)
)
def test_field_selector_escaping_round_trips(value: str) -> None:
    selector = FieldSelector([("metadata.name", EQUALS, value)])
    again = parse_field_selector(str(selector))
    assert again == selector
    assert again.matches({"metadata": {"name": value}})


@pytest.mark.parametrize(
    "text",
    ["metadata.name", "=x", "a..b=x", "metadata.name=x,", "spec nodeName=x"],
    ids=["no-operator", "no-field", "empty-path-part", "trailing-comma", "space-in-field"],
)
def test_field_selector_errors(text: str) -> None:
    with pytest.raises(ValueError, match="invalid selector"):
        parse_field_selector(text)


def test_selector_built_from_requirements_is_canonical() -> None:
    built = LabelSelector([("b", IN, ("y", "x", "x")), ("a", EXISTS, ())])
    assert built == parse_label_selector("a, b in (x,y)")
    assert str(built) == "a,b in (x,y)"
