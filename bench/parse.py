"""Parse cost of spec files vs hand-written DAG files, and mapped task instances of a big job.

    .venv/bin/python bench/parse.py [--specs 200] [--runs 3] [--datums 20000] [--cap 1024]

1. **Parse time.** N pipeline specs in a dags folder with our loader shim, vs N hand-written ``.py``
   DAG files that build the same DAG (same tasks, mapping, Asset with a commit watcher, outlets) with
   the Task SDK directly. Each side is parsed the way the dag-processor does it -- ``DagBag`` over the
   folder, then serialisation of every DAG -- in a fresh process, ``--runs`` times; the median CPU
   time of that process is reported (wall time too: on a shared machine it mostly measures the
   neighbours), and the ratio spec/hand-written (aim: <= 1.5x). Airflow's own import is outside the
   timed part on both sides.
2. **Task instances of a big job.** A pipeline over ``--datums`` files with glob ``/*`` is planned
   against a local store with the set cap Airflow maps at most (``--cap``, Airflow's
   ``[core] max_map_length``): the number of mapped ``process`` task instances is the number of datum
   sets, bounded by the cap and not by the datum count.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SPEC = """pipeline:
  name: p{i}
description: pipeline {i}
transform:
  image: busybox:1.36
  cmd: ["sh", "-c", "cp -r /pfs/in{i}/. /pfs/out/"]
input:
  pfs:
    repo: in{i}
    glob: "/*"
"""

HAND = '''"""Hand-written equivalent of pipeline p{i}."""
import datetime as dt
from airflow.sdk import DAG, Asset, AssetAny, AssetWatcher, Param, task
from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from pach_airflow.triggers import CommitTrigger

watched = Asset(name="pfs/in{i}@master", uri="pfs://in{i}/master", group="pfs",
                watchers=[AssetWatcher(name="pach_commits_in{i}_master", trigger=CommitTrigger(repo="in{i}"))])
output = Asset(name="pfs/p{i}@master", uri="pfs://p{i}/master", group="pfs")

with DAG(dag_id="p{i}", description="pipeline {i}", doc_md="pipeline {i}", schedule=AssetAny(watched),
         start_date=dt.datetime(2024, 1, 1, tzinfo=dt.UTC), catchup=False, max_active_runs=1,
         tags=["pipeline", "input:in{i}"], params={{"commits": Param({{}}, type="object")}}):
    @task(task_id="plan")
    def plan() -> list:
        return []

    @task(task_id="process", map_index_template="{{{{ label }}}}", retries=1, max_active_tis_per_dagrun=1)
    def process(item: dict) -> dict:
        return item

    @task(task_id="finish", trigger_rule="all_done", outlets=[output])
    def finish() -> None:
        return None

    @task.short_circuit(task_id="has_backlog")
    def has_backlog() -> bool:
        return False

    planned = plan()
    process.expand(item=planned) >> finish()
    planned >> has_backlog() >> TriggerDagRunOperator(task_id="next_job", trigger_dag_id="p{i}",
                                                      conf={{"drain": True}})
'''

CHILD = r"""
import json, sys, time
import airflow.sdk, airflow.providers.standard.operators.trigger_dagrun  # imports outside the timing
from airflow.dag_processing.dagbag import DagBag
from airflow.serialization.serialized_objects import DagSerialization
t0, c0 = time.perf_counter(), time.process_time()
bag = DagBag(dag_folder=sys.argv[1])
for dag in bag.dags.values():
    DagSerialization.to_dict(dag)
print(json.dumps({"seconds": time.perf_counter() - t0, "cpu": time.process_time() - c0, "dags": len(bag.dags),
                  "errors": len(bag.import_errors)}))
"""


def _parse_once(folder: Path, env: dict[str, str]) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, str(folder)], env=env, capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench_parse(n: int, runs: int) -> None:
    with tempfile.TemporaryDirectory(prefix="pach-bench-parse-") as tmp:
        tmp_path = Path(tmp)
        specs, hand = tmp_path / "specs", tmp_path / "hand"
        specs.mkdir()
        hand.mkdir()
        (specs / "pach_airflow_dags.py").write_text((ROOT / "dags" / "pach_airflow_dags.py").read_text())
        for i in range(n):
            (specs / f"p{i}.yaml").write_text(SPEC.format(i=i))
            (hand / f"p{i}.py").write_text(HAND.format(i=i))
        env = {**os.environ, "AIRFLOW_HOME": str(tmp_path / "home"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
               "PYTHONPATH": str(ROOT)}
        results: dict[str, list[float]] = {"specs": [], "hand": []}
        wall: dict[str, list[float]] = {"specs": [], "hand": []}
        for _ in range(runs):
            for name, folder in (("specs", specs), ("hand", hand)):
                env["AIRFLOW__CORE__DAGS_FOLDER"] = str(folder)
                r = _parse_once(folder, env)
                if r["dags"] != n or r["errors"]:
                    raise SystemExit(f"{name}: expected {n} DAGs, got {r}")
                results[name].append(r["cpu"])
                wall[name].append(r["seconds"])
        s, h = statistics.median(results["specs"]), statistics.median(results["hand"])
        ws, wh = statistics.median(wall["specs"]), statistics.median(wall["hand"])
        print(f"parse + serialise {n} DAGs, CPU seconds of the parsing process (median of {runs}; wall in brackets):")
        print(f"  {n} spec files + loader shim : {s:7.2f} s  ({1000 * s / n:.1f} ms per pipeline) [{ws:.2f} s]")
        print(f"  {n} hand-written DAG files   : {h:7.2f} s  ({1000 * h / n:.1f} ms per DAG) [{wh:.2f} s]")
        print(f"  ratio spec / hand-written    : {s / h:7.2f}x  (aim <= 1.5x) [wall {ws / wh:.2f}x]")


def bench_task_instances(datums: int, cap: int) -> None:
    from pach_airflow import jobs
    from pach_airflow.pfs import open_store
    from pach_airflow.spec import parse_specs

    with tempfile.TemporaryDirectory(prefix="pach-bench-tis-") as tmp:
        store = open_store("file://" + tmp)
        store.create_repo("big")
        t0 = time.perf_counter()
        with store.open_commit("big", "master") as c:
            for i in range(datums):
                c.put_file(f"/f{i:07d}", b"%d\n" % i)
        t_put = time.perf_counter() - t0
        spec = parse_specs(SPEC.format(i=0).replace("in0", "big"))[0]
        t0 = time.perf_counter()
        planned = jobs.plan_job(store, spec, cap=cap)
        t_plan = time.perf_counter() - t0
        sets = len(planned.set_ids)
        # plan, finish, has_backlog, next_job + one process task per set
        print(f"{datums} datums, cap {cap}: {sets} datum sets -> {sets + 4} task instances "
              f"({datums / max(sets, 1):.0f} datums per mapped task); put {t_put:.1f} s, plan {t_plan:.1f} s")
        if sets > cap:
            raise SystemExit(f"set count {sets} exceeds the cap {cap}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--specs", type=int, default=200, help="number of pipelines (default 200)")
    ap.add_argument("--runs", type=int, default=3, help="parses per side; the median is reported")
    ap.add_argument("--datums", type=int, default=20000, help="datums of the big job (100000 for the issue's figure)")
    ap.add_argument("--cap", type=int, default=1024, help="set cap = [core] max_map_length (default 1024)")
    ap.add_argument("--skip-parse", action="store_true")
    ap.add_argument("--skip-tis", action="store_true")
    args = ap.parse_args()
    if not args.skip_parse:
        bench_parse(args.specs, args.runs)
    if not args.skip_tis:
        bench_task_instances(args.datums, args.cap)


if __name__ == "__main__":
    main()
