"""Benchmark of the versioned store (pach_airflow.pfs), every ratio against a baseline run in the same process.

    .venv/bin/python bench/pfs.py                      # both backends, default sizes
    .venv/bin/python bench/pfs.py --small 1000 --large 10 --million 100000 --backend local

Measures:
1. put N small files (1 KiB) and M large files (10 MiB) into one commit (``Store.put_files``, what
   ``pach-airflow put file -r`` calls) against ``cp -r`` (local backend) and a plain boto3
   ``put_object`` loop to the same server (S3 backend: a SeaweedFS started here on 127.0.0.1);
2. re-putting identical content: the file bytes sent the second time (should be 0);
3. ``pach-airflow list file`` of a commit of ``--million`` files (one flat directory), run as a real
   process with its output to /dev/null: wall time and peak RSS; plus ``Store.walk`` in-process.
Ratios are ours / baseline (below 1.0 = faster than the baseline); with ``--repeat N`` each side is
the best of N alternating rounds (the machine may be shared). The re-put runs from a new store object,
as a second CLI process would, and reports the file bytes it sent.
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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pach_airflow.pfs import open_store


def make_files(folder: Path, count: int, size: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    block = os.urandom(size)
    for i in range(count):
        p = folder / f"f{i:07d}"
        # Distinct contents (no dedup inside the set): a counter in the first bytes.
        p.write_bytes(i.to_bytes(8, "big") + block[8:])
        files.append(p)
    return files


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def bench_put(label: str, store_urls: list[str], files: list[Path], baseline_name: str, baselines: list,
              report: list) -> None:
    """Best of ``len(store_urls)`` rounds, baseline and ours alternating (this machine is shared: the
    minimum is the least disturbed run). Each round gets a fresh store and a fresh baseline target."""
    items = [(f"/{label}/{p.name}", p) for p in files]
    base = ours = again = float("inf")
    for url, baseline in zip(store_urls, baselines):
        store = open_store(url)
        store.create_repo("bench")
        base = min(base, timed(baseline))
        ours = min(ours, timed(lambda store=store: store.put_files("bench", "master", items)))
        sent_first = store.bytes_uploaded
        # Re-put from a new store object (as a new CLI process would): dedup must not rely on memory.
        fresh = open_store(url)
        again = min(again, timed(lambda fresh=fresh: fresh.put_files("bench", "master", items)))
        sent_again = fresh.bytes_uploaded
        store.close()
        fresh.close()
    total = sum(p.stat().st_size for p in files)
    report.append((label, len(files), total, baseline_name, base, ours, again, sent_first, sent_again))


def print_put_report(backend: str, report: list) -> None:
    if not report:
        return
    print(f"\n== put ({backend})")
    print(f"{'set':<8}{'files':>8}{'MiB':>9}  {'baseline':<22}{'base s':>8}{'ours s':>8}{'ratio':>7}"
          f"{'re-put s':>10}{'sent MiB':>10}{'re-sent B':>11}")
    for label, n, total, bname, base, ours, again, sent, resent in report:
        print(f"{label:<8}{n:>8}{total / 2**20:>9.1f}  {bname:<22}{base:>8.2f}{ours:>8.2f}{ours / base:>7.2f}"
              f"{again:>10.2f}{sent / 2**20:>10.1f}{resent:>11}")


def local_puts(args, tmp: Path) -> None:
    report: list = []
    for label, count, size in (("small", args.small, args.small_size), ("large", args.large, args.large_size)):
        if not count:
            continue
        src = tmp / f"src-{label}"
        files = make_files(src, count, size)
        rounds = range(args.repeat)
        bench_put(label, ["file://" + str(tmp / f"store-{label}-{r}") for r in rounds], files, "cp -r",
                  [lambda src=src, dst=tmp / f"cp-{label}-{r}": subprocess.run(["cp", "-r", str(src), str(dst)],
                                                       check=True) for r in rounds], report)
        for r in rounds:
            shutil.rmtree(tmp / f"cp-{label}-{r}", ignore_errors=True)
            shutil.rmtree(tmp / f"store-{label}-{r}", ignore_errors=True)
        shutil.rmtree(src, ignore_errors=True)
    print_put_report("local folder", report)


def s3_puts(args, tmp: Path) -> None:
    from tests.fixtures.s3 import S3Server, _kill, _start_weed, _wait_ready

    data = tmp / "weed"
    data.mkdir()
    proc, endpoint = _start_weed(data)
    try:
        server = S3Server(endpoint)
        _wait_ready(proc, server, data / "weed.log")
        os.environ.update(server.env())
        client = server.client()
        report: list = []
        for label, count, size in (("small", args.small, args.small_size), ("large", args.large, args.large_size)):
            if not count:
                continue
            files = make_files(tmp / f"s3src-{label}", count, size)

            def loop(files=files, label=label) -> None:
                bucket = server.make_bucket("base")
                for p in files:
                    with open(p, "rb") as f:
                        client.put_object(Bucket=bucket, Key=f"{label}/{p.name}", Body=f)

            rounds = range(args.repeat_s3)
            bench_put(label, [f"s3://{server.make_bucket('ours')}/store" for _ in rounds], files,
                      "boto3 put_object loop", [loop for _ in rounds], report)
            shutil.rmtree(tmp / f"s3src-{label}", ignore_errors=True)
        print_put_report(f"S3: SeaweedFS at {endpoint}", report)
        if args.million_s3:
            million(args, f"s3://{server.make_bucket('million')}/store", "S3")
    finally:
        _kill(proc)


def million(args, store_url: str, backend: str) -> None:
    n = args.million
    store = open_store(store_url)
    store.create_repo("million")
    h, size = store.put_blob(b"x" * 100)
    t_write = timed(lambda: store.write_commit(
        "million", "master", ((f"/data/file-{i:08d}.csv", h, size) for i in range(n))))
    t_walk = timed(lambda: sum(1 for _ in store.walk("million", "master", "/data")))
    # A prefix listing reads only the chunks under it.
    t_prefix = timed(lambda: list(store.walk("million", "master", f"/data/file-{n // 2:08d}.csv")))
    # A one-file commit on top: cheap to write (one chunk rewritten) and cheap to diff (equal chunks skipped).
    t_one = timed(lambda: store.put_file("million", "master", f"/data/file-{n // 3:08d}.csv", b"changed"))
    diff: list = []
    t_diff = timed(lambda: diff.extend(store.diff_file("million", "master")))
    store.close()
    env = {**os.environ, "PACH_AIRFLOW_STORE": store_url, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "pach_airflow", "list", "file", "million@master:/data"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t_cli = float("inf")
    for _ in range(args.repeat):  # best of --repeat: the machine may be shared
        t = time.perf_counter()
        with open(os.devnull, "wb") as devnull:
            subprocess.run(cmd, env=env, stdout=devnull, check=True)
        t_cli = min(t_cli, time.perf_counter() - t)
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t = time.perf_counter()
    with open(os.devnull, "wb") as devnull:
        subprocess.run(cmd[:-3] + ["list", "repo"], env=env, stdout=devnull, check=True)
    t_start = time.perf_counter() - t
    print(f"\n== list file of a {n:,}-file commit ({backend})")
    print(f"write_commit (build manifest):        {t_write:7.2f} s")
    print(f"Store.walk over all files:            {t_walk:7.2f} s")
    print(f"Store.walk of one path (prefix read): {t_prefix * 1000:7.1f} ms")
    print(f"put file of one changed file on top:  {t_one:7.2f} s")
    print(f"diff file of that commit vs parent:   {t_diff * 1000:7.1f} ms  ({len(diff)} file differs)")
    print(f"pach-airflow list file (process):     {t_cli:7.2f} s   (best of {args.repeat}; CLI start-up alone: {t_start:.2f} s; "
          f"ratio to start-up {t_cli / t_start:.1f})")
    print(f"peak RSS of that process:             {max(peak, before) / 1024:7.0f} MiB"
          + ("" if peak > before else "  (an earlier child was bigger; upper bound)"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--backend", choices=("local", "s3", "both"), default="both")
    ap.add_argument("--small", type=int, default=10_000, help="number of small files (default 10000)")
    ap.add_argument("--small-size", type=int, default=1024)
    ap.add_argument("--large", type=int, default=100, help="number of large files (default 100)")
    ap.add_argument("--large-size", type=int, default=10 << 20)
    ap.add_argument("--million", type=int, default=1_000_000, help="files in the listing commit (0: skip)")
    ap.add_argument("--million-s3", action="store_true", help="also run the listing benchmark on S3")
    ap.add_argument("--repeat", type=int, default=3, help="rounds of the local puts; the best is shown")
    ap.add_argument("--repeat-s3", type=int, default=1, help="rounds of the S3 puts; the best is shown")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="pach-bench-"))
    try:
        if args.backend in ("local", "both"):
            local_puts(args, tmp)
            if args.million:
                million(args, "file://" + str(tmp / "store-million"), "local folder")
        if args.backend in ("s3", "both"):
            s3_puts(args, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
