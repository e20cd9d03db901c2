"""``pach-airflow worker stage|upload|run-set``: the worker's commands, as pods and the local runner call them.

``stage`` runs in a pod's init container (our image), ``upload --wait`` in its sidecar; between them the
user's container runs ``WORK/bin/busybox sh WORK/shim.sh``. ``run-set`` is the local runner for one set.
Nothing heavy is imported at module level (the CLI must start fast).
"""

from __future__ import annotations

import argparse
import json

from pach_airflow.cli import OUTPUT_ARG, arg, command

_SET_ARGS = (
    arg("--pipeline", required=True, help="the pipeline name"),
    arg("--job", required=True, help="the job id (= the output commit id)"),
    arg("--set", required=True, dest="set_id", help="the datum set id (\"0\", \"1\", ...)"),
)
_WORK_ARG = arg("--work", required=True, help="the work folder (/pach in a pod)")


def _store():
    from pach_airflow.pfs import open_store

    return open_store()


@command("worker", "stage", help="download a datum set's inputs into a work folder, with env files, busybox and "
         "the per-datum shim", args=(*_SET_ARGS, _WORK_ARG,
         arg("--secrets-dir", default=None, help="read transform.secrets env values from DIR/<name>/<key> "
             "(local runs; in pods Kubernetes sets them)"),
         arg("--busybox", default=None, help="the static busybox to copy (default: $PACH_AIRFLOW_BUSYBOX, "
             "else /bin/busybox)")))
def _stage(ns: argparse.Namespace) -> int:
    from pach_airflow.worker import stage_set

    # shared: in a pod the user's image may run the shim under its own USER, not as this init container.
    w = stage_set(_store(), ns.pipeline, ns.job, ns.set_id, ns.work, secrets_dir=ns.secrets_dir,
                  busybox=ns.busybox, shared=True)
    print(f"staged {len(w.read_set()['datums'])} datum(s) of {ns.pipeline}@{ns.job} set {ns.set_id} in {w.root}; "
          f"run: {' '.join(w.shim_argv())}")
    return 0


@command("worker", "upload", help="upload each datum's /pfs/out, state and log from a work folder (one result "
         "record per set)", args=(_WORK_ARG,
         arg("--wait", action="store_true", help="first wait for WORK/done (the pod's sidecar)"),
         arg("--timeout", type=float, default=None, help="with --wait: give up after SECONDS"),
         arg("--poll", type=float, default=0.5, help="with --wait: check every SECONDS (default 0.5)"),
         OUTPUT_ARG))
def _upload(ns: argparse.Namespace) -> int:
    from pach_airflow.cli.output import emit
    from pach_airflow.worker import upload_set

    rec = upload_set(_store(), ns.work, wait=ns.wait, poll=ns.poll, timeout=ns.timeout)
    rows = [{"datum": d["id"], "state": d["state"], "tries": d["tries"], "outputs": len(d["outputs"]),
             "reason": d["reason"]} for d in rec["datums"]]
    emit(rows, [("datum", "datum"), ("state", "state"), ("tries", "tries"), ("outputs", "outputs"),
                ("reason", "reason")], ns.output)
    return 0


@command("worker", "run-set", help="run one datum set here: stage, the shim in a private mount namespace "
         "(/pfs), upload", args=(*_SET_ARGS,
         arg("--work-root", default=None, help="where work folders go (default: $PACH_AIRFLOW_WORK_ROOT, "
             "else <tmp>/pach-airflow-work)"),
         arg("--keep", action="store_true", help="keep the work folder (for debugging)")))
def _run_set(ns: argparse.Namespace) -> int:
    import logging

    from pach_airflow.runners.local import run_set

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    summary = run_set(_store(), ns.pipeline, ns.job, ns.set_id, work_root=ns.work_root, keep=ns.keep)
    print(json.dumps(summary))
    return 0
