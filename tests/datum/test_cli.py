"""``glob file``, ``list datum -f`` (the dry run), ``list datum PIPELINE@JOB`` and ``inspect datum``."""

from __future__ import annotations

import json

import pytest

from pach_airflow.pfs import open_store

SPEC = {"pipeline": {"name": "edges"}, "transform": {"image": "busybox:1.36", "cmd": ["true"]},
        "input": {"cross": [{"pfs": {"repo": "images", "glob": "/*"}},
                            {"pfs": {"repo": "models", "glob": "/", "name": "m"}}]}}


@pytest.fixture
def store(local_store_url):
    s = open_store(local_store_url)
    s.create_repo("images")
    with s.open_commit("images", "master") as c:
        for p in ("/a.png", "/b.png", "/sub/c.png", "/sub/deep/d.png"):
            c.put_file(p, p.encode())
    s.create_repo("models")
    with s.open_commit("models", "master") as c:
        c.put_file("/model.bin", b"weights")
    return s


def _spec_file(tmp_path, spec=SPEC) -> str:
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec))
    return str(path)


def test_glob_file_json_and_table(pach, store):
    rows = pach("glob", "file", "images@master:/*", "-o", "json").json_lines()
    assert [r["path"] for r in rows] == ["/a.png", "/b.png", "/sub/"]
    sub = rows[2]
    assert sub["type"] == "dir" and sub["size"] == len("/sub/c.png") + len("/sub/deep/d.png")
    assert sub["hash"] == store.inspect_file("images", "master", "/sub").hash
    assert rows[0]["hash"] == store.inspect_file("images", "master", "/a.png").hash
    table = pach("glob", "file", "images@master:/sub/**").lines()
    assert table[0].split() == ["NAME", "TYPE", "SIZE"]
    assert [line.split()[0] for line in table[1:]] == ["/sub/c.png", "/sub/deep/", "/sub/deep/d.png"]


def test_glob_file_pattern_is_cleaned_not_refused(pach, store):
    # Pachyderm's GlobFile cleans the pattern (pfsfile.CleanPath): '..' is resolved, not refused
    rows = pach("glob", "file", "images@master:/sub/../*.png", "-o", "json").json_lines()
    assert [r["path"] for r in rows] == ["/a.png", "/b.png"]
    # a relative pattern climbing above the root stays '/../...' and matches nothing
    assert pach("glob", "file", "images@master:../sub/*", "-o", "json").json_lines() == []
    # an escape before the first glob character: nothing starts with the raw prefix
    assert pach("glob", "file", "images@master:/a\\.png", "-o", "json").json_lines() == []


def test_glob_file_errors(pach, store):
    res = pach("glob", "file", "nope@master:/*", check=False)
    assert res.code == 1 and "nope" in res.err
    res = pach("glob", "file", "images@master:/[abc", check=False)
    assert res.code == 1 and "/[abc" in res.err


def test_list_datum_dry_run_json(pach, store, tmp_path):
    rows = pach("list", "datum", "-f", _spec_file(tmp_path), "-o", "json").json_lines()
    assert len(rows) == 3
    assert [r["id"] for r in rows] == sorted(r["id"] for r in rows)
    for r in rows:
        assert set(r) == {"id", "files"} and len(r["id"]) == 64
        (m,) = [f for f in r["files"] if f["input"] == "m"]
        assert m == {"input": "m", "repo": "models", "branch": "master", "path": "/",
                     "hash": store.inspect_file("models", "master", "/").hash}
    assert sorted(f["path"] for r in rows for f in r["files"] if f["input"] == "images") == ["/a.png", "/b.png", "/sub/"]


def test_list_datum_dry_run_table_and_real_process(pach_proc, store, tmp_path):
    lines = pach_proc("list", "datum", "-f", _spec_file(tmp_path)).lines()
    assert lines[0].split() == ["ID", "FILES", "STATUS"]
    assert len(lines) == 4 and all(line.rstrip().endswith("-") for line in lines[1:])
    assert "images@master:/sub/" in "\n".join(lines)


def test_list_datum_dry_run_creates_nothing(pach, store, tmp_path):
    before = (sorted(r.name for r in store.list_repos()), sorted(store.list_records("")),
              store.inspect_branch("images", "master").head)
    pach("list", "datum", "-f", _spec_file(tmp_path), "-o", "json")
    after = (sorted(r.name for r in store.list_repos()), sorted(store.list_records("")),
             store.inspect_branch("images", "master").head)
    assert after == before


def test_list_datum_missing_repo_is_a_clear_error(pach, store, tmp_path):
    spec = {**SPEC, "input": {"pfs": {"repo": "absent", "glob": "/*"}}}
    res = pach("list", "datum", "-f", _spec_file(tmp_path, spec), check=False)
    assert res.code == 1
    assert "absent" in res.err and "create repo absent" in res.err


def test_branch_without_commit_and_empty_commit_give_no_datums(pach, store, tmp_path):
    store.create_repo("fresh")
    spec = {**SPEC, "input": {"pfs": {"repo": "fresh", "glob": "/"}}}
    assert pach("list", "datum", "-f", _spec_file(tmp_path, spec), "-o", "json").json_lines() == []
    with store.open_commit("fresh", "master"):
        pass
    assert pach("list", "datum", "-f", _spec_file(tmp_path, spec), "-o", "json").json_lines() == []


def test_list_datum_needs_exactly_one_of_job_or_file(pach, store, tmp_path):
    assert pach("list", "datum", check=False).code == 1
    assert pach("list", "datum", "edges@abc", "-f", _spec_file(tmp_path), check=False).code == 1
    assert pach("list", "datum", "no-at-sign", check=False).code == 1


def test_list_datum_of_a_job_has_the_dry_run_ids(pach, store, tmp_path, local_store_url):
    jobs = pytest.importorskip("pach_airflow.jobs")
    from pach_airflow.spec import load_specs

    spec_file = _spec_file(tmp_path)
    dry = {r["id"] for r in pach("list", "datum", "-f", spec_file, "-o", "json").json_lines()}
    planned = jobs.plan_job(store, load_specs(spec_file)[0])
    rows = pach("list", "datum", f"edges@{planned.job_id}", "-o", "json").json_lines()
    assert {r["id"] for r in rows} == dry
    table = pach("list", "datum", f"edges@{planned.job_id}").lines()
    assert table[0].split()[:3] == ["ID", "FILES", "STATUS"]
    one = min(dry)
    info = json.loads(pach("inspect", "datum", f"edges@{planned.job_id}", one[:12], "-o", "json").out)
    assert info["id"] == one


def test_list_datum_cron_and_several_pipelines(pach, store, tmp_path):
    cron = {"pipeline": {"name": "ticker"}, "transform": {"image": "busybox:1.36", "cmd": ["true"]},
            "input": {"cross": [{"cron": {"name": "tick", "spec": "@every 1m"}}, {"pfs": {"repo": "models", "glob": "/*"}}]}}
    path = tmp_path / "two.json"
    path.write_text(json.dumps([cron, SPEC]))
    # the tick repo does not exist before its pipeline does: no datums for it, not an error
    rows = pach("list", "datum", "-f", str(path), "-o", "json").json_lines()
    assert {r["pipeline"] for r in rows} == {"edges"} and len(rows) == 3
    store.create_repo("ticker_tick")
    with store.open_commit("ticker_tick", "master") as c:
        c.put_file("/2025-01-09T14:41:45Z", b"")
    rows = pach("list", "datum", "-f", str(path), "-o", "json").json_lines()
    ticks = [r for r in rows if r["pipeline"] == "ticker"]
    assert [sorted((f["input"], f["repo"], f["path"]) for f in r["files"]) for r in ticks] == [
        [("models", "models", "/model.bin"), ("tick", "ticker_tick", "/2025-01-09T14:41:45Z")]]


def test_s3_inputs_are_listed_as_pachyderm_cuts_them_with_a_note(pach, store, tmp_path):
    spec = {**SPEC, "input": {"cross": [{"pfs": {"repo": "images", "glob": "/*"}},
                                        {"pfs": {"repo": "models", "glob": "/", "s3": True}}]}}
    res = pach("list", "datum", "-f", _spec_file(tmp_path, spec), "-o", "json")
    assert "s3" in res.err
    rows = res.json_lines()
    assert len(rows) == 3
    assert all(sorted(f["path"] for f in r["files"] if f["input"] == "models") == ["/"] for r in rows)
    # any other problem is still an error
    bad = {**spec, "input": {"pfs": {"repo": "models", "glob": "/*", "s3": True}}}
    res = pach("list", "datum", "-f", _spec_file(tmp_path, bad), check=False)
    assert res.code == 1 and "glob" in res.err
