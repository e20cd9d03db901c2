"""Benchmark of ``run pipeline`` on the local runner: per-datum overhead and incremental re-runs.

Two measurements, each against a baseline measured in the same run:

1. N datums of a trivial transform (``cp`` of one small file per datum, glob ``/*``) run as one job
   vs the same N copies in a plain shell loop (``for f in in/*; do cp "$f" out/; done``). Prints
   both times, the ratio and the per-datum overhead in milliseconds.
2. One file changed in the N-file input: the second job's time vs the first job's (aim: <= 5 %).

Sizes by flags; small by default so ``make bench`` stays short. The issue's figures use
``--datums 10000``.

    .venv/bin/python bench/run.py [--datums 1000] [--parallelism 1] [--cap 1024] [--store URL]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _spec(parallelism: int) -> object:
    from pach_airflow.spec import parse_specs

    return parse_specs(json.dumps({
        "pipeline": {"name": "copy"},
        # exec'd directly, no shell: one cp per datum, as the baseline loop runs one cp per file
        "transform": {"cmd": ["cp", "-r", "/pfs/data/.", "/pfs/out/"]},
        "parallelism_spec": {"constant": parallelism},
        "input": {"pfs": {"repo": "data", "glob": "/*"}},
    }), source="bench/run.py")[0]


def _shell_loop(n: int, tmp: Path) -> float:
    src, dst = tmp / "in", tmp / "out"
    src.mkdir()
    dst.mkdir()
    for i in range(n):
        (src / f"f{i:07d}").write_bytes(f"content of file {i}\n".encode())
    t0 = time.perf_counter()
    subprocess.run(["sh", "-c", 'for f in "$1"/*; do cp "$f" "$2"/; done', "_", str(src), str(dst)], check=True)
    elapsed = time.perf_counter() - t0
    assert len(os.listdir(dst)) == n
    return elapsed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datums", type=int, default=1000, help="files in the input = datums (default 1000)")
    ap.add_argument("--parallelism", type=int, default=1, help="parallelism_spec.constant (default 1)")
    ap.add_argument("--cap", type=int, default=1024, help="datum set cap, Airflow's max_map_length")
    ap.add_argument("--store", default=None, help="store URL (default: a temporary local store)")
    args = ap.parse_args(argv)

    from pach_airflow import jobs
    from pach_airflow.pfs import open_store

    n = args.datums
    tmp = Path(tempfile.mkdtemp(prefix="bench-run-"))
    try:
        store = open_store(args.store or f"file://{tmp / 'store'}")
        store.create_repo("data")
        with store.open_commit("data", "master") as c:
            for i in range(n):
                c.put_file(f"/f{i:07d}", f"content of file {i}\n".encode())
        spec = _spec(args.parallelism)

        base = _shell_loop(n, tmp)

        t0 = time.perf_counter()
        first = jobs.run_job(store, spec, cap=args.cap)
        t_first = time.perf_counter() - t0
        assert first.state == "JOB_SUCCESS", first.reason
        assert first.data_processed == n, first

        store.put_file("data", "master", "/f0000000", b"changed\n")
        t0 = time.perf_counter()
        second = jobs.run_job(store, spec, cap=args.cap)
        t_second = time.perf_counter() - t0
        assert second.state == "JOB_SUCCESS", second.reason
        assert (second.data_processed, second.data_skipped) == (1, n - 1), second

        sets = len(first.record.get("set_ids", []))
        print(f"datums: {n}  sets: {sets}  parallelism: {args.parallelism}")
        print(f"shell loop of {n} cp:          {base:8.2f} s")
        print(f"first job ({n} datums):       {t_first:8.2f} s   phases {first.record.get('timings')}")
        print(f"ratio job / shell loop:        {t_first / base:8.2f}x")
        print(f"per-datum overhead:            {(t_first - base) / n * 1000:8.2f} ms")
        print(f"second job (1 changed, {n - 1} skipped): {t_second:8.2f} s   phases {second.record.get('timings')}")
        print(f"ratio second / first job:      {t_second / t_first * 100:8.2f} %  (aim <= 5 %)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
