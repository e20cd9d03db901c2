"""The Airflow UI part of pach_airflow: repos, branches, commits with provenance, jobs with their datums,
and the lineage of pipelines and repos, served by a FastAPI app that ``plugins/pach_airflow_ui.py`` mounts
in Airflow's API server (under ``/pach``) behind Airflow's own login.

- :mod:`.app`      the FastAPI app (pages and JSON API), ``create_app()``
- :mod:`.auth`     the login check: Airflow's JWT (cookie or bearer), fail closed
- :mod:`.data`     what the pages show, read from the store and the job records
- :mod:`.runs`     links between a job (its output commit) and the Airflow DAG run that ran it
- :mod:`.lineage`  the lineage graph and its server-side SVG
"""

from __future__ import annotations

__all__ = ["create_app"]


def create_app(*args, **kwargs):  # re-exported lazily: importing FastAPI is not free
    """See :func:`pach_airflow.ui.app.create_app`."""
    from pach_airflow.ui.app import create_app as _create_app

    return _create_app(*args, **kwargs)
