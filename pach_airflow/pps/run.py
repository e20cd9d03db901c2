"""Running jobs here and now: one set (``process_set``) or a whole job (``run_job``) with up to
``parallelism_spec.constant`` sets at once and ``job_timeout``."""

from __future__ import annotations

import concurrent.futures
import os
import signal
import socket
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pach_airflow.errors import JobError, NotFound
from pach_airflow.pps.finish import _timeout_reason, finish_job
from pach_airflow.pps.pipelines import _open_jobs, ensure_pipeline
from pach_airflow.pps.plan import plan_job
from pach_airflow.pps.records import (
    DATUM_FAILED,
    DEFAULT_SET_CAP,
    JOB_FAILURE,
    JOB_KILLED,
    TERMINAL_STATES,
    JobInfo,
    _get_record,
    _now,
    _parallelism,
    _seconds,
    _spec_dict,
    _update_job,
    job_key,
    result_key,
)

if TYPE_CHECKING:
    from pach_airflow.pfs import Store


def process_set(store: Store, pipeline: str, job_id: str, set_id: str, *, runner: str = "local") -> dict:
    """Run one datum set of a planned job. ``runner="local"`` runs it on this machine
    (``pach_airflow.runners.local.run_set``); Kubernetes pods run the worker commands themselves."""
    rec = _get_record(store, job_key(pipeline, job_id))
    if rec is None:
        raise JobError(f"job {pipeline}@{job_id} not found; plan it first")
    if rec.get("state") in TERMINAL_STATES:
        raise JobError(f"job {pipeline}@{job_id} is {rec['state']}; its sets can no longer run")
    if set_id not in rec.get("set_ids", []):
        raise JobError(f"job {pipeline}@{job_id} has no datum set {set_id!r}")
    if runner != "local":
        raise JobError(f"runner {runner!r}: only the local runner runs sets through jobs.process_set; "
                       f"Kubernetes pods run the worker commands")
    from pach_airflow.runners.local import run_set

    return run_set(store, pipeline, job_id, set_id)


def _descendants(pid: int) -> list[int]:
    """Every live descendant process of ``pid`` (from /proc), parents before children."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                stat = fh.read().decode(errors="replace")
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    out: list[int] = []
    stack = list(children.get(pid, []))
    while stack:
        p = stack.pop()
        out.append(p)
        stack.extend(children.get(p, []))
    return out


def _kill_sets(pipeline: str, runner_pid: int | None = None) -> int:
    """SIGKILL the local runner's set processes of ``pipeline`` started by ``runner_pid`` (default:
    this process), e.g. the sets still running when job_timeout hit. The runner runs each set under
    ``unshare --kill-child``, so killing that process takes the set's whole process tree along.
    Nothing else the runner started (say, a test's S3 server) is touched."""
    killed = 0
    for pid in _descendants(runner_pid or os.getpid()):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                argv = fh.read().decode(errors="replace").split("\0")
        except OSError:
            continue
        if any(a.endswith("/enter.sh") and f"/{pipeline}-" in a for a in argv):
            try:
                os.kill(pid, signal.SIGKILL)
                killed += 1
            except (ProcessLookupError, PermissionError):
                pass
    return killed


def _any_failed(store: Store, pipeline: str, job_id: str, set_ids: list[str]) -> bool:
    """Whether a datum of these sets FAILED (or a set left no result), read from the result records."""
    for sid in set_ids:
        res = _get_record(store, result_key(pipeline, job_id, sid))
        if res is None or any(d.get("state") == DATUM_FAILED for d in res.get("datums", [])):
            return True
    return False


def run_job(store: Store, spec: Any, *, commits: Mapping[str, str] | None = None, reprocess: bool = False,
            runner: str = "local", cap: int = DEFAULT_SET_CAP) -> JobInfo:
    """Create or update the pipeline, plan one job against the pinned commits (default: the heads), run
    its sets here with up to ``parallelism_spec.constant`` sets at once, and finish it.

    As in Pachyderm, the sets of new datums run first and the sets of changed datums
    (``serial_set_ids``) only when no new datum failed.

    ``job_timeout`` counts from the job's start: when it passes, sets not started are dropped, running
    ones are killed, and the job ends JOB_KILLED (output commit with the error, content unchanged).
    """
    spec_dict = _spec_dict(spec)
    if reprocess:
        ensure_pipeline(store, spec, reprocess=True)
    workers = _parallelism(spec_dict)
    if not spec_dict.get("datum_set_spec"):
        # Here sets only feed the worker threads, so cut as Pachyderm does by default: 4 sets per
        # worker (registry.go). One set per datum (what Airflow's mapping wants) would pay the
        # runner's per-set cost (namespace, staging, upload) once per datum.
        cap = min(cap, workers * 4)
    t0 = time.monotonic()
    planned = plan_job(store, spec, commits=commits, cap=cap,
                       runner={"host": socket.gethostname(), "pid": os.getpid()})
    t_plan = time.monotonic() - t0
    name, job_id = planned.pipeline, planned.job_id
    timeout = _seconds(spec_dict.get("job_timeout"))
    deadline = t0 + timeout if timeout else None  # counted from the job's start, planning included
    workers = min(workers, max(1, len(planned.set_ids)))
    errors: list[str] = []
    killed: str | None = None
    stop = threading.Event()
    # what the runner reports per set, summed over the sets: where the processing time went
    runner_seconds = {"stage_seconds": 0.0, "run_seconds": 0.0, "upload_seconds": 0.0}

    def one(set_id: str) -> dict:
        if stop.is_set():
            return {}
        return process_set(store, name, job_id, set_id, runner=runner) or {}

    # Pachyderm's two phases: the sets of new datums first; the serial sets (changed datums) only when
    # every new datum succeeded, else the job fails before them (finish_job counts it that way).
    serial = set(planned.serial_set_ids)
    phases = [[sid for sid in planned.set_ids if sid not in serial],
              [sid for sid in planned.set_ids if sid in serial]]
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"job-{name}")
    try:
        for n, phase in enumerate(phases):
            if not phase or killed is not None:
                continue
            if n > 0 and (errors or _any_failed(store, name, job_id, phases[0])):
                break
            futures = {pool.submit(one, sid): sid for sid in phase}
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            done, not_done = concurrent.futures.wait(futures, timeout=remaining)
            if not_done:
                stop.set()
                for f in not_done:
                    f.cancel()
                _kill_sets(name)
                killed = _timeout_reason(spec_dict)
                concurrent.futures.wait(not_done, timeout=30)
            for f in done:
                exc = f.exception()
                if exc is not None:
                    errors.append(f"datum set {futures[f]}: {exc}")
                    continue
                for key in runner_seconds:
                    runner_seconds[key] += float(f.result().get(key) or 0)
    finally:
        pool.shutdown(wait=killed is None, cancel_futures=True)
    t_process = time.monotonic() - t0 - t_plan
    info = finish_job(store, name, job_id, killed_reason=killed)
    timings = {"plan": round(t_plan, 3), "process": round(t_process, 3),
               "finish": round(time.monotonic() - t0 - t_plan - t_process, 3),
               **{k.removesuffix("_seconds") + "_sets": round(v, 3) for k, v in runner_seconds.items()}}
    info = JobInfo.from_record(_update_job(store, name, job_id, {"timings": timings}))
    if errors and info.state == JOB_FAILURE and info.reason and "did not run" in info.reason:
        # The runner's own error says more than "no results".
        info = JobInfo.from_record(_update_job(store, name, job_id,
                                               {"reason": info.reason + "; " + "; ".join(errors)}))
    return info


def stop_job(store: Store, pipeline: str, job_id: str) -> JobInfo:
    """``stop job``: the job ends JOB_KILLED now. No set of it starts any more; when a live process on
    this host runs it (``run pipeline``), its running sets are killed. The output branch is left as it
    is (the job never writes its output commit)."""
    reason = "stopped by the user (stop job)"

    def apply(old: dict | None) -> dict:
        if old is None:
            raise NotFound(f"job {pipeline}@{job_id} not found")
        if old.get("state") in TERMINAL_STATES:
            raise JobError(f"job {pipeline}@{job_id} is {old['state']} already; only a running job can stop")
        return {**old, "state": JOB_KILLED, "reason": reason, "finished": _now()}

    rec = store.update_record(job_key(pipeline, job_id), apply)
    _open_jobs(store, pipeline, drop=[job_id])
    runner = rec.get("runner") or {}
    if runner.get("host") == socket.gethostname() and runner.get("pid"):
        _kill_sets(pipeline, int(runner["pid"]))
    return JobInfo.from_record(rec)
