"""Golden files: each example spec in ``dags/examples/`` → the pod KPO would submit for its set "0".

``tests/golden/<example>.pod.yaml`` holds one YAML document per pipeline of the example file. Rewrite
them with ``PACH_AIRFLOW_UPDATE_GOLDEN=1`` (``make golden``) and review the diff. KPO's random name
suffix is replaced by ``-xxxxxxxx`` so the files are stable.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from pach_airflow.runners import kubernetes as kr

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted(p for p in (ROOT / "dags" / "examples").rglob("*") if p.suffix in (".yaml", ".yml", ".json"))
GOLDEN = ROOT / "tests" / "golden"
JOB = "0" * 31 + "1"
CONFIG = kr.KubernetesConfig(store="s3://pach-airflow/store", namespace="pach-airflow",
                             worker_image="ghcr.io/example/pach-airflow-worker:0.1.0")


def golden_pods(example: Path) -> list[dict]:
    from pach_airflow.spec import load_specs

    pods = []
    for spec in load_specs(example):
        name = spec.pipeline.name
        body = kr.pod_manifest(kr.pod_request(spec, pipeline=name, job_id=JOB, set_id="0", config=CONFIG))
        kubernetes_validate.validate(body, "1.33.0", strict=True)
        body["metadata"]["name"] = re.sub(r"-[a-z0-9]{8}$", "-xxxxxxxx", body["metadata"]["name"])
        body["metadata"]["labels"].pop("airflow_version", None)
        pods.append(body)
    return pods


@pytest.mark.skipif(not EXAMPLES, reason="no example specs in dags/examples yet")
@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: str(p.relative_to(ROOT / "dags" / "examples")))
def test_golden_pod(example: Path):
    pods = golden_pods(example)
    target = GOLDEN / f"{example.stem}.pod.yaml"
    text = yaml.safe_dump_all(pods, sort_keys=True, width=110)
    if os.environ.get("PACH_AIRFLOW_UPDATE_GOLDEN"):
        GOLDEN.mkdir(exist_ok=True)
        target.write_text(text)
    assert target.exists(), f"{target} missing: run `make golden` and review it"
    assert yaml.safe_load_all(target.read_text()) and list(yaml.safe_load_all(target.read_text())) == pods, (
        f"{target.name} differs from the pods built now; if the change is intended, run `make golden`")
