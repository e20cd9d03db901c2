"""The UI in a real browser: headless Chromium logs in to a real ``airflow standalone`` and finds the
example pipelines' DAGs, a finished run whose mapped tasks are labelled by datum, the repos view with a
commit and its provenance, and the DAG run's output commit; an anonymous request to the plugin is refused.

The standalone runs in a private network namespace (tests/fixtures/airflow.py); Chromium is started in
the same namespace through a small ``nsenter`` wrapper, while Playwright drives it from this process
over its pipe. Screenshots land in the test's tmp_path (kept by pytest for the last runs).
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import shutil
import stat
import time
from urllib.parse import quote, unquote

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
IMAGES = ["circle.pgm", "squares.pgm", "rings.pgm"]

pytestmark = [pytest.mark.airflow, pytest.mark.slow]


def chromium_in(server, tmp_path: pathlib.Path) -> str:
    """An executable that starts Debian's Chromium inside the server's network namespace."""
    wrapper = tmp_path / "chromium-in-netns"
    wrapper.write_text(f'#!/bin/sh\nexec nsenter -t {server.pid} -n {CHROMIUM} "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    return str(wrapper)


def dags_folder(tmp_path: pathlib.Path) -> pathlib.Path:
    """The loader shim and every example spec, as a user's dags/ folder."""
    folder = tmp_path / "dags"
    folder.mkdir()
    shutil.copy(ROOT / "dags" / "pach_airflow_dags.py", folder)
    shutil.copytree(ROOT / "dags" / "examples", folder / "examples")
    return folder


def example_pipelines() -> list[str]:
    from pach_airflow.spec import load_specs

    return sorted(s.pipeline.name for f in (ROOT / "dags" / "examples").rglob("*")
                  if f.suffix in (".json", ".yaml", ".yml") for s in load_specs(f))


def test_ui_in_chromium(airflow_standalone, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    from pach_airflow.pfs import open_store
    from tests.fixtures.cli import Cli
    from tests.ui.test_app import put_images

    if not os.path.exists(CHROMIUM):
        pytest.skip("Debian's chromium is not installed (scripts/setup.sh --test installs it)")
    store_url = "file://" + str(tmp_path / "store")
    pach = Cli(store_url)
    pach("create", "repo", "images", "-d", "sample PGM images")
    t0 = time.monotonic()
    server = airflow_standalone(dags_folder(tmp_path), env={"PACH_AIRFLOW_STORE": store_url})
    timings = {"standalone healthy": time.monotonic() - t0}
    shots = tmp_path / "screenshots"
    shots.mkdir()

    # The plugin's routes refuse a request without Airflow's login, from inside the namespace too.
    code, body = server._http("GET", "/pach/api/repos")
    assert code == 401 and body == {"detail": "Not authenticated"}
    plugins = server.api("GET", "/api/v2/plugins")["plugins"]
    ui = next(p for p in plugins if p["name"] == "pach_airflow_ui")
    assert {v["url_route"] for v in ui["external_views"]} == {"pach", "pach-pipeline", "pach-run", "pach-datums"}

    # A user's commit to the input repo: the commit watcher starts edges, whose output starts montage.
    server.wait_dag("edges")
    server.wait_dag("montage")
    timings["DAGs parsed"] = time.monotonic() - t0
    images_commit = put_images(pach, IMAGES, tmp_path)

    def xcom(run_id: str, key: str):
        """An XCom the run's ``plan`` task pushed (its return value's keys), decoded; None if absent."""
        code, entry = server._http("GET", f"/api/v2/dags/edges/dagRuns/{quote(run_id)}/taskInstances/plan/"
                                          f"xcomEntries/{key}", None, server.token())
        if code != 200 or not isinstance(entry, dict):
            return None
        value = entry.get("value")
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                pass
        return value

    def run_of_the_commit() -> tuple[str, str] | None:
        """The successful edges run whose job read the images commit (a watcher event at start may add
        a run of its own, with no job)."""
        for r in server.dag_runs("edges"):
            job = xcom(r["dag_run_id"], "job_id") if r["state"] == "success" else None
            if not isinstance(job, str) or len(job) != 32:
                continue
            prov = open_store(store_url).inspect_commit("edges", job).provenance
            if any(p["repo"] == "images" and p["id"] == images_commit for p in prov):
                return r["dag_run_id"], job
        return None

    run_id, job_id = server.wait_for(run_of_the_commit, 240, interval=2, what="the edges run of the commit")
    server.wait_runs("montage", 1, timeout=240)
    timings["edges and montage ran"] = time.monotonic() - t0
    # The labels the plan task gave the mapped tasks (map_index_template), from the job's datum sets.
    from pach_airflow import jobs
    from pach_airflow.compiler import set_labels

    store = open_store(store_url)
    set_ids = jobs.inspect_job(store, "edges", job_id).record["set_ids"]
    labels = [s["label"] for s in set_labels(store, "edges", job_id, set_ids)]
    assert sorted(labels) == sorted(f"images:/{n}" for n in IMAGES)  # one datum per set here

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=chromium_in(server, tmp_path), headless=True,
            args=["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"])
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.set_default_timeout(30_000)
        expect.set_options(timeout=30_000)  # two shared cores: the Airflow UI can take a while to render
        try:
            browse(page, server, shots, run_id, job_id, images_commit, labels)
        except BaseException:
            page.screenshot(path=str(shots / "failed.png"), full_page=True)
            raise
        finally:
            browser.close()
    timings["browser done"] = time.monotonic() - t0
    (tmp_path / "summary.json").write_text(json.dumps({"run_id": run_id, "job_id": job_id,
                                                       "screenshots": sorted(os.listdir(shots)), "timings": timings}))
    print("screenshots in", shots, "timings", {k: round(v, 1) for k, v in timings.items()})


def browse(page, server, shots: pathlib.Path, run_id: str, job_id: str, images_commit: str,
           labels: list[str]) -> None:
    """What a person does in the browser, with what the pages must show at each step."""
    from playwright.sync_api import expect

    def shot(name: str) -> None:
        page.screenshot(path=str(shots / f"{name}.png"), full_page=True)

    # Anonymous: the plugin's JSON API answers 401, its page sends the browser to Airflow's login.
    r = page.goto(f"{server.url}/pach/api/repos")
    assert r is not None and r.status == 401 and "Not authenticated" in page.inner_text("body")
    page.goto(f"{server.url}/pach/repos/images")
    expect(page.get_by_text("Sign in").first).to_be_visible()
    assert "/auth/login" in page.url
    shot("01-login")

    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill(server.password())
    page.get_by_role("button", name="Sign in").click()
    # After login the browser comes back to the page it asked for, served by the plugin.
    expect(page.get_by_role("heading", name=re.compile("Repo images"))).to_be_visible()
    assert "sample PGM images" in page.inner_text("body")
    shot("02-after-login-repo-images")

    # The example pipelines' DAGs.
    page.goto(f"{server.url}/dags")
    for name in example_pipelines():
        expect(page.get_by_role("link", name=name, exact=True).first).to_be_visible()
    shot("03-dags")

    # The finished run: its mapped `process` tasks are labelled by their datum's file.
    page.goto(f"{server.url}/dags/edges/runs/{run_id}/tasks/process/mapped")
    for label in labels:
        expect(page.get_by_role("link", name=label, exact=True)).to_be_visible()
    shot("04-mapped-tasks-by-datum")

    # The repos view inside the Airflow UI (nav item "Pachyderm repos").
    page.goto(f"{server.url}/")
    page.get_by_role("link", name="Pachyderm repos").first.click()
    frame = page.frame_locator("iframe").first
    expect(frame.get_by_role("heading", name="Pachyderm repos")).to_be_visible()
    repos = frame.locator("#repos")
    for name in ("images", "edges", "montage"):
        expect(repos.get_by_role("link", name=name, exact=True)).to_be_visible()
    expect(frame.locator("svg.lineage")).to_be_visible()
    shot("05-pachyderm-repos")

    # A commit of the edges repo and its provenance.
    repos.get_by_role("link", name="edges", exact=True).click()
    expect(frame.get_by_role("heading", name=re.compile("Repo edges"))).to_be_visible()
    frame.locator("#commits").get_by_role("link", name=job_id[:12], exact=True).click()
    expect(frame.get_by_role("heading", name=re.compile(f"Commit edges@{job_id}"))).to_be_visible()
    prov = frame.locator("#provenance")
    expect(prov.get_by_role("link", name=images_commit)).to_be_visible()
    expect(prov).to_contain_text("images")
    expect(frame.locator("#made-by")).to_contain_text(f"edges@{job_id[:12]}")
    expect(frame.locator("#dag-run")).to_contain_text(run_id)
    for name in IMAGES:
        expect(frame.locator("#files")).to_contain_text(f"/{name}")
    # The parent page's address follows the frame, so this view can be linked to.
    assert page.url.endswith(f"/plugin/pach/pach/commits/edges/{job_id}")
    shot("06-commit-provenance")

    # From the DAG run to its output commit: the run's "Output commit" tab shows the job.
    page.goto(f"{server.url}/dags/edges/runs/{run_id}/plugin/pach-run")
    frame = page.frame_locator("iframe").first
    expect(frame.get_by_role("heading", name=re.compile(f"Job edges@{job_id}"))).to_be_visible()
    datums = frame.locator("#datums")
    for name in IMAGES:
        expect(datums).to_contain_text(f"images:/{name}")
    expect(datums.locator(".state", has_text="SUCCESS")).to_have_count(3)
    expect(frame.locator("#dag-run").get_by_role("link", name=run_id)).to_be_visible()
    shot("07-run-output-commit")

    # A mapped task's "Datums" tab: the datum of its set, with state and log.
    page.goto(f"{server.url}/dags/edges/runs/{run_id}/tasks/process/mapped/1/plugin/pach-datums")
    frame = page.frame_locator("iframe").first
    expect(frame.locator("#set-note")).to_contain_text("process [1]")
    rows = frame.locator("#datums tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first.locator(".state")).to_have_text("SUCCESS")
    expect(rows.first).to_contain_text("images:/")
    shot("08-task-datums")
    page.goto(f"{server.url}/dags/edges/runs/{run_id}/plugin/pach-run")
    frame = page.frame_locator("iframe").first

    # And back: the commit page's DAG run link opens the run in the Airflow UI (whole window).
    frame.locator("#job").get_by_role("link", name=f"edges@{job_id[:12]}").click()
    frame.locator("#dag-run").get_by_role("link", name=run_id).click()
    page.wait_for_url(lambda url: unquote(url).endswith(f"/dags/edges/runs/{run_id}"))
    expect(page.locator("iframe")).to_have_count(0)  # the Airflow UI's own run page, not the plugin
    expect(page.get_by_text(run_id).first).to_be_visible()
    page.wait_for_load_state("networkidle")
    shot("09-back-to-run")

    # The DAG's "Pachyderm" tab: the pipeline with its jobs and lineage.
    page.goto(f"{server.url}/dags/montage/plugin/pach-pipeline")
    frame = page.frame_locator("iframe").first
    expect(frame.get_by_role("heading", name=re.compile("Pipeline montage"))).to_be_visible()
    expect(frame.locator("#jobs .state", has_text="SUCCESS").first).to_be_visible()
    shot("10-pipeline-tab")

    # The pipeline's output file, straight from its commit.
    r = page.goto(f"{server.url}/pach/files/montage/master/montage.png")
    assert r is not None and r.status == 200 and r.headers["content-type"] == "image/png"
    shot("11-montage-png")
