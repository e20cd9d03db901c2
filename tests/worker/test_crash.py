"""A runner SIGKILLed mid-set leaves no result and no process; the next run completes the set."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from pach_airflow.errors import NotFound
from pach_airflow.jobs import result_key
from pach_airflow.runners.local import run_set, wait_for_deletions


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purpose.
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split(") ", 1)[1][0] != "Z"


def test_sigkill_mid_set_then_rerun(sets, local_store, local_store_url, tmp_path):
    flag, pid_file = tmp_path / "first-run", tmp_path / "user-pid"
    flag.touch()
    sets.repo("data", {"/a": "1", "/b": "2"})
    # First run: datum /a finishes, datum /b sleeps (recording its host pid) until the runner is killed.
    script = (f"cp /pfs/data/* /pfs/out/; if [ -e {flag} ] && [ -e /pfs/data/b ]; then "
              f"sleep 60 & echo $! > {pid_file}; wait; fi")
    job = sets.job({"cmd": ["sh", "-c", script]},
                   [[[sets.input("data", "data", "/a")], [sets.input("data", "data", "/b")]]])
    env = {**os.environ, "PACH_AIRFLOW_STORE": local_store_url}
    proc = subprocess.Popen([sys.executable, "-m", "pach_airflow.worker", "run-set", "--pipeline", "p", "--job", job,
                             "--set", "0"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert pid_file.exists(), "the user code never started"
    work_root = os.environ["PACH_AIRFLOW_WORK_ROOT"]
    sleeper = [p for p in _children_tree(proc.pid) if _cmd(p).startswith("sleep")]
    assert sleeper, "the user's sleep should be a descendant of the runner"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 10
    while any(_alive(p) for p in sleeper) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(p) for p in sleeper), "user processes outlived the killed runner"
    try:
        local_store.get_record(result_key("p", job, "0"))
        raise AssertionError("a result was written by a killed runner")
    except NotFound:
        pass
    stale = os.listdir(work_root)
    # the killed run's folder and its lock file beside it, unlocked now
    assert len(stale) == 2 and any(n.endswith(".lock") for n in stale), stale

    flag.unlink()
    summary = run_set(local_store, "p", job, "0")
    assert summary["SUCCESS"] == 2
    outs = sorted(o[0] for d in sets.result(job)["datums"] for o in d["outputs"])
    assert outs == ["/a", "/b"]
    wait_for_deletions()  # this run's own folder is deleted in the background
    assert os.listdir(work_root) == []  # the stale folder and its lock were cleaned up too


def _cmd(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _children_tree(root: int) -> list[int]:
    parents: dict[int, list[int]] = {}
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open(f"/proc/{p}/stat") as f:
                ppid = int(f.read().rsplit(") ", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        parents.setdefault(ppid, []).append(int(p))
    out, stack = [], [root]
    while stack:
        for c in parents.get(stack.pop(), []):
            out.append(c)
            stack.append(c)
    return out


def test_runs_as_an_unprivileged_user_in_a_user_namespace(tmp_path):
    """Not root: the runner maps itself to root in a user namespace (``unshare --map-root-user``)."""
    import shutil
    import tempfile

    from pach_airflow.pfs import open_store
    from tests.worker.conftest import SetBuilder

    root = tempfile.mkdtemp(prefix="pach-airflow-test-nonroot-")
    try:
        url = f"file://{root}/store"
        store = open_store(url)
        sets = SetBuilder(store)
        sets.repo("data", {"/f": "hello"})
        job = sets.job({"cmd": ["sh", "-c", "cat /pfs/data/f > /pfs/out/f"]}, [[[sets.input("data", "data", "/f")]]])
        as_user = sets.job({"cmd": ["true"], "user": "1000"}, [[[sets.input("data", "data", "/f")]]])
        store.close()
        subprocess.run(["chmod", "-R", "a+rwX", root], check=True)
        env = {"PATH": os.environ["PATH"], "HOME": root, "PACH_AIRFLOW_WORK_ROOT": f"{root}/work",
               "PACH_AIRFLOW_SECRETS_DIR": f"{root}/secrets"}
        p = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--",
                            sys.executable, "-m", "pach_airflow.worker", "--store", url, "run-set", "--pipeline", "p",
                            "--job", job, "--set", "0"], check=False, env=env, capture_output=True, text=True, timeout=120,
                           cwd=root)
        assert p.returncode == 0, p.stderr
        assert json_last_line(p.stdout)["SUCCESS"] == 1
        p = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--",
                            sys.executable, "-m", "pach_airflow.worker", "--store", url, "run-set", "--pipeline", "p",
                            "--job", as_user, "--set", "0"], check=False, env=env, capture_output=True, text=True,
                           timeout=120, cwd=root)
        assert p.returncode == 1 and "transform.user '1000'" in p.stderr and "only as root" in p.stderr, p.stderr
        (d,) = sets.result(job)["datums"]
        assert sets.output(d, "/f") == b"hello"
    finally:
        shutil.rmtree(root, ignore_errors=True)


def json_last_line(text: str) -> dict:
    import json

    return json.loads(text.strip().splitlines()[-1])
