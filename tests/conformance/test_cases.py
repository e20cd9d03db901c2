"""The derived conformance cases (``tests/conformance/cases.json``), run through the CLI as users type it.

Datum and glob cases: repos created and files put with ``pach-airflow``, a spec holding the case's
``input`` written to a file, ``list datum -f SPEC -o json`` compared with ``expected_datums`` as a
multiset of datums, each a multiset of ``(input, path)``.

Job cases: the same set-up, then ``run pipeline -f SPEC`` on the local runner after the initial files
and after every step, and the checks the case lists, read back with ``inspect job``, ``list datum
PIPELINE@JOB``, ``get file -r`` and ``logs``.

Cases that fail because of an open bug are listed in ``KNOWN_BUGS`` (strict xfail): when the fix lands
the case passes, the xfail turns into a failure, and the entry is removed.
"""

from __future__ import annotations

import json
import pathlib
import tempfile
from collections import Counter
from typing import Any

import pytest

CASES_FILE = pathlib.Path(__file__).resolve().parent / "cases.json"
CASES: list[dict] = json.loads(CASES_FILE.read_text())["cases"]

# "<test>:<case id>" -> "<bug id>: what is wrong". The reproductions and proposed fixes are in the
# conformance report (H8); remove an entry when its fix lands (strict: a fixed case fails until then).
# H8-B2..B6 were fixed in H10; H8-B1 became error cases (the issue requires join_on / group_by).
KNOWN_BUGS: dict[str, str] = {}


def _params(kinds: tuple[str, ...], test: str) -> list:
    out = []
    for c in CASES:
        if c["kind"] not in kinds:
            continue
        bug = KNOWN_BUGS.get(f"{test}:{c['id']}")
        marks = [pytest.mark.xfail(strict=True, reason=bug)] if bug else []
        out.append(pytest.param(c, id=c["id"], marks=marks))
    return out


def test_known_bugs_name_real_cases():
    ids = {c["id"] for c in CASES}
    assert {k.split(":", 1)[1] for k in KNOWN_BUGS} <= ids


# ------------------------------------------------------------------------------------------ helpers

def _leaves(node: dict) -> list[dict]:
    if "pfs" in node:
        return [node["pfs"]]
    if "cron" in node:
        return []
    return [leaf for kind in ("cross", "union", "join", "group") for child in node.get(kind) or []
            for leaf in _leaves(child)]


def _put_tree(pach, tmp: pathlib.Path, repo: str, files: list[dict]) -> None:
    """One commit holding ``files``: a local folder laid out like the repo, put with ``put file -r``."""
    folder = pathlib.Path(tempfile.mkdtemp(prefix=f"tree-{repo}-", dir=tmp))
    for f in files:
        local = folder / f["path"].lstrip("/")
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_bytes(f["content"].encode())
    pach("start", "commit", f"{repo}@master")
    pach("put", "file", f"{repo}@master:/", "-r", "-f", str(folder))
    pach("finish", "commit", f"{repo}@master")


def _commit(pach, target: str, ops: list[dict]) -> None:
    """One commit on ``repo`` (master) or ``repo@branch`` applying the case ops in order; no ops = an
    empty commit."""
    rb = target if "@" in target else f"{target}@master"
    pach("start", "commit", rb)
    for op in ops:
        if "delete" in op:
            pach("delete", "file", f"{rb}:{op['delete']}")
        elif "append" in op:
            pach("put", "file", f"{rb}:{op['append']}", "-f", "-", "-a", stdin=op["content"])
        else:
            pach("put", "file", f"{rb}:{op['put']}", "-f", "-", stdin=op["content"])
    pach("finish", "commit", rb)


def _setup_repos(pach, tmp: pathlib.Path, case: dict) -> None:
    repos = {leaf["repo"] for leaf in _leaves(case["input_spec"])} | set(case["input_files"])
    for repo in sorted(repos):
        pach("create", "repo", repo)
    for repo, files in sorted(case["input_files"].items()):
        if files:
            _put_tree(pach, tmp, repo, files)


def _apply_step(pach, step: dict) -> None:
    for repo, ops in sorted((step.get("commit") or {}).items()):
        _commit(pach, repo, ops)


def _datum_multiset(rows: list[dict]) -> Counter:
    return Counter(tuple(sorted((f["input"], f["path"]) for f in row["files"])) for row in rows)


def _files_only(got: Counter, case: dict) -> Counter:
    """For cases whose source says nothing about directories: drop datums holding a directory."""
    if not case.get("files_only"):
        return got
    return Counter({d: n for d, n in got.items() if not any(p.endswith("/") for _i, p in d)})


def _expected_multiset(case: dict) -> Counter:
    return Counter(tuple(sorted((n, p) for n, p in d)) for d in case["expected_datums"])


def _diff(got: Counter, want: Counter) -> str:
    extra, missing = got - want, want - got
    lines = [f"  unexpected: {list(d)}" for d in sorted(extra)][:10]
    lines += [f"  missing:    {list(d)}" for d in sorted(missing)][:10]
    return "\n".join(lines)


def _write_spec(tmp: pathlib.Path, name: str, spec: dict) -> pathlib.Path:
    path = pathlib.Path(tempfile.mkstemp(prefix=f"{name}-", suffix=".json", dir=tmp)[1])
    path.write_text(json.dumps(spec))
    return path


# -------------------------------------------------------------------------------------- datum cases

def _glob_file(pach, case: dict) -> Counter:
    """What ``glob file`` prints for a lone PFS input, as one-file datums."""
    leaf = case["input_spec"]["pfs"]
    rows = pach("glob", "file", f"{leaf['repo']}@{leaf.get('branch', 'master')}:{leaf['glob']}", "-o", "json").json_lines()
    return Counter(((leaf["name"], r["path"]),) for r in rows)


def _single_pfs(case: dict) -> bool:
    return "pfs" in case["input_spec"] and not case["input_spec"]["pfs"].get("s3")


@pytest.mark.parametrize("case", _params(("datum", "glob"), "datum"))
def test_datum_case(pach, tmp_path, case):
    if case.get("via") == "glob file":
        pytest.skip("a pipeline refuses this input; test_glob_file_case runs it")
    run_datum_case(pach, tmp_path, case)


def run_datum_case(pach, tmp_path: pathlib.Path, case: dict) -> None:
    _setup_repos(pach, tmp_path, case)
    for step in (case.get("expected") or {}).get("steps", []):
        _apply_step(pach, step)
    spec = {"pipeline": {"name": "conformance"}, "transform": {"image": "busybox:1.36", "cmd": ["true"]},
            "input": case["input_spec"]}
    rows = pach("list", "datum", "-f", str(_write_spec(tmp_path, "spec", spec)), "-o", "json").json_lines()
    branches = {"master"} | {leaf.get("branch", "master") for leaf in _leaves(case["input_spec"])}
    got, want = _files_only(_datum_multiset(rows), case), _expected_multiset(case)
    assert got == want, (f"{case['id']} ({case['source']}): {case['notes']}\n"
                         f"glob(s): {[leaf['glob'] for leaf in _leaves(case['input_spec'])]}\n{_diff(got, want)}")
    if not case.get("files_only"):
        assert len(rows) == case["expected_count"]
    for row in rows:
        for f in row["files"]:
            assert f["branch"] in branches and f["hash"], row


@pytest.mark.parametrize("case", [p for p in _params(("datum", "glob"), "glob file") if _single_pfs(p.values[0])])
def test_glob_file_case(pach, tmp_path, case):
    """``pachctl glob file`` is the GlobFile behind a lone input's datums: same matches."""
    _setup_repos(pach, tmp_path, case)
    for step in (case.get("expected") or {}).get("steps", []):
        _apply_step(pach, step)
    got, want = _files_only(_glob_file(pach, case), case), _expected_multiset(case)
    assert got == want, f"{case['id']} via glob file ({case['source']}): {case['notes']}\n{_diff(got, want)}"


@pytest.mark.parametrize("case", _params(("error",), "error"))
def test_error_case(pach, tmp_path, case):
    """Inputs Pachyderm refuses at create pipeline: refused, naming the problem, nothing written."""
    _setup_repos(pach, tmp_path, case)
    spec = {"pipeline": {"name": "conformance"}, "transform": {"cmd": ["true"]}, "input": case["input_spec"]}
    res = pach("list", "datum", "-f", str(_write_spec(tmp_path, "spec", spec)), "-o", "json", check=False)
    assert res.code != 0, f"{case['id']}: accepted ({case['notes']}); printed:\n{res.out[:2000]}"
    assert "Traceback" not in res.err, res.err
    assert any(w in res.err for w in case["error_mentions"]), f"{case['id']}: {res.err!r}"
    res = pach("run", "pipeline", "-f", str(_write_spec(tmp_path, "spec", spec)), check=False)
    assert res.code != 0 and "Traceback" not in res.err, f"{case['id']}: run pipeline: {res.code} {res.err}"
    assert pach("list", "pipeline", "-o", "json").lines() == [], "a refused spec left a pipeline behind"


# ---------------------------------------------------------------------------------------- job cases

class _Runner:
    """Runs one job case's pipeline (named ``p``) through the CLI and reads what it produced."""

    def __init__(self, pach, tmp: pathlib.Path, case: dict):
        self.pach, self.tmp, self.case = pach, tmp, case
        self.transform = dict(case["expected"]["transform"])
        self.extra = dict(case["expected"].get("spec") or {})

    def spec_file(self) -> pathlib.Path:
        spec = {"pipeline": {"name": "p"}, "transform": self.transform, "input": self.case["input_spec"], **self.extra}
        return _write_spec(self.tmp, "p", spec)

    def run(self) -> tuple[str, dict]:
        res = self.pach("run", "pipeline", "-f", str(self.spec_file()), check=False)
        lines = res.lines()
        assert lines, f"run pipeline printed no job id (exit {res.code})\n{res.err}"
        job_id = lines[-1].strip()
        job = json.loads(self.pach("inspect", "job", f"p@{job_id}", "-o", "json").out)
        # exit 0 exactly when the job succeeded
        assert (res.code == 0) == (job["state"] == "JOB_SUCCESS"), (res.code, job["state"], res.err)
        return job_id, job

    def outputs(self) -> dict[str, str]:
        dest = pathlib.Path(tempfile.mkdtemp(prefix="out-", dir=self.tmp)) / "out"
        self.pach("get", "file", "p@master:/", "-r", "-o", str(dest))
        if not dest.exists():
            return {}
        return {"/" + str(f.relative_to(dest)): f.read_text() for f in sorted(dest.rglob("*")) if f.is_file()}

    def datums(self, job_id: str) -> list[dict]:
        return self.pach("list", "datum", f"p@{job_id}", "-o", "json").json_lines()

    def logs(self, job_id: str) -> str:
        return self.pach("logs", "-p", "p", "-j", job_id).out

    def check(self, where: str, want: dict[str, Any], job_id: str, job: dict) -> None:
        ctx = f"{self.case['id']} {where} ({self.case['source']}): {self.case['notes']}"
        if "job_state" in want:
            assert job["state"] == want["job_state"], f"{ctx}\njob: {json.dumps(job)[:2000]}"
        for k, v in (want.get("job") or {}).items():
            assert job[k] == v, f"{ctx}\n{k}: got {job[k]}, want {v}; job: {json.dumps(job)[:2000]}"
        if "reason_contains" in want:
            assert want["reason_contains"] in (job.get("reason") or ""), f"{ctx}\nreason: {job.get('reason')!r}"
        if any(k in want for k in ("output", "output_files", "output_file_count")):
            out = self.outputs()
            if "output" in want:
                assert out == want["output"], ctx
                # list file shows the top level: files, and directories with a trailing '/'
                top = {"/" + p.split("/")[1] + ("/" if p.count("/") > 1 else "") for p in want["output"]}
                listed = {r["path"] for r in self.pach("list", "file", "p@master:/", "-o", "json").json_lines()}
                assert listed == top, f"{ctx}\nlist file: {sorted(listed)}"
            if "output_files" in want:
                assert sorted(out) == sorted(want["output_files"]), ctx
            if "output_file_count" in want:
                assert len(out) == want["output_file_count"], ctx
        if "datum_states" in want:
            states = {d["files"][0]["path"]: d["state"] for d in self.datums(job_id)}
            assert states == want["datum_states"], ctx
        if "all_datum_states" in want:
            states = [d["state"] for d in self.datums(job_id)]
            assert states and set(states) == {want["all_datum_states"]}, f"{ctx}\nstates: {states}"
        for needle, n in (want.get("logs_count") or {}).items():
            text = self.logs(job_id)
            assert text.count(needle) == n, f"{ctx}\n{needle!r} seen {text.count(needle)} times, want {n}:\n{text[-3000:]}"


@pytest.fixture
def job_env(tmp_path, monkeypatch):
    # run pipeline installs specs into a dags folder: never the repository's own
    monkeypatch.setenv("PACH_AIRFLOW_DAGS_FOLDER", str(tmp_path / "dags"))
    monkeypatch.setenv("PACH_AIRFLOW_SECRETS_DIR", str(tmp_path / "secrets"))


@pytest.mark.timeout(600)
@pytest.mark.parametrize("case", _params(("job",), "job"))
def test_job_case(pach, tmp_path, job_env, case):
    run_job_case(pach, tmp_path, case)


def run_job_case(pach, tmp_path: pathlib.Path, case: dict) -> None:
    _setup_repos(pach, tmp_path, case)
    runner = _Runner(pach, tmp_path, case)
    steps = case["expected"].get("steps")
    if not steps:
        job_id, job = runner.run()
        runner.check("after the first job", case["expected"], job_id, job)
    else:
        for i, step in enumerate(steps):
            _apply_step(pach, step)
            if "update_transform" in step:
                runner.transform = dict(step["update_transform"])
            job_id, job = runner.run()
            runner.check(f"step {i}", step, job_id, job)
    got, want = _datum_multiset(runner.datums(job_id)), _expected_multiset(case)
    assert got == want, f"{case['id']}: datums of the last job\n{_diff(got, want)}"
