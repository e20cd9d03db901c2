"""Every route of the UI needs the Airflow login: proved with tokens Airflow's own auth manager signs.

Airflow 3.3 serves plugin FastAPI apps without authentication, so these tests are what stands between
the store's data and an anonymous visitor.
"""

from __future__ import annotations

import pytest

from tests.ui.conftest import mounted

# Every route the app has, with path parameters filled in; a new route must be added here.
ROUTES = [
    "/pach/", "/pach/lineage", "/pach/repos/images", "/pach/commits/images/master",
    "/pach/pipelines/edges", "/pach/jobs", "/pach/jobs/edges/0123456789abcdef0123456789abcdef",
    "/pach/runs/edges/manual__2026", "/pach/runs/edges/manual__2026/tasks/process/0", "/pach/static/pach.css",
    "/pach/api/repos", "/pach/api/repos/images", "/pach/api/repos/images/commits",
    "/pach/api/commits/images/master", "/pach/api/pipelines", "/pach/api/pipelines/edges", "/pach/api/jobs",
    "/pach/api/jobs/edges/0123456789abcdef0123456789abcdef",
    "/pach/api/jobs/edges/0123456789abcdef0123456789abcdef/datums", "/pach/api/runs/edges/manual__2026",
    "/pach/api/lineage", "/pach/files/images/master/circle.pgm",
    "/pach/jobs/edges/0123456789abcdef0123456789abcdef/logs/abc",
]


def test_every_route_is_listed_here():
    from fastapi.routing import APIRoute

    from pach_airflow.ui.app import create_app

    app_paths = {r.path for r in create_app().routes if isinstance(r, APIRoute)}
    covered = set()
    for path in app_paths:
        parts = path.strip("/").split("/")
        for route in ROUTES:
            got = route.removeprefix("/pach").strip("/").split("/")
            if len(got) == len(parts) and all(p.startswith("{") or p == g for p, g in zip(parts, got)):
                covered.add(path)
    assert covered == app_paths
    # FastAPI's own docs routes would bypass the app's dependencies: they must not exist.
    assert not {"/docs", "/openapi.json", "/api/docs", "/api/openapi.json"} & app_paths


@pytest.mark.parametrize("path", ROUTES)
def test_anonymous_request_is_refused(anon_client, path):
    r = anon_client.get(path)
    assert r.status_code == 401, r.text
    assert r.json() == {"detail": "Not authenticated"}
    assert r.headers["www-authenticate"] == "Bearer"


def test_anonymous_browser_is_sent_to_airflow_login(anon_client):
    r = anon_client.get("/pach/repos/images", headers={"Accept": "text/html,application/xhtml+xml"})
    assert r.status_code == 303
    assert r.headers["location"].startswith("/auth/login")
    assert "next=%2Fpach%2Frepos%2Fimages" in r.headers["location"]
    # The JSON API never redirects, whatever the client accepts.
    r = anon_client.get("/pach/api/repos", headers={"Accept": "text/html"})
    assert r.status_code == 401


def test_bad_tokens_are_refused(anon_client, tokens):
    for bad in ("not-a-jwt", tokens.for_user()[:-4] + "AAAA", tokens.expired()):
        r = anon_client.get("/pach/api/repos", headers={"Authorization": f"Bearer {bad}"})
        assert r.status_code in (401, 403), (bad, r.status_code, r.text)
        anon_client.cookies.set("_token", bad)
        r = anon_client.get("/pach/api/repos")
        anon_client.cookies.clear()
        assert r.status_code in (401, 403), (bad, r.status_code, r.text)


def test_user_without_permission_is_forbidden(anon_client, tokens):
    # SimpleAuthManager: a user with no role may not read DAGs, so not pipeline data either.
    token = tokens.for_user("nobody", role=None)
    r = anon_client.get("/pach/static/pach.css", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 403
    assert "may not read DAGs" in r.json()["detail"]


def test_logged_in_with_bearer_or_ui_cookie(anon_client, tokens):
    token = tokens.for_user()
    r = anon_client.get("/pach/static/pach.css", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200 and "svg.lineage" in r.text
    # The Airflow UI keeps its JWT in the ``_token`` cookie; an iframe of the UI sends just that.
    anon_client.cookies.set("_token", token)
    r = anon_client.get("/pach/static/icon.svg")
    anon_client.cookies.clear()
    assert r.status_code == 200 and r.text.startswith("<svg")
    # A viewer may read too.
    r = anon_client.get("/pach/static/pach.css",
                        headers={"Authorization": f"Bearer {tokens.for_user('vera', role='viewer')}"})
    assert r.status_code == 200


def test_outside_airflow_the_app_fails_closed(monkeypatch, local_store_url):
    from airflow.api_fastapi import app as airflow_app
    from fastapi.testclient import TestClient

    monkeypatch.setattr(airflow_app._AuthManagerState, "instance", None)
    with TestClient(mounted(local_store_url)) as c:
        r = c.get("/pach/api/repos", headers={"Authorization": "Bearer whatever"})
    assert r.status_code == 503
    assert "auth manager is not initialised" in r.json()["detail"]
