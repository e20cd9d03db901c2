"""The pach_airflow Airflow plugin: commit watching and template macros.

The commit watcher, :class:`pach_airflow.triggers.CommitTrigger`, lives in the installed package, so
every Airflow process (triggerer included) imports it by its classpath; this plugin imports it at
plugin load so that a broken install shows up in ``airflow plugins`` and the triggerer's log at
start, not at the first watch. Macros, in any templated field::

    {{ macros.pach_airflow.store_url() }}          the store the tasks use
    {{ macros.pach_airflow.asset_name("images") }}  "pfs/images@master", the Asset of a repo branch
"""

from __future__ import annotations

from typing import Any, ClassVar

from airflow.plugins_manager import AirflowPlugin

from pach_airflow import airflow_config
from pach_airflow.compiler import asset_name
from pach_airflow.triggers import CommitTrigger


def store_url() -> str:
    return airflow_config.store_url() or ""


class PachAirflowPlugin(AirflowPlugin):
    name = "pach_airflow"
    macros: ClassVar[list[Any]] = [store_url, asset_name]
    #: Not an Airflow attribute: what this plugin makes importable for the triggerer.
    triggers: ClassVar[list[type]] = [CommitTrigger]
