"""Pachyderm's own datum cases, run through the CLI contract: repos created and files put with the
CLI, a spec with the case's input written, ``list datum -f SPEC -o json`` compared as a multiset.

Cases come from ``shared/conformance/public-cases.json`` beside the clone (CI) and from the copy in
``tests/datum/cases/`` (so the tests also run without ``shared/``). Cases without ``expected_datums``
(cron ticks, job-level outcomes only) belong to the jobs tests.
"""

from __future__ import annotations

import json
import pathlib
import tempfile
from collections import Counter
from typing import Any

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
SHARED_CASES = ROOT.parent / "shared" / "conformance" / "public-cases.json"
LOCAL_CASES = pathlib.Path(__file__).resolve().parent / "cases" / "public-cases.json"


def _load_cases() -> list[tuple[str, dict]]:
    """Shared cases first, then local cases the shared file does not have (by id)."""
    out: list[tuple[str, dict]] = []
    seen: set[str] = set()
    for source, path in (("shared", SHARED_CASES), ("local", LOCAL_CASES)):
        if not path.exists():
            continue
        for case in json.loads(path.read_text())["cases"]:
            if case["id"] in seen or case.get("expected_datums") is None:
                continue
            seen.add(case["id"])
            out.append((source, case))
    return out


CASES = _load_cases()


def _leaves(node: Any) -> list[dict]:
    if "pfs" in node:
        return [node["pfs"]]
    if "cron" in node:
        return [{"cron": True}]
    return [leaf for kind in ("cross", "union", "join", "group") for c in node.get(kind) or [] for leaf in _leaves(c)]


def _commit(pach, tmp_path: pathlib.Path, repo: str, ops: list[tuple[str, str, str]]) -> None:
    """One commit on repo@master holding ``ops``: (put | append | delete, path, content). A run of
    puts goes in as one recursive ``put file -r`` of a local folder laid out like the repo."""
    pach("start", "commit", f"{repo}@master")
    n = 0
    while n < len(ops):
        op, path, content = ops[n]
        if op == "put":
            folder = pathlib.Path(tempfile.mkdtemp(prefix=f"put-{repo}-", dir=tmp_path))
            while n < len(ops) and ops[n][0] == "put":
                local = folder / ops[n][1].lstrip("/")
                local.parent.mkdir(parents=True, exist_ok=True)
                local.write_bytes(ops[n][2].encode())
                n += 1
            pach("put", "file", f"{repo}@master:/", "-r", "-f", str(folder))
            continue
        if op == "delete":
            pach("delete", "file", f"{repo}@master:{path}")
        else:
            local = pathlib.Path(tempfile.mkdtemp(prefix=f"append-{repo}-", dir=tmp_path)) / "content"
            local.write_bytes(content.encode())
            pach("put", "file", f"{repo}@master:{path}", "-f", str(local), "-a")
        n += 1
    pach("finish", "commit", f"{repo}@master")


def _require_pfs_cli() -> None:
    from pach_airflow.cli import _COMMANDS, build_parser

    build_parser()
    missing = [f"{v} {n}" for v, n in (("create", "repo"), ("put", "file"), ("start", "commit"),
                                       ("finish", "commit")) if (v, n) not in _COMMANDS]
    if missing:
        pytest.skip(f"the pfs commands are not available yet: {', '.join(missing)}")


def _datum_key(pairs) -> tuple:
    return tuple(sorted((name, path) for name, path in pairs))


@pytest.mark.skipif(not CASES, reason=f"no conformance cases: neither {SHARED_CASES} nor {LOCAL_CASES} exists")
@pytest.mark.parametrize("source, case", CASES, ids=[f"{s}:{c['id']}" for s, c in CASES])
def test_public_case(pach, tmp_path, source, case):
    _require_pfs_cli()
    spec_input = case["input_spec"]
    leaves = _leaves(spec_input)
    if any(leaf.get("cron") for leaf in leaves):
        pytest.skip("cron inputs are exercised by the jobs tests")
    repos = sorted({leaf["repo"] for leaf in leaves} | set(case.get("input_files") or {}))
    for repo in repos:
        pach("create", "repo", repo)
    for repo, files in sorted((case.get("input_files") or {}).items()):
        if files:
            _commit(pach, tmp_path, repo, [("put", f["path"], f["content"]) for f in files])
    expected = case.get("expected") if isinstance(case.get("expected"), dict) else {}
    for step in expected.get("steps", []):
        for repo, ops in sorted((step.get("commit") or {}).items()):
            todo = []
            for op in ops:
                kind = next(k for k in ("put", "append", "delete") if k in op)
                todo.append((kind, op[kind], op.get("content", "")))
            _commit(pach, tmp_path, repo, todo)

    spec = {"pipeline": {"name": "conformance"}, "transform": {"image": "busybox:1.36", "cmd": ["true"]},
            "input": spec_input}
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps(spec))
    rows = pach("list", "datum", "-f", str(spec_file), "-o", "json").json_lines()

    got = Counter(_datum_key((f["input"], f["path"]) for f in row["files"]) for row in rows)
    want = Counter(_datum_key(tuple(p) for p in datum) for datum in case["expected_datums"])
    assert got == want, f"{case['id']} ({case.get('source')}): {case.get('notes', '')}"
    assert len(rows) == case.get("expected_count", len(case["expected_datums"]))
    # ids are unique, sorted, and each file carries its repo, branch and content hash
    assert [r["id"] for r in rows] == sorted({r["id"] for r in rows})
    for row in rows:
        for f in row["files"]:
            assert f["branch"] == "master" and f["repo"] in repos and f["hash"] is not None


def test_local_copy_matches_shared_cases():
    if not SHARED_CASES.exists():
        pytest.skip(f"{SHARED_CASES} is absent (CI has shared/ beside the clone)")
    shared = {c["id"]: c for c in json.loads(SHARED_CASES.read_text())["cases"]}
    local = {c["id"]: c for c in json.loads(LOCAL_CASES.read_text())["cases"]}
    assert set(local) <= set(shared), "tests/datum/cases/public-cases.json has cases shared/ lacks"
    for cid, case in local.items():
        assert case == shared[cid], f"case {cid} differs from shared/: copy the shared file again"
