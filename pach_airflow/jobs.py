"""Pipelines, jobs and output commits (the contract names of ``docs/architecture.md``).

The code lives in the :mod:`pach_airflow.pps` package (records, pipelines, plan, finish, run, read);
this module keeps ``pach_airflow.jobs`` importable with every name other modules use.
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
