"""CommitTrigger against a real local store: one event per new commit, oldest first; the cursor in the
asset state store means a restart neither loses nor repeats commits. (The triggerer's own state store
is exercised by the standalone tests; here a dict-backed stand-in with the same aget/aset calls.)"""

from __future__ import annotations

import asyncio

import pytest

from pach_airflow.triggers import CURSOR_KEY, CommitTrigger

pytestmark = pytest.mark.airflow


class StateStore:
    """The two calls CommitTrigger makes on Airflow's AssetStateStoreAccessor."""

    def __init__(self):
        self.data: dict[str, object] = {}

    async def aget(self, key, default=None):
        return self.data.get(key, default)

    async def aset(self, key, value):
        self.data[key] = value


async def _collect(trigger: CommitTrigger, count: int, timeout: float = 5.0) -> list[str]:
    """The commits of the next ``count`` events (fewer if the trigger stays quiet for ``timeout``)."""
    out: list[str] = []
    gen = trigger.run()
    try:
        while len(out) < count:
            event = await asyncio.wait_for(gen.__anext__(), timeout)
            assert event.payload["repo"] == trigger.repo and event.payload["branch"] == trigger.branch
            out.append(event.payload["commit"])
    except TimeoutError:
        pass
    finally:
        await gen.aclose()
    return out


def _trigger(url: str, state: StateStore | None) -> CommitTrigger:
    t = CommitTrigger(repo="data", branch="master", store=url, poll_interval=0.05)
    t.asset_state_store = state
    return t


def test_events_per_commit_and_cursor_survives_restart(store_url):
    from pach_airflow.pfs import open_store

    local_store_url = store_url  # each backend in turn: a local folder, then SeaweedFS's S3
    store = open_store(local_store_url)
    state = StateStore()
    # No repo yet: the watcher waits quietly.
    assert asyncio.run(_collect(_trigger(local_store_url, state), 1, timeout=0.5)) == []
    store.create_repo("data")
    old = [store.put_file("data", "master", f"/old{i}", b"x") for i in range(2)]
    # First start: the head only, not the history.
    assert asyncio.run(_collect(_trigger(local_store_url, state), 2, timeout=0.5)) == [old[-1]]
    assert state.data[CURSOR_KEY] == old[-1]

    new = [store.put_file("data", "master", f"/new{i}", b"y") for i in range(3)]
    # A restarted trigger (new instance, same state store) reports exactly the three, oldest first.
    assert asyncio.run(_collect(_trigger(local_store_url, state), 4, timeout=0.5)) == new
    assert asyncio.run(_collect(_trigger(local_store_url, state), 1, timeout=0.3)) == []


def test_commits_arriving_while_watching(local_store_url):
    from pach_airflow.pfs import open_store

    store = open_store(local_store_url)
    store.create_repo("data")
    first = store.put_file("data", "master", "/first", b"0")

    async def scenario():
        trigger = _trigger(local_store_url, StateStore())
        gen = trigger.run()
        made = [first]

        async def writer():
            for i in range(3):
                await asyncio.sleep(0.1)
                made.append(await asyncio.to_thread(store.put_file, "data", "master", f"/f{i}", b"z"))

        task = asyncio.create_task(writer())
        seen = []
        try:
            while len(seen) < 4:
                event = await asyncio.wait_for(gen.__anext__(), 5)
                seen.append(event.payload["commit"])
        finally:
            await gen.aclose()
            await task
        return made, seen

    made, seen = asyncio.run(scenario())
    # Commits that land between two polls may fold; none is lost and the order holds.
    assert seen == made


def test_serialize_round_trip():
    from airflow.sdk.module_loading import import_string

    t = CommitTrigger(repo="images", branch="dev", store="s3://b/p", poll_interval=2.5)
    classpath, kwargs = t.serialize()
    assert classpath == "pach_airflow.triggers.CommitTrigger"
    again = import_string(classpath)(**kwargs)
    assert again.serialize() == (classpath, kwargs)


def test_no_state_store_still_reports(local_store_url):
    from pach_airflow.pfs import open_store

    store = open_store(local_store_url)
    store.create_repo("data")
    head = store.put_file("data", "master", "/a", b"1")
    assert asyncio.run(_collect(_trigger(local_store_url, None), 1, timeout=0.5)) == [head]


def test_s3_store_through_an_airflow_connection(s3_store_url, s3_server, monkeypatch):
    """With ``[pach_airflow] aws_conn_id`` the watcher reaches S3 with the connection's endpoint and keys."""
    import json

    from pach_airflow.pfs import open_store

    store = open_store(s3_store_url)
    store.create_repo("data")
    head = store.put_file("data", "master", "/a", b"1")
    conn = {"conn_type": "aws", "login": s3_server.access_key, "password": s3_server.secret_key,
            "extra": {"endpoint_url": s3_server.endpoint, "region_name": s3_server.region}}
    monkeypatch.setenv("AIRFLOW_CONN_PACH_S3", json.dumps(conn))
    monkeypatch.setenv("AIRFLOW__PACH_AIRFLOW__AWS_CONN_ID", "pach_s3")
    for key in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "wrong" if key != "AWS_ENDPOINT_URL" else "http://127.0.0.1:9")
    assert asyncio.run(_collect(_trigger(s3_store_url, None), 1, timeout=10)) == [head]
