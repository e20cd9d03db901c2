"""Login for the UI: the same JWT the Airflow UI uses, checked by Airflow's own code.

Airflow 3.3 serves a plugin's FastAPI app without any authentication, so the app checks it itself on every
route. It asks Airflow's ``get_user`` (``airflow.api_fastapi.core_api.security``), which takes an
``Authorization: Bearer`` token first and else the UI's ``_token`` cookie, validates the JWT with the
configured auth manager (signature, expiry, revocation) and honours the user the API server's
``JWTRefreshMiddleware`` already resolved. On top of being logged in, the user must be allowed to read
DAGs (``is_authorized_dag(method="GET")``), since repos, commits and jobs are pipeline data; pages about one
pipeline also check that pipeline's DAG.

Without a login, API routes answer 401 (JSON) and pages redirect to the auth manager's login page. If the
auth manager is not initialised (the app runs outside Airflow's API server) every request is refused: the
check fails closed.
"""

from __future__ import annotations

from typing import Any

from fastapi import HTTPException, Request
from starlette import status


class LoginRequired(Exception):
    """No valid Airflow login on the request; ``status_code`` and ``detail`` say why."""

    def __init__(self, status_code: int, detail: str):
        super().__init__(detail)
        self.status_code = status_code
        self.detail = detail


def _auth_manager() -> Any:
    from airflow.api_fastapi.app import get_auth_manager

    try:
        return get_auth_manager()
    except RuntimeError as exc:  # not inside the API server, or before it initialised
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE,
                            "Airflow's auth manager is not initialised: serve this app from Airflow's API "
                            f"server (plugins/pach_airflow_ui.py) ({exc})") from exc


async def current_user(request: Request) -> Any:
    """FastAPI dependency: the logged-in Airflow user allowed to read DAGs, else :class:`LoginRequired`
    (no or bad login) or 403 (logged in, not allowed)."""
    from airflow.api_fastapi.core_api.security import get_user
    from fastapi.security import HTTPAuthorizationCredentials

    am = _auth_manager()
    creds = None
    header = request.headers.get("authorization")
    if header:
        scheme, _, token = header.partition(" ")
        creds = HTTPAuthorizationCredentials(scheme=scheme, credentials=token.strip())
    try:
        user = await get_user(request, None, creds)
    except HTTPException as exc:
        # 401 (no token, expired) and 403 (a token that does not validate) both mean: log in again.
        raise LoginRequired(exc.status_code, str(exc.detail)) from exc
    if not am.is_authorized_dag(method="GET", user=user):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "this Airflow user may not read DAGs")
    request.state.pach_user = user
    return user


def authorize_dag(request: Request, dag_id: str) -> None:
    """403 unless the logged-in user may read the DAG ``dag_id`` (a pipeline's DAG id is its name)."""
    from airflow.api_fastapi.auth.managers.models.resource_details import DagDetails

    user = getattr(request.state, "pach_user", None)
    if user is None:
        raise LoginRequired(status.HTTP_401_UNAUTHORIZED, "Not authenticated")
    if not _auth_manager().is_authorized_dag(method="GET", user=user, details=DagDetails(id=dag_id)):
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"this Airflow user may not read DAG {dag_id!r}")


def login_url(next_url: str) -> str:
    """The auth manager's login page, coming back to ``next_url`` afterwards."""
    return _auth_manager().get_url_login(next_url=next_url)


def user_name(request: Request) -> str:
    user = getattr(request.state, "pach_user", None)
    if user is None:
        return ""
    get_name = getattr(user, "get_name", None)
    return str(get_name() if callable(get_name) else getattr(user, "username", ""))
