"""Pipelines, jobs and output commits: the PPS side of pach_airflow.

Modules: ``records`` (keys, states, value types), ``pipelines`` (pipeline records), ``plan``
(``plan_job``), ``finish`` (``finish_job``: output commits), ``run`` (``process_set``, ``run_job``),
``read`` (jobs, datums, logs). ``pach_airflow.jobs`` re-exports the public names.

This package owns the ``pps/`` space of the store's records (layout in ``docs/architecture.md``):

``pps/pipelines/<pipeline>``
    the pipeline record: normalised spec, salt, state (RUNNING / PAUSED), version, created/updated,
    ``last_job`` / ``last_job_state``, and ``open_jobs`` (jobs not finished yet).
``pps/jobs/<pipeline>/<job>``
    the job record (state, counters, pinned spec, input commits, set ids, ``serial_set_ids``: the sets
    of changed datums, Pachyderm's serial phase, egress result).
``pps/joblist/<pipeline>/<job>``
    an empty marker per job: ``list job`` lists these instead of every set and result record (pipeline
    records with ``job_markers``; older pipelines are listed the old way).
``pps/jobs/<pipeline>/<job>/plan`` (bytes)
    every datum of the job, one JSON line each: ``{"id", "hash", "files", "set"}`` for datums to run,
    ``{"id", "hash", "files", "set": null, "job", "outputs"}`` for datums carried over (skipped).
``pps/jobs/<pipeline>/<job>/sets/<set>``
    the datums of one set, read by ``worker stage``.
``pps/jobs/<pipeline>/<job>/results/<set>``
    written by ``worker upload`` (never by this module).
``pps/jobs/<pipeline>/<job>/datums`` (bytes)
    the job's datum index, sorted by datum id, one JSON line per datum:
    ``{"id", "hash", "state", "job", "outputs", "files", ...}``; the next job's skip base.

A job goes ``plan_job`` → ``process_set`` (once per set, anywhere) → ``finish_job``; ``run_job`` does
all three here and now. Following Pachyderm 2.x (reference §4, §5):

* Job id = output commit id. When the newest pinned input commit id is not yet used in the output repo
  it *is* the job id (Pachyderm's global id: ``PACH_JOB_ID == <input>_COMMIT`` for the commit that
  started the job); otherwise a fresh commit id.
* The skip base is the last job whose output commit has no error (a failed or killed job is never a
  base); a datum is skipped when its id and hash match a datum that succeeded in the base.
* Output = previous good output − outputs of removed or changed datums + new outputs. Two datums
  writing one path, or one datum's file being another's directory, fails the job naming both datums.
* A job whose input commit carries an error (an upstream job failed) is JOB_UNRUNNABLE: nothing runs.
* A failed job (failed datum, path clash, missing set result, egress failure), an unrunnable one, or
  a timed-out one (``job_timeout`` → JOB_KILLED) still writes its output commit, **with the error set
  and the content of the last good output**, so the output branch head carries the error while every
  file a reader sees is the last good output. Nothing of the failed job's datums is lost: their logs
  and states stay in the job's records.

Crash safety: the output commit (one compare-and-swap of the branch head) is the only step readers
see. It is written after the datum index and before the final job record. A process killed before it
leaves the branch as it was; the stale job record (state still CREATED/RUNNING/FINISHING) is settled
by the next ``plan_job`` of the pipeline: finished from its commit when the commit landed, else marked
JOB_KILLED with the reason. A job whose runner is a live process on this host is left alone; a job
planned by Airflow has no such process, so do not ``run pipeline`` by hand while its DAG runs a job
(Airflow's ``max_active_runs=1`` keeps its own runs apart).
"""

from __future__ import annotations

from pach_airflow.pps.finish import find_clash, finish_job
from pach_airflow.pps.pipelines import (
    delete_pipeline,
    ensure_pipeline,
    inspect_pipeline,
    list_pipelines,
    set_pipeline_state,
)
from pach_airflow.pps.plan import plan_job
from pach_airflow.pps.read import inspect_datum, inspect_job, job_logs, list_job_datums, list_jobs
from pach_airflow.pps.records import (
    DATUM_FAILED,
    DATUM_RECOVERED,
    DATUM_SKIPPED,
    DATUM_STARTING,
    DATUM_SUCCESS,
    DEFAULT_SET_CAP,
    JOB_CREATED,
    JOB_EGRESSING,
    JOB_FAILURE,
    JOB_FINISHING,
    JOB_KILLED,
    JOB_RUNNING,
    JOB_STARTING,
    JOB_SUCCESS,
    JOB_UNRUNNABLE,
    PIPELINE_PAUSED,
    PIPELINE_RUNNING,
    TERMINAL_STATES,
    JobInfo,
    PipelineInfo,
    PlannedJob,
    index_key,
    input_branches,
    job_key,
    job_marker_key,
    parse_time,
    pipeline_key,
    plan_key,
    result_key,
    set_key,
)
from pach_airflow.pps.run import process_set, run_job, stop_job

__all__ = [
    "DATUM_FAILED",
    "DATUM_RECOVERED",
    "DATUM_SKIPPED",
    "DATUM_STARTING",
    "DATUM_SUCCESS",
    "DEFAULT_SET_CAP",
    "JOB_CREATED",
    "JOB_EGRESSING",
    "JOB_FAILURE",
    "JOB_FINISHING",
    "JOB_KILLED",
    "JOB_RUNNING",
    "JOB_STARTING",
    "JOB_SUCCESS",
    "JOB_UNRUNNABLE",
    "PIPELINE_PAUSED",
    "PIPELINE_RUNNING",
    "TERMINAL_STATES",
    "JobInfo",
    "PipelineInfo",
    "PlannedJob",
    "delete_pipeline",
    "ensure_pipeline",
    "find_clash",
    "finish_job",
    "index_key",
    "input_branches",
    "inspect_datum",
    "inspect_job",
    "inspect_pipeline",
    "job_key",
    "job_logs",
    "job_marker_key",
    "list_job_datums",
    "list_jobs",
    "list_pipelines",
    "parse_time",
    "pipeline_key",
    "plan_job",
    "plan_key",
    "process_set",
    "result_key",
    "run_job",
    "set_key",
    "set_pipeline_state",
    "stop_job",
]
