"""Pipelines, jobs and output commits (the contract names of ``docs/architecture.md``).

The code lives in the :mod:`pach_airflow.pps` package (records, pipelines, plan, finish, run, read);
this module keeps ``pach_airflow.jobs`` importable with every name other modules use.
"""

from __future__ import annotations

from pach_airflow.pps import *  # the same public names, by design
from pach_airflow.pps import __all__  # noqa: F401
