"""Fixtures of the UI tests: a real Airflow auth manager (and its metadata database) in this process,
tokens it signs, and the UI app mounted under ``/pach`` the way Airflow's API server mounts it."""

from __future__ import annotations

import pytest


class Tokens:
    """JWTs signed by Airflow's own auth manager, as its ``/auth/token`` endpoint and login page issue."""

    def __init__(self, auth_manager):
        self.am = auth_manager

    def for_user(self, username: str = "admin", role: str | None = "admin") -> str:
        from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

        return self.am.generate_jwt(SimpleAuthManagerUser(username=username, role=role))

    def expired(self) -> str:
        from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

        return self.am.generate_jwt(SimpleAuthManagerUser(username="admin", role="admin"),
                                    expiration_time_in_seconds=-120)


@pytest.fixture(scope="session")
def tokens(airflow_db) -> Tokens:
    """Airflow's configured auth manager (SimpleAuthManager), initialised as the API server does; the
    migrated metadata database (``airflow_db``, tests/fixtures/airflow.py) holds revoked tokens."""
    from airflow.api_fastapi.app import init_auth_manager

    return Tokens(init_auth_manager())


def mounted(store_url: str | None = None, *, read_dags: bool = False):
    """The UI app inside a parent app under ``/pach``, as ``plugins/pach_airflow_ui.py`` mounts it.
    ``read_dags`` (off by default here) adds the example pipelines of the repo's dags folder."""
    from fastapi import FastAPI

    from pach_airflow.ui.app import create_app

    parent = FastAPI()
    parent.mount("/pach", create_app(store_url, url_prefix="/pach", read_dags=read_dags))
    return parent


@pytest.fixture
def ui_client(tokens, local_store_url):
    """A logged-in client (bearer token of the admin user) of the UI over the test's fresh local store."""
    from fastapi.testclient import TestClient

    with TestClient(mounted(local_store_url), headers={"Authorization": f"Bearer {tokens.for_user()}"}) as c:
        yield c


@pytest.fixture
def anon_client(tokens, local_store_url):
    from fastapi.testclient import TestClient

    with TestClient(mounted(local_store_url), follow_redirects=False) as c:
        yield c
