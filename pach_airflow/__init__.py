"""pach_airflow: run Pachyderm pipeline specs, unchanged, on Apache Airflow 3.

Importing this package is cheap: it imports neither Airflow nor boto3. The public API is listed in
``__all__``; everything else is private to its module.
"""

from __future__ import annotations

from pach_airflow.errors import (
    AlreadyExists,
    BackendError,
    Conflict,
    DatumError,
    GlobError,
    InvalidName,
    InvalidPath,
    JobError,
    NotFound,
    PachAirflowError,
    RunnerError,
    SpecError,
    StoreError,
)

__version__ = "0.1.0"

__all__ = [
    "AlreadyExists",
    "BackendError",
    "Conflict",
    "DatumError",
    "GlobError",
    "InvalidName",
    "InvalidPath",
    "JobError",
    "NotFound",
    "PachAirflowError",
    "RunnerError",
    "SpecError",
    "StoreError",
    "__version__",
]
