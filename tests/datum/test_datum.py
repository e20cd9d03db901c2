"""Datums from input trees (pure: files given in memory), ids, hashes, incremental plans, datum sets."""

from __future__ import annotations

import hashlib
import struct
from collections import Counter

import pytest

from pach_airflow.datum import (
    Datum,
    DatumInput,
    cut_datum_sets,
    datum_hash,
    datum_id,
    datums_from_input,
    plan_incremental,
)
from pach_airflow.errors import DatumError
from pach_airflow.glob import compile_glob, match_files
from pach_airflow.pfs.info import FileInfo


def repo_files(paths, content=lambda p: p):
    return [FileInfo(p, "file", len(content(p)), hashlib.sha256(content(p).encode()).hexdigest())
            for p in sorted(paths)]


def make_matches(repos):
    def matches(leaf):
        g = compile_glob(leaf.glob)
        base = "/" if g.pattern == "/" else g.literal_prefix
        files = [f for f in repos.get(leaf.repo, []) if base == "/" or f.path.startswith(base + "/")]
        return match_files(files, g, base=base)
    return matches


def shape(datums):
    return Counter(tuple(sorted((i.name, i.path) for i in d.inputs)) for d in datums)


def pfs(name, glob, repo=None, **kw):
    return {"pfs": {"name": name, "repo": repo or name, "branch": "master", "glob": glob, **kw}}


def test_datum_id_layout():
    """common.DatumID: BLAKE2b-256 over name, int64 BE len, repo, len, branch, len, path, len."""
    inp = DatumInput("in", "images", "master", "c" * 32, "/a.png", "h", 1)
    h = hashlib.blake2b(digest_size=32)
    for s in (b"in", b"images", b"master", b"/a.png"):
        h.update(s + struct.pack(">q", len(s)))
    assert datum_id([inp]) == h.hexdigest()
    # No content and no commit in the id: it is the same for another commit or content
    other = DatumInput("in", "images", "master", "d" * 32, "/a.png", "other", 5)
    assert datum_id([other]) == datum_id([inp])
    assert datum_id([inp, other]) != datum_id([inp])


def test_datum_hash_uses_content_salt_and_skips_reference_inputs():
    a = DatumInput("a", "a", "master", "", "/x", "h1", 1)
    ref = DatumInput("r", "r", "master", "", "/y", "h2", 1, reference=True)
    did = datum_id([a, ref])
    base = datum_hash(did, [a, ref], "salt")
    expected = hashlib.blake2b((did + "h1" + "salt").encode(), digest_size=32).hexdigest()
    assert base == expected
    assert datum_hash(did, [a, DatumInput("r", "r", "master", "", "/y", "CHANGED", 1, reference=True)], "salt") == base
    assert datum_hash(did, [DatumInput("a", "a", "master", "", "/x", "CHANGED", 1), ref], "salt") != base
    assert datum_hash(did, [a, ref], "other salt") != base


def test_iterated_datums_carry_ids_hashes_flags_and_commits():
    repos = {"data": repo_files(["/a", "/b"])}
    spec = pfs("data", "/*", lazy=True, empty_files=True)
    commits = {("data", "master"): "c" * 32}
    ds = list(datums_from_input(spec, make_matches(repos), commits=commits, salt="s"))
    assert len(ds) == 2
    for d in ds:
        (i,) = d.inputs
        assert i.lazy and i.empty_files and i.commit == "c" * 32
        assert d.id == datum_id(d.inputs) and d.hash == datum_hash(d.id, d.inputs, "s")
        assert Datum.from_dict(d.to_dict()) == d


def test_branch_without_commit_gives_no_datums_and_unpinned_input_is_an_error():
    repos = {"data": repo_files(["/a"])}
    assert list(datums_from_input(pfs("data", "/"), make_matches(repos), commits={("data", "master"): None})) == []
    with pytest.raises(DatumError, match="data@master"):
        list(datums_from_input(pfs("data", "/"), make_matches(repos), commits={}))


def test_cross_nested_and_empty():
    repos = {"a": repo_files([f"/{i}" for i in range(3)]), "b": repo_files([f"/{i}" for i in range(4)]),
             "c": repo_files(["/x", "/y"])}
    m = make_matches(repos)
    assert len(list(datums_from_input({"cross": [pfs("a", "/*"), pfs("b", "/*")]}, m))) == 12
    nested = {"cross": [pfs("a", "/*"), {"union": [pfs("b", "/*"), pfs("c", "/*")]}, pfs("c2", "/*", repo="c")]}
    ds = list(datums_from_input(nested, m))
    assert len(ds) == 3 * (4 + 2) * 2
    assert all(d.inputs[0].name == "a" and d.inputs[2].name == "c2" for d in ds)
    assert list(datums_from_input({"cross": [pfs("a", "/*"), pfs("b", "/nothing*")]}, m)) == []
    assert list(datums_from_input({"cross": [pfs("b", "/nothing*"), pfs("a", "/*")]}, m)) == []


def test_union_collapses_identical_datums():
    repos = {"a": repo_files(["/1", "/2", "/3"])}
    ds = list(datums_from_input({"union": [pfs("a", "/*"), pfs("a", "/[12]")]}, make_matches(repos)))
    assert shape(ds) == Counter({(("a", "/1"),): 1, (("a", "/2"),): 1, (("a", "/3"),): 1})


def test_join_inner_outer_and_empty_key():
    repos = {"two": repo_files(["/0", "/2", "/4", "/6"]), "three": repo_files(["/0", "/3", "/6"])}
    m = make_matches(repos)

    def join(outer2, outer3):
        return {"join": [pfs("three", "/(*)", join_on="$1", outer_join=outer3),
                         pfs("two", "/(*)", join_on="$1", outer_join=outer2)]}

    assert len(list(datums_from_input(join(False, False), m))) == 2
    assert len(list(datums_from_input(join(True, False), m))) == 4
    assert len(list(datums_from_input(join(False, True), m))) == 3
    both = list(datums_from_input(join(True, True), m))
    assert shape(both) == Counter({(("three", "/0"), ("two", "/0")): 1, (("two", "/2"),): 1, (("three", "/3"),): 1,
                                   (("two", "/4"),): 1, (("three", "/6"), ("two", "/6")): 1})
    # no join_on: every file has the key "" and joins with every other (a cross product)
    every = {"join": [pfs("three", "/*"), pfs("two", "/*")]}
    assert len(list(datums_from_input(every, m))) == 12


def test_group_full_outer_merge_and_group_of_cross():
    repos = {"a": repo_files(["/a-1", "/a-2", "/b-1"]), "b": repo_files(["/x-1", "/y-3"])}
    m = make_matches(repos)
    g = {"group": [pfs("a", "/*-(*)", group_by="$1"), pfs("b", "/*-(*)", group_by="$1")]}
    assert shape(datums_from_input(g, m)) == Counter({
        (("a", "/a-1"), ("a", "/b-1"), ("b", "/x-1")): 1, (("a", "/a-2"),): 1, (("b", "/y-3"),): 1})
    # a group over a compound input regroups the individual inputs of its datums by their own key
    over_cross = {"group": [{"cross": [pfs("a", "/a-(*)", group_by="$1"), pfs("b", "/x-(*)", group_by="$1")]}]}
    ds = list(datums_from_input(over_cross, m))
    # (b /x-1 is in both cross datums, so it comes twice, as in Pachyderm's key file sets)
    assert shape(ds) == Counter({(("a", "/a-1"), ("b", "/x-1"), ("b", "/x-1")): 1, (("a", "/a-2"),): 1})


def test_s3_leaf_is_passed_to_matches_and_flag_is_carried():
    seen = []

    def matches(leaf):
        seen.append(leaf)
        return [FileInfo("/", "dir", 0, "root")] if leaf.s3 else []

    ds = list(datums_from_input(pfs("data", "/", s3=True), matches))
    assert [d.inputs[0].path for d in ds] == ["/"] and ds[0].inputs[0].s3 and seen[0].s3


def test_cron_input_is_pfs_on_master_with_star_glob():
    repos = {"pipe_tick": repo_files(["/2025-01-01T00:00:00Z", "/2025-01-01T00:01:00Z"])}
    ds = list(datums_from_input({"cron": {"name": "tick", "spec": "@every 1m"}}, make_matches(repos), pipeline="pipe"))
    assert sorted(d.inputs[0].path for d in ds) == ["/2025-01-01T00:00:00Z", "/2025-01-01T00:01:00Z"]
    assert {(d.inputs[0].name, d.inputs[0].repo, d.inputs[0].branch) for d in ds} == {("tick", "pipe_tick", "master")}


# ------------------------------------------------------------------------------------ incremental

def _datums(contents: dict[str, str], salt: str = "s"):
    repos = {"data": repo_files(list(contents), content=lambda p: contents[p])}
    return list(datums_from_input(pfs("data", "/*"), make_matches(repos), salt=salt))


def test_first_job_runs_everything():
    ds = _datums({"/a": "1", "/b": "2"})
    plan = plan_incremental(ds, None)
    assert plan.to_run == ds and plan.skipped == [] and plan.removed == []


def test_incremental_plan_new_skipped_changed_removed():
    old = _datums({"/a": "1", "/b": "2", "/gone": "3"})
    base = {d.id: (d.hash, "SUCCESS") for d in old}
    new = _datums({"/a": "1", "/b": "CHANGED", "/new": "4"})
    plan = plan_incremental(new, base)
    by_path = {d.inputs[0].path: d for d in new}
    assert plan.skipped == [by_path["/a"]]
    assert sorted(d.inputs[0].path for d in plan.to_run) == ["/b", "/new"]
    assert plan.changed == [by_path["/b"].id]
    assert plan.removed == [d.id for d in old if d.inputs[0].path == "/gone"]
    assert plan.total == 3


def test_failed_or_recovered_base_datums_rerun_and_skipped_state_counts_as_success():
    ds = _datums({"/a": "1", "/b": "2", "/c": "3"})
    states = dict(zip(sorted(d.id for d in ds), ["FAILED", "RECOVERED", "SKIPPED"]))
    base = {d.id: {"hash": d.hash, "state": states[d.id]} for d in ds}
    plan = plan_incremental(ds, base)
    assert [d.id for d in plan.skipped] == [i for i, s in states.items() if s == "SKIPPED"]
    assert len(plan.to_run) == 2


def test_every_job_and_new_salt_rerun_everything():
    ds = _datums({"/a": "1"})
    base = {d.id: (d.hash, "SUCCESS") for d in ds}
    assert plan_incremental(ds, base, every_job=True).to_run == ds
    resalted = _datums({"/a": "1"}, salt="new")
    assert plan_incremental(resalted, base).to_run == resalted


# ------------------------------------------------------------------------------------ datum sets

def _n(n: int, size: int = 10) -> list[Datum]:
    return [Datum(f"{i:064x}", "h", (DatumInput("a", "a", "master", "", f"/{i}", "h", size),)) for i in range(n)]


@pytest.mark.parametrize("n, spec, cap, sizes", [
    (0, None, 1024, []),
    (3, None, 1024, [1, 1, 1]),
    (10, None, 4, [3, 3, 3, 1]),
    (10, {"datum_set_spec": {"number": 4}}, 1024, [4, 4, 2]),
    (10, {"datum_set_spec": {"number": 1}}, 3, [4, 4, 2]),
    (10, {"datum_set_spec": {"size_bytes": 25}}, 1024, [3, 3, 3, 1]),
    (10, {"datum_set_spec": {"per_worker": 2}, "parallelism_spec": {"constant": 2}}, 1024, [3, 3, 3, 1]),
    (2, {"datum_set_spec": {"per_worker": 8}, "parallelism_spec": {"constant": 4}}, 1024, [1, 1]),
    (2048, None, 1024, [2] * 1024),
    (2049, None, 1024, [3] * 683),
])
def test_cut_datum_sets(n, spec, cap, sizes):
    ds = _n(n)
    sets = cut_datum_sets(ds, spec, cap=cap)
    assert [len(s) for s in sets] == sizes
    assert [d for s in sets for d in s] == ds
    assert len(sets) <= min(cap, n)


# ----------------------------------------------------------------------- incremental from a diff

def test_plan_from_diff_falls_back_when_it_cannot_know(tmp_path):
    from pach_airflow.datum import iter_datums, plan_incremental_diff
    from pach_airflow.pfs import open_store

    store = open_store("file://" + str(tmp_path / "store"))
    store.create_repo("a")
    with store.open_commit("a", "master") as c:
        c.put_file("/x-1", b"1")
        c.put_file("/d/y", b"2")
    c1 = store.inspect_branch("a", "master").head
    with store.open_commit("a", "master") as c:
        c.put_file("/d/y", b"changed")
    c2 = store.inspect_branch("a", "master").head
    old, new = {("a", "master"): c1}, {("a", "master"): c2}
    spec = {"input": pfs("a", "/*")}
    base = {d.id: (d.hash, "SUCCESS") for d in iter_datums(store, spec, old, "s")}

    plan = plan_incremental_diff(store, spec, new, "s", base=base, base_commits=old)
    assert [d.inputs[0].path for d in plan.to_run] == ["/d/"] and plan.changed == [plan.to_run[0].id]
    assert len(plan.skipped) == 1 and plan.removed == []
    same = plan_incremental_diff(store, spec, old, "s", base=base, base_commits=old)
    assert same.to_run == [] and sorted(same.skipped) == sorted(base)

    def nothing(**kw):
        args = {"base": base, "base_commits": old, **kw}
        return plan_incremental_diff(store, args.pop("spec", spec), new, "s", **args)

    assert nothing(base=None) is None
    assert nothing(every_job=True) is None
    assert nothing(base={k: (h, "FAILED") for k, (h, _) in base.items()}) is None
    assert nothing(base_commits={}) is None
    assert nothing(spec={"input": {"group": [pfs("a", "/*", group_by="$0")]}}) is None
    assert nothing(spec={"input": {"join": [pfs("a", "/(*)", join_on="$1")]}}) is None
    assert nothing(spec={"input": pfs("a", "/", s3=True)}) is None
