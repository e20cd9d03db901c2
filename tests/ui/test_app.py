"""The UI app over a real local store: repos, commits with provenance, jobs with datums, lineage, as
JSON and as pages. Data is made the way users make it (the store's commits, ``pach-airflow run
pipeline`` running the example specs on the local runner); requests carry a JWT that Airflow's own
auth manager signed."""

from __future__ import annotations

import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
OPENCV = ROOT / "dags" / "examples" / "opencv"


def sample_images(tmp_path: pathlib.Path) -> pathlib.Path:
    """The example images (examples/sample_data.py), made once per folder."""
    data = tmp_path / "sample"
    if not data.exists():
        subprocess.run([sys.executable, str(ROOT / "examples" / "sample_data.py"), str(data)], check=True,
                       capture_output=True)
    return data / "images"


def put_images(pach, names: list[str], tmp_path: pathlib.Path) -> str:
    """Commit sample images to images@master in one commit, as a user does with the CLI; returns its id."""
    images = sample_images(tmp_path)
    if pach("inspect", "repo", "images", check=False).code != 0:
        pach("create", "repo", "images", "-d", "sample PGM images")
    pach("start", "commit", "images@master", "-m", f"add {', '.join(names)}")
    for n in names:
        pach("put", "file", f"images@master:/{n}", "-f", str(images / n))
    pach("finish", "commit", "images@master")
    return pach("inspect", "commit", "images@master", "-o", "json").json_lines()[0]["id"]


@pytest.fixture(scope="module")
def opencv(tmp_path_factory) -> dict:
    """images (2 commits) → edges → montage, both pipelines run twice by ``pach-airflow run pipeline``;
    one store for the module's read-only tests."""
    from tests.fixtures.cli import Cli

    tmp = tmp_path_factory.mktemp("opencv")
    url = "file://" + str(tmp / "store")
    pach = Cli(url)
    first = put_images(pach, ["circle.pgm", "squares.pgm"], tmp)
    pach("run", "pipeline", "-f", str(OPENCV / "edges.yaml"))
    pach("run", "pipeline", "-f", str(OPENCV / "montage.yaml"))
    second = put_images(pach, ["rings.pgm"], tmp)
    edges_job = pach("run", "pipeline", "edges").out.split()[-1]
    montage_job = pach("run", "pipeline", "montage").out.split()[-1]
    return {"url": url, "images": [first, second], "edges_job": edges_job, "montage_job": montage_job}


@pytest.fixture
def client(tokens, opencv):
    from fastapi.testclient import TestClient

    from tests.ui.conftest import mounted

    with TestClient(mounted(opencv["url"]), headers={"Authorization": f"Bearer {tokens.for_user()}"}) as c:
        yield c


def test_repos_api(client, opencv):
    repos = {r["name"]: r for r in client.get("/pach/api/repos").json()}
    assert set(repos) == {"images", "edges", "montage"}
    assert repos["images"]["pipeline"] is False and repos["edges"]["pipeline"] is True
    assert repos["images"]["branches"] == ["master"]
    assert repos["images"]["size_bytes"] > 3 * 9000  # three 96x96 PGM images


def test_commits_api_has_origin_size_provenance_and_job(client, opencv):
    images = client.get("/pach/api/repos/images/commits").json()
    assert [c["id"] for c in images] == opencv["images"][::-1]  # newest first
    assert all(c["origin"] == "USER" and c["job"] is None and c["provenance"] == [] for c in images)
    assert images[0]["file_count"] == 3 and images[1]["file_count"] == 2

    edges = client.get("/pach/api/repos/edges/commits", params={"branch": "master"}).json()
    newest = edges[0]
    assert newest["id"] == opencv["edges_job"]
    assert newest["origin"] == "AUTO" and newest["branch"] == "master"
    assert newest["job"] == {"pipeline": "edges", "id": opencv["edges_job"]}
    assert newest["provenance"] == [{"repo": "images", "branch": "master", "id": opencv["images"][1]}]
    assert newest["size_bytes"] > 0 and newest["file_count"] == 3


def test_commit_api_checks_provenance_and_finds_subvenance(client, opencv):
    c = client.get(f"/pach/api/commits/edges/{opencv['edges_job']}").json()
    assert c["provenance"][0]["exists"] is True and c["provenance"][0]["origin"] == "USER"
    assert [f["path"] for f in c["files"]] == ["/circle.pgm", "/rings.pgm", "/squares.pgm"]
    assert c["job"]["state"] == "JOB_SUCCESS" and c["job"]["data_processed"] == 1
    assert c["job"]["data_skipped"] == 2
    assert c["subvenance"] == [{"repo": "montage", "branch": "master", "id": opencv["montage_job"]}]
    # A branch name is a ref too.
    assert client.get("/pach/api/commits/edges/master").json()["id"] == opencv["edges_job"]
    # The input commit's downstream commits.
    img = client.get(f"/pach/api/commits/images/{opencv['images'][1]}").json()
    assert {(s["repo"], s["id"]) for s in img["subvenance"]} == {
        ("edges", opencv["edges_job"]), ("montage", opencv["montage_job"])}


def test_job_api_lists_every_datum_with_state(client, opencv):
    job = client.get(f"/pach/api/jobs/edges/{opencv['edges_job']}").json()
    assert job["state"] == "JOB_SUCCESS" and job["data_total"] == 3
    assert job["input_commits"] == [{"repo": "images", "branch": "master", "id": opencv["images"][1]}]
    assert job["output_commit"]["id"] == opencv["edges_job"]
    assert job["datum_counts"] == {"SKIPPED": 2, "SUCCESS": 1}
    by_path = {d["files"][0]["path"]: d for d in job["datums"]}
    assert set(by_path) == {"/circle.pgm", "/rings.pgm", "/squares.pgm"}
    ran = by_path["/rings.pgm"]
    assert ran["state"] == "SUCCESS" and ran["set"] == "0" and ran["outputs"] == 1 and ran["tries"] == 1
    assert ran["duration"] is not None and ran["duration"] >= 0
    skipped = by_path["/circle.pgm"]
    assert skipped["state"] == "SKIPPED" and skipped["set"] is None
    first_job = client.get("/pach/api/jobs", params={"pipeline": "edges"}).json()[-1]
    assert skipped["processed_by"] == first_job["id"]
    assert client.get(f"/pach/api/jobs/edges/{opencv['edges_job']}/datums").json() == job["datums"]


def test_failed_datum_shows_failed_with_log(ui_client, pach, tmp_path):
    put_images(pach, ["circle.pgm", "squares.pgm"], tmp_path)
    spec = tmp_path / "picky.yaml"
    spec.write_text(
        "pipeline: {name: picky}\n"
        "transform:\n  cmd: [sh, -c, 'echo looking at /pfs/images/*; if ls /pfs/images | grep -q circle; "
        "then echo no circles please >&2; exit 3; fi; cp /pfs/images/* /pfs/out/']\n"
        "datum_tries: 2\n"
        "input: {pfs: {repo: images, glob: /*}}\n")
    res = pach("run", "pipeline", "-f", str(spec), check=False)
    assert res.code == 1
    job_id = res.out.split()[-1]
    job = ui_client.get(f"/pach/api/jobs/picky/{job_id}").json()
    assert job["state"] == "JOB_FAILURE" and job["data_failed"] == 1
    failed = [d for d in job["datums"] if d["state"] == "FAILED"]
    assert len(failed) == 1 and failed[0]["tries"] == 2
    assert "no circles please" in failed[0]["log"]
    page = ui_client.get(f"/pach/jobs/picky/{job_id}")
    assert page.status_code == 200
    assert "no circles please" in page.text and ">FAILED<" in page.text
    commit = ui_client.get(f"/pach/api/commits/picky/{job_id}").json()
    assert commit["error"]
    nodes = {n["id"]: n for n in ui_client.get("/pach/api/lineage").json()["nodes"]}
    assert nodes["pipeline:picky"]["state"] == "JOB_FAILURE"
    assert 'class="node pipeline st-failure"' in ui_client.get("/pach/lineage").text


def test_lineage_api(client, opencv):
    g = client.get("/pach/api/lineage").json()
    assert {(e["source"], e["target"]) for e in g["edges"]} == {
        ("repo:images", "pipeline:edges"), ("pipeline:edges", "repo:edges"),
        ("repo:images", "pipeline:montage"), ("repo:edges", "pipeline:montage"),
        ("pipeline:montage", "repo:montage")}
    svg = client.get("/pach/api/lineage", params={"format": "svg"})
    assert svg.headers["content-type"].startswith("image/svg+xml") and "montage" in svg.text


def test_pipelines_api(client, opencv):
    rows = {p["name"]: p for p in client.get("/pach/api/pipelines").json()}
    assert set(rows) == {"edges", "montage"}
    assert rows["montage"]["inputs"] == ["edges", "images"]
    assert rows["edges"]["last_job"]["id"] == opencv["edges_job"]
    p = client.get("/pach/api/pipelines/edges").json()
    assert p["spec"]["transform"]["cmd"] == ["python3", "-"] and len(p["jobs"]) == 2


def test_not_found_and_bad_names(client, opencv):
    r = client.get("/pach/api/repos/nope")
    assert r.status_code == 404 and "nope" in r.json()["detail"]
    r = client.get("/pach/repos/nope", headers={"Accept": "text/html"})
    assert r.status_code == 404 and "nope" in r.text and "<html" in r.text
    assert client.get("/pach/api/jobs/edges/ffffffffffffffffffffffffffffffff").status_code == 404
    assert client.get("/pach/api/commits/edges/ffffffffffffffffffffffffffffffff").status_code == 404
    assert client.get("/pach/api/repos/bad%20name").status_code in (400, 404)
    r = client.get("/pach/pipelines/some_other_dag", headers={"Accept": "text/html"})
    assert r.status_code == 404 and "not a pach_airflow pipeline" in r.text


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_pages_show_repos_commits_provenance_jobs(client, opencv):
    html = client.get("/pach/").text
    assert 'href="/pach/static/pach.css"' in html and "<svg" in html
    text = _text(html)
    for name in ("images", "edges", "montage", "pipeline output", "SUCCESS"):
        assert name in text

    text = _text(client.get("/pach/repos/edges").text)
    assert opencv["edges_job"][:12] in text and "AUTO" in text and "images@master=" in text

    html = client.get(f"/pach/commits/edges/{opencv['edges_job']}").text
    text = _text(html)
    assert "Provenance" in text and opencv["images"][1] in text and "/rings.pgm" in text
    assert f'href="/pach/commits/images/{opencv["images"][1]}"' in html
    assert f'href="/pach/jobs/edges/{opencv["edges_job"]}"' in html
    assert f"montage@master={opencv['montage_job'][:12]}" in text  # subvenance

    html = client.get(f"/pach/jobs/edges/{opencv['edges_job']}").text
    text = _text(html)
    assert "SKIPPED" in text and "images:/rings.pgm" in text and "processed" in text

    text = _text(client.get("/pach/pipelines/montage").text)
    assert "Jobs" in text and opencv["montage_job"][:12] in text and "python3" in text

    text = _text(client.get("/pach/jobs").text)
    assert text.count("SUCCESS") == 4 and "1 + 2 / 3" in text and "2 + 0 / 2" in text
    text = _text(client.get("/pach/jobs", params={"pipeline": "montage"}).text)
    assert text.count("SUCCESS") == 2 and "edges@master=" in text and "Jobs of montage" in text
    assert f"edges@{opencv['edges_job'][:12]} SUCCESS" not in text
    html = client.get("/pach/repos/images", params={"limit": 1}).text
    assert "Older commits" in html and opencv["images"][0][:12] not in html

    html = client.get("/pach/lineage").text
    assert 'href="/pach/pipelines/montage"' in html and 'href="/pach/repos/images"' in html


def test_run_page_without_airflow_run_says_so(client, opencv):
    r = client.get("/pach/runs/edges/manual__nothing", headers={"Accept": "text/html"},
                      follow_redirects=False)
    assert r.status_code == 404 and "no pach_airflow job recorded" in r.text
    assert client.get("/pach/api/runs/edges/manual__nothing").status_code == 404


def test_empty_store(ui_client):
    assert ui_client.get("/pach/api/repos").json() == []
    assert ui_client.get("/pach/api/lineage").json() == {"nodes": [], "edges": []}
    text = _text(ui_client.get("/pach/").text)
    assert "No repos yet" in text and "No repos or pipelines yet" in text


def test_pipelines_of_the_dags_folder_show_before_their_first_job(tokens, local_store_url):
    from fastapi.testclient import TestClient

    from pach_airflow import loader
    from tests.ui.conftest import mounted

    names = sorted(n for n in loader.iter_pipeline_names(ROOT / "dags"))
    assert "edges" in names and "montage" in names
    with TestClient(mounted(local_store_url, read_dags=True),
                    headers={"Authorization": f"Bearer {tokens.for_user()}"}) as c:
        rows = c.get("/pach/api/pipelines").json()
        assert sorted(r["name"] for r in rows) == names
        assert {r["state"] for r in rows} == {"NO JOB YET"} and all(r["last_job"] is None for r in rows)
        nodes = {n["id"] for n in c.get("/pach/api/lineage").json()["nodes"]}
        assert {"repo:images", "pipeline:edges", "repo:edges", "pipeline:montage"} <= nodes
        assert "NO JOB YET" in c.get("/pach/pipelines/edges").text


def test_static_files(ui_client):
    js = ui_client.get("/pach/static/pach.js")
    assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
    assert "pushState" in js.text
    assert ui_client.get("/pach/static/icon.svg").text.startswith("<svg")
    assert ui_client.get("/pach/static/..%2Fapp.py").status_code == 404
    assert ui_client.get("/pach/static/nope.css").status_code == 404


def test_files_are_served_safely(client, opencv, ui_client, pach, tmp_path):
    png = client.get(f"/pach/files/montage/{opencv['montage_job']}/montage.png")
    assert png.status_code == 200 and png.content.startswith(b"\x89PNG")
    assert png.headers["content-type"] == "image/png"
    assert png.headers["content-disposition"].startswith("inline")
    assert png.headers["x-content-type-options"] == "nosniff"
    assert "sandbox" in png.headers["content-security-policy"]
    pgm = client.get("/pach/files/edges/master/rings.pgm")
    assert pgm.content.startswith(b"P5 96 96 255\n")
    assert pgm.headers["content-type"] == "application/octet-stream"
    assert pgm.headers["content-disposition"] == "attachment; filename*=UTF-8''rings.pgm"
    assert f'href="/pach/files/edges/{opencv["edges_job"]}/rings.pgm"' in \
        client.get(f"/pach/commits/edges/{opencv['edges_job']}").text

    pach("create", "repo", "web")
    pach("put", "file", "web@master:/a page.html", "-f", "-", stdin="<script>alert(1)</script>")
    pach("put", "file", "web@master:/notes/readme.txt", "-f", "-", stdin="hello\n")
    html = ui_client.get("/pach/files/web/master/a%20page.html")
    assert html.headers["content-type"] == "application/octet-stream"  # never rendered as HTML
    assert html.headers["content-disposition"] == "attachment; filename*=UTF-8''a%20page.html"
    txt = ui_client.get("/pach/files/web/master/notes/readme.txt")
    assert txt.text == "hello\n" and txt.headers["content-type"] == "text/plain; charset=utf-8"
    assert ui_client.get("/pach/files/web/master/notes").status_code == 400
    assert ui_client.get("/pach/files/web/master/nope.txt").status_code == 404


def test_whole_datum_log(client, opencv):
    job = client.get(f"/pach/api/jobs/edges/{opencv['edges_job']}").json()
    ran = next(d for d in job["datums"] if d["state"] == "SUCCESS")
    log = client.get(f"/pach/jobs/edges/{opencv['edges_job']}/logs/{ran['id']}")
    assert log.status_code == 200 and log.headers["content-type"].startswith("text/plain")
    assert log.text == ran["log"]
    skipped = next(d for d in job["datums"] if d["state"] == "SKIPPED")
    r = client.get(f"/pach/jobs/edges/{opencv['edges_job']}/logs/{skipped['id']}")
    assert r.status_code == 404 and "skipped" in r.json()["detail"]
    page = client.get(f"/pach/jobs/edges/{opencv['edges_job']}").text
    assert f"/logs/{ran['id']}" in page
    assert 'http-equiv="refresh"' not in page  # the job has ended: nothing to follow


def test_running_job_page_follows_the_job(ui_client, pach, local_store_url, tmp_path):
    from pach_airflow import jobs
    from pach_airflow.pfs import open_store
    from pach_airflow.spec import load_specs

    put_images(pach, ["circle.pgm", "squares.pgm"], tmp_path)
    planned = jobs.plan_job(open_store(local_store_url), load_specs(OPENCV / "edges.yaml")[0])
    job = ui_client.get(f"/pach/api/jobs/edges/{planned.job_id}").json()
    assert job["state"] == "JOB_RUNNING"
    assert [d["state"] for d in job["datums"]] == ["STARTING", "STARTING"]
    page = ui_client.get(f"/pach/jobs/edges/{planned.job_id}").text
    assert '<meta http-equiv="refresh" content="5">' in page and ">RUNNING<" in page


def test_same_views_over_s3(tokens, store_url, any_pach, tmp_path):
    """Repos, commits with provenance and a job's datums read the same from S3 (SeaweedFS) as from a folder."""
    from fastapi.testclient import TestClient

    from tests.ui.conftest import mounted

    commit = put_images(any_pach, ["circle.pgm", "squares.pgm"], tmp_path)
    job_id = any_pach("run", "pipeline", "-f", str(OPENCV / "edges.yaml")).out.split()[-1]
    with TestClient(mounted(store_url), headers={"Authorization": f"Bearer {tokens.for_user()}"}) as c:
        assert [r["name"] for r in c.get("/pach/api/repos").json()] == ["edges", "images"]
        out = c.get(f"/pach/api/commits/edges/{job_id}").json()
        assert out["provenance"][0]["id"] == commit and out["provenance"][0]["exists"] is True
        job = c.get(f"/pach/api/jobs/edges/{job_id}").json()
        assert job["datum_counts"] == {"SUCCESS": 2}
        assert c.get(f"/pach/files/edges/{job_id}/circle.pgm").content.startswith(b"P5 ")
        assert "images@master=" in c.get("/pach/repos/edges").text


def test_store_is_resolved_at_request_time(tokens, pach, tmp_path, monkeypatch):
    """Without a pinned URL the app reads the store setting on each request, as tasks do."""
    from fastapi.testclient import TestClient

    from tests.ui.conftest import mounted

    pach("create", "repo", "first")
    with TestClient(mounted(None), headers={"Authorization": f"Bearer {tokens.for_user()}"}) as c:
        monkeypatch.setenv("PACH_AIRFLOW_STORE", pach.store_url)
        assert [r["name"] for r in c.get("/pach/api/repos").json()] == ["first"]
        other = "file://" + str(tmp_path / "other-store")
        from tests.fixtures.cli import Cli

        Cli(other)("create", "repo", "second")
        monkeypatch.setenv("PACH_AIRFLOW_STORE", other)
        assert [r["name"] for r in c.get("/pach/api/repos").json()] == ["second"]
        monkeypatch.setenv("AIRFLOW__PACH_AIRFLOW__STORE", pach.store_url)  # airflow.cfg's setting wins
        assert [r["name"] for r in c.get("/pach/api/repos").json()] == ["first"]
