"""Helpers for the job tests: repos, commits and pipeline runs through the ``pach-airflow`` CLI.

Everything goes through the command line users type (the ``pach`` fixture, in-process, against a fresh
local store); only the final reading of output files uses the store API directly.
"""

from __future__ import annotations

import importlib.util
import json
import pathlib

import pytest

# The pfs commands (create repo, put file, ...) come from the store engineer's module; until it is in
# the tree the helpers write through the store API instead, so these tests do not wait on it.
HAVE_PFS_CLI = importlib.util.find_spec("pach_airflow.cli.pfs_cmds") is not None

CASES_FILE = pathlib.Path(__file__).parent / "cases" / "public-cases.json"


def load_cases() -> dict[str, dict]:
    return {c["id"]: c for c in json.loads(CASES_FILE.read_text())["cases"]}


class Pps:
    """A small driver over the CLI for one test."""

    def __init__(self, pach, tmp_path: pathlib.Path):
        self.pach = pach
        self.tmp = tmp_path
        self._n = 0

    # ---- pfs ----------------------------------------------------------------------------------
    def repo(self, name: str) -> None:
        if not HAVE_PFS_CLI:
            self.store().create_repo(name)
            return
        self.pach("create", "repo", name)

    def put(self, repo: str, path: str, content: str | bytes, *, append: bool = False,
            branch: str = "master") -> None:
        if not HAVE_PFS_CLI:
            data = content.encode() if isinstance(content, str) else content
            self.store().put_file(repo, branch, path, data, append=append)
            return
        args = ["put", "file", f"{repo}@{branch}:{path}", "-f", "-"]
        if append:
            args.append("-a")
        self.pach(*args, stdin=content)

    def delete(self, repo: str, path: str, branch: str = "master") -> None:
        if not HAVE_PFS_CLI:
            self.store().delete_file(repo, branch, path)
            return
        self.pach("delete", "file", f"{repo}@{branch}:{path}")

    def commit(self, repo: str, ops: list[dict], branch: str = "master") -> str:
        """Apply the case-file ops (``put`` / ``append`` / ``delete``) in one commit; returns its id."""
        if not HAVE_PFS_CLI:
            with self.store().open_commit(repo, branch) as c:
                for op in ops:
                    if "delete" in op:
                        c.delete_file(op["delete"])
                    elif "append" in op:
                        c.put_file(op["append"], op["content"].encode(), append=True)
                    else:
                        c.put_file(op["put"], op["content"].encode())
            return self.head(repo, branch)
        self.pach("start", "commit", f"{repo}@{branch}")
        for op in ops:
            if "delete" in op:
                self.delete(repo, op["delete"], branch)
            elif "append" in op:
                self.put(repo, op["append"], op["content"], append=True, branch=branch)
            else:
                self.put(repo, op["put"], op["content"], branch=branch)
        self.pach("finish", "commit", f"{repo}@{branch}")
        return self.head(repo, branch)

    def head(self, repo: str, branch: str = "master") -> str:
        return self.store().inspect_branch(repo, branch).head

    def store(self):
        from pach_airflow.pfs import open_store

        return open_store(self.pach.store_url)

    def files(self, repo: str, ref: str = "master") -> dict[str, bytes]:
        store = self.store()
        return {f.path: store.read_file(repo, ref, f.path) for f in store.walk(repo, ref)}

    def commits(self, repo: str, branch: str = "master") -> list:
        """Commits of a branch, newest first; [] while the branch does not exist."""
        from pach_airflow.errors import NotFound

        try:
            return list(self.store().list_commits(repo, branch))
        except NotFound:
            return []

    # ---- pps ----------------------------------------------------------------------------------
    def spec(self, name: str, input: dict | None, *, cmd: list[str] | None = None,
             stdin: list[str] | None = None, **extra) -> pathlib.Path:
        transform = dict(extra.pop("transform", {}))
        transform.setdefault("cmd", cmd or ["sh"])
        if stdin is not None:
            transform["stdin"] = stdin
        spec = {"pipeline": {"name": name}, "transform": transform, **extra}
        if input is not None:
            spec["input"] = input
        self._n += 1
        path = self.tmp / f"{name}-{self._n}.json"
        path.write_text(json.dumps(spec))
        return path

    def run(self, spec_path: pathlib.Path | str, *args: str, check: bool = True, expect_code: int | None = 0
            ) -> tuple[str, dict]:
        """``run pipeline -f SPEC``; returns (job id, the job as ``inspect job -o json`` shows it)."""
        res = self.pach("run", "pipeline", "-f", str(spec_path), *args, check=False)
        if check and expect_code is not None:
            assert res.code == expect_code, f"exit {res.code}\nstdout:\n{res.out}\nstderr:\n{res.err}"
        job_id = res.lines()[-1].strip()
        name = json.loads(pathlib.Path(spec_path).read_text())["pipeline"]["name"]
        return job_id, self.job(name, job_id)

    def job(self, pipeline: str, job_id: str) -> dict:
        return json.loads(self.pach("inspect", "job", f"{pipeline}@{job_id}", "-o", "json").out)

    def jobs(self, pipeline: str | None = None) -> list[dict]:
        args = ["list", "job", "-o", "json"] + (["-p", pipeline] if pipeline else [])
        return self.pach(*args).json_lines()

    def datums(self, pipeline: str, job_id: str) -> list[dict]:
        return self.pach("list", "datum", f"{pipeline}@{job_id}", "-o", "json").json_lines()


@pytest.fixture
def pps(pach, tmp_path, monkeypatch) -> Pps:
    # Never install test specs into the repository's own dags/ folder.
    monkeypatch.setenv("PACH_AIRFLOW_DAGS_FOLDER", str(tmp_path / "dags"))
    monkeypatch.setenv("PACH_AIRFLOW_SECRETS_DIR", str(tmp_path / "secrets"))
    return Pps(pach, tmp_path)
