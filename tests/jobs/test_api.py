"""The public API of the jobs code: ``pach_airflow.jobs`` keeps every contract name of
``docs/architecture.md`` and re-exports exactly ``pach_airflow.pps.__all__``."""

from __future__ import annotations

import inspect

from pach_airflow import jobs, pps

CONTRACT = ["ensure_pipeline", "plan_job", "process_set", "finish_job", "run_job", "list_jobs", "inspect_job",
            "list_job_datums", "inspect_datum", "PlannedJob", "JobInfo", "PipelineInfo",
            "job_key", "set_key", "result_key", "index_key", "pipeline_key"]


def test_all_is_honest():
    assert sorted(jobs.__all__) == sorted(pps.__all__) == sorted(set(pps.__all__))
    for name in pps.__all__:
        assert getattr(jobs, name) is getattr(pps, name)
    assert set(CONTRACT) <= set(jobs.__all__)


def test_contract_signatures():
    assert list(inspect.signature(jobs.plan_job).parameters)[:2] == ["store", "spec"]
    assert {"commits", "job_id", "cap"} <= set(inspect.signature(jobs.plan_job).parameters)
    assert list(inspect.signature(jobs.process_set).parameters)[:4] == ["store", "pipeline", "job_id", "set_id"]
    assert "runner" in inspect.signature(jobs.process_set).parameters
    assert list(inspect.signature(jobs.finish_job).parameters)[:3] == ["store", "pipeline", "job_id"]
    assert {"commits", "reprocess"} <= set(inspect.signature(jobs.run_job).parameters)
    assert jobs.job_key("p", "j") == "pps/jobs/p/j"
    assert jobs.set_key("p", "j", "0") == "pps/jobs/p/j/sets/0"
    assert jobs.result_key("p", "j", "0") == "pps/jobs/p/j/results/0"
    assert jobs.index_key("p", "j") == "pps/jobs/p/j/datums"
    assert jobs.pipeline_key("p") == "pps/pipelines/p"
