"""Properties of globs and datums over random trees (hypothesis).

- every matched path (file or directory) is in exactly the datums its glob implies;
- join and group keys partition the files;
- planning twice gives identical ids and hashes;
- cross and union sizes follow from their parts.
"""

from __future__ import annotations

import hashlib
from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from pach_airflow.datum import datums_from_input, plan_incremental
from pach_airflow.glob import compile_glob, match_files
from pach_airflow.pfs.info import FileInfo

SEGMENTS = ["a", "b", "ab", "a.txt", "b-1", "x", "a1", "b2"]
TOKENS = ["*", "?", "a", "b", "1", "[ab]", "[!a]", "{a,b}", "{a,x*}", "(*)", "@(a|b)", "?(1)", "**", ".", "-", "x"]


@st.composite
def trees(draw) -> list[FileInfo]:
    paths = draw(st.sets(st.lists(st.sampled_from(SEGMENTS), min_size=1, max_size=3).map(lambda p: "/" + "/".join(p)),
                         max_size=14))
    # a path cannot be both a file and a directory
    paths = {p for p in paths if not any(q.startswith(p + "/") for q in paths)}
    contents = draw(st.lists(st.sampled_from(["", "0", "1", "22"]), min_size=len(paths), max_size=len(paths)))
    return [FileInfo(p, "file", len(c), hashlib.sha256((p + c).encode()).hexdigest())
            for p, c in zip(sorted(paths), contents)]


globs = st.lists(st.lists(st.sampled_from(TOKENS), min_size=1, max_size=3).map("".join),
                 min_size=1, max_size=3).map(lambda parts: "/" + "/".join(parts))


def all_paths(files: list[FileInfo]) -> set[str]:
    """Files and every directory above them (with a trailing '/'), the root included when there are files."""
    out = {"/"} if files else set()
    for f in files:
        out.add(f.path)
        parts = f.path.split("/")[1:-1]
        for i in range(1, len(parts) + 1):
            out.add("/" + "/".join(parts[:i]) + "/")
    return out


def matches_of(files: list[FileInfo], pattern: str) -> list[FileInfo]:
    g = compile_glob(pattern)
    base = "/" if g.pattern == "/" else g.literal_prefix
    return list(match_files([f for f in files if base == "/" or f.path.startswith(base + "/")], g, base=base))


def repo_matcher(repos: dict[str, list[FileInfo]]):
    return lambda leaf: matches_of(repos.get(leaf.repo, []), leaf.glob)


def pfs(name, glob, **kw):
    return {"pfs": {"name": name, "repo": kw.pop("repo", name), "branch": "master", "glob": glob, **kw}}


@settings(max_examples=150, deadline=None)
@given(trees(), globs)
def test_every_match_is_in_exactly_the_datums_its_glob_implies(files, pattern):
    g = compile_glob(pattern)
    expected = sorted(p for p in all_paths(files) if g.match(p))
    got = matches_of(files, pattern)
    assert [m.path for m in got] == expected  # each once, in lexicographic order, read below the prefix only
    for m in got:
        below = [f for f in files if f.path.startswith(m.path)] if m.type == "dir" else [m]
        assert m.type == ("dir" if m.path.endswith("/") else "file")
        assert m.size == sum(f.size for f in below) and below
    datums = list(datums_from_input(pfs("in", pattern), repo_matcher({"in": files})))
    assert Counter(d.inputs[0].path for d in datums) == Counter(expected)
    assert all(len(d.inputs) == 1 for d in datums)


@settings(max_examples=100, deadline=None)
@given(trees(), st.sampled_from(["/(*)", "/(*)/*", "/*/(*)", "/(?)*", "/**(?)"]), st.sampled_from(["$1", "", "k"]))
def test_group_keys_partition_the_files(files, pattern, key):
    matched = [m.path for m in matches_of(files, pattern)]
    datums = list(datums_from_input({"group": [pfs("in", pattern, group_by=key)]}, repo_matcher({"in": files})))
    assert sorted(i.path for d in datums for i in d.inputs) == sorted(matched)  # every file exactly once
    keys = [{i.group_by for i in d.inputs} for d in datums]
    assert all(len(k) == 1 for k in keys)
    assert len({next(iter(k)) for k in keys}) == len(datums)  # one datum per key


@settings(max_examples=100, deadline=None)
@given(trees(), trees(), st.booleans(), st.booleans())
def test_join_keys_partition_the_files(left, right, outer_left, outer_right):
    spec = {"join": [pfs("l", "/(*)", join_on="$1", outer_join=outer_left),
                     pfs("r", "/(*)", join_on="$1", outer_join=outer_right)]}
    repos = {"l": left, "r": right}
    datums = list(datums_from_input(spec, repo_matcher(repos)))
    lk = Counter(compile_glob("/(*)").replace(m.path, "$1") for m in matches_of(left, "/(*)"))
    rk = Counter(compile_glob("/(*)").replace(m.path, "$1") for m in matches_of(right, "/(*)"))
    expected = sum(lk[k] * rk[k] for k in lk if k in rk)
    expected += sum(n for k, n in lk.items() if k not in rk) if outer_left else 0
    expected += sum(n for k, n in rk.items() if k not in lk) if outer_right else 0
    assert len(datums) == expected
    for d in datums:
        assert len({i.join_on for i in d.inputs}) == 1
    assert len({d.id for d in datums}) == len(datums)


@settings(max_examples=60, deadline=None)
@given(trees(), trees(), globs, globs, st.text(max_size=5))
def test_planning_twice_gives_identical_ids_and_sizes_follow_from_parts(a, b, ga, gb, salt):
    repos = {"a": a, "b": b}
    m = repo_matcher(repos)
    na = len(list(datums_from_input(pfs("a", ga), m)))
    nb = len(list(datums_from_input(pfs("b", gb), m)))
    for spec, size in (({"cross": [pfs("a", ga), pfs("b", gb)]}, na * nb),
                       ({"union": [pfs("a", ga), pfs("b", gb)]}, na + nb)):
        first = list(datums_from_input(spec, m, salt=salt))
        second = list(datums_from_input(spec, m, salt=salt))
        assert len(first) == size
        assert [(d.id, d.hash) for d in first] == [(d.id, d.hash) for d in second]
        assert len({d.id for d in first}) == size
        base = {d.id: (d.hash, "SUCCESS") for d in first}
        again = plan_incremental(second, base)
        assert again.to_run == [] and len(again.skipped) == size and again.removed == []


@st.composite
def changes(draw, files: list[FileInfo]):
    """Deletes, rewrites and new files against ``files``."""
    paths = [f.path for f in files]
    deleted = draw(st.sets(st.sampled_from(paths), max_size=3)) if paths else set()
    rewritten = draw(st.sets(st.sampled_from(paths), max_size=3)) if paths else set()
    added = draw(trees())
    return deleted, rewritten - deleted, [f.path for f in added]


def _put_tree(store, repo: str, files: list[FileInfo]) -> str:
    with store.open_commit(repo, "master") as c:
        for f in files:
            c.put_file(f.path, f.hash.encode()[: f.size])
    return store.inspect_branch(repo, "master").head


@settings(max_examples=40, deadline=None)
@given(st.data(), trees(), trees(), globs, globs, st.sampled_from(["pfs", "cross", "union"]))
def test_plan_from_a_diff_equals_the_full_plan(tmp_path_factory, data, a, b, ga, gb, shape_):
    from pach_airflow.datum import iter_datums, plan_incremental_diff
    from pach_airflow.pfs import open_store

    store = open_store("file://" + str(tmp_path_factory.mktemp("store")))
    for repo in ("a", "b"):
        store.create_repo(repo)
    old = {("a", "master"): _put_tree(store, "a", a), ("b", "master"): _put_tree(store, "b", b)}
    if shape_ == "pfs":
        spec = pfs("a", ga)
    else:
        spec = {shape_: [pfs("a", ga), pfs("b", gb)]}
    base = {d.id: (d.hash, "SUCCESS") for d in iter_datums(store, spec, old, "salt")}
    new = dict(old)
    for repo, files in (("a", a), ("b", b)):
        if repo == "b" and not data.draw(st.booleans()):
            continue
        deleted, rewritten, added = data.draw(changes(files))
        kept = [f.path for f in files if f.path not in deleted]
        with store.open_commit(repo, "master") as c:
            for p in deleted:
                c.delete_file(p)
            for p in rewritten:
                c.put_file(p, b"rewritten")
            for p in added:
                if not any(q.startswith(p + "/") or p.startswith(q + "/") for q in kept):
                    c.put_file(p, b"new")
        new[(repo, "master")] = store.inspect_branch(repo, "master").head
    full = plan_incremental(iter_datums(store, spec, new, "salt"), base)
    fast = plan_incremental_diff(store, spec, new, "salt", base=base, base_commits=old)
    assert fast is not None
    assert sorted(d.id for d in fast.to_run) == sorted(d.id for d in full.to_run)
    assert [d.hash for d in sorted(fast.to_run, key=lambda d: d.id)] == \
        [d.hash for d in sorted(full.to_run, key=lambda d: d.id)]
    assert sorted(fast.skipped) == sorted(d.id for d in full.skipped)
    assert sorted(fast.removed) == sorted(full.removed)
    assert sorted(fast.changed) == sorted(full.changed)
