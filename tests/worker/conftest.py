"""Helpers of the worker tests: jobs and datum sets written straight into a local store.

The records follow the table of ``docs/architecture.md`` ("Records the jobs and the worker share"), so
these tests exercise stage → shim → upload without depending on the planner.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from pach_airflow.datum import Datum, DatumInput, datum_id
from pach_airflow.jobs import job_key, result_key, set_key


class SetBuilder:
    """Writes input repos, a job record with a pinned spec, and datum sets."""

    def __init__(self, store):
        self.store = store
        self.commits: dict[str, str] = {}
        self.n_jobs = 0

    def repo(self, name: str, files: Mapping[str, bytes | str]) -> str:
        """Create repo ``name`` with one commit holding ``files``; returns the commit id."""
        self.store.create_repo(name, update=True)
        with self.store.open_commit(name, "master") as c:
            for path, content in files.items():
                c.put_file(path, content.encode() if isinstance(content, str) else content)
        self.commits[name] = c.commit_id
        return c.commit_id

    def input(self, name: str, repo: str, path: str, **flags: Any) -> DatumInput:
        commit = self.commits[repo]
        if path.endswith("/"):
            h, size = self.store.dir_hash(repo, commit, path.rstrip("/") or "/"), 0
        else:
            fi = self.store.inspect_file(repo, commit, path)
            h, size = fi.hash, fi.size
        return DatumInput(name=name, repo=repo, branch="master", commit=commit, path=path, hash=h, size=size,
                          **flags)

    def job(self, transform: Mapping[str, Any], sets: Sequence[Sequence[Sequence[DatumInput]]], *,
            pipeline: str = "p", **spec_fields: Any) -> str:
        """A job of ``pipeline`` whose set ``i`` holds the datums ``sets[i]`` (each a list of inputs)."""
        self.n_jobs += 1
        job_id = self.store.new_commit_id()
        spec = {"pipeline": {"name": pipeline}, "transform": dict(transform), "datum_tries": 3,
                "parallelism_spec": {"constant": 1}, **spec_fields}
        set_ids = [str(i) for i in range(len(sets))]
        self.store.put_record(job_key(pipeline, job_id), {
            "id": job_id, "pipeline": pipeline, "state": "JOB_RUNNING", "spec": spec, "set_ids": set_ids})
        for sid, datums in zip(set_ids, sets):
            recs = []
            for inputs in datums:
                did = datum_id(inputs)
                recs.append(Datum(did, "h-" + did[:16], tuple(inputs)).to_dict())
            self.store.put_record(set_key(pipeline, job_id, sid), {"datums": recs})
        return job_id

    def result(self, job_id: str, set_id: str = "0", pipeline: str = "p") -> dict:
        return self.store.get_record(result_key(pipeline, job_id, set_id))

    def output(self, datum: Mapping[str, Any], path: str) -> bytes:
        """The content of output ``path`` of a datum result."""
        for p, h, _size in datum["outputs"]:
            if p == path:
                return self.store.get_blob(h)
        raise AssertionError(f"no output {path} in {json.dumps(datum['outputs'])}")


@pytest.fixture
def sets(local_store) -> SetBuilder:
    return SetBuilder(local_store)


@pytest.fixture(autouse=True)
def _work_root(tmp_path, monkeypatch):
    """Each test's work folders and secrets in its own temp dir."""
    monkeypatch.setenv("PACH_AIRFLOW_WORK_ROOT", str(tmp_path / "work"))
    monkeypatch.setenv("PACH_AIRFLOW_SECRETS_DIR", str(tmp_path / "secrets"))
