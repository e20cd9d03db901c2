"""Hypothesis strategies shared by the property tests: valid pipeline specs (as the dicts a spec file
holds), arbitrary JSON values, and mutations that turn a valid spec into a (probably) broken one."""

from __future__ import annotations

import copy
import re
from typing import Any

from hypothesis import strategies as st

NAME = st.from_regex(r"[a-z][a-z0-9_-]{0,8}", fullmatch=True)
PLAIN_GLOBS = st.sampled_from(["/", "/*", "/*/*", "/**", "/a/*", "*.txt", "/dir/**.csv", "/?", "/{a,b}*",
                               "/[a-c]*", "/[!x]*"])
CAPTURE_GLOBS = st.sampled_from(["/(*)", "/(*).txt", "/*-(*)", "/(*)/*", "/(?)(?)", "/dir-(*)/"])
CRON_SPECS = st.sampled_from(["@every 1h", "@every 90s", "@daily", "@hourly", "@never", "*/10 * * * *",
                              "0 9 * * MON-FRI", "30 2 1 * *", "TZ=UTC 0 0 * * *"])
DURATIONS = st.builds(lambda s, frac: f"{s}{frac}s", st.integers(1, 10**6),
                      st.sampled_from(["", ".5", ".25", ".000001"]))
QUANTITIES = st.sampled_from(["1", "512Mi", "2Gi", "1.5G", "100m", "1e3", "64k"])

JSON_SCALARS = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | \
    st.text(max_size=12)
JSON_VALUES = st.recursive(JSON_SCALARS, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=10), inner, max_size=4), max_leaves=20)


def _pfs(kind: str) -> st.SearchStrategy[dict]:
    """A PFS input fit for a place in the tree: plain, in a join (join_on), in a group (group_by)."""
    glob = CAPTURE_GLOBS if kind in ("join", "group") else PLAIN_GLOBS
    extra: dict[str, Any] = {}
    if kind == "join":
        extra = {"join_on": st.just("$1"), "outer_join": st.booleans()}
    elif kind == "group":
        extra = {"group_by": st.just("$1")}
    optional = {"branch": st.sampled_from(["master", "dev"]), "lazy": st.booleans(),
                "empty_files": st.booleans(), "reference": st.booleans()}
    return st.fixed_dictionaries({"repo": st.just("?"), "glob": glob, **extra}, optional=optional)


@st.composite
def input_trees(draw: st.DrawFn, kind: str = "top", depth: int = 0) -> dict:
    """An input tree whose leaves get unique names afterwards (see :func:`valid_specs`)."""
    choices = ["pfs"]
    if kind not in ("join", "group"):
        choices.append("cron")
    if depth < 3:
        choices += ["cross", "union", "join", "group"] if kind != "join" else ["cross"]
    what = draw(st.sampled_from(choices))
    if what == "pfs":
        return {"pfs": draw(_pfs(kind))}
    if what == "cron":
        return {"cron": {"name": "?", "spec": draw(CRON_SPECS), **draw(st.fixed_dictionaries(
            {}, optional={"overwrite": st.booleans(), "start": st.just("2025-01-09T10:00:00Z")}))}}
    # Inside a group, compound children keep the group rule (their PFS inputs need group_by too).
    child_kind = "group" if kind == "group" else what
    if what == "join":
        children = draw(st.lists(st.builds(lambda p: {"pfs": p}, _pfs("join")), min_size=1, max_size=3))
        if kind == "group":
            for c in children:
                c["pfs"]["group_by"] = "$1"
        return {"join": children}
    children = draw(st.lists(input_trees(child_kind, depth + 1), min_size=1, max_size=3))
    return {what: children}


def _name_leaves(tree: Any, counter: list[int], pipeline: str) -> None:
    # Unique names everywhere keep cross/join/group valid; repos never equal the pipeline's own name.
    if isinstance(tree, dict):
        if "pfs" in tree and isinstance(tree["pfs"], dict):
            counter[0] += 1
            tree["pfs"]["repo"] = f"repo{counter[0]}"
        if "cron" in tree and isinstance(tree["cron"], dict):
            counter[0] += 1
            tree["cron"]["name"] = f"tick{counter[0]}"
        for v in tree.values():
            _name_leaves(v, counter, pipeline)
    elif isinstance(tree, list):
        for v in tree:
            _name_leaves(v, counter, pipeline)


@st.composite
def valid_specs(draw: st.DrawFn) -> dict:
    """A valid spec as a file would hold it (snake_case keys)."""
    name = "pipe-" + draw(NAME)
    tree = draw(input_trees())
    _name_leaves(tree, [0], name)
    transform = draw(st.fixed_dictionaries(
        {"cmd": st.lists(st.text(min_size=1, max_size=8), min_size=1, max_size=3)},
        optional={"image": st.sampled_from(["alpine:3.20", "ubuntu:22.04", "python:3.11-slim"]),
                  "stdin": st.lists(st.text(max_size=20), max_size=3),
                  "env": st.dictionaries(st.from_regex(r"[A-Z_][A-Z0-9_]{0,6}", fullmatch=True),
                                         st.text(max_size=8), max_size=3),
                  "accept_return_code": st.lists(st.integers(1, 255), max_size=3),
                  "working_dir": st.just("/work"), "user": st.just("1000"), "debug": st.booleans()}))
    optional = {
        "description": st.text(max_size=20),
        "parallelism_spec": st.fixed_dictionaries({"constant": st.integers(0, 64)}),
        "datum_tries": st.integers(0, 10) | st.integers(0, 10).map(str),
        "datum_timeout": DURATIONS,
        "job_timeout": DURATIONS,
        "output_branch": st.sampled_from(["master", "out", "results"]),
        "reprocess_spec": st.sampled_from(["until_success", "every_job"]),
        "autoscaling": st.booleans(),
        "datum_set_spec": st.fixed_dictionaries({}, optional={"number": st.integers(0, 100),
                                                              "size_bytes": st.integers(0, 10**9)}),
        "resource_requests": st.fixed_dictionaries({}, optional={"cpu": st.floats(0, 64), "memory": QUANTITIES,
                                                                 "disk": QUANTITIES}),
        "scheduling_spec": st.fixed_dictionaries({"node_selector": st.dictionaries(NAME, NAME, max_size=2)}),
        "tolerations": st.lists(st.fixed_dictionaries({"key": NAME, "operator": st.sampled_from(["EQUAL", "EMPTY"]),
                                                       "value": NAME}), max_size=2),
        "egress": st.builds(lambda b: {"URL": f"s3://{b}/out"}, NAME),
        "metadata": st.fixed_dictionaries({"labels": st.dictionaries(NAME, NAME, max_size=2)}),
    }
    doc = {"pipeline": {"name": name}, "transform": transform, "input": tree}
    doc.update(draw(st.fixed_dictionaries({}, optional=optional)))
    return doc


def _paths(obj: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += _paths(v, (*prefix, i))
    return out


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def camel_case_keys(obj: Any, maps: frozenset[str] = frozenset({"env", "labels", "annotations",
                                                                  "node_selector"})) -> Any:
    """The same spec with every field name in lowerCamelCase (map keys, which are data, unchanged)."""
    if isinstance(obj, dict):
        return {_camel(k): (v if k in maps else camel_case_keys(v, maps)) for k, v in obj.items()}
    if isinstance(obj, list):
        return [camel_case_keys(v, maps) for v in obj]
    return obj


MUTATIONS = ("delete", "replace", "unknown_key", "wrap_list", "stringify", "empty", "duplicate_child")


@st.composite
def mutated_specs(draw: st.DrawFn) -> Any:
    """A valid spec with one to four random mutations anywhere in it."""
    doc: Any = copy.deepcopy(draw(valid_specs()))
    for _ in range(draw(st.integers(1, 4))):
        paths = _paths(doc)
        path = draw(st.sampled_from(paths))
        how = draw(st.sampled_from(MUTATIONS))
        new_value = draw(JSON_VALUES)
        doc = _apply(doc, path, how, new_value, draw(st.text(max_size=8)))
    return doc


def _apply(doc: Any, path: tuple, how: str, value: Any, key: str) -> Any:
    if not path:
        return value if how == "replace" else ([doc] if how == "wrap_list" else doc)
    parent = doc
    for part in path[:-1]:
        parent = parent[part]
    last = path[-1]
    current = parent[last]
    if how == "delete":
        del parent[last]
    elif how == "replace":
        parent[last] = value
    elif how == "unknown_key" and isinstance(current, dict):
        current[key or "zz"] = value
    elif how == "wrap_list":
        parent[last] = [current]
    elif how == "stringify":
        parent[last] = str(current)
    elif how == "empty":
        parent[last] = type(current)() if isinstance(current, (dict, list, str)) else None
    elif how == "duplicate_child" and isinstance(current, list) and current:
        current.append(copy.deepcopy(current[0]))
    return doc


SPEC_TEXT_ALPHABET = st.sampled_from(list("{}[]:,-\"'#&*!|>% \n\tabcp0123456789") +
                                     ["pipeline", "name", "input", "pfs", "glob", "repo", "transform", "cmd",
                                      "---", "\n  ", "@every", "cron", "spec", "null", "true"])
SPEC_TEXTS = st.lists(SPEC_TEXT_ALPHABET, max_size=60).map("".join)
NAME_RE = re.compile(r"[A-Za-z0-9_-]+")
