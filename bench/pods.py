"""Benchmark of the Kubernetes runner's pods, run for real with ``podman kube play`` against SeaweedFS.

1. Pod-seconds per datum: ``--pods`` pods of one datum each (``datum_set_spec.number = 1``, the shape
   of a small job: one mapped task per datum) against one pod running ``--datums`` datums
   (``datum_set_spec.number = N``, the shape at scale). A pod-second is one second of one pod's life
   from ``kube play`` to its last container's exit: init container staging, user container, upload.
   The ratio says how much pod start-up a datum saves by sharing its pod.
2. Staging throughput: ``worker stage`` (the init container's code, run here in-process) downloading
   ``--files`` files of ``--size`` bytes, against a plain boto3 loop downloading the same bytes from
   the same server (one ``get_object`` after another, as a naive init container would).

    .venv/bin/python bench/pods.py                      # small: 5 single pods, 1 pod of 20 datums
    .venv/bin/python bench/pods.py --pods 20 --datums 100 --files 500 --size 65536

Needs podman, runc and mmdebstrap (images are built once by scripts/build_test_images.sh and cached);
with ``--skip-pods`` only the staging part runs (no podman needed).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def start_s3():
    from tests.fixtures.s3 import S3Server, _kill, _start_weed, _wait_ready

    data = Path(tempfile.mkdtemp(prefix="pach-bench-weed-"))
    proc, endpoint = _start_weed(data)
    server = S3Server(endpoint)
    try:
        _wait_ready(proc, server, data / "weed.log")
    except BaseException:
        _kill(proc)
        raise

    def stop() -> None:
        _kill(proc)
        shutil.rmtree(data, ignore_errors=True)

    return server, stop


def open_bucket_store(server):
    import os

    from pach_airflow.pfs import open_store

    os.environ.update(server.env())
    url = f"s3://{server.make_bucket('bench')}/store"
    os.environ["PACH_AIRFLOW_STORE"] = url
    return url, open_store(url)


def fill(store, repo: str, n: int, size: int) -> None:
    import os

    store.create_repo(repo)
    with store.open_commit(repo, "master") as c:
        for i in range(n):
            c.put_file(f"/f{i:05d}", os.urandom(size))


def pod_seconds(args, server) -> None:
    from pach_airflow import jobs
    from pach_airflow.runners import kubernetes as kr
    from tests.fixtures.podman import Podman, podman_missing

    why = podman_missing()
    if why:
        print(f"pods: skipped, {why}")
        return
    podman = Podman()
    t0 = time.monotonic()
    images = podman.build_images()
    print(f"images ready in {time.monotonic() - t0:.1f} s (cached after the first build): {images.worker}, {images.user}")
    secret = podman.create_secret(f"pach-bench-s3-{uuid.uuid4().hex[:8]}", server.env())
    try:
        url, store = open_bucket_store(server)
        config = kr.KubernetesConfig(store=url, worker_image=images.worker, image_pull_policy="Never",
                                     s3_secret=secret, host_network=True)
        results = {}
        for label, repo, n_datums, per_set in (("1 datum per pod", "single", args.pods, 1),
                                               (f"{args.datums} datums per pod", "batch", args.datums, args.datums)):
            fill(store, repo, n_datums, 1024)
            spec = {"pipeline": {"name": f"bench-{repo}"},
                    "transform": {"image": images.user, "cmd": ["ptool", "upper", f"/pfs/{repo}", "/pfs/out"]},
                    "input": {"pfs": {"repo": repo, "glob": "/*"}},
                    "datum_set_spec": {"number": per_set}}
            planned = jobs.plan_job(store, spec)
            secs = []
            for set_id in planned.set_ids:
                pod = kr.pod_request(spec, pipeline=planned.pipeline, job_id=planned.job_id, set_id=set_id,
                                     config=config)
                run = podman.play(kr.pod_manifest(pod))
                if not run.ok:
                    raise SystemExit(run.describe())
                secs.append(run.seconds)
            info = jobs.finish_job(store, planned.pipeline, planned.job_id)
            assert info.state == "JOB_SUCCESS" and info.data_processed == n_datums, info
            results[label] = sum(secs) / n_datums
            print(f"{label:>22}: {len(secs)} pod(s), {n_datums} datums, pod-seconds/datum "
                  f"{results[label]:.3f} (median pod {statistics.median(secs):.2f} s)")
        single, batch = results.values()
        print(f"pod-seconds per datum, one datum per pod / {args.datums} per pod: {single / batch:.1f}x")
    finally:
        podman.remove_secret(secret)
        podman.close()


def staging(args, server) -> None:
    from pach_airflow import jobs
    from pach_airflow.worker.stage import stage_set

    _, store = open_bucket_store(server)
    fill(store, "data", args.files, args.size)
    spec = {"pipeline": {"name": "bench-stage"}, "transform": {"image": "x", "cmd": ["true"]},
            "input": {"pfs": {"repo": "data", "glob": "/"}}}
    planned = jobs.plan_job(store, spec)
    total = args.files * args.size

    # baseline: the same bytes as plain objects, fetched one get_object after another
    client = server.client()
    bucket = server.make_bucket("plain")
    blob = bytes(args.size)
    for i in range(args.files):
        client.put_object(Bucket=bucket, Key=f"data/f{i:05d}", Body=blob)

    def boto3_loop(dest: Path) -> None:
        for i in range(args.files):
            body = client.get_object(Bucket=bucket, Key=f"data/f{i:05d}")["Body"].read()
            (dest / f"f{i:05d}").write_bytes(body)

    def stage(dest: Path) -> None:
        stage_set(store, planned.pipeline, planned.job_id, planned.set_ids[0], dest, shared=True)

    timings: dict[str, list[float]] = {"boto3 loop": [], "worker stage": []}
    for _ in range(args.repeat):
        for name, fn in (("boto3 loop", boto3_loop), ("worker stage", stage)):
            dest = Path(tempfile.mkdtemp(prefix="pach-bench-stage-"))
            t0 = time.perf_counter()
            fn(dest)
            timings[name].append(time.perf_counter() - t0)
            shutil.rmtree(dest, ignore_errors=True)
    best = {k: min(v) for k, v in timings.items()}
    for name, secs in best.items():
        print(f"{name:>22}: {args.files} files x {args.size} B in {secs:.3f} s = {total / secs / 1e6:.1f} MB/s, "
              f"{args.files / secs:.0f} files/s")
    print(f"staging throughput, worker stage / boto3 loop: {best['boto3 loop'] / best['worker stage']:.2f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pods", type=int, default=5, help="single-datum pods to run (default 5)")
    ap.add_argument("--datums", type=int, default=20, help="datums in the one big pod (default 20)")
    ap.add_argument("--files", type=int, default=200, help="files to stage (default 200)")
    ap.add_argument("--size", type=int, default=16384, help="bytes per staged file (default 16 KiB)")
    ap.add_argument("--repeat", type=int, default=3, help="staging runs, best kept (default 3)")
    ap.add_argument("--skip-pods", action="store_true", help="only the staging benchmark")
    args = ap.parse_args()
    server, stop = start_s3()
    try:
        print(f"S3: {server.name} at {server.endpoint}")
        staging(args, server)
        if not args.skip_pods:
            pod_seconds(args, server)
    finally:
        stop()


if __name__ == "__main__":
    main()
