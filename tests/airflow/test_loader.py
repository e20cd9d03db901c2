"""Spec files become DAGs: a DagBag over a dags folder with the shipped examples, a broken spec, files
that are not specs; DAG shape (tasks, mapping, docs, tags, params, schedule, watchers); the CLI's
install/remove helpers. Parse-level tests: nothing runs, nothing touches a store."""

from __future__ import annotations

from pathlib import Path

import pytest

from pach_airflow import loader
from pach_airflow.errors import NotFound, SpecError

pytestmark = pytest.mark.airflow

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted(p.relative_to(ROOT / "dags" / "examples").as_posix()
                  for p in (ROOT / "dags" / "examples").rglob("*") if p.suffix in (".yaml", ".yml", ".json"))

BROKEN = """
pipeline:
  name: broken
transform:
  cmd: ["sh"]
input:
  pfs:
    repo: data
"""

CRON_AND_REPO = """
pipeline:
  name: ticker
parallelism_spec:
  constant: 3
transform:
  cmd: ["sh", "-c", "ls /pfs > /pfs/out/x"]
input:
  cross:
    - cron: {name: tick, spec: "@every 30s", overwrite: true}
    - pfs: {repo: data, glob: "/"}
"""


def _assets(dag) -> dict[str, list[str]]:
    """Asset name → watcher names of a DAG's schedule."""
    cond = getattr(dag.timetable, "asset_condition", None)
    if cond is None:
        return {}
    return {a.name: [w.name for w in a.watchers] for a in cond.objects}


def test_examples_load_and_broken_spec_is_visible(airflow_dags):
    for rel in EXAMPLES:
        airflow_dags.add_example(rel)
    airflow_dags.add_spec(BROKEN, "team/broken.yaml")
    airflow_dags.add_spec("kind: not-a-pipeline\nvalues: [1, 2]\n", "team/values.yaml")
    airflow_dags.add_spec('{"just": "json"}', "team/data.json")
    bag = airflow_dags.dagbag()

    assert bag.import_errors == {}
    assert len(EXAMPLES) >= 5
    names = {n for rel in EXAMPLES for n in loader.read_spec_file(ROOT / "dags/examples" / rel, rel).names}
    assert names <= set(bag.dag_ids)
    for name in names:
        dag = bag.dags[name]
        assert "invalid-spec" not in dag.tags, dag.doc_md
        assert {"plan", "process", "finish", "has_backlog", "next_job"} == set(dag.task_ids)
        assert dag.max_active_runs == 1
        assert dag.is_paused_upon_creation is False  # a pipeline runs once created, as in Pachyderm
        assert "pipeline" in dag.tags
        assert "commits" in dag.params
        assert f"name: {name}" in dag.doc_md and "```yaml" in dag.doc_md
    # The broken spec is a placeholder DAG named after its pipeline, whose docs name file and field.
    broken = bag.dags["broken"]
    assert broken.tags == {"invalid-spec"}
    assert "team/broken.yaml: pipeline broken: input.pfs.glob: field required" in broken.doc_md
    assert type(broken.timetable).__name__ == "NullTimetable"
    assert list(broken.task_ids) == ["invalid_spec"]
    # Files that are not pipeline specs are no DAGs at all.
    assert not [d for d in bag.dag_ids if "values" in d or "data.json" in d]


def test_broken_spec_task_fails_with_the_problems(airflow_dags):
    airflow_dags.add_spec("pipeline: {name: 'bad name!'}\n: : :\n", "garbled.yaml")
    airflow_dags.add_spec(BROKEN, "broken.yaml")
    bag = airflow_dags.dagbag()
    assert bag.import_errors == {}
    garbled = [d for d in bag.dag_ids if d.startswith("invalid_spec__")]
    assert garbled == ["invalid_spec__garbled.yaml"]
    run = bag.dags["broken"].test()
    assert run.state == "failed"


def test_duplicate_pipeline_names(airflow_dags):
    airflow_dags.add_spec(BROKEN.replace("repo: data", "repo: data\n    glob: /"), "a.yaml")
    airflow_dags.add_spec(BROKEN.replace("repo: data", "repo: other\n    glob: /"), "b.yaml")
    bag = airflow_dags.dagbag()
    assert "broken" in bag.dag_ids and "invalid-spec" not in bag.dags["broken"].tags
    dup = [d for d in bag.dag_ids if d.startswith("invalid_spec__b.yaml")]
    assert len(dup) == 1 and "a.yaml defines it already" in bag.dags[dup[0]].doc_md


def test_schedule_watchers_assets_and_cron(airflow_dags):
    from airflow.serialization.serialized_objects import DagSerialization

    for rel in ("opencv/edges.yaml", "opencv/montage.yaml"):
        airflow_dags.add_example(rel)
    airflow_dags.add_spec(CRON_AND_REPO, "ticker.yaml")
    bag = airflow_dags.dagbag()
    # edges reads an external repo: a commit watcher. montage reads images (watched) and edges (the
    # upstream DAG's output Asset, emitted by its finish task: no watcher).
    assert _assets(bag.dags["edges"]) == {"pfs/images@master": ["pach_commits_images_master"]}
    assert _assets(bag.dags["montage"]) == {"pfs/images@master": ["pach_commits_images_master"],
                                            "pfs/edges@master": []}
    finish = bag.dags["edges"].get_task("finish")
    assert [o.name for o in finish.outlets] == ["pfs/edges@master"]
    # Cron + repo: asset-or-time; the tick repo is not watched (plan writes it).
    ticker = bag.dags["ticker"]
    assert type(ticker.timetable).__name__ == "AssetOrTimeSchedule"
    assert _assets(ticker) == {"pfs/data@master": ["pach_commits_data_master"]}
    assert "cron:tick" in ticker.tags and "input:data" in ticker.tags
    process = ticker.get_task("process")
    assert process.max_active_tis_per_dagrun == 3
    assert process.map_index_template == "{{ pach_set_label }}"
    for dag in bag.dags.values():
        data = DagSerialization.to_dict(dag)
        assert data["dag"]["dag_id"] == dag.dag_id
    serialized = str(DagSerialization.to_dict(bag.dags["edges"]))
    assert "pach_airflow.triggers.CommitTrigger" in serialized


def test_cron_timetables():
    from pach_airflow.compiler import cron_timetable

    assert cron_timetable(["@never"]) is None
    assert type(cron_timetable(["@every 10s"])).__name__ == "DeltaTriggerTimetable"
    assert type(cron_timetable(["*/5 * * * *"])).__name__ == "CronTriggerTimetable"
    assert type(cron_timetable(["*/5 * * * *", "@hourly"])).__name__ == "MultipleCronTriggerTimetable"
    assert type(cron_timetable(["*/5 * * * *", "@every 2h"])).__name__ == "DeltaTriggerTimetable"


def test_parsing_context_compiles_only_the_wanted_dag(airflow_dags, monkeypatch):
    for rel in ("opencv/edges.yaml", "opencv/montage.yaml"):
        airflow_dags.add_example(rel)
    monkeypatch.setattr(loader, "_wanted_dag_id", lambda: "montage")
    dags = loader.load_dags(airflow_dags.path)
    assert list(dags) == ["montage"]


def test_airflowignore_and_hidden_files(tmp_path):
    (tmp_path / "skip").mkdir()
    (tmp_path / "keep").mkdir()
    (tmp_path / ".hidden").mkdir()
    for rel in ("skip/a.yaml", "keep/b.yml", ".hidden/c.json", "keep/.d.yaml", "keep/e.txt", "f.json"):
        (tmp_path / rel).write_text("pipeline: {}\n")
    (tmp_path / ".airflowignore").write_text("skip/\n")
    found = [p.relative_to(tmp_path).as_posix() for p in loader.find_spec_files(tmp_path)]
    assert found == ["f.json", "keep/b.yml"]


def test_install_and_remove_spec(tmp_path):
    dags = tmp_path / "dags"
    good = BROKEN.replace("repo: data", "repo: data\n    glob: /*")
    path = loader.install_spec(good, dags)
    assert path == dags / "broken.yaml" and path.read_text() == good
    # Invalid specs never reach the dags folder, and leave no temp files.
    with pytest.raises(SpecError, match="input.pfs.glob"):
        loader.install_spec(BROKEN.replace("name: broken", "name: other"), dags)
    assert sorted(p.name for p in dags.iterdir()) == ["broken.yaml"]
    # A spec file path works too; an update goes to the file that defines the pipeline already.
    moved = dags / "team" / "broken.yaml"
    moved.parent.mkdir()
    path.rename(moved)
    src = tmp_path / "new.yaml"
    src.write_text(good.replace("glob: /*", "glob: /"))
    assert loader.install_spec(src, dags) == moved
    assert "glob: /\n" in moved.read_text()
    # Several pipelines in one file: one file each.
    two = good.replace("name: broken", "name: one") + "---\n" + good.replace("name: broken", "name: two")
    paths = loader.install_specs(two, dags)
    assert [p.name for p in paths] == ["one.yaml", "two.yaml"]
    assert set(loader.iter_pipeline_names(dags)) == {"broken", "one", "two"}
    loader.remove_spec("one", dags)
    assert set(loader.iter_pipeline_names(dags)) == {"broken", "two"}
    with pytest.raises(NotFound, match="pipeline nope"):
        loader.remove_spec("nope", dags)


def test_set_paused(airflow_dags):
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session

    airflow_dags.add_spec(BROKEN.replace("repo: data", "repo: data\n    glob: /"), "p.yaml")
    bag = airflow_dags.dagbag()
    bag.dags["broken"].test  # noqa: B018 -- make sure the DAG exists before syncing it
    from airflow.dag_processing.dagbag import sync_bag_to_db

    sync_bag_to_db(bag, "dags-folder", None)
    loader.set_paused("broken", True)
    with create_session() as session:
        assert session.get(DagModel, "broken").is_paused is True
    loader.set_paused("broken", False)
    with create_session() as session:
        assert session.get(DagModel, "broken").is_paused is False
    with pytest.raises(NotFound, match="no DAG 'nope'"):
        loader.set_paused("nope", True)
