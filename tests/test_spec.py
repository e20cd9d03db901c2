"""Pipeline specs: Pachyderm's doc shapes parse to the expected models, every field round-trips, every
error path says what is wrong, and ``pach-airflow validate`` / ``version`` behave as documented."""

from __future__ import annotations

import copy
import json
import pathlib
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
import yaml

from pach_airflow.errors import SpecError
from pach_airflow.spec import (
    CronInput,
    Input,
    PfsInput,
    Pipeline,
    PipelineSpec,
    Transform,
    dump_spec,
    format_duration,
    input_name,
    iter_inputs,
    load_specs,
    parse_cron,
    parse_duration,
    parse_specs,
    spec_from_dict,
    spec_warnings,
    validate,
)

SPECS = pathlib.Path(__file__).parent / "specs"
ROOT = pathlib.Path(__file__).resolve().parent.parent
CONFORMANCE = pathlib.Path("/work/shared/conformance/public-cases.json")


def minimal(**extra) -> dict:
    doc = {"pipeline": {"name": "p"}, "transform": {"cmd": ["true"], "image": "alpine:3.20"},
           "input": {"pfs": {"repo": "data", "glob": "/*"}}}
    doc.update(extra)
    return doc


def problems_of(doc, source: str = "dags/p.yaml") -> list[str]:
    text = doc if isinstance(doc, str) else json.dumps(doc)
    with pytest.raises(SpecError) as info:
        parse_specs(text, source)
    assert info.value.problems, "a SpecError must list its problems"
    assert str(info.value) == "\n".join(info.value.problems)
    return info.value.problems


# --------------------------------------------------------------------------------------------------------
# Pachyderm's doc shapes
# --------------------------------------------------------------------------------------------------------

def test_working_with_pipelines_example_parses_with_defaults():
    [spec] = load_specs(SPECS / "my-pipeline.json")
    assert spec.pipeline.name == "my-pipeline"
    assert spec.transform.image == "<image>:<tag>"
    assert spec.transform.cmd == ["command", "/pfs/data", "/pfs/out"]
    pfs = spec.input.pfs
    assert (pfs.name, pfs.repo, pfs.branch, pfs.glob) == ("data", "data", "master", "/*")
    assert spec.datum_tries == 3
    assert spec.output_branch == "master"
    assert spec.parallelism_spec.constant == 1
    assert spec.reprocess_spec == "until_success"
    assert spec.datum_timeout is None and spec.job_timeout is None


def test_opencv_edges_and_montage_as_yaml_documents():
    edges, montage = load_specs(SPECS / "opencv.yaml")
    assert edges == PipelineSpec(
        pipeline=Pipeline(name="edges"),
        description="A pipeline that performs image edge detection by using the OpenCV library.",
        transform=Transform(cmd=["python3", "/edges.py"], image="pachyderm/opencv:1.0"),
        input=Input(pfs=PfsInput(repo="images", glob="/*")),
    )
    assert edges.input.pfs.name == "images" and edges.input.pfs.branch == "master"
    assert montage.transform.cmd == ["sh"]
    assert montage.transform.stdin == [
        ("montage -shadow -background SkyBlue -geometry 300x300+2+2 "
        "$(find -L /pfs/images /pfs/edges -type f | sort) /pfs/out/montage.png")]
    # Children of a cross are sorted by input name, as Pachyderm does.
    assert [c.pfs.name for c in montage.input.cross] == ["edges", "images"]
    assert all(c.pfs.glob == "/" and c.pfs.branch == "master" for c in montage.input.cross)


def test_a_json_list_gives_the_same_specs_as_yaml_documents():
    assert load_specs(SPECS / "opencv-list.json") == load_specs(SPECS / "opencv.yaml")


def test_a_json_stream_of_objects_gives_several_specs():
    edges = minimal(pipeline={"name": "a"})
    other = minimal(pipeline={"name": "b"})
    specs = parse_specs(json.dumps(edges) + "\n" + json.dumps(other), "two.json")
    assert [s.pipeline.name for s in specs] == ["a", "b"]


def test_join_pipeline():
    [spec] = load_specs(SPECS / "join.json")
    purchases, stores = spec.input.join
    assert purchases.pfs.repo == "purchases" and purchases.pfs.join_on == "$1" and purchases.pfs.outer_join
    assert stores.pfs.glob == "/STOREID(*).txt" and stores.pfs.join_on == "$1" and not stores.pfs.outer_join
    assert input_name(spec.input) == "purchases"


def test_group_pipeline():
    [spec] = load_specs(SPECS / "group.json")
    [child] = spec.input.group
    assert child.pfs.group_by == "$1" and child.pfs.glob == "/*-(*)-lab-*.txt"
    assert spec.transform.stdin[0] == "PATTERN=.*-\\(.*\\)-lab-.*.txt"
    assert spec.transform.image == "ubuntu:20.04"


def test_cron_pipeline():
    [spec] = load_specs(SPECS / "cron.yaml")
    tick, urls = spec.input.cross  # sorted by name: tick < urls
    assert tick.cron == CronInput(name="tick", spec="*/10 * * * *", overwrite=True, repo="scraper_tick")
    assert urls.pfs.repo == "urls"
    assert [type(i).__name__ for i in iter_inputs(spec.input)] == ["CronInput", "PfsInput"]
    assert parse_cron(tick.cron.spec).next(datetime(2025, 1, 9, 14, 41, 45, tzinfo=UTC)) == \
        datetime(2025, 1, 9, 14, 50, tzinfo=UTC)


@pytest.mark.skipif(not CONFORMANCE.exists(), reason="shared conformance cases not present")
def test_every_conformance_input_spec_parses():
    cases = json.loads(CONFORMANCE.read_text())["cases"]
    checked = 0
    for case in cases:
        text = json.dumps(case["input_spec"])
        if "<" in text or '"s3": true' in text:  # placeholders ("<future month>"); s3 inputs are refused
            continue
        spec = spec_from_dict(minimal(input=case["input_spec"]), case["id"])
        assert spec.input is not None
        checked += 1
    assert checked >= 30


# --------------------------------------------------------------------------------------------------------
# Names, durations, integers, defaults
# --------------------------------------------------------------------------------------------------------

def test_lower_camel_case_and_snake_case_give_the_same_model():
    snake = minimal(datum_tries=4, output_branch="out", parallelism_spec={"constant": 2},
                    datum_set_spec={"size_bytes": 10}, resource_limits={"cpu": 1, "memory": "1Gi"},
                    input={"join": [{"pfs": {"repo": "a", "glob": "/(*)", "join_on": "$1", "outer_join": True,
                                             "empty_files": True}},
                                    {"pfs": {"repo": "b", "glob": "/(*)", "join_on": "$1"}}]},
                    scheduling_spec={"node_selector": {"disk_type": "ssd"}, "priority_class_name": "hi"})
    camel = minimal(datumTries=4, outputBranch="out", parallelismSpec={"constant": 2},
                    datumSetSpec={"sizeBytes": 10}, resourceLimits={"cpu": 1, "memory": "1Gi"},
                    input={"join": [{"pfs": {"repo": "a", "glob": "/(*)", "joinOn": "$1", "outerJoin": True,
                                             "emptyFiles": True}},
                                    {"pfs": {"repo": "b", "glob": "/(*)", "joinOn": "$1"}}]},
                    schedulingSpec={"nodeSelector": {"disk_type": "ssd"}, "priorityClassName": "hi"})
    assert spec_from_dict(camel) == spec_from_dict(snake)
    # Map keys are data, not field names: they are never renamed.
    assert spec_from_dict(camel).scheduling_spec.node_selector == {"disk_type": "ssd"}


def test_durations_are_protobuf_json_durations():
    spec = spec_from_dict(minimal(datum_timeout="600s", job_timeout="1.5s"))
    assert spec.datum_timeout == timedelta(minutes=10)
    assert spec.job_timeout == timedelta(seconds=1.5)
    assert dump_spec(spec)["datum_timeout"] == "600s"
    assert dump_spec(spec)["job_timeout"] == "1.5s"
    assert parse_duration("0.000001s") == timedelta(microseconds=1)
    assert format_duration(timedelta(hours=1, microseconds=250)) == "3600.00025s"
    assert format_duration(parse_duration("-2s")) == "-2s"


def test_integers_may_be_strings():
    spec = spec_from_dict(minimal(datum_tries="5", parallelism_spec={"constant": "4"},
                                  transform={"cmd": ["x"], "accept_return_code": ["1", 2]},
                                  datum_set_spec={"number": "10"}))
    assert spec.datum_tries == 5 and spec.parallelism_spec.constant == 4
    assert spec.transform.accept_return_code == [1, 2]
    assert spec.datum_set_spec.number == 10


def test_zero_values_take_pachyderms_defaults():
    spec = spec_from_dict(minimal(datum_tries=0, parallelism_spec={"constant": 0}, output_branch=""))
    assert (spec.datum_tries, spec.parallelism_spec.constant, spec.output_branch) == (3, 1, "master")
    assert spec_from_dict(minimal(transform={"cmd": ["x"]})).transform.image == "ubuntu:20.04"


def test_null_means_not_given():
    spec = spec_from_dict(minimal(egress=None, datum_timeout=None, description=None))
    assert spec.egress is None and spec.datum_timeout is None and spec.description == ""


def test_cron_start_is_rfc3339_and_yaml_timestamps_work():
    text = """
pipeline: {name: c}
transform: {cmd: [date]}
input: {cron: {name: tick, spec: "@every 1h", start: 2025-01-09T10:00:00Z}}
"""
    [spec] = parse_specs(text)
    assert spec.input.cron.start == datetime(2025, 1, 9, 10, tzinfo=UTC)
    assert spec.input.cron.repo == "c_tick"
    assert dump_spec(spec)["input"]["cron"]["start"] == "2025-01-09T10:00:00Z"
    [again] = parse_specs(json.dumps(dump_spec(spec)))
    assert again == spec


def test_union_children_are_sorted_and_may_share_a_name():
    spec = spec_from_dict(minimal(input={"union": [
        {"pfs": {"repo": "zeta", "name": "in", "glob": "/*"}},
        {"pfs": {"repo": "alpha", "name": "in", "glob": "/*"}},
        {"pfs": {"repo": "beta", "glob": "/*"}},
    ]}))
    assert [c.pfs.repo for c in spec.input.union] == ["beta", "zeta", "alpha"]  # stable: "in" keeps order


def test_input_names_follow_pachyderm_not_repo_rules():
    spec = spec_from_dict(minimal(input={"pfs": {"repo": "r", "name": "data.v2", "glob": "/"}}))
    assert spec.input.pfs.name == "data.v2"


def test_input_name_of_nested_inputs():
    inp = Input(cross=[Input(union=[Input(cron=CronInput(name="tick", spec="@never"))]),
                       Input(pfs=PfsInput(repo="r", glob="/"))])
    assert input_name(inp) == "tick"
    assert input_name(Input()) == ""


# --------------------------------------------------------------------------------------------------------
# Round trip of every field
# --------------------------------------------------------------------------------------------------------

FULL = {
    "pipeline": {"name": "full", "project": {"name": "default"}},
    "description": "every field",
    "metadata": {"annotations": {"a": "1"}, "labels": {"team": "data"}},
    "transform": {
        "image": "alpine:3.20", "cmd": ["sh", "-c"], "err_cmd": ["sh"], "env": {"A": "1"},
        "secrets": [{"name": "s", "key": "k", "mount_path": "/s", "env_var": "S"}],
        "image_pull_secrets": ["regcred"], "stdin": ["echo hi"], "err_stdin": ["true"],
        "accept_return_code": [1, 2], "debug": True, "user": "1000", "working_dir": "/w",
        "dockerfile": "Dockerfile", "memory_volume": True,
    },
    "parallelism_spec": {"constant": 4},
    "egress": {"URL": "s3://bucket/out"},
    "update": True,
    "output_branch": "out",
    "resource_requests": {"cpu": 0.5, "memory": "512Mi", "disk": "1Gi", "gpu": {"type": "nvidia.com/gpu", "number": 1}},
    "resource_limits": {"cpu": 2, "memory": "2Gi"},
    "sidecar_resource_limits": {"cpu": 1},
    "sidecar_resource_requests": {"memory": "64Mi"},
    "input": {"cross": [
        {"pfs": {"project": "default", "name": "in", "repo": "data", "repo_type": "user", "branch": "dev",
                 "glob": "/(*)", "lazy": True, "empty_files": True, "reference": True,
                 "propagation_spec": {"never": False}}},
        {"join": [
            {"pfs": {"repo": "a", "glob": "/(*).txt", "join_on": "$1", "outer_join": True}},
            {"pfs": {"repo": "b", "glob": "/(*).csv", "join_on": "$1"}},
        ]},
        {"group": [{"pfs": {"repo": "g", "glob": "/(*)-*", "group_by": "$1"}}]},
        {"union": [{"pfs": {"repo": "u1", "name": "u", "glob": "/"}},
                   {"pfs": {"repo": "u2", "name": "u", "glob": "/", "s3": False}}]},
        {"cron": {"name": "tick", "project": "default", "repo": "ticks", "spec": "@every 10m", "overwrite": True,
                  "start": "2025-01-09T10:00:00Z"}},
    ]},
    "reprocess": True,
    "datum_set_spec": {"number": 2, "size_bytes": 1000},
    "datum_timeout": "60s",
    "job_timeout": "3600s",
    "salt": "abc",
    "datum_tries": 5,
    "scheduling_spec": {"node_selector": {"disk": "ssd"}, "priority_class_name": "high"},
    "pod_spec": '{"hostNetwork":true}',
    "pod_patch": '[{"op":"add","path":"/metadata/labels/x","value":"y"}]',
    "reprocess_spec": "every_job",
    "autoscaling": True,
    "tolerations": [{"key": "k", "operator": "EQUAL", "value": "v", "effect": "NO_SCHEDULE",
                     "toleration_seconds": 0}],
    "dry_run": True,
}

# Fields that parse but are refused, and the internal spec_commit: not in FULL.
REFUSED = {"tf_job", "service", "spout", "s3_out", "determined", "spec_commit", "maximum_expected_uptime",
           "datum_batching", "trigger", "commit", "sql_database"}


def _field_paths(obj, prefix="") -> set[str]:
    out = set()
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.add(f"{prefix}{k}")
            out |= _field_paths(v, f"{prefix}{k}.")
    elif isinstance(obj, list):
        for v in obj:
            out |= _field_paths(v, prefix)
    return out


def test_every_accepted_field_round_trips():
    spec = spec_from_dict(FULL)
    dumped = dump_spec(spec)
    assert spec_from_dict(dumped) == spec
    assert parse_specs(yaml.safe_dump(dumped))[0] == spec
    # Apart from the filled-in defaults, the normalised dump is exactly what was given (children sorted).
    given = _field_paths(FULL)
    assert given <= _field_paths(dumped) | {"pipeline.project.name", "pipeline.project",
                                            "input.cross.union.pfs.s3", "input.cross.pfs.repo_type",
                                            "input.cross.pfs.project", "input.cross.cron.project",
                                            "input.cross.pfs.propagation_spec.never"}
    assert dumped["datum_timeout"] == "60s"
    assert dumped["tolerations"][0]["toleration_seconds"] == 0  # 0 is not "unset" for a wrapper type
    assert dumped["egress"] == {"URL": "s3://bucket/out"}


def test_full_spec_covers_every_model_field():
    """FULL sets every field of every model except the refused ones, so the round trip test is complete."""
    from pydantic import BaseModel

    from pach_airflow import spec as spec_module

    given = {p.rsplit(".", 1)[-1] for p in _field_paths(FULL)}
    missing = set()
    for obj in vars(spec_module).values():
        if isinstance(obj, type) and issubclass(obj, BaseModel) and obj.__module__ == spec_module.__name__:
            if obj.__name__ in ("SQLDatabaseEgress", "SQLFileFormat", "SQLSecret", "TFJob", "Service", "Spout",
                                "Trigger", "Determined", "ObjectStorageEgress"):
                continue  # parts of refused fields (object_storage is tested separately)
            missing |= {f for f in obj.model_fields if f not in given and f not in REFUSED | ELSEWHERE}
    assert missing == set()


# Fields that cannot sit in FULL next to their alternatives; each has a round trip test of its own.
ELSEWHERE = {"object_storage", "per_worker"}


def test_egress_object_storage_round_trips():
    spec = spec_from_dict(minimal(egress={"object_storage": {"url": "s3://b/p"}}))
    assert dump_spec(spec)["egress"] == {"object_storage": {"url": "s3://b/p"}}
    assert spec_from_dict(dump_spec(spec)) == spec


def test_datum_set_spec_per_worker_round_trips():
    spec = spec_from_dict(minimal(datum_set_spec={"per_worker": "3"}))
    assert dump_spec(spec)["datum_set_spec"] == {"per_worker": 3}
    assert spec_from_dict(dump_spec(spec)) == spec


def test_pod_patch_may_be_given_as_yaml_and_becomes_json_text():
    [spec] = parse_specs("""
pipeline: {name: p}
transform: {cmd: [x], image: a:1}
input: {pfs: {repo: r, glob: /}}
pod_patch:
- {op: add, path: /spec/hostNetwork, value: true}
""")
    assert json.loads(spec.pod_patch) == [{"op": "add", "path": "/spec/hostNetwork", "value": True}]


def test_accepted_and_documented_fields_are_accepted():
    spec = spec_from_dict(minimal(autoscaling=True, sidecar_resource_limits={"cpu": 1},
                                  input={"pfs": {"repo": "r", "glob": "/*", "lazy": True}}))
    assert spec.autoscaling and spec.input.pfs.lazy


def test_validate_checks_a_spec_built_in_code():
    spec = PipelineSpec(pipeline=Pipeline(name="p"), transform=Transform(cmd=["x"]),
                        input=Input(pfs=PfsInput(repo="r", glob="/*")))
    assert validate(spec) == spec
    spec.input.pfs.join_on = "$1"
    spec.input = Input(join=[spec.input, Input(pfs=PfsInput(repo="q", glob="/*"))])
    with pytest.raises(SpecError) as info:
        validate(spec, "code")
    assert info.value.problems == [
        ("code: pipeline p: input.join[0].pfs.join_on: field required in a join input "
        "(e.g. \"$1\" with a glob such as \"/(*).txt\")")]


# --------------------------------------------------------------------------------------------------------
# Every error path, with its message
# --------------------------------------------------------------------------------------------------------

P = "dags/p.yaml: pipeline p: "
S3 = (P + "input{l}.pfs.s3: s3 is not supported by pach_airflow: there is no per-job S3 gateway sidecar yet; "
      "remove \"s3\": true and read the files under /pfs/<input> instead")

ERRORS = [
    # structure
    ("glob missing", minimal(input={"pfs": {"repo": "data"}}),
     P + "input.pfs.glob: field required (Pachyderm has no default glob)"),
    ("repo missing", minimal(input={"pfs": {"glob": "/"}}),
     P + "input.pfs.repo: field required (the repo to read, e.g. images)"),
    ("pipeline missing", {"transform": {"cmd": ["x"]}, "input": {"pfs": {"repo": "r", "glob": "/"}}},
     "dags/p.yaml: spec: pipeline: field required (e.g. pipeline: {name: edges})"),
    ("transform missing", {"pipeline": {"name": "p"}, "input": {"pfs": {"repo": "r", "glob": "/"}}},
     P + "transform: field required (the container to run: transform: {image, cmd})"),
    ("cmd missing", minimal(transform={"image": "a:1"}),
     P + "transform.cmd: field required (Pachyderm's worker refuses a pipeline with no command)"),
    ("cmd empty", minimal(transform={"image": "a:1", "cmd": []}),
     P + "transform.cmd: field required (Pachyderm's worker refuses a pipeline with no command)"),
    ("input missing", {"pipeline": {"name": "p"}, "transform": {"cmd": ["x"]}},
     P + "input: field required (pach_airflow runs pipelines that read inputs; spouts and services are "
         "not supported)"),
    ("unknown field", minimal(transform={"cmd": ["x"], "imagee": "a"}),
     P + "transform.imagee: unknown field (did you mean 'image'?)"),
    ("unknown top field", minimal(parallelism={"constant": 1}),
     P + "parallelism: unknown field (did you mean 'parallelism_spec'?)"),
    ("unknown camel field", minimal(input={"pfs": {"repo": "r", "glob": "/", "joinOnn": "$1"}}),
     P + "input.pfs.joinOnn: unknown field (did you mean 'joinOn'?)"),
    ("unknown, no hint", minimal(zzz=1), P + "zzz: unknown field"),
    ("wrong case", minimal(egress={"url": "s3://b/p"}), P + "egress.url: unknown field (did you mean 'URL'?)"),
    ("pachyderm 1.x field", minimal(enable_stats=True),
     P + "enable_stats: unknown field: removed in Pachyderm 2.x (datum stats are always kept): delete it"),
    ("pachyderm 1.x atom input", minimal(input={"atom": {"repo": "r", "glob": "/"}}),
     P + "input.atom: unknown field: atom inputs are called pfs since Pachyderm 1.8: rename atom to pfs"),
    ("both spellings", minimal(datum_tries=1, datumTries=2),
     P + "(spec): 'datumTries' and 'datum_tries' name the same field: give it once"),
    ("not an object", [42], ("dags/p.yaml: spec: expected a pipeline spec (a mapping with pipeline, transform, "
                            "input), got 42")),
    ("input not an object", minimal(input="data"), P + "input: expected an object (a mapping), got \"data\""),
    ("cmd not a list", minimal(transform={"cmd": "python x.py"}),
     P + "transform.cmd: expected a list, got \"python x.py\""),
    ("env value a number", minimal(transform={"cmd": ["x"], "env": {"PORT": 8080}}),
     P + "transform.env.PORT: expected a string, got 8080 (quote it in YAML)"),
    ("bool as string", minimal(input={"pfs": {"repo": "r", "glob": "/", "lazy": "true"}}),
     P + "input.pfs.lazy: expected true or false, got \"true\""),
    ("int not a number", minimal(datum_tries="three"), P + "datum_tries: expected an integer, got \"three\""),
    ("int is a bool", minimal(datum_tries=True), P + "datum_tries: expected an integer, got true"),
    ("int too big", minimal(datum_tries=2**64), P + f"datum_tries: integer {2**64} does not fit in 64 bits"),
    ("negative tries", minimal(datum_tries=-1),
     P + "datum_tries: must not be negative, got -1 (0 means the default, 3)"),
    ("negative parallelism", minimal(parallelism_spec={"constant": -2}),
     P + "parallelism_spec.constant: must not be negative, got -2"),
    ("cpu not a number", minimal(resource_limits={"cpu": "lots"}),
     P + "resource_limits.cpu: expected a number, got \"lots\""),
    ("cpu negative", minimal(resource_limits={"cpu": -1}), P + "resource_limits.cpu: must not be negative, got -1.0"),
    ("bad memory", minimal(resource_limits={"memory": "1 GB"}),
     P + "resource_limits.memory: '1 GB' is not a Kubernetes quantity such as 512Mi, 2G or 1.5Gi"),
    ("gpu without type", minimal(resource_limits={"gpu": {"number": 1}}),
     P + "resource_limits.gpu.type: field required when gpu.number is set (e.g. nvidia.com/gpu)"),
    # durations and timestamps
    ("go duration", minimal(datum_timeout="10m"),
     P + "datum_timeout: expected a protobuf duration such as \"600s\" or \"1.5s\", got \"10m\" (write \"600s\")"),
    ("duration number", minimal(job_timeout=30),
     P + "job_timeout: expected a protobuf duration string such as \"600s\", got 30 (write \"30s\")"),
    ("duration garbage", minimal(job_timeout="soon"),
     P + "job_timeout: expected a protobuf duration such as \"600s\" or \"1.5s\", got \"soon\""),
    ("duration zero", minimal(datum_timeout="0s"), P + "datum_timeout: must be positive, got '0s'"),
    ("naive timestamp", minimal(input={"cron": {"name": "t", "spec": "@daily", "start": "2025-01-01T00:00:00"}}),
     P + "input.cron.start: timestamp \"2025-01-01T00:00:00\" has no time zone: add Z or an offset such as +00:00"),
    ("bad timestamp", minimal(input={"cron": {"name": "t", "spec": "@daily", "start": "yesterday"}}),
     P + "input.cron.start: expected an RFC 3339 timestamp such as 2025-01-09T14:00:00Z, got \"yesterday\""),
    # names
    ("bad pipeline name", minimal(pipeline={"name": "my pipeline"}),
     ("dags/p.yaml: pipeline my pipeline: pipeline.name: pipeline name 'my pipeline' invalid: only alphanumeric "
     "characters, underscores, and dashes are allowed")),
    ("pipeline name starts with dash", minimal(pipeline={"name": "-p"}),
     "dags/p.yaml: pipeline -p: pipeline.name: pipeline name '-p' invalid: it must start with a letter or digit"),
    ("pipeline name too long", minimal(pipeline={"name": "a" * 52}),
     (f"dags/p.yaml: pipeline {'a' * 52}: pipeline.name: pipeline name '{'a' * 52}' invalid: 52 characters long, "
     "Pachyderm allows at most 51")),
    ("pipeline name empty", minimal(pipeline={"name": ""}),
     "dags/p.yaml: spec: pipeline.name: pipeline name is empty: give a name of letters, digits, '_' or '-'"),
    ("bad repo name", minimal(input={"pfs": {"repo": "my.repo", "glob": "/"}}),
     P + "input.pfs.repo: repo name 'my.repo' invalid: only alphanumeric characters, underscores, and dashes are "
         "allowed"),
    ("repo name too long", minimal(input={"pfs": {"repo": "r" * 64, "glob": "/"}}),
     P + f"input.pfs.repo: repo name '{'r' * 64}' invalid: 64 characters long, at most 63 are allowed"),
    ("branch like a commit id", minimal(input={"pfs": {"repo": "r", "branch": "0" * 32, "glob": "/"}}),
     P + f"input.pfs.branch: branch name '{'0' * 32}' looks like a commit id: pick a name that is not 32 hex digits"),
    ("bad branch", minimal(input={"pfs": {"repo": "r", "branch": "feature/x", "glob": "/"}}),
     P + "input.pfs.branch: branch name 'feature/x' invalid: only alphanumeric characters, underscores, and "
         "dashes are allowed"),
    ("bad output branch", minimal(output_branch="a b"),
     P + "output_branch: branch name 'a b' invalid: only alphanumeric characters, underscores, and dashes are "
         "allowed"),
    ("input named out", minimal(input={"pfs": {"repo": "r", "name": "out", "glob": "/"}}),
     P + "input.pfs.name: 'out' is reserved for /pfs/out: give the input a different name"),
    ("repo named out", minimal(input={"pfs": {"repo": "out", "glob": "/"}}),
     P + "input.pfs.name: field required for a repo named 'out' (/pfs/out is the output): give the input "
         "another name"),
    ("own output", minimal(input={"pfs": {"repo": "p", "glob": "/"}}),
     P + "input.pfs.repo: 'p' is this pipeline's own output repo: a pipeline cannot read its own output"),
    ("other project", minimal(pipeline={"name": "p", "project": {"name": "ml"}}),
     P + "pipeline.project: project 'ml': only the default project exists in pach_airflow; drop pipeline.project"),
    ("input project", minimal(input={"pfs": {"repo": "r", "glob": "/", "project": "ml"}}),
     P + "input.pfs.project: project 'ml': only the default project exists in pach_airflow; drop project"),
    # inputs
    ("two input types", minimal(input={"pfs": {"repo": "r", "glob": "/"}, "cron": {"name": "t", "spec": "@daily"}}),
     P + "input: multiple input types set (pfs, cron): give exactly one per input"),
    ("empty input", minimal(input={}), P + "input: empty input: set one of pfs, cron, cross, union, join, group"),
    ("empty cross", minimal(input={"cross": []}), P + "input.cross: needs at least one input"),
    ("duplicate names in cross", minimal(input={"cross": [{"pfs": {"repo": "r", "glob": "/"}},
                                                          {"pfs": {"repo": "r", "glob": "/*"}}]}),
     P + "input.cross[1]: input name 'r' is used twice in one datum (also in cross[0]): give each input a "
         "unique name"),
    ("duplicate through union", minimal(input={"cross": [
        {"union": [{"pfs": {"repo": "a", "glob": "/"}}, {"pfs": {"repo": "b", "glob": "/"}}]},
        {"pfs": {"repo": "b", "glob": "/*"}}]}),
     P + "input.cross[1]: input name 'b' is used twice in one datum (also in cross[0]): give each input a "
         "unique name"),
    ("join without join_on", minimal(input={"join": [{"pfs": {"repo": "a", "glob": "/(*)", "join_on": "$1"}},
                                                     {"pfs": {"repo": "b", "glob": "/(*)"}}]}),
     P + "input.join[1].pfs.join_on: field required in a join input (e.g. \"$1\" with a glob such as \"/(*).txt\")"),
    ("group without group_by", minimal(input={"group": [{"pfs": {"repo": "a", "glob": "/(*)"}}]}),
     P + "input.group[0].pfs.group_by: field required in a group input (e.g. \"$1\" with a glob such as "
         "\"/(*)-*.txt\")"),
    ("group over join without group_by", minimal(input={"group": [{"join": [
        {"pfs": {"repo": "a", "glob": "/(*)", "join_on": "$1", "group_by": "$1"}},
        {"pfs": {"repo": "b", "glob": "/(*)", "join_on": "$1"}}]}]}),
     P + "input.group[0].join[1].pfs.group_by: field required: inputs inside a group need group_by"),
    ("cron in join", minimal(input={"join": [{"pfs": {"repo": "a", "glob": "/(*)", "join_on": "$1"}},
                                             {"cron": {"name": "t", "spec": "@daily"}}]}),
     P + "input.join[1].cron: a cron input cannot be inside a join (it has no join_on/group_by key)"),
    ("s3", minimal(input={"pfs": {"repo": "r", "glob": "/", "s3": True}}), [S3.format(l="")]),
    ("s3 glob", minimal(input={"pfs": {"repo": "r", "glob": "/*", "s3": True}}),
     [S3.format(l=""), P + "input.pfs.glob: s3 inputs must use glob \"/\" (the whole repo is one datum), got '/*'"]),
    ("s3 lazy", minimal(input={"pfs": {"repo": "r", "glob": "/", "s3": True, "lazy": True}}),
     [S3.format(l=""), P + "input.pfs.lazy: cannot be combined with s3"]),
    ("s3 in union", minimal(input={"union": [{"pfs": {"repo": "r", "glob": "/", "s3": True}}]}),
     [S3.format(l=".union[0]"), P + "input.union[0].pfs.s3: s3 inputs cannot be inside a union; only cross them"]),
    ("s3 in cross in join", minimal(input={"join": [
        {"pfs": {"repo": "a", "glob": "/(*)", "join_on": "$1"}},
        {"cross": [{"pfs": {"repo": "r", "glob": "/", "s3": True}}]}]}),
     [S3.format(l=".join[1].cross[0]"),
      P + "input.join[1].cross[0].pfs.s3: s3 inputs cannot be inside a join; only cross them"]),
    ("input named .env", minimal(input={"pfs": {"repo": "r", "name": ".env", "glob": "/"}}),
     P + "input.pfs.name: '.env' is reserved for /pfs/.env: give the input a different name"),
    ("input name with slash", minimal(input={"pfs": {"repo": "r", "name": "a/b", "glob": "/"}}),
     P + "input.pfs.name: \"a/b\" is not a valid input name: it must be one folder name under /pfs"),
    ("empty glob", minimal(input={"pfs": {"repo": "r", "glob": ""}}),
     P + "input.pfs.glob: must not be empty (Pachyderm has no default glob; \"/\" takes the whole repo as one datum)"),
    ("bad glob", minimal(input={"pfs": {"repo": "r", "glob": "/[a"}}), None),  # message from glob.py
    ("input commit", minimal(input={"pfs": {"repo": "r", "glob": "/", "commit": "abc"}}),
     P + "input.pfs.commit: input cannot come from a commit (as in Pachyderm): give a branch instead"),
    ("meta repo", minimal(input={"pfs": {"repo": "r", "glob": "/", "repo_type": "meta"}}),
     P + "input.pfs.repo_type: repo_type 'meta' is not supported by pach_airflow: pipelines have no system "
         "repos here; job and datum records are read with `pach-airflow list job/datum`"),
    # cron
    ("cron 3 fields", minimal(input={"cron": {"name": "t", "spec": "* * *"}}),
     P + "input.cron.spec: cron spec '* * *': expected 5 fields (minute hour day-of-month month day-of-week), got 3"),
    ("cron bad field", minimal(input={"cron": {"name": "t", "spec": "61 * * * *"}}),
     P + "input.cron.spec: cron spec '61 * * * *' does not parse: check each field's range and syntax"),
    ("cron bad every", minimal(input={"cron": {"name": "t", "spec": "@every 10 minutes"}}),
     P + "input.cron.spec: cron spec '@every 10 minutes': invalid duration ' 10 minutes': expected e.g. 10s, 5m, 1h30m"),
    ("cron descriptor", minimal(input={"cron": {"name": "t", "spec": "@fortnightly"}}),
     P + "input.cron.spec: cron spec '@fortnightly': unknown descriptor; use one of @yearly, @annually, "
         "@monthly, @weekly, @daily, @midnight, @hourly, @every <duration> or @never"),
    ("cron tz", minimal(input={"cron": {"name": "t", "spec": "TZ=Mars/Base 0 9 * * *"}}), None),
    ("cron no name", minimal(input={"cron": {"spec": "@daily"}}), P + "input.cron.name: field required"),
    ("cron no spec", minimal(input={"cron": {"name": "t"}}),
     P + "input.cron.spec: field required (a schedule such as \"@every 1h\" or \"*/10 * * * *\")"),
    # other rules
    ("reprocess_spec", minimal(reprocess_spec="sometimes"),
     P + "reprocess_spec: must be until_success or every_job, got \"sometimes\""),
    ("datum_set_spec", minimal(datum_set_spec={"per_worker": 2, "number": 3}),
     P + "datum_set_spec.per_worker: cannot be set together with number or size_bytes"),
    ("pod_patch json", minimal(pod_patch="{not json"), None),
    ("pod_patch shape", minimal(pod_patch='{"op": "add"}'),
     P + "pod_patch: must be a JSON Patch (RFC 6902): a list of {\"op\", \"path\", ...} operations"),
    ("pod_spec shape", minimal(pod_spec="[1]"), P + "pod_spec: must be a JSON object (merged into the pod spec)"),
    ("toleration operator", minimal(tolerations=[{"key": "k", "operator": "Exists"}]),
     P + "tolerations[0].operator: operator must be one of EMPTY, EXISTS, EQUAL, got \"Exists\" (Pachyderm "
         "spells it EXISTS)"),
    ("toleration effect", minimal(tolerations=[{"effect": "Sometimes"}]),
     P + "tolerations[0].effect: effect must be one of ALL_EFFECTS, NO_SCHEDULE, PREFER_NO_SCHEDULE, NO_EXECUTE, "
         "got \"Sometimes\""),
    ("exists with value", minimal(tolerations=[{"key": "k", "operator": "EXISTS", "value": "v"}]),
     P + "tolerations[0].value: must be empty when operator is EXISTS"),
    ("secret env without key", minimal(transform={"cmd": ["x"], "secrets": [{"name": "s", "env_var": "E"}]}),
     P + "transform.secrets[0].key: field required when env_var is set (the key of the secret to put in it)"),
    ("secret nowhere", minimal(transform={"cmd": ["x"], "secrets": [{"name": "s"}]}),
     P + "transform.secrets[0]: give mount_path, env_var (with key), or both"),
    ("secret no name", minimal(transform={"cmd": ["x"], "secrets": [{"mount_path": "/s"}]}),
     P + "transform.secrets[0].name: field required (the Kubernetes secret to read)"),
    ("egress both", minimal(egress={"URL": "s3://a", "object_storage": {"url": "s3://b"}}),
     P + "egress: give either URL or object_storage, not both"),
    ("egress empty", minimal(egress={}),
     P + "egress.URL: field required (where to copy the output, e.g. s3://bucket/prefix)"),
    ("egress not a url", minimal(egress={"URL": "bucket/out"}),
     P + "egress.URL: 'bucket/out' is not a URL such as s3://bucket/prefix"),
    ("spec_commit", minimal(spec_commit={"id": "x"}),
     P + "spec_commit: spec_commit is set by Pachyderm itself and cannot appear in a spec: remove it"),
]


@pytest.mark.parametrize("doc,expected", [(d, e) for _, d, e in ERRORS], ids=[i for i, _, _ in ERRORS])
def test_error_message(doc, expected):
    problems = problems_of(doc)
    if expected is None:
        assert len(problems) == 1 and problems[0].startswith(P), problems
    elif isinstance(expected, list):
        assert problems == expected
    else:
        assert problems == [expected]


def test_bad_glob_message_comes_from_the_glob_compiler():
    pytest.importorskip("pach_airflow.glob")
    [line] = problems_of(minimal(input={"pfs": {"repo": "r", "glob": "/[a"}}))
    assert line.startswith(P + "input.pfs.glob: ")


REFUSED_CASES = [
    ("service", {"service": {"internal_port": 80}}, "service is not supported by pach_airflow"),
    ("spout", {"spout": {}}, "spout is not supported by pach_airflow"),
    ("s3_out", {"s3_out": True}, "s3_out is not supported by pach_airflow"),
    ("tf_job", {"tf_job": {"tf_job": "{}"}}, "tf_job is not supported by pach_airflow"),
    ("determined", {"determined": {"workspaces": ["w"]}}, "determined is not supported by pach_airflow"),
    ("maximum_expected_uptime", {"maximum_expected_uptime": "60s"},
     "maximum_expected_uptime is not supported by pach_airflow"),
    ("sql egress", {"egress": {"sql_database": {"url": "snowflake://x"}}},
     "egress.sql_database: egress to a SQL database is not supported by pach_airflow"),
    ("datum_batching", {"transform": {"cmd": ["x"], "datum_batching": True}},
     "transform.datum_batching: datum_batching is not supported by pach_airflow"),
    ("trigger", {"input": {"pfs": {"repo": "r", "glob": "/", "trigger": {"size": "1M"}}}},
     "input.pfs.trigger: trigger is not supported by pach_airflow"),
    ("propagation never", {"input": {"pfs": {"repo": "r", "glob": "/", "propagation_spec": {"never": True}}}},
     "input.pfs.propagation_spec: propagation_spec.never is not supported by pach_airflow"),
]


@pytest.mark.parametrize("extra,needle", [(e, n) for _, e, n in REFUSED_CASES], ids=[i for i, _, _ in REFUSED_CASES])
def test_refused_fields_are_named_with_the_reason(extra, needle):
    [line] = problems_of(minimal(**extra))
    assert needle in line
    assert ": " in line.split("not supported by pach_airflow", 1)[1]  # and says why


def test_refused_false_values_are_fine():
    spec = spec_from_dict(minimal(s3_out=False, transform={"cmd": ["x"], "datum_batching": False}))
    assert not spec.s3_out


def test_every_problem_is_reported_at_once():
    doc = {
        "pipeline": {"name": "edges"},
        "transform": {"cmd": ["x"], "imagee": "a"},
        "input": {"cross": [{"pfs": {"repo": "images"}}, {"cron": {"name": "t", "spec": "* * *"}}]},
        "datum_timeout": "10m",
        "service": {},
    }
    problems = problems_of(doc, "dags/edges.yaml")
    assert "dags/edges.yaml: pipeline edges: input.cross[0].pfs.glob: field required (Pachyderm has no default glob)" \
        in problems
    assert len(problems) == 5
    assert {p.split(": ")[2] for p in problems} == {"transform.imagee", "input.cross[0].pfs.glob",
                                                    "input.cross[1].cron.spec", "datum_timeout", "service"}


def test_rules_across_fields_are_checked_even_when_another_part_is_broken():
    doc = minimal(datum_tries="many", transform={"cmd": [], "image": "a:1"},
                  input={"cross": [{"pfs": {"repo": "a", "glob": "/"}}, {"pfs": {"repo": "a", "glob": "/*"}}]})
    assert problems_of(doc) == [
        P + "datum_tries: expected an integer, got \"many\"",
        P + "transform.cmd: field required (Pachyderm's worker refuses a pipeline with no command)",
        P + "input.cross[1]: input name 'a' is used twice in one datum (also in cross[0]): give each input a "
            "unique name",
    ]


def test_problems_of_every_spec_in_a_file_are_reported():
    text = yaml.safe_dump_all([minimal(pipeline={"name": "a"}, datum_tries="x"),
                               minimal(pipeline={"name": "b"}),
                               minimal(pipeline={"name": "c"}, input={"pfs": {"repo": "r"}})])
    assert problems_of(text, "f.yaml") == [
        "f.yaml: pipeline a: datum_tries: expected an integer, got \"x\"",
        "f.yaml: pipeline c: input.pfs.glob: field required (Pachyderm has no default glob)",
    ]


def test_unnamed_specs_are_numbered():
    text = json.dumps([minimal(), {"transform": {"cmd": ["x"]}, "input": {"pfs": {"repo": "r", "glob": "/"}}}])
    [line] = problems_of(text, "f.json")
    assert line.startswith("f.json: spec 2: pipeline: field required")


def test_same_pipeline_twice_in_a_file():
    text = json.dumps([minimal(), minimal()])
    assert problems_of(text, "f.json") == [
        "f.json: pipeline p: pipeline.name: pipeline 'p' is defined twice in this file (also spec 1)"]


@pytest.mark.parametrize("text,expected", [
    ("", "f.yaml: no pipeline spec found (the file is empty)"),
    ("# only a comment\n---\n", "f.yaml: no pipeline spec found (the file is empty)"),
    ("pipeline: {name: a\n", None),
    ("a: 1\na: 2\n", "f.yaml: line 2 column 1: invalid YAML: duplicate key 'a'"),
    ("pipeline: [1, 2\ninput: x", None),
    ("just a string", ("f.yaml: spec: expected a pipeline spec (a mapping with pipeline, transform, input), got "
                      "\"just a string\"")),
])
def test_syntax_errors(text, expected):
    problems = problems_of(text, "f.yaml")
    if expected is None:
        assert len(problems) == 1 and problems[0].startswith("f.yaml: line ") and "invalid YAML" in problems[0]
    else:
        assert problems == [expected]


def test_json_syntax_error_names_line_and_column(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{"pipeline": {"name": "a"},\n "transform": }\n')
    with pytest.raises(SpecError) as info:
        load_specs(path)
    assert info.value.problems == [f"{path}: line 2 column 15: invalid JSON: Expecting value"]


def test_load_specs_names_the_file(tmp_path):
    path = tmp_path / "edges.yaml"
    path.write_text(yaml.safe_dump(minimal(pipeline={"name": "edges"}, input={"pfs": {"repo": "images"}})))
    with pytest.raises(SpecError) as info:
        load_specs(path)
    assert info.value.problems == [
        f"{path}: pipeline edges: input.pfs.glob: field required (Pachyderm has no default glob)"]
    with pytest.raises(SpecError, match="no such file"):
        load_specs(tmp_path / "missing.yaml")
    with pytest.raises(SpecError, match="is a directory"):
        load_specs(tmp_path)
    (tmp_path / "bin.yaml").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(SpecError, match="not UTF-8"):
        load_specs(tmp_path / "bin.yaml")


def test_spec_error_is_raised_for_a_bad_stored_dict():
    with pytest.raises(SpecError, match="<spec>: pipeline p: datum_tries"):
        spec_from_dict(minimal(datum_tries=[]))


# --------------------------------------------------------------------------------------------------------
# Warnings
# --------------------------------------------------------------------------------------------------------

def test_warnings_for_untagged_images_and_overlapping_globs():
    spec = spec_from_dict(minimal(transform={"cmd": ["x"], "image": "registry:5000/team/img"},
                                  input={"pfs": {"repo": "r", "glob": "/**", "join_on": "$1"}}))
    assert [loc for loc, _ in spec_warnings(spec)] == ["transform.image", "input.pfs.glob", "input.pfs.join_on"]
    assert spec_warnings(spec_from_dict(minimal())) == []
    tagged = spec_from_dict(minimal(transform={"cmd": ["x"], "image": "img@sha256:abc"}))
    assert spec_warnings(tagged) == []
    fast = spec_from_dict(minimal(input={"cron": {"name": "t", "spec": "@every 5s"}}))
    assert [loc for loc, _ in spec_warnings(fast)] == ["input.cron.spec"]


# --------------------------------------------------------------------------------------------------------
# Cron schedules
# --------------------------------------------------------------------------------------------------------

T0 = datetime(2025, 1, 9, 14, 41, 45, 500000, tzinfo=UTC)


@pytest.mark.parametrize("spec,expected", [
    ("@every 10s", datetime(2025, 1, 9, 14, 41, 55, tzinfo=UTC)),
    ("@every 1h30m", datetime(2025, 1, 9, 16, 11, 45, tzinfo=UTC)),
    ("@every 1.5h", datetime(2025, 1, 9, 16, 11, 45, tzinfo=UTC)),
    ("@every 300ms", datetime(2025, 1, 9, 14, 41, 46, tzinfo=UTC)),  # robfig: at least 1s
    ("@hourly", datetime(2025, 1, 9, 15, tzinfo=UTC)),
    ("@daily", datetime(2025, 1, 10, tzinfo=UTC)),
    ("@midnight", datetime(2025, 1, 10, tzinfo=UTC)),
    ("@weekly", datetime(2025, 1, 12, tzinfo=UTC)),
    ("@monthly", datetime(2025, 2, 1, tzinfo=UTC)),
    ("@yearly", datetime(2026, 1, 1, tzinfo=UTC)),
    ("*/10 * * * *", datetime(2025, 1, 9, 14, 50, tzinfo=UTC)),
    ("0 9 * * MON-FRI", datetime(2025, 1, 10, 9, tzinfo=UTC)),
    ("TZ=Europe/Berlin 0 9 * * *", datetime(2025, 1, 10, 8, tzinfo=UTC)),
    ("@never", None),
    ("0 0 31 2 *", None),  # February 31st never comes
])
def test_parse_cron_next(spec, expected):
    assert parse_cron(spec).next(T0) == expected


def test_parse_cron_next_is_strictly_after_and_accepts_naive_utc():
    sched = parse_cron("*/10 * * * *")
    on_tick = datetime(2025, 1, 9, 14, 50)
    assert sched.next(on_tick) == datetime(2025, 1, 9, 15, 0, tzinfo=UTC)
    assert parse_cron("@every 1m").interval == timedelta(minutes=1)
    assert parse_cron("@daily").interval is None


@pytest.mark.parametrize("spec", ["", "   ", "* * * *", "* * * * * *", "@every", "@everyday", "@every -",
                                  "60 * * * *", "* 25 * * *", "TZ=Nowhere/Land @daily"])
def test_parse_cron_refuses(spec):
    with pytest.raises(ValueError):
        parse_cron(spec)


# --------------------------------------------------------------------------------------------------------
# pach-airflow validate / version
# --------------------------------------------------------------------------------------------------------

def test_cli_validate_ok(pach):
    res = pach("validate", str(SPECS / "opencv.yaml"), str(SPECS / "join.json"))
    assert res.lines() == [f"ok: {SPECS / 'opencv.yaml'}: pipeline edges",
                           f"ok: {SPECS / 'opencv.yaml'}: pipeline montage",
                           f"ok: {SPECS / 'join.json'}: pipeline matching"]
    # The montage example's image has no tag: a warning, not a failure.
    assert res.err.splitlines() == [
        (f"warning: {SPECS / 'opencv.yaml'}: pipeline montage: transform.image: 'v4tech/imagemagick' has no tag "
        "or uses :latest; pin a tag so every datum runs the same code")]


def test_cli_validate_reports_problems_and_exits_1(pach, tmp_path):
    bad = tmp_path / "edges.yaml"
    bad.write_text("pipeline: {name: edges}\ntransform: {cmd: [x], image: a:1}\ninput: {pfs: {repo: images}}\n")
    res = pach("validate", str(bad), str(SPECS / "group.json"), check=False)
    assert res.code == 1
    assert res.err.splitlines() == [
        f"{bad}: pipeline edges: input.pfs.glob: field required (Pachyderm has no default glob)"]
    assert res.lines() == [f"ok: {SPECS / 'group.json'}: pipeline lab_group"]


def test_cli_validate_json_prints_normalised_specs(pach):
    res = pach("validate", "-o", "json", str(SPECS / "opencv.yaml"))
    assert res.json_lines() == [dump_spec(s) for s in load_specs(SPECS / "opencv.yaml")]
    assert res.json_lines()[1]["input"]["cross"][0]["pfs"] == {"name": "edges", "repo": "edges",
                                                                "branch": "master", "glob": "/"}


def test_cli_validate_yaml_prints_documents(pach):
    res = pach("validate", "-o", "yaml", str(SPECS / "opencv.yaml"), str(SPECS / "cron.yaml"))
    docs = list(yaml.safe_load_all(res.out))
    assert [d["pipeline"]["name"] for d in docs] == ["edges", "montage", "scraper"]
    assert parse_specs(res.out) == load_specs(SPECS / "opencv.yaml") + load_specs(SPECS / "cron.yaml")


def test_cli_validate_stdin_directory_and_duplicates(pach, tmp_path):
    res = pach("validate", "-", stdin=(SPECS / "join.json").read_text())
    assert res.lines() == ["ok: <stdin>: pipeline matching"]
    res = pach("validate", str(SPECS), check=False)
    # opencv.yaml and opencv-list.json define the same pipelines: one DAG per pipeline, so that is an error.
    assert res.code == 1
    assert f"{SPECS / 'opencv.yaml'}: pipeline edges: pipeline.name: also defined in {SPECS / 'opencv-list.json'}" \
        in res.err.splitlines()
    empty = tmp_path / "empty"
    empty.mkdir()
    res = pach("validate", str(empty), check=False)
    assert res.code == 1 and "no spec files" in res.err


def test_cli_validate_prints_warnings_without_failing(pach, tmp_path):
    path = tmp_path / "w.json"
    path.write_text(json.dumps(minimal(transform={"cmd": ["x"], "image": "busybox"})))
    res = pach("validate", str(path))
    assert res.code == 0
    assert res.err.startswith(f"warning: {path}: pipeline p: transform.image: 'busybox' has no tag")


def test_cli_version(pach):
    from importlib import metadata

    res = pach("version")
    assert res.lines()[0] == "pach-airflow 0.1.0"
    assert f"apache-airflow {metadata.version('apache-airflow')}" in res.lines()
    [info] = pach("version", "-o", "json").json_lines()
    assert info["pach-airflow"] == "0.1.0" and info["apache-airflow"] == metadata.version("apache-airflow")


def test_cli_validate_as_a_process_does_not_import_airflow(tmp_path):
    """The CLI starts fast: validating a spec imports neither Airflow nor boto3."""
    code = (
        "import sys\n"
        "from pach_airflow.cli import main\n"
        f"rc = main(['validate', {str(SPECS / 'cron.yaml')!r}])\n"
        "heavy = sorted(m for m in ('airflow', 'boto3', 'kubernetes') if m in sys.modules)\n"
        "print('HEAVY', heavy)\n"
        "sys.exit(rc)\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120,
                       check=False)
    assert p.returncode == 0, p.stderr
    assert "HEAVY []" in p.stdout


def test_cli_help_does_not_import_pydantic():
    code = ("import sys\nfrom pach_airflow.cli import build_parser\nbuild_parser()\n"
            "print(sorted(m for m in ('pydantic', 'airflow', 'boto3', 'yaml') if m in sys.modules))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120,
                       check=False)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "[]"


def test_dump_is_a_copy():
    spec = spec_from_dict(minimal())
    d = dump_spec(spec)
    d2 = copy.deepcopy(d)
    d["input"]["pfs"]["glob"] = "/changed"
    assert dump_spec(spec) == d2
