"""The worker: stage a datum set, run the per-datum shim, upload the results. Shared by every runner.

* :func:`stage_set` (``worker stage``): inputs, env files, busybox, ``shim.sh`` into a work folder;
* ``WORK/bin/busybox sh WORK/shim.sh``: the per-datum loop (:mod:`pach_airflow.worker.shim`), run in the
  user's container or the local runner's namespace;
* :func:`upload_set` (``worker upload [--wait]``): outputs, logs, states → ``results/<set>``.

The work folder's layout is in :mod:`pach_airflow.worker.workdir` and ``docs/architecture.md``.
"""

from __future__ import annotations

from pach_airflow.worker.shim import ShimConfig, render_shim, shim_config, timeout_seconds
from pach_airflow.worker.stage import datum_env, find_busybox, load_set, stage_set
from pach_airflow.worker.upload import collect_results, upload_set, wait_done
from pach_airflow.worker.workdir import DatumDir, WorkDir, format_env_file, parse_env_file

__all__ = [
    "DatumDir",
    "ShimConfig",
    "WorkDir",
    "collect_results",
    "datum_env",
    "find_busybox",
    "format_env_file",
    "load_set",
    "parse_env_file",
    "render_shim",
    "shim_config",
    "stage_set",
    "timeout_seconds",
    "upload_set",
    "wait_done",
]
