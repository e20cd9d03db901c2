"""Latency from ``pach-airflow put file`` to the start of the DAG run the commit watcher causes.

    .venv/bin/python bench/latency.py [--puts 3] [--poll 2]

Starts a real ``airflow standalone`` (SQLite, temp ``AIRFLOW_HOME``, private network namespace: needs
root, see ``tests/fixtures/airflow.py``) with one pipeline reading repo ``data``. Each round puts one
file with the CLI, then reads the asset-triggered run's ``start_date`` from the REST API; the round
waits for the run to end before the next put (``max_active_runs=1`` would otherwise queue it).

Baseline, same server, same run: a run triggered over the REST API (``POST .../dagRuns``), from the
request to its ``start_date`` -- the scheduler's own share of the latency. The aim for the watcher is
``poll interval + 2 s``; the ratios against both are printed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SPEC = """pipeline:
  name: latency
transform:
  image: busybox:1.36
  cmd: ["sh", "-c", "cp -r /pfs/data/. /pfs/out/"]
input:
  pfs:
    repo: data
    glob: "/*"
"""


def _ts(text: str) -> float:
    return dt.datetime.fromisoformat(text).timestamp()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--puts", type=int, default=3, help="rounds of put file (default 3)")
    ap.add_argument("--poll", type=float, default=2.0, help="[pach_airflow] poll_interval in seconds (default 2)")
    args = ap.parse_args()

    from pach_airflow.pfs import open_store
    from tests.fixtures.airflow import SHIM, _start_standalone

    base = Path(tempfile.mkdtemp(prefix="pach-bench-latency-"))
    dags = base / "dags"
    dags.mkdir()
    shutil.copy(SHIM, dags / SHIM.name)
    (dags / "latency.yaml").write_text(SPEC)
    store_url = "file://" + str(base / "store")
    store = open_store(store_url)
    store.create_repo("data")
    t0 = time.monotonic()
    server = _start_standalone(base / "home", dags, {"PACH_AIRFLOW_STORE": store_url,
                                                     "AIRFLOW__PACH_AIRFLOW__POLL_INTERVAL": str(args.poll)})
    print(f"airflow standalone healthy after {time.monotonic() - t0:.1f} s")
    try:
        server.wait_dag("latency", timeout=180)
        # The watcher only runs once the triggerer picked the DAG's asset up: prime it with one commit.
        src = base / "f.txt"

        def put(i: int) -> float:
            src.write_text(f"{i}\n")
            server.run(["pach-airflow", "--store", store_url, "put", "file", f"data@master:/f{i}.txt", "-f", str(src)])
            return time.time()

        def wait_new_run(known: int) -> dict:
            def started():
                runs = server.dag_runs("latency")
                return runs[-1] if len(runs) > known and runs[-1].get("start_date") else None

            run = server.wait_for(started, 300, interval=0.2, what="a new run to start")
            server.wait_for(lambda: server.dag_runs("latency")[-1]["state"] in ("success", "failed"), 300,
                            interval=1, what="the run to end")
            return run

        put(-1)
        wait_new_run(0)
        watcher: list[float] = []
        for i in range(args.puts):
            known = len(server.dag_runs("latency"))
            t_put = put(i)
            run = wait_new_run(known)
            watcher.append(_ts(run["start_date"]) - t_put)
            print(f"  put {i}: run {run['run_type']} started {watcher[-1]:.2f} s after the put")
        rest: list[float] = []
        for i in range(args.puts):
            known = len(server.dag_runs("latency"))
            t_req = time.time()
            server.api("POST", "/api/v2/dags/latency/dagRuns", {"logical_date": None, "conf": {"drain": True}})
            run = wait_new_run(known)
            rest.append(_ts(run["start_date"]) - t_req)
            print(f"  REST trigger {i}: run started {rest[-1]:.2f} s after the request")
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)
    w, r = statistics.median(watcher), statistics.median(rest)
    aim = args.poll + 2.0
    print(f"put file -> run start (median of {args.puts}): {w:.2f} s; aim poll + 2 s = {aim:.1f} s -> "
          f"ratio {w / aim:.2f}")
    print(f"REST trigger -> run start (baseline, median): {r:.2f} s -> watcher / REST = {w / r:.2f}x")


if __name__ == "__main__":
    main()
