"""Concurrent writers and killed writers, on both backends.

Two writers finishing commits on one branch at once must both land (compare-and-swap on the branch
head, re-apply on a lost race); a writer killed with SIGKILL mid-put leaves no visible commit.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from pach_airflow.errors import NotFound
from pach_airflow.pfs import open_store

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _history_ids(store, repo, branch="master"):
    return [c.id for c in store.list_commits(repo, branch)]


def test_threads_commit_concurrently(store):
    store.create_repo("r")
    n_threads, per_thread = 8, 4
    barrier = threading.Barrier(n_threads)
    errors: list[BaseException] = []
    ids: list[str] = []

    def writer(t: int) -> None:
        try:
            barrier.wait()
            for i in range(per_thread):
                with store.open_commit("r", "master") as c:
                    c.put_file(f"/t{t}/f{i}", f"{t}-{i}".encode())
                ids.append(c.commit_id)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    history = _history_ids(store, "r")
    assert sorted(history) == sorted(ids) and len(history) == n_threads * per_thread
    files = {f.path for f in store.walk("r", "master")}
    assert files == {f"/t{t}/f{i}" for t in range(n_threads) for i in range(per_thread)}


_WRITER = textwrap.dedent("""
    import sys
    from pach_airflow.pfs import open_store
    store = open_store(sys.argv[1])
    w, n = sys.argv[2], int(sys.argv[3])
    sys.stdin.readline()  # start together
    for i in range(n):
        store.put_file("r", "master", f"/p{w}/f{i}", f"{w}-{i}".encode())
    print("done", flush=True)
""")


def test_processes_commit_concurrently(store, store_url):
    store.create_repo("r")
    n_procs, per_proc = 3, 4
    procs = [subprocess.Popen([sys.executable, "-c", _WRITER, store_url, str(w), str(per_proc)], cwd=ROOT,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for w in range(n_procs)]
    time.sleep(1.0)  # let every interpreter get to the start line
    for p in procs:
        p.stdin.write(b"go\n")
        p.stdin.flush()
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err.decode()
    assert len(_history_ids(store, "r")) == n_procs * per_proc
    assert {f.path for f in store.walk("r", "master")} == {f"/p{w}/f{i}" for w in range(n_procs)
                                                           for i in range(per_proc)}


_SLOW_PUT = textwrap.dedent("""
    import sys
    from pach_airflow.pfs import open_store
    store = open_store(sys.argv[1])
    with store.open_commit("r", "master") as c:
        for i in range(100000):
            c.put_file(f"/many/{i:06d}", b"%d" % i)
            if i == 50:
                print("uploading", flush=True)
""")


@pytest.mark.parametrize("where", ["upload", "cli"])
def test_killed_put_leaves_no_commit(store, store_url, tmp_path, where):
    store.create_repo("r")
    store.put_file("r", "master", "/before", b"b")
    head = store.inspect_commit("r", "master").id
    if where == "upload":
        p = subprocess.Popen([sys.executable, "-c", _SLOW_PUT, store_url], cwd=ROOT, stdout=subprocess.PIPE)
        assert p.stdout.readline() == b"uploading\n"
    else:
        src = tmp_path / "src"
        src.mkdir()
        for i in range(3000):
            (src / f"f{i:05d}").write_bytes(b"%d" % i)
        p = subprocess.Popen([sys.executable, "-m", "pach_airflow", "--store", store_url, "put", "file", "-r",
                              "r@master:/dir", "-f", str(src)], cwd=ROOT)
        time.sleep(0.8)
    p.send_signal(signal.SIGKILL)
    p.wait(timeout=30)
    if where == "cli" and p.returncode == 0:
        # It finished before the kill: then the whole put is visible, never a part of it.
        assert store.inspect_commit("r", "master").file_count == 3001
        return
    assert p.returncode == -signal.SIGKILL
    # Nothing visible: same head, same history, same files.
    assert store.inspect_commit("r", "master").id == head
    assert _history_ids(store, "r") == [head]
    assert [f.path for f in store.walk("r", "master")] == ["/before"]
    # And the store is usable: the next put works.
    store.put_file("r", "master", "/after", b"a")
    assert [f.path for f in open_store(store_url).walk("r", "master")] == ["/after", "/before"]


_DIE_AT = textwrap.dedent("""
    import os, signal, sys
    from pach_airflow.pfs import open_store
    store = open_store(sys.argv[1])
    where = sys.argv[2]
    for name in ("put", "put_if_match"):
        real = getattr(store.backend, name)
        def hook(key, *args, _real=real, _name=name):
            if (where == "before-swap" and _name == "put_if_match" and "/branches/" in key) or (
                    where == "after-swap" and _name == "put" and "/commits/" in key):
                os.kill(os.getpid(), signal.SIGKILL)
            return _real(key, *args)
        setattr(store.backend, name, hook)
    with store.open_commit("r", "master") as c:
        print(c.commit_id, flush=True)
        c.put_file("/b", b"b")
""")


@pytest.mark.parametrize("where", ["before-swap", "after-swap"])
def test_killed_around_the_head_swap(store, store_url, where):
    """Killed just before the compare-and-swap of the branch head: no trace of the commit anywhere, not
    even by its id. Killed just after it: the commit is there, whole, and the history stays intact."""
    store.create_repo("r")
    store.put_file("r", "master", "/a", b"a")
    head = store.inspect_commit("r", "master").id
    p = subprocess.run([sys.executable, "-c", _DIE_AT, store_url, where], cwd=ROOT, check=False,
                       capture_output=True, text=True)
    assert p.returncode == -signal.SIGKILL, p.stderr
    cid = p.stdout.strip()
    reader = open_store(store_url)
    if where == "before-swap":
        assert reader.inspect_commit("r", "master").id == head
        assert _history_ids(reader, "r") == [head]
        with pytest.raises(NotFound):
            reader.inspect_commit("r", cid)
        assert [f.path for f in reader.walk("r", "master")] == ["/a"]
    else:
        assert reader.inspect_commit("r", "master").id == cid
        assert reader.inspect_commit("r", cid).parent == head
        assert [f.path for f in reader.walk("r", "master")] == ["/a", "/b"]
    # Either way the branch goes on, with an intact history.
    after = reader.put_file("r", "master", "/c", b"c")
    expected = [after, cid, head] if where == "after-swap" else [after, head]
    assert _history_ids(open_store(store_url), "r") == expected


def test_finish_commit_killed_after_landing_is_finished_once(store, store_url):
    """``finish commit`` killed after its commit landed but before it cleaned up: finishing again lands
    nothing twice, and the branch is usable."""
    store.create_repo("r")
    cid = store.start_commit("r", "master")
    store.put_file("r", "master", "/a", b"a")
    code = textwrap.dedent("""
        import os, signal, sys
        from pach_airflow.pfs import open_store
        store = open_store(sys.argv[1])
        real = store.backend.delete
        def die(key):
            if "/open-branches/" in key:
                os.kill(os.getpid(), signal.SIGKILL)
            return real(key)
        store.backend.delete = die
        store.finish_commit("r", "master")
    """)
    p = subprocess.run([sys.executable, "-c", code, store_url], cwd=ROOT, check=False)
    assert p.returncode == -signal.SIGKILL
    assert store.inspect_commit("r", "master").id == cid  # it landed
    info = store.finish_commit("r", "master")  # the open marker is still there: finish again
    assert info.id == cid
    assert _history_ids(store, "r") == [cid]
    store.put_file("r", "master", "/b", b"b")
    assert [f.path for f in store.walk("r", "master")] == ["/a", "/b"]
