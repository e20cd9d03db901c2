"""pach_airflow's settings inside Airflow: the ``[pach_airflow]`` config section and the S3 connection.

Airflow users look for settings in ``airflow.cfg`` (or ``AIRFLOW__PACH_AIRFLOW__<KEY>`` env vars) and in
Airflow connections, so that is where the Airflow side of pach_airflow reads them:

==================  =====================================================  ==============================
key                 meaning                                                default
==================  =====================================================  ==============================
``store``           store URL, ``file:///dir`` or ``s3://bucket/prefix``   ``$PACH_AIRFLOW_STORE``, else
                                                                           ``file://~/.pach-airflow/store``
``runner``          ``local`` or ``kubernetes``                            ``local``
``aws_conn_id``     an Airflow ``aws`` connection for the S3 store         none: boto3's own chain
``poll_interval``   seconds between two branch-head reads of a watcher     ``5``
``max_sets``        upper bound on datum sets (= mapped tasks) per job     ``[core] max_map_length``
==================  =====================================================  ==============================

The Kubernetes runner reads its own keys from the same section (:func:`section`).

Everything here is read when a task or trigger *runs*, never while a DAG file is parsed (the one
exception is ``runner``, which decides the DAG's shape and so must be known when compiling).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pach_airflow.pfs import Store

SECTION = "pach_airflow"
RUNNERS = ("local", "kubernetes")
DEFAULT_POLL_INTERVAL = 5.0


def _conf():
    from airflow.sdk import conf

    return conf


def get(key: str, fallback: str | None = None) -> str | None:
    """One ``[pach_airflow]`` value (env ``AIRFLOW__PACH_AIRFLOW__<KEY>`` wins, as everywhere in Airflow)."""
    value = _conf().get(SECTION, key, fallback=fallback)
    return value if value not in ("", None) else fallback


def section() -> dict[str, str]:
    """The whole ``[pach_airflow]`` section (config file and env vars), for runners with their own keys."""
    try:
        return {k: str(v) for k, v in (_conf().getsection(SECTION) or {}).items()}
    except Exception:  # noqa: BLE001 -- a section absent or unreadable is an empty one
        return {}


def store_url() -> str | None:
    """The store URL: ``[pach_airflow] store``, else ``$PACH_AIRFLOW_STORE`` (``None``: the store's default)."""
    return get("store", fallback=os.environ.get("PACH_AIRFLOW_STORE"))


def runner() -> str:
    from pach_airflow.errors import SpecError

    value = (get("runner", fallback="local") or "local").strip().lower()
    if value not in RUNNERS:
        raise SpecError(f"[pach_airflow] runner: {value!r} is not a runner; use one of {', '.join(RUNNERS)}")
    return value


def poll_interval() -> float:
    value = get("poll_interval")
    return float(value) if value else DEFAULT_POLL_INTERVAL


def max_sets() -> int:
    """The datum-set cap: never more sets than Airflow agrees to map (``[core] max_map_length``)."""
    limit = _conf().getint("core", "max_map_length", fallback=1024)
    value = get("max_sets")
    return max(1, min(int(value), limit) if value else limit)


def aws_connection_env(conn_id: str) -> dict[str, str]:
    """The boto3 environment variables an Airflow ``aws`` connection stands for.

    login/password are the access key pair; ``extra`` may hold ``endpoint_url``, ``region_name``,
    ``aws_session_token`` (the keys the Amazon provider uses).
    """
    from airflow.sdk import BaseHook

    conn = BaseHook.get_connection(conn_id)
    extra: dict[str, Any] = conn.extra_dejson or {}
    env: dict[str, str] = {}
    if conn.login:
        env["AWS_ACCESS_KEY_ID"] = conn.login
    if conn.password:
        env["AWS_SECRET_ACCESS_KEY"] = conn.password
    endpoint = extra.get("endpoint_url") or (extra.get("service_config", {}).get("s3", {}) or {}).get("endpoint_url")
    if endpoint:
        env["AWS_ENDPOINT_URL"] = str(endpoint)
    if extra.get("region_name"):
        env["AWS_DEFAULT_REGION"] = str(extra["region_name"])
    if extra.get("aws_session_token"):
        env["AWS_SESSION_TOKEN"] = str(extra["aws_session_token"])
    return env


def apply_aws_connection() -> None:
    """Export the configured ``aws_conn_id`` connection to this process's boto3 environment.

    Tasks and the triggerer call this before opening an S3 store; without ``aws_conn_id`` boto3's
    standard chain (env, profiles, instance roles) applies unchanged.
    """
    conn_id = get("aws_conn_id")
    if conn_id:
        os.environ.update(aws_connection_env(conn_id))


def open_store(url: str | None = None) -> Store:
    """The store the Airflow side works on: ``url``, else :func:`store_url`, with the S3 connection applied."""
    from pach_airflow.pfs import open_store as _open

    url = url or store_url()
    if url and url.startswith("s3://"):
        apply_aws_connection()
    return _open(url)
