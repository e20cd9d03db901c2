"""The Airflow plugin file: what it registers, and that every view it adds lands on a route of the app."""

from __future__ import annotations

import importlib.util
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[2]


def load_plugin():
    spec = importlib.util.spec_from_file_location("pach_airflow_ui", ROOT / "plugins" / "pach_airflow_ui.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.PachAirflowUiPlugin


def test_plugin_mounts_the_app_and_adds_views(tokens):
    from airflow.api_fastapi.app import RESERVED_URL_PREFIXES
    from airflow.plugins_manager import AirflowPlugin
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    plugin = load_plugin()
    assert issubclass(plugin, AirflowPlugin) and plugin.name == "pach_airflow_ui"
    [entry] = plugin.fastapi_apps
    assert entry["url_prefix"] == "/pach"
    assert not any(entry["url_prefix"].startswith(p) for p in RESERVED_URL_PREFIXES)
    views = {v["url_route"]: v for v in plugin.external_views}
    assert views["pach"]["name"] == "Pachyderm repos" and views["pach"]["destination"] == "nav"
    assert {v["destination"] for v in views.values()} == {"nav", "dag", "dag_run", "task_instance"}

    # Every view's address, placeholders filled as the Airflow UI fills them, reaches a route of the app
    # (404 here means "no such job/pipeline in this empty store", never "no such route").
    parent = FastAPI()
    parent.mount(entry["url_prefix"], entry["app"])
    with TestClient(parent, headers={"Authorization": f"Bearer {tokens.for_user()}"},
                    follow_redirects=False) as c:
        for view in views.values():
            href = (view["href"].replace("{DAG_ID}", "edges").replace("{RUN_ID}", "manual__1")
                    .replace("{TASK_ID}", "process").replace("{MAP_INDEX}", "0"))
            r = c.get(href, headers={"Accept": "text/html"})
            assert r.status_code in (200, 303, 404), (href, r.status_code)
            assert "<html" in r.text and "pach_airflow" in r.text, href
        icon = c.get(views["pach"]["icon"])
        assert icon.status_code == 200 and icon.headers["content-type"].startswith("image/svg+xml")
