"""Worker overheads: the per-datum loop, staging and upload, against baselines measured in the same run.

    .venv/bin/python bench/worker.py [--datums 50] [--files 200] [--size 4096]

* shim: ``--datums`` datums of ``cmd: ["true"]`` in one set through the local runner (stage, shim in a
  private mount namespace, upload) vs. ``true`` run that many times by ``subprocess.run``; wall time and
  the CPU time of the processes each started (on a shared machine the CPU figure is the steadier one);
* stage: one datum with glob ``/`` over ``--files`` files of ``--size`` bytes vs. ``store.get_files``;
* upload: a datum writing ``--files`` outputs vs. ``store.put_blob`` of the same files in a loop.
Needs root (or user namespaces) like the local runner.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pach_airflow.pfs import open_store
from pach_airflow.runners.local import run_set, wait_for_deletions
from pach_airflow.worker import stage_set
from tests.worker.conftest import SetBuilder


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datums", type=int, default=50)
    ap.add_argument("--files", type=int, default=200)
    ap.add_argument("--size", type=int, default=4096)
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-worker-"))
    os.environ["PACH_AIRFLOW_WORK_ROOT"] = str(tmp / "work")
    try:
        store = open_store(f"file://{tmp}/store")
        sets = SetBuilder(store)
        sets.repo("many", {f"/f{i:05d}": f"datum {i}" for i in range(a.datums)})
        job = sets.job({"cmd": ["true"]}, [[[sets.input("many", "many", f"/f{i:05d}")] for i in range(a.datums)]])
        c0 = children_cpu()
        t_base = timed(lambda: [subprocess.run(["true"], check=True) for _ in range(a.datums)])
        c1 = children_cpu()
        summary = {}
        t_run = timed(lambda: summary.update(run_set(store, "p", job, "0")))
        wait_for_deletions()
        c2 = children_cpu()
        assert summary["SUCCESS"] == a.datums, summary
        print(f"shim: {a.datums} datums in {t_run:.2f}s = {1000 * t_run / a.datums:.1f} ms/datum "
              f"(stage {summary['stage_seconds']}s, run {summary['run_seconds']}s, upload {summary['upload_seconds']}s); "
              f"baseline subprocess.run(true) {1000 * t_base / a.datums:.2f} ms each; ratio {t_run / t_base:.1f}x")
        print(f"shim CPU (its processes): {1000 * (c2 - c1) / a.datums:.2f} ms/datum; baseline "
              f"{1000 * (c1 - c0) / a.datums:.2f} ms per true; ratio {(c2 - c1) / max(c1 - c0, 1e-9):.1f}x")

        payload = os.urandom(a.size)
        sets.repo("big", {f"/d/f{i:05d}": payload[:-8] + i.to_bytes(8, "big") for i in range(a.files)})
        job2 = sets.job({"cmd": ["true"]}, [[[sets.input("big", "big", "/")]]])
        t_stage = timed(lambda: stage_set(store, "p", job2, "0", tmp / "stage"))
        t_get = timed(lambda: store.get_files("big", sets.commits["big"], "/", str(tmp / "get")))
        print(f"stage: {a.files} files x {a.size} B in {t_stage:.3f}s; baseline store.get_files {t_get:.3f}s; "
              f"ratio {t_stage / t_get:.2f}x")

        job3 = sets.job({"cmd": ["sh", "-c", (f"i=0; while [ $i -lt {a.files} ]; do head -c {a.size} /dev/urandom "
                                             f"> /pfs/out/o$i; i=$((i+1)); done")]},
                        [[[sets.input("many", "many", "/f00000")]]])
        summary3 = run_set(store, "p", job3, "0")
        src = tmp / "upload-src"
        src.mkdir()
        for i in range(a.files):
            (src / f"o{i}").write_bytes(os.urandom(a.size))
        t_put = timed(lambda: [store.put_blob(p) for p in src.iterdir()])
        print(f"upload: {a.files} outputs x {a.size} B in {summary3['upload_seconds']:.3f}s; baseline put_blob loop "
              f"{t_put:.3f}s; ratio {summary3['upload_seconds'] / t_put:.2f}x")
        store.close()
    finally:
        wait_for_deletions()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
