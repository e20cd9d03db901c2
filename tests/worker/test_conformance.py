"""Pachyderm's own cases (``cases/public-cases.json``, a copy of the shared conformance file) that concern
the worker, run through stage → shim → upload on the local runner, their values read from the file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pach_airflow.runners.local import run_set

CASES = {c["id"]: c for c in json.loads((Path(__file__).parent / "cases" / "public-cases.json").read_text())["cases"]}


def _datums(sets, case):
    for repo, files in case["input_files"].items():
        sets.repo(repo, {f["path"]: f["content"] for f in files})
    # The input names of the case's spec -> their repos (leaves of cross/pfs).
    repos = {}

    def leaves(node):
        if "pfs" in node:
            repos[node["pfs"]["name"]] = node["pfs"]["repo"]
        for key in ("cross", "union", "join", "group"):
            for child in node.get(key, []):
                leaves(child)

    leaves(case["input_spec"])
    return [[sets.input(name, repos[name], path) for name, path in datum] for datum in case["expected_datums"]]


def _env_of(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def test_cross_same_repo_two_names(sets, local_store):
    case = CASES["cross-same-repo-two-names"]
    job = sets.job({"cmd": ["bash"], "stdin": case["expected"]["transform_stdin"]}, [_datums(sets, case)])
    run_set(local_store, "p", job, "0")
    (d,) = sets.result(job)["datums"]
    assert d["state"] == "SUCCESS", d
    for path, content in case["expected"]["steps"][0]["output"].items():
        assert sets.output(d, path) == content.encode()
    # staged_paths: what the code saw under /pfs. /pfs/<input> is a symlink, as in Pachyderm (linkData), so
    # find needs -L there too.
    job = sets.job({"cmd": ["sh", "-c", "find -L /pfs/ -type f ! -name .env | sort > /tmp/s.$$; mv /tmp/s.$$ /pfs/out/staged"]},
                   [_datums(sets, case)])
    run_set(local_store, "p", job, "0")
    (d,) = sets.result(job)["datums"]
    assert sets.output(d, "/staged").decode().split() == sorted(case["expected"]["staged_paths"])


def test_err_cmd_recovery_counts(sets, local_store):
    case = CASES["err-cmd-recovery-counts"]
    job = sets.job(case["expected"]["transform"], [_datums(sets, case)])
    summary = run_set(local_store, "p", job, "0")
    want = case["expected"]["job"]
    assert (summary["SUCCESS"], summary["RECOVERED"], summary["FAILED"]) == (
        want["data_processed"], want["data_recovered"], want["data_failed"])


@pytest.mark.parametrize("case_id", ["env-vars"])
def test_env_vars(sets, local_store, tmp_path, case_id):
    case = CASES[case_id]
    want = case["expected"]["env"]
    secret_dir = tmp_path / "secrets" / "mysecret"
    secret_dir.mkdir(parents=True)
    (secret_dir / "foo").write_text("foo\n")
    secret_file = case["expected"]["secret_file"]
    transform = {"cmd": ["sh", "-c", f"env > /pfs/out/env; cat {secret_file} > /pfs/out/secret"],
                 "env": {"bar": "bar"},
                 "secrets": [{"name": "mysecret", "key": "foo", "env_var": "foo"},
                             {"name": "mysecret", "mount_path": str(Path(secret_file).parent)}]}
    datums = _datums(sets, case)
    job = sets.job(transform, [datums])
    run_set(local_store, "p", job, "0")
    (d,) = sets.result(job)["datums"]
    env = _env_of(sets.output(d, "/env").decode())
    assert env["data"] == want["data"]
    assert env["data_COMMIT"] == sets.commits["data"]
    assert env["PACH_JOB_ID"] == job == env["PACH_OUTPUT_COMMIT_ID"]
    assert env["PACH_DATUM_ID"] == d["id"]
    assert env["bar"] == "bar" and env["foo"] == "foo"
    assert sets.output(d, "/secret") == b"foo\n"
