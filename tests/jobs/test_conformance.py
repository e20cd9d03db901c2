"""The job-level public conformance cases (``cases/public-cases.json``), end to end through the CLI.

Each test creates the case's repos and files with ``put file``, runs the pipeline with
``run pipeline -f SPEC`` on the local runner, and checks what the case asserts: outputs, job states,
counters, datum states, env vars, commit errors. Transforms the case leaves implicit are written here
the way the Pachyderm test writes them.
"""

from __future__ import annotations

import collections
import json

import pytest

from tests.jobs.conftest import load_cases

CASES = load_cases()


def setup_inputs(pps, case) -> None:
    for repo, files in case["input_files"].items():
        pps.repo(repo)
        if files:
            pps.commit(repo, [{"put": f["path"], "content": f["content"]} for f in files])


def per_dir_counts(files: dict[str, bytes]) -> dict[str, int]:
    counts: collections.Counter = collections.Counter()
    for path in files:
        counts[path.split("/")[1]] += 1
    return dict(counts)


def test_union_four_repos(pps):
    case = CASES["union-four-repos"]
    setup_inputs(pps, case)
    spec = pps.spec("p", case["input_spec"], stdin=case["expected"]["transform_stdin"])
    job_id, job = pps.run(spec)
    assert job["state"] == "JOB_SUCCESS"
    out = pps.files("p")
    assert len(out) == case["expected"]["output_file_count"]
    ids = {d["id"] for d in pps.datums("p", job_id)}
    assert set(out) == {f"/{i}" for i in ids}  # one file per datum, named by PACH_DATUM_ID


@pytest.mark.parametrize("case_id", ["union-of-crosses", "cross-of-unions"])
def test_union_cross_output_dirs(pps, case_id):
    case = CASES[case_id]
    setup_inputs(pps, case)
    stdin = ["for f in /pfs/*/*; do d=$(basename $(dirname $f)); mkdir -p /pfs/out/$d;",
             "  cp $f /pfs/out/$d/$PACH_DATUM_ID; done"]
    spec = pps.spec("p", case["input_spec"], stdin=stdin)
    _, job = pps.run(spec)
    assert job["state"] == "JOB_SUCCESS"
    assert job["data_total"] == case["expected_count"]
    want = case["expected"]["output_files_per_repo_dir"]
    assert per_dir_counts(pps.files("p")) == {r: want for r in ("r0", "r1", "r2", "r3")}


def test_cross_same_repo_two_names(pps):
    case = CASES["cross-same-repo-two-names"]
    pps.repo("data")
    spec = pps.spec("p", case["input_spec"], stdin=case["expected"]["transform_stdin"])
    pps.run(spec)  # the job a new pipeline runs before any input commit: empty
    for step in case["expected"]["steps"]:
        pps.commit("data", step["commit"]["data"])
        _, job = pps.run(spec)
        assert job["state"] == "JOB_SUCCESS"
        assert {k: v.encode() for k, v in step["output"].items()} == pps.files("p")
    assert len(pps.commits("p")) == case["expected"]["output_commit_count_on_master"]


def test_join_env_var(pps):
    case = CASES["join-env-var"]
    setup_inputs(pps, case)
    stdin = ['touch /pfs/out/repo1-"$PACH_DATUM_repo1_JOIN_ON" /pfs/out/repo2-"$PACH_DATUM_repo2_JOIN_ON"',
             'env | grep ^PACH_DATUM_ | sort > /pfs/out/env']
    spec = pps.spec("p", case["input_spec"], stdin=stdin)
    _, job = pps.run(spec)
    assert job["state"] == case["expected"]["job_state"]
    out = pps.files("p")
    assert set(out) - {"/env"} == set(case["expected"]["output_files"])
    env = dict(line.split("=", 1) for line in out["/env"].decode().splitlines())
    for k, v in case["expected"]["env"].items():
        assert env[k] == v


def test_join_binary_names(pps):
    case = CASES["join-binary-names"]
    setup_inputs(pps, case)
    spec = pps.spec("p", case["input_spec"], stdin=case["expected"]["transform_stdin"])
    _, job = pps.run(spec)
    assert job["state"] == "JOB_SUCCESS"
    assert sorted(pps.files("p")) == sorted(case["expected"]["output_files"])


def test_group_capture_between_stars(pps):
    case = CASES["group-capture-between-stars"]
    setup_inputs(pps, case)
    spec = pps.spec("p", case["input_spec"], stdin=["ls /pfs/repo > /pfs/out/$PACH_DATUM_ID"])
    job_id, job = pps.run(spec)
    assert job["state"] == case["expected"]["job_state"]
    datums = pps.datums("p", job_id)
    got = sorted(sorted(f["path"] for f in d["files"]) for d in datums)
    want = sorted(sorted(p for _n, p in d) for d in case["expected_datums"])
    assert got == want
    # each datum saw exactly its group's files
    out = pps.files("p")
    assert sorted(sorted(v.decode().split()) for v in out.values()) == sorted(
        sorted(p.lstrip("/") for p in d) for d in want)


def test_incr_skip_unchanged(pps):
    case = CASES["incr-skip-unchanged"]
    pps.repo("data")
    spec = pps.spec("p", case["input_spec"], stdin=case["expected"]["transform_stdin"])
    pps.run(spec)  # created before any commit: one empty job
    for step in case["expected"]["steps"]:
        pps.commit("data", step["commit"]["data"])
        job_id, job = pps.run(spec)
        want = step["datums"]
        assert (job["data_processed"], job["data_skipped"], job["data_total"]) == (
            want["processed"], want["skipped"], want["total"])
        if "output" in step:
            assert pps.files("p") == {k: v.encode() for k, v in step["output"].items()}
        if "datum_states" in step:
            states = {d["files"][0]["path"]: d["state"] for d in pps.datums("p", job_id)}
            assert states == step["datum_states"]
        if "job_state" in step:
            assert job["state"] == step["job_state"]
    assert len(pps.jobs("p")) == case["expected"]["job_count"]


def test_incr_delete_input_removes_output(pps):
    """incr-meta-repo-layout: after /foo is deleted and /bar added, the output holds /bar only and
    the job has one datum (the meta repo itself is not reproduced; its content is the job's datum
    records, shown by ``list datum``)."""
    case = CASES["incr-meta-repo-layout"]
    pps.repo("data")
    spec = pps.spec("p", case["input_spec"], stdin=case["expected"]["transform_stdin"])
    for step in case["expected"]["steps"]:
        pps.commit("data", step["commit"]["data"])
        job_id, job = pps.run(spec)
        assert job["state"] == "JOB_SUCCESS"
        datums = pps.datums("p", job_id)
        assert len(datums) == 1
        if "output_files" in step:
            assert sorted(pps.files("p")) == step["output_files"]
    assert [[[f["input"], f["path"]] for f in d["files"]] for d in datums] == case["expected_datums"]


def test_incr_update_without_and_with_reprocess(pps):
    case = CASES["incr-update-without-and-with-reprocess"]
    pps.repo("data")
    foo = pps.spec("p", case["input_spec"], stdin=["echo foo >/pfs/out/file"])
    bar = pps.spec("p", case["input_spec"], stdin=["echo bar >/pfs/out/file"])
    buzz = pps.spec("p", case["input_spec"], stdin=["echo buzz >/pfs/out/file"])
    pps.pach("create", "pipeline", "-f", str(foo))
    salt = json.loads(pps.pach("inspect", "pipeline", "p", "-o", "json").out)["salt"]
    pps.run(foo)
    pps.put("data", "/file", "1", append=True)
    pps.run(foo)
    assert pps.files("p") == {"/file": b"foo\n"}
    pps.pach("update", "pipeline", "-f", str(bar))
    assert json.loads(pps.pach("inspect", "pipeline", "p", "-o", "json").out)["salt"] == salt
    _, job = pps.run(bar)  # unchanged datum: skipped although cmd changed
    assert (job["data_processed"], job["data_skipped"]) == (0, 1)
    assert pps.files("p") == {"/file": b"foo\n"}
    pps.put("data", "/file", "2", append=True)
    pps.run(bar)
    assert pps.files("p") == {"/file": b"bar\n"}
    assert len(pps.jobs("p")) == 4
    pps.pach("update", "pipeline", "-f", str(buzz), "--reprocess")
    assert json.loads(pps.pach("inspect", "pipeline", "p", "-o", "json").out)["salt"] != salt
    _, job = pps.run(buzz)
    assert (job["data_processed"], job["data_skipped"]) == (1, 0)
    assert pps.files("p") == {"/file": b"buzz\n"}


def test_incr_delete_all_inputs(pps):
    case = CASES["incr-delete-all-inputs"]
    pps.repo("inputRepo")
    spec = pps.spec("p", case["input_spec"], transform=case["expected"]["transform"])
    for step in case["expected"]["steps"]:
        pps.commit("inputRepo", step["commit"]["inputRepo"])
        _, job = pps.run(spec)
        assert job["state"] == "JOB_SUCCESS"
        if "output" in step:
            assert pps.files("p") == {k: v.encode() for k, v in step["output"].items()}
        if "output_files" in step:
            assert sorted(pps.files("p")) == step["output_files"]
            assert job["data_total"] == 0


def test_err_cmd_recovery_counts(pps):
    case = CASES["err-cmd-recovery-counts"]
    setup_inputs(pps, case)
    spec = pps.spec("p", case["input_spec"], transform=case["expected"]["transform"])
    job_id, job = pps.run(spec, expect_code=1)
    want = case["expected"]["job"]
    assert {k: job[k] for k in want} == want
    states = {d["files"][0]["path"]: d["state"] for d in pps.datums("p", job_id)}
    assert states == {"/file1": "SUCCESS", "/file2": "FAILED", "/file3": "RECOVERED"}
    assert pps.commits("p")[0].error  # the failed job's output commit carries the error
    fixed = dict(case["expected"]["transform"], err_cmd=["true"])
    fixed.pop("err_stdin")
    spec2 = pps.spec("p", case["input_spec"], transform=fixed)
    pps.pach("update", "pipeline", "-f", str(spec2))
    _, job = pps.run(spec2)
    want = case["expected"]["after_update_err_cmd_true"]
    assert {k: job[k] for k in want} == want


def test_err_duplicate_output_path(pps):
    case = CASES["err-duplicate-output-path"]
    setup_inputs(pps, case)
    spec = pps.spec("p", case["input_spec"], stdin=case["expected"]["transform_stdin"])
    job_id, job = pps.run(spec, expect_code=1)
    assert job["state"] == "JOB_FAILURE"
    ids = sorted(d["id"] for d in pps.datums("p", job_id))
    assert "duplicate path output by different datums" in job["reason"]
    assert "/overlap" in job["reason"] and ids[0] in job["reason"] and ids[1] in job["reason"]
    head = pps.commits("p")[0]
    assert head.id == job_id and head.error == job["reason"]
    assert pps.files("p") == {}  # nothing good yet: the failed output shows the last good output (none)
    spec2 = pps.spec("p", case["input_spec"], stdin=case["expected"]["after_update_stdin"])
    pps.pach("update", "pipeline", "-f", str(spec2))
    _, job = pps.run(spec2)
    assert job["state"] == "JOB_SUCCESS"
    assert not pps.commits("p")[0].error
    assert pps.files("p") == {"/bar": b"baz", "/foo": b"baz"}


def test_err_accept_return_code(pps):
    case = CASES["err-accept-return-code"]
    setup_inputs(pps, case)
    spec = pps.spec("p", case["input_spec"], transform=case["expected"]["transform"])
    job_id, job = pps.run(spec)
    assert job["state"] == case["expected"]["job_state"]
    assert job_id == pps.head("data")  # global id: job id == the input commit's id


def test_env_vars(pps):
    case = CASES["env-vars"]
    setup_inputs(pps, case)
    secret_dir = pps.tmp / "secrets" / "mysecret"
    secret_dir.mkdir(parents=True)
    (secret_dir / "foo").write_text("foo\n")
    spec = pps.spec("p", case["input_spec"], stdin=["env > /pfs/out/env"],
                    transform={"env": {"bar": "bar"},
                               "secrets": [{"name": "mysecret", "key": "foo", "env_var": "foo"}]})
    job_id, job = pps.run(spec)
    assert job["state"] == "JOB_SUCCESS"
    env = {}
    for line in pps.files("p")["/env"].decode().splitlines():
        if "=" in line:
            k, v = line.split("=", 1)
            env[k] = v
    [datum] = pps.datums("p", job_id)
    assert env["data"] == "/pfs/data/file"
    assert env["data_COMMIT"] == pps.head("data") == job_id
    assert env["PACH_JOB_ID"] == job_id
    assert env["PACH_OUTPUT_COMMIT_ID"] == job_id
    assert env["PACH_DATUM_ID"] == datum["id"]
    assert env["bar"] == "bar"
    assert env["foo"] == "foo"  # the secret's value (its trailing newline does not survive `env`)


def _tick(pps, repo: str, when: str) -> None:
    """A cron tick as the Airflow side writes it: one empty file named by the RFC 3339 time."""
    pps.put(repo, f"/{when}", "")


def test_cron_accumulate(pps):
    case = CASES["cron-accumulate"]
    spec = pps.spec("p", case["input_spec"], stdin=case["expected"]["transform_stdin"])
    pps.run(spec)  # creates the cron repo p_time and runs the first, empty job
    assert pps.files("p") == {}
    ticks = ["2025-01-09T14:41:45Z", "2025-01-09T14:41:55Z", "2025-01-09T14:42:05Z"]
    for i, when in enumerate(ticks, start=1):
        _tick(pps, "p_time", when)
        _, job = pps.run(spec)
        assert job["state"] == "JOB_SUCCESS"
        assert (job["data_processed"], job["data_skipped"]) == (1, i - 1)
        out = pps.files("p")
        assert len(out) == i and all(v == b"" for v in out.values())
    counts = [c.file_count for c in reversed(pps.commits("p"))]
    assert counts == [0, 1, 2, 3]


def test_cron_run_cron_cross(pps):
    case = CASES["cron-run-cron-cross"]
    inp = {"cross": [{"cron": {"name": "time1", "spec": "0 0 1 1 *"}},
                     {"cron": {"name": "time2", "spec": "0 0 15 1 *"}}]}
    spec = pps.spec("p", inp, stdin=["touch /pfs/out/$(basename $time1)-$(basename $time2)"])
    pps.run(spec)
    for call in range(case["expected"]["run_cron_calls"]):
        when = f"2025-01-09T14:4{call}:00Z"
        for repo in ("p_time1", "p_time2"):  # `run cron` ticks every cron input, one commit each
            _tick(pps, repo, when)
            _, job = pps.run(spec)
            assert job["state"] == "JOB_SUCCESS"
    assert len(pps.commits("p")) == case["expected"]["output_commit_count"]
    assert len(pps.files("p")) == 9  # 3 ticks x 3 ticks


def test_datum_tries_counts_attempts(pps):
    """TestDatumTries: ``datum_tries: 5`` gives 5 "errored running user code" lines; the job fails."""
    pps.repo("data")
    pps.put("data", "/file", "foo\n")
    spec = pps.spec("p", {"pfs": {"repo": "data", "glob": "/*"}}, stdin=["exit 1"], datum_tries=5)
    job_id, job = pps.run(spec, expect_code=1)
    assert (job["state"], job["data_failed"]) == ("JOB_FAILURE", 1)
    log = pps.pach("logs", "-p", "p", "-j", job_id).out
    assert log.count("errored running user code") == 5
    [datum] = pps.datums("p", job_id)
    assert datum["state"] == "FAILED"


def test_cron_overwrite_replaces_old_tick_output(pps):
    """With ``overwrite: true`` each tick commit deletes the old tick file, so the old tick's datum is
    removed and its output leaves the next output commit (reference §7, derived from §4)."""
    spec = pps.spec("p", {"cron": {"name": "tick", "spec": "@every 10s", "overwrite": True}},
                    stdin=["cp /pfs/tick/* /pfs/out/"])
    pps.run(spec)
    pps.commit("p_tick", [{"put": "/2025-01-09T14:41:45Z", "content": ""}])
    pps.run(spec)
    assert sorted(pps.files("p")) == ["/2025-01-09T14:41:45Z"]
    pps.commit("p_tick", [{"delete": "/2025-01-09T14:41:45Z"}, {"put": "/2025-01-09T14:41:55Z", "content": ""}])
    _, job = pps.run(spec)
    assert (job["data_processed"], job["data_skipped"], job["data_total"]) == (1, 0, 1)
    assert sorted(pps.files("p")) == ["/2025-01-09T14:41:55Z"]


def test_empty_input_job_succeeds(pps):
    """TestPipelineEmptyInput: a pipeline over a repo with no commit runs one job with no datums; it
    succeeds and its output commit is empty (as a real process: ``pach_proc`` style)."""
    from tests.fixtures.cli import Cli

    pps.repo("data")
    spec = pps.spec("p", {"pfs": {"repo": "data", "glob": "/"}}, stdin=["cp -r /pfs/data /pfs/out/"])
    res = Cli(pps.pach.store_url, subprocess_mode=True)("run", "pipeline", "-f", str(spec))
    job = pps.job("p", res.lines()[-1])
    assert (job["state"], job["data_total"]) == ("JOB_SUCCESS", 0)
    [commit] = pps.commits("p")
    assert commit.id == job["id"] and commit.file_count == 0 and not commit.error
