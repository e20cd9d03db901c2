"""How much the UI adds to the store reads behind its pages: each page and API call (through the FastAPI
app, with a real Airflow JWT checked on every request) against the bare store/jobs calls that fetch the
same data, median of several runs, measured in one run.

    .venv/bin/python bench/ui_pages.py [--commits 100] [--files 2000] [--datums 40] [--runs 7]

Sizes: ``--commits`` user commits on one branch (the repo page lists the newest 100), ``--files`` files in
one commit (the commit page lists 500 and counts the rest), ``--datums`` datums of one job run here by the
local runner (the job page lists them all). Prints each median in ms and its ratio to the baseline.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def median_ms(fn: Callable[[], object], runs: int) -> float:
    fn()  # warm: imports, template compilation, page cache
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commits", type=int, default=100)
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--datums", type=int, default=40)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="pach-ui-bench-"))
    os.environ["AIRFLOW_HOME"] = str(tmp / "airflow")
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(tmp / "dags")
    (tmp / "dags").mkdir()
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True)
    print(f"setup: airflow db migrate {time.perf_counter() - t0:.1f}s", flush=True)

    from airflow.api_fastapi.app import init_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from pach_airflow import jobs
    from pach_airflow.pfs import open_store
    from pach_airflow.spec import parse_specs
    from pach_airflow.ui.app import create_app

    url = "file://" + str(tmp / "store")
    store = open_store(url)
    t0 = time.perf_counter()
    store.create_repo("many", "many commits")
    for i in range(args.commits):
        with store.open_commit("many", "master", description=f"commit {i}") as c:
            c.put_file(f"/f{i:05d}.txt", f"{i}\n".encode())
    store.create_repo("big", "many files")
    with store.open_commit("big", "master") as c:
        for i in range(args.files):
            c.put_file(f"/d{i % 20:02d}/file{i:06d}.txt", f"file {i}\n".encode())
    big = store.inspect_branch("big", "master").head
    store.create_repo("data", "one datum per file")
    with store.open_commit("data", "master") as c:
        for i in range(args.datums):
            c.put_file(f"/item{i:04d}", f"item {i}\n".encode())
    spec = parse_specs('{"pipeline": {"name": "copy"}, "transform": {"cmd": ["sh", "-c", '
                       '"cp -r /pfs/data/. /pfs/out/"]}, "input": {"pfs": {"repo": "data", "glob": "/*"}}}')[0]
    job = jobs.run_job(store, spec)
    assert job.state == jobs.JOB_SUCCESS, job
    print(f"setup: store with {args.commits} commits, {args.files} files, a job of {args.datums} datums "
          f"in {time.perf_counter() - t0:.1f}s", flush=True)

    token = init_auth_manager().generate_jwt(SimpleAuthManagerUser(username="admin", role="admin"))
    parent = FastAPI()
    parent.mount("/pach", create_app(url, read_dags=False))
    client = TestClient(parent, headers={"Authorization": f"Bearer {token}"})

    def get(path: str) -> Callable[[], object]:
        def call() -> object:
            r = client.get(path)
            assert r.status_code == 200, (path, r.status_code, r.text[:300])
            return r
        return call

    cases = [
        ("repos", lambda: store.list_repos(), "/pach/api/repos", "/pach/"),
        (f"repo, {min(args.commits, 100)} commits", lambda: list(store.list_commits("many", None, limit=100)),
         "/pach/api/repos/many/commits", "/pach/repos/many"),
        (f"commit, {args.files} files", lambda: list(store.walk("big", big)),
         f"/pach/api/commits/big/{big}", f"/pach/commits/big/{big}"),
        (f"job, {args.datums} datums", lambda: list(jobs.list_job_datums(store, "copy", job.id)),
         f"/pach/api/jobs/copy/{job.id}", f"/pach/jobs/copy/{job.id}"),
        ("lineage", lambda: jobs.list_pipelines(store), "/pach/api/lineage", "/pach/lineage"),
    ]
    auth_only = median_ms(get("/pach/static/pach.css"), args.runs)
    print(f"\nauth check + static file: {auth_only:.1f} ms per request (JWT validation, revocation look-up)\n")
    print(f"{'what':28} {'store call':>11} {'JSON API':>10} {'ratio':>6} {'page':>9} {'ratio':>6}")
    for name, base, api, page in cases:
        b = median_ms(base, args.runs)
        a = median_ms(get(api), args.runs)
        p = median_ms(get(page), args.runs)
        print(f"{name:28} {b:9.1f}ms {a:8.1f}ms {a / b:5.1f}x {p:7.1f}ms {p / b:5.1f}x", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
