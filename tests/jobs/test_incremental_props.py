"""Property: over any sequence of input commits, each incremental job's output equals what a
from-scratch run computes, and it processes exactly the new or changed datums (the rest are skipped).

Runs the real local runner through ``run pipeline``; few examples, each a handful of jobs.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.jobs.conftest import Pps

PATHS = ["/a", "/b", "/d/c", "/d/e"]
ops = st.lists(st.one_of(
    st.tuples(st.just("put"), st.sampled_from(PATHS), st.sampled_from(["x", "y", "zz"])),
    st.tuples(st.just("append"), st.sampled_from(PATHS), st.sampled_from(["1", "2"])),
    st.tuples(st.just("delete"), st.sampled_from(PATHS), st.just("")),
), min_size=1, max_size=3)


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(commits=st.lists(ops, min_size=2, max_size=4))
def test_incremental_output_equals_full_recompute(pach, tmp_path_factory, commits):
    pps = Pps(pach.__class__(f"file://{tmp_path_factory.mktemp('store')}"), tmp_path_factory.mktemp("specs"))
    pps.repo("data")
    # glob /** makes a datum of every file and every directory (/d/); directory datums write nothing
    # but still rerun whenever anything below them changes.
    spec = pps.spec("p", {"pfs": {"repo": "data", "glob": "/**"}},
                    stdin=['[ -f "$data" ] || exit 0',
                           'mkdir -p "/pfs/out$(dirname "${data#/pfs/data}")"',
                           'tr a-z A-Z < "$data" > "/pfs/out${data#/pfs/data}.up"'])
    state: dict[str, str] = {}
    done: dict[str, str] = {}  # path -> content the last successful job processed
    for batch in commits:
        merged = [{"delete": p} if op == "delete" else ({"append": p, "content": c} if op == "append"
                                                        else {"put": p, "content": c}) for op, p, c in batch]
        # deleting a file that is not there is refused by the store: leave those ops out
        legal = []
        for op in merged:
            path = op.get("delete") or op.get("append") or op.get("put")
            if "delete" in op and path not in state:
                continue
            legal.append(op)
            if "delete" in op:
                state.pop(path)
            elif "append" in op:
                state[path] = state.get(path, "") + op["content"]
            else:
                state[path] = op["content"]
        if not legal:
            continue
        pps.commit("data", legal)
        _, job = pps.run(spec)
        assert job["state"] == "JOB_SUCCESS", job["reason"]
        want = {p + ".up": v.upper().encode() for p, v in state.items()}
        assert pps.files("p") == want
        changed = {p for p, v in state.items() if done.get(p) != v}
        dirs = {p.rsplit("/", 1)[0] + "/" for p in state if p.count("/") > 1}
        old_dirs = {p.rsplit("/", 1)[0] + "/" for p in done if p.count("/") > 1}
        # directory datums (/d/) rerun when anything below them changed
        changed_dirs = {d for d in dirs if d not in old_dirs or any(
            p.startswith(d) and (p in changed or p not in state) for p in set(state) | set(done))}
        assert job["data_processed"] == len(changed) + len(changed_dirs)
        assert job["data_total"] == len(state) + len(dirs)
        assert job["data_skipped"] == job["data_total"] - job["data_processed"]
        done = dict(state)
