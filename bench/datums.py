"""Datum planning at scale, each figure against a baseline measured in the same run.

    .venv/bin/python bench/datums.py                      # small sizes (a minute or so)
    .venv/bin/python bench/datums.py --files 1000000 --cross 1000 --join 100000 --incr 100000

Cases (each runs in a fresh child process so its peak memory is its own):
- glob: plan a commit of N files with glob ``/*`` (iter_datums) vs the baseline of reading the same
  manifest with ``store.walk``; reports seconds and peak RSS (aim at 1M files: < 10 s, < 2 GiB).
- cross: cross of K x K files (K² datums) vs the baseline of building the same K² tuples with
  ``itertools.product``.
- join: join of two M-file inputs on ``$1`` vs the baseline of a dict-based join of the path lists.
- incr: after one file of an M-datum input changes, the incremental re-plan
  (``plan_incremental_diff``) vs the full plan + ``plan_incremental`` (aim: >= 20x faster).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

HASH = "0" * 64


def _store(tmp: str):
    from pach_airflow.pfs import open_store

    return open_store("file://" + tmp)


def _commit(store, repo: str, paths, branch: str = "master") -> str:
    """A commit of ``paths`` without uploading blobs (the planner reads manifests only)."""
    from pach_airflow.errors import AlreadyExists

    try:
        store.create_repo(repo)
    except AlreadyExists:
        pass
    entries = ((p, f"{i % 997:064x}", 1) for i, p in enumerate(paths))
    return store.write_commit(repo, branch, entries, origin="USER").id


def _spec(input_):
    return {"pipeline": {"name": "bench"}, "input": input_}


def _pfs(repo: str, glob: str, **kw):
    return {"pfs": {"name": kw.pop("name", repo), "repo": repo, "branch": "master", "glob": glob, **kw}}


CPU: dict[str, float] = {}


def _timed(fn, label: str | None = None):
    """Wall seconds and result; the CPU seconds go to ``CPU[label]`` (the machine may be shared, so
    both are reported)."""
    t, c = time.perf_counter(), time.process_time()
    out = fn()
    if label:
        CPU[label] = time.process_time() - c
    return time.perf_counter() - t, out


def child_glob(tmp: str, n: int) -> dict:
    from pach_airflow.datum import iter_datums

    store = _store(tmp)
    # 1,000 files per directory below top-level files: /* matches both files and directories
    cid = _commit(store, "big", sorted(f"/d{i // 1000:05d}/f{i % 1000:04d}" if i % 2 else f"/f{i:08d}"
                                       for i in range(n)))
    base_s, count = _timed(lambda: sum(1 for _ in store.walk("big", cid, "/")), "base")
    plan_s, ds = _timed(lambda: sum(1 for _ in iter_datums(store, _spec(_pfs("big", "/*")),
                                                           {("big", "master"): cid}, "salt")), "plan")
    return {"files": count, "datums": ds, "walk_s": base_s, "plan_s": plan_s}


def child_cross(tmp: str, k: int) -> dict:
    from pach_airflow.datum import iter_datums

    store = _store(tmp)
    ca = _commit(store, "left", sorted(f"/a{i:06d}" for i in range(k)))
    cb = _commit(store, "right", sorted(f"/b{i:06d}" for i in range(k)))
    files_a = [f.path for f in store.walk("left", ca)]
    files_b = [f.path for f in store.walk("right", cb)]
    base_s, _ = _timed(lambda: sum(1 for _ in itertools.product(files_a, files_b)), "base")
    spec = _spec({"cross": [_pfs("left", "/*"), _pfs("right", "/*")]})
    commits = {("left", "master"): ca, ("right", "master"): cb}
    plan_s, n = _timed(lambda: sum(1 for _ in iter_datums(store, spec, commits, "salt")), "plan")
    return {"datums": n, "product_s": base_s, "plan_s": plan_s}


def child_join(tmp: str, m: int) -> dict:
    from pach_airflow.datum import iter_datums

    store = _store(tmp)
    ca = _commit(store, "left", sorted(f"/k{i:07d}" for i in range(m)))
    cb = _commit(store, "right", sorted(f"/k{i:07d}" for i in range(0, 2 * m, 2)))

    def dict_join():
        by_key = {f.path: f for f in store.walk("right", cb)}
        return sum(1 for f in store.walk("left", ca) if f.path in by_key)

    base_s, expected = _timed(dict_join, "base")
    spec = _spec({"join": [_pfs("left", "/(*)", join_on="$1"), _pfs("right", "/(*)", join_on="$1")]})
    commits = {("left", "master"): ca, ("right", "master"): cb}
    plan_s, n = _timed(lambda: sum(1 for _ in iter_datums(store, spec, commits, "salt")), "plan")
    assert n == expected, (n, expected)
    return {"datums": n, "dict_join_s": base_s, "plan_s": plan_s}


def child_incr(tmp: str, m: int) -> dict:
    from pach_airflow import datum

    store = _store(tmp)
    paths = sorted(f"/f{i:07d}" for i in range(m))
    c1 = _commit(store, "data", paths)
    spec = _spec(_pfs("data", "/*"))
    first = list(datum.iter_datums(store, spec, {("data", "master"): c1}, "salt"))
    base = {d.id: (d.hash, "SUCCESS") for d in first}
    with store.open_commit("data", "master") as c:
        c.put_file(paths[m // 2], b"changed")
    c2 = store.inspect_branch("data", "master").head
    commits = {("data", "master"): c2}

    def full():
        return datum.plan_incremental(datum.iter_datums(store, spec, commits, "salt"), base)

    full()  # both timings below read warm manifest caches
    full_s, plan_full = _timed(full, "base")
    diff_fn = getattr(datum, "plan_incremental_diff", None)
    if diff_fn is None:
        return {"datums": m, "full_s": full_s, "incr_s": None}
    incr_s, plan = _timed(lambda: diff_fn(store, spec, commits, "salt", base=base,
                                          base_commits={("data", "master"): c1}), "plan")
    assert plan is not None
    assert [d.id for d in plan.to_run] == [d.id for d in plan_full.to_run]
    assert len(plan.skipped) == len(plan_full.skipped) and plan.removed == plan_full.removed
    return {"datums": m, "to_run": len(plan.to_run), "full_s": full_s, "incr_s": incr_s}


CHILDREN = {"glob": child_glob, "cross": child_cross, "join": child_join, "incr": child_incr}


def run_child(name: str, size: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="pach-bench-") as tmp:
        p = subprocess.run([sys.executable, __file__, "--child", name, str(size), tmp],
                           capture_output=True, text=True, check=False)
    if p.returncode != 0:
        raise SystemExit(f"bench {name} failed:\n{p.stderr}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=100_000, help="files in the /* commit (default 100,000)")
    ap.add_argument("--cross", type=int, default=300, help="K of the K x K cross (default 300)")
    ap.add_argument("--join", type=int, default=20_000, help="files per join input (default 20,000)")
    ap.add_argument("--incr", type=int, default=20_000, help="datums of the incremental case (default 20,000)")
    ap.add_argument("--only", choices=sorted(CHILDREN), action="append", help="run only these cases")
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    ns = ap.parse_args()
    if ns.child:
        name, size, tmp = ns.child
        out = CHILDREN[name](tmp, int(size))
        out["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        out["cpu"] = CPU
        print(json.dumps(out))
        return
    sizes = {"glob": ns.files, "cross": ns.cross, "join": ns.join, "incr": ns.incr}
    for name in ns.only or ["glob", "cross", "join", "incr"]:
        r = run_child(name, sizes[name])
        if name == "glob":
            print(f"glob /* over {r['files']:,} files -> {r['datums']:,} datums: plan {r['plan_s']:.2f}s, "
                  f"manifest walk {r['walk_s']:.2f}s (ratio {r['plan_s'] / max(r['walk_s'], 1e-9):.1f}x), "
                  f"peak RSS {r['peak_rss_mib']:.0f} MiB")
        elif name == "cross":
            print(f"cross {sizes['cross']:,} x {sizes['cross']:,} -> {r['datums']:,} datums: plan {r['plan_s']:.2f}s, "
                  f"itertools.product {r['product_s']:.2f}s (ratio {r['plan_s'] / max(r['product_s'], 1e-9):.1f}x), "
                  f"peak RSS {r['peak_rss_mib']:.0f} MiB")
        elif name == "join":
            print(f"join of 2 x {sizes['join']:,} files -> {r['datums']:,} datums: plan {r['plan_s']:.2f}s, "
                  f"dict join of the walks {r['dict_join_s']:.2f}s "
                  f"(ratio {r['plan_s'] / max(r['dict_join_s'], 1e-9):.1f}x), peak RSS {r['peak_rss_mib']:.0f} MiB")
        else:
            if r["incr_s"] is None:
                print(f"incremental: {r['datums']:,} datums, full re-plan {r['full_s']:.2f}s "
                      "(plan_incremental_diff not available)")
            else:
                print(f"incremental: one file changed in {r['datums']:,} datums -> {r['to_run']} to run: "
                      f"re-plan {r['incr_s'] * 1000:.1f} ms vs full plan {r['full_s']:.2f}s "
                      f"({r['full_s'] / max(r['incr_s'], 1e-9):.0f}x faster), peak RSS {r['peak_rss_mib']:.0f} MiB")
        cpu = r.get("cpu") or {}
        if cpu:
            print(f"    cpu seconds: measured {cpu.get('plan', 0):.2f}, baseline {cpu.get('base', 0):.2f} "
                  f"(cpu ratio {cpu.get('plan', 0) / max(cpu.get('base', 0), 1e-9):.2f})")
        sys.stdout.flush()


if __name__ == "__main__":
    os.environ.setdefault("PACH_AIRFLOW_STORE", "file:///nonexistent-bench-store")
    main()
