"""A share of the conformance cases again on the S3 backend (a real SeaweedFS server, the session's
``s3_server`` fixture): repo paths with spaces, ``#``, ``%``, ``&``, ``=``, ``+``-free punctuation,
backslashes and deep trees are object keys there, and job cases write output commits through it."""

from __future__ import annotations

import pytest

from tests.conformance.test_cases import CASES, KNOWN_BUGS, run_datum_case, run_job_case
from tests.fixtures.cli import Cli

S3_DATUM = ("special-top-level", "special-space-literal", "special-dollar", "special-hidden-star",
            "special-space-dir", "special-question-space", "special-escaped-backslash-after-star",
            "deep-doublestar", "deep-two-levels", "deep-tree-doublestar-f", "globfile-star",
            "group-basic-binary-names", "join-directories", "join-three-all-outer", "group-over-cross-keeps-repeats",
            "ohmyglob-replace-28", "ohmyglob-replace-30", "pfs-input-other-branch", "empty-commit-root-glob",
            "globfile-deleted-repo-doublestar")
S3_JOB = ("job-skipped-datums-three-commits", "job-modified-input-reprocessed", "job-err-cmd-all-recovered",
          "job-duplicate-output-skipped-collision", "job-dir-datum-hash-follows-subtree", "cron-overwrite",
          "job-output-symlink-uploads-content", "union-alias-same-name", "job-output-special-names")
BY_ID = {c["id"]: c for c in CASES}


def _params(ids: tuple[str, ...], test: str) -> list:
    out = []
    for cid in ids:
        bug = KNOWN_BUGS.get(f"{test}:{cid}")
        out.append(pytest.param(BY_ID[cid], id=cid,
                                marks=[pytest.mark.xfail(strict=True, reason=bug)] if bug else []))
    return out


@pytest.fixture
def pach_s3(s3_store_url) -> Cli:
    return Cli(s3_store_url)


def test_ids_exist():
    assert set(S3_DATUM + S3_JOB) <= set(BY_ID)


@pytest.mark.parametrize("case", _params(S3_DATUM, "datum"))
def test_datum_case_s3(pach_s3, tmp_path, case):
    run_datum_case(pach_s3, tmp_path, case)


@pytest.mark.timeout(600)
@pytest.mark.parametrize("case", _params(S3_JOB, "job"))
def test_job_case_s3(pach_s3, tmp_path, monkeypatch, case):
    monkeypatch.setenv("PACH_AIRFLOW_DAGS_FOLDER", str(tmp_path / "dags"))
    monkeypatch.setenv("PACH_AIRFLOW_SECRETS_DIR", str(tmp_path / "secrets"))
    run_job_case(pach_s3, tmp_path, case)
