"""The store's contract, run on both backends (local folder and SeaweedFS S3)."""

from __future__ import annotations

import io
import json

import pytest

from pach_airflow.errors import AlreadyExists, Conflict, InvalidName, InvalidPath, NotFound
from pach_airflow.pfs import FileInfo, open_store
from pach_airflow.pfs.paths import is_commit_id


def _files(store, repo, ref="master", prefix="/"):
    return {f.path: store.get_blob(f.hash) for f in store.walk(repo, ref, prefix)}


def test_repos(store):
    r = store.create_repo("images", "pictures")
    assert (r.name, r.description, r.size_bytes, r.branches) == ("images", "pictures", 0, [])
    with pytest.raises(AlreadyExists):
        store.create_repo("images")
    assert store.create_repo("images", "new words", update=True).description == "new words"
    store.create_repo("edges")
    assert sorted(r.name for r in store.list_repos()) == ["edges", "images"]
    store.put_file("images", "master", "/a", b"12345")
    assert store.inspect_repo("images").size_bytes == 5
    store.delete_repo("images")
    with pytest.raises(NotFound):
        store.inspect_repo("images")
    assert [r.name for r in store.list_repos()] == ["edges"]
    store.create_repo("images")  # the name can be used again, and starts empty
    assert store.list_branches("images") == []


def test_commit_files_and_history(store):
    store.create_repo("data")
    with store.open_commit("data", "master", description="first") as c:
        c.put_file("/a/b.txt", b"hello")
        c.put_file("c.txt", io.BytesIO(b"see"))
        assert is_commit_id(c.commit_id)
    first = store.inspect_commit("data", "master")
    assert first.id == c.commit_id and first.parent is None and first.origin == "USER"
    assert (first.file_count, first.size_bytes, first.description) == (2, 8, "first")
    assert _files(store, "data") == {"/a/b.txt": b"hello", "/c.txt": b"see"}

    second = store.inspect_commit("data", store.put_file("data", "master", "/a/d.txt", b"dee"))
    assert second.parent == first.id and second.id > first.id
    assert store.read_file("data", "master", "/a/d.txt") == b"dee"
    assert store.read_file("data", "master^", "/a/b.txt") == b"hello"
    with pytest.raises(NotFound):
        store.read_file("data", "master^", "/a/d.txt")
    assert store.inspect_commit("data", "master.1").id == first.id
    assert store.inspect_commit("data", f"master={first.id}").id == first.id
    assert store.inspect_commit("data", f"{second.id}^").id == first.id
    assert [c.id for c in store.list_commits("data", "master")] == [second.id, first.id]
    assert [c.id for c in store.list_commits("data", "master", limit=1)] == [second.id]
    assert [c.id for c in store.list_commits("data")] == [second.id, first.id]
    # A commit is immutable: the first commit still reads the same.
    assert _files(store, "data", first.id) == {"/a/b.txt": b"hello", "/c.txt": b"see"}


def test_list_and_inspect_file(store):
    store.create_repo("r")
    with store.open_commit("r", "master") as c:
        for p, d in {"/d/x": b"1", "/d/y/z": b"22", "/d-e": b"333", "/top": b"4444"}.items():
            c.put_file(p, d)
    root = store.list_file("r", "master")
    assert [(f.path, f.type, f.size) for f in root] == [("/d-e", "file", 3), ("/d/", "dir", 3),
                                                         ("/top", "file", 4)]
    assert [(f.path, f.type) for f in store.list_file("r", "master", "/d")] == [("/d/x", "file"),
                                                                                ("/d/y/", "dir")]
    d = store.inspect_file("r", "master", "/d")
    assert (d.path, d.type, d.size) == ("/d/", "dir", 3) and d.hash == root[1].hash
    assert store.inspect_file("r", "master", "/").size == 10
    assert store.inspect_file("r", "master", "/top").type == "file"
    assert store.list_file("r", "master", "/top") == [store.inspect_file("r", "master", "/top")]
    with pytest.raises(NotFound):
        store.inspect_file("r", "master", "/nope")
    with pytest.raises(InvalidPath):
        store.read_file("r", "master", "/d")
    # The dir hash changes when anything below changes, including a rename.
    before = store.dir_hash("r", "master", "/d")
    with store.open_commit("r", "master") as c:
        c.delete_file("/d/x")
        c.put_file("/d/x2", b"1")
    assert store.dir_hash("r", "master", "/d") != before
    assert [f.path for f in store.walk("r", "master", "/d")] == ["/d/x2", "/d/y/z"]
    assert [f.path for f in store.walk("r", "master", "/d/y/z")] == ["/d/y/z"]


def test_walk_tree_matches_pachyderm_order(store):
    store.create_repo("r")
    with store.open_commit("r", "master") as c:
        for p in ("/dir1/file1.1", "/dir1/file1.2", "/dir2/file2.1", "/dir2/sub/x", "/dir1-b", "/top"):
            c.put_file(p, p.encode())
    tree = list(store.walk_tree("r", "master"))
    assert [f.path for f in tree] == ["/dir1-b", "/dir1/", "/dir1/file1.1", "/dir1/file1.2", "/dir2/",
                                      "/dir2/file2.1", "/dir2/sub/", "/dir2/sub/x", "/top"]
    for f in tree:
        assert f == store.inspect_file("r", "master", f.path)
    assert [f.path for f in store.walk_tree("r", "master", "/dir2")] == ["/dir2/file2.1", "/dir2/sub/",
                                                                         "/dir2/sub/x"]


def test_delete_overwrite_append(store):
    store.create_repo("r")
    with store.open_commit("r", "master") as c:
        c.put_file("/dir/a", b"a")
        c.put_file("/dir/sub/b", b"b")
        c.put_file("/keep", b"k")
    store.put_file("r", "master", "/keep", b"K2")  # overwrite is the default
    store.put_file("r", "master", "/keep", b"+", append=True)
    assert store.read_file("r", "master", "/keep") == b"K2+"
    store.delete_file("r", "master", "/dir")
    assert _files(store, "r") == {"/keep": b"K2+"}
    with pytest.raises(NotFound):
        store.delete_file("r", "master", "/missing")
    # Inside one commit, operations apply in order.
    with store.open_commit("r", "master") as c:
        c.put_file("/x/1", b"1")
        c.delete_file("/x")
        c.put_file("/x/2", b"2")
        c.put_file("/new", b"n", append=True)  # append to nothing = create
    assert _files(store, "r") == {"/keep": b"K2+", "/new": b"n", "/x/2": b"2"}


def test_file_vs_directory_refused(store):
    store.create_repo("r")
    store.put_file("r", "master", "/a", b"file")
    head = store.inspect_commit("r", "master").id
    with pytest.raises(InvalidPath):
        store.put_file("r", "master", "/a/b", b"x")
    with pytest.raises(InvalidPath):
        store.put_file("r", "master", "/", b"x")
    assert store.inspect_commit("r", "master").id == head


def test_exception_in_commit_leaves_nothing(store):
    store.create_repo("r")
    store.put_file("r", "master", "/a", b"1")
    head = store.inspect_commit("r", "master").id
    with pytest.raises(RuntimeError), store.open_commit("r", "master") as c:
        c.put_file("/b", b"2")
        raise RuntimeError("boom")
    assert store.inspect_commit("r", "master").id == head
    assert [c.id for c in store.list_commits("r")] == [head]


def test_start_finish_commit_across_store_objects(store, store_url):
    store.create_repo("r")
    cid = store.start_commit("r", "master", description="batch")
    other = open_store(store_url)  # another process would see the same
    other.put_file("r", "master", "/a", b"1")
    other.put_file("r", cid, "/b", b"2")
    other.put_files("r", "master", [("/c", b"3"), ("/d", b"4")])
    with pytest.raises(Conflict):
        store.start_commit("r", "master")
    listed = list(store.list_commits("r", "master"))
    assert listed[0].id == cid and listed[0].finished is None
    with pytest.raises(NotFound):  # nothing finished yet on master
        store.inspect_commit("r", "master")
    info = other.finish_commit("r", "master")
    assert info.id == cid and info.file_count == 4 and info.description == "batch"
    assert _files(store, "r") == {"/a": b"1", "/b": b"2", "/c": b"3", "/d": b"4"}
    with pytest.raises(Conflict):
        store.finish_commit("r", "master")
    with pytest.raises(Conflict):
        store.put_file("r", cid, "/e", b"5")  # finished commits are immutable


def test_branches(store):
    store.create_repo("r")
    b = store.create_branch("r", "dev")
    assert b.head is not None and store.inspect_commit("r", "dev").origin == "AUTO"
    assert store.list_file("r", "dev") == []
    store.put_file("r", "master", "/a", b"1")
    m = store.inspect_commit("r", "master").id
    store.create_branch("r", "staging", head="master")
    assert store.inspect_branch("r", "staging").head == m
    store.put_file("r", "master", "/b", b"2")
    store.create_branch("r", "staging", head="master")  # --head moves an existing branch
    assert store.inspect_branch("r", "staging").head == store.inspect_commit("r", "master").id
    with pytest.raises(AlreadyExists):
        store.create_branch("r", "dev")
    assert sorted(b.name for b in store.list_branches("r")) == ["dev", "master", "staging"]
    store.delete_branch("r", "dev")
    with pytest.raises(NotFound):
        store.inspect_branch("r", "dev")
    with pytest.raises(NotFound):
        store.create_branch("r", "x", head="nope")


def test_write_commit_and_provenance(store):
    store.create_repo("in")
    store.create_repo("out")
    inc = store.inspect_commit("in", store.put_file("in", "master", "/x", b"x"))
    h, size = store.put_blob(b"result")
    files = [FileInfo("/r/1", "file", size, h), FileInfo("/r/2", "file", size, h)]
    cid = store.new_commit_id()
    c = store.write_commit("out", "master", files, commit_id=cid, provenance=[inc])
    assert c.id == cid and c.origin == "AUTO" and c.file_count == 2 and c.size_bytes == 12
    assert c.provenance == [{"repo": "in", "branch": "master", "id": inc.id}]
    assert store.inspect_commit("out", cid).provenance == c.provenance
    # The same id again (a retried job finish) returns the landed commit; it does not land twice.
    assert store.write_commit("out", "master", files, commit_id=cid, provenance=[inc]) == c
    assert [x.id for x in store.list_commits("out", "master")] == [cid]
    with pytest.raises(Conflict):
        store.write_commit("out", "other", files, commit_id=cid)
    # write_commit replaces the whole content.
    c2 = store.write_commit("out", "master", files[:1], error="datum failed")
    assert c2.parent == cid and c2.error == "datum failed"
    assert [f.path for f in store.walk("out", "master")] == ["/r/1"]
    with pytest.raises(InvalidPath):
        store.write_commit("out", "master", [files[1], files[0]])  # not sorted
    with pytest.raises(InvalidPath, match="is a file"):
        store.write_commit("out", "master", [FileInfo("/r", "file", size, h), FileInfo("/r-x", "file", size, h),
                                             FileInfo("/r/1", "file", size, h)])
    assert store.inspect_commit("out", "master").id == c2.id


def test_copy_and_diff(store):
    store.create_repo("a")
    store.create_repo("b")
    with store.open_commit("a", "master") as c:
        c.put_file("/d/1", b"one")
        c.put_file("/d/2", b"two")
    sent = store.bytes_uploaded
    with store.open_commit("b", "master") as c:
        assert c.copy_file("a", "master", "/d", "/copied") == 2
        c.copy_file("a", "master", "/d/1", "/single")
    assert store.bytes_uploaded == sent  # copies move no bytes
    assert _files(store, "b") == {"/copied/1": b"one", "/copied/2": b"two", "/single": b"one"}
    with store.open_commit("b", "master") as c:
        c.put_file("/copied/1", b"ONE")
        c.delete_file("/single")
        c.put_file("/added", b"+")
    d = [(n and n.path, o and o.path) for n, o in store.diff_file("b", "master")]
    assert d == [("/added", None), ("/copied/1", "/copied/1"), (None, "/single")]
    assert [(n and n.path) for n, _ in store.diff_file("b", "master", "master^", prefix="/copied")] == ["/copied/1"]


def test_blobs_dedup(store, tmp_path):
    data = b"x" * 100_000
    h, n = store.put_blob(data)
    sent = store.bytes_uploaded
    assert store.put_blob(data) == (h, n) and store.bytes_uploaded == sent
    p = tmp_path / "f"
    p.write_bytes(data)
    assert store.put_blob(p) == (h, n) and store.bytes_uploaded == sent
    assert store.has_blob(h) and store.get_blob(h) == data
    store.get_blob_to(h, tmp_path / "out")
    assert (tmp_path / "out").read_bytes() == data
    with pytest.raises(NotFound):
        store.open_blob("0" * 64)


def test_reput_from_a_fresh_process_sends_nothing(store, store_url, tmp_path):
    store.create_repo("r")
    items = []
    for i in range(20):
        p = tmp_path / f"f{i}"
        p.write_bytes(b"%d" % i * 1000)
        items.append((f"/d/f{i}", p))
    store.put_files("r", "master", items)
    assert store.bytes_uploaded > 0
    fresh = open_store(store_url)  # knows nothing yet: the branch head tells it what is stored
    fresh.put_files("r", "master", items)
    assert fresh.bytes_uploaded == 0 and fresh.blobs_skipped == 20
    assert store.inspect_commit("r", "master").file_count == 20


def test_big_file_streamed(store, tmp_path):
    big = tmp_path / "big"
    with open(big, "wb") as f:
        f.writelines(bytes([i]) * (1 << 20) for i in range(20))
    store.create_repo("r")
    store.put_file("r", "master", "/big", big)
    with open(big, "rb") as f:
        store.put_file("r", "master", "/big2", f)  # a stream bigger than the in-memory limit
    a, b = store.inspect_file("r", "master", "/big"), store.inspect_file("r", "master", "/big2")
    assert a.size == b.size == 20 << 20 and a.hash == b.hash
    store.get_files("r", "master", "/big", tmp_path / "back")
    assert (tmp_path / "back").read_bytes() == big.read_bytes()


def test_records(store):
    store.put_record("pps/jobs/p/j1", {"state": "JOB_CREATED"})
    store.put_record("pps/jobs/p/j1/sets/0", {"datums": []})
    store.put_bytes("pps/jobs/p/j1/datums", b"line\n")
    assert store.get_record("pps/jobs/p/j1") == {"state": "JOB_CREATED"}
    assert store.get_bytes("pps/jobs/p/j1/datums") == b"line\n"
    assert list(store.list_records("pps/jobs/p/")) == ["pps/jobs/p/j1", "pps/jobs/p/j1/datums",
                                                       "pps/jobs/p/j1/sets/0"]
    assert list(store.list_records("pps/jobs/p/", recursive=False)) == ["pps/jobs/p/j1"]
    assert store.update_record("n", lambda old: (old or 0) + 1) == 1
    assert store.update_record("n", lambda old: old + 1) == 2
    store.delete_record("n")
    with pytest.raises(NotFound):
        store.get_record("n")
    with pytest.raises(InvalidName):
        store.put_record("../x", {})


def test_missing_things(store):
    with pytest.raises(NotFound, match="repo nope not found"):
        store.inspect_commit("nope", "master")
    store.create_repo("r")
    with pytest.raises(NotFound, match="branch master not found"):
        store.list_file("r", "master")
    with pytest.raises(NotFound):
        store.inspect_commit("r", "0" * 32)
    with pytest.raises(NotFound):
        list(store.list_commits("r", "dev"))


def test_subscribe(store):
    store.create_repo("r")
    a = store.put_file("r", "master", "/a", b"1")
    b = store.put_file("r", "master", "/b", b"2")
    got = [c.id for c in store.subscribe_commits("r", "master", poll=0.05, timeout=0.2)]
    assert got == [a, b]
    assert [c.id for c in store.subscribe_commits("r", "master", from_id=a, poll=0.05, timeout=0.2)] == [b]
    it = store.subscribe_commits("r", "master", new=True, poll=0.05, timeout=5)
    import threading

    t = threading.Timer(0.3, lambda: store.put_file("r", "master", "/c", b"3"))
    t.start()
    c = next(it)
    t.join()
    assert c.parent == b and c.finished is not None


def test_store_layout_is_plain_json(store):
    store.create_repo("r")
    cid = store.put_file("r", "master", "/a", b"1")
    doc = json.loads(store.backend.get(f"repos/r/commits/{cid}.json"))
    assert doc["id"] == cid and doc["repo"] == "r" and doc["manifest"]


def test_readers_write_nothing(store, store_url):
    """Opening a store and reading it sends no writes (read-only credentials are enough to read)."""
    store.create_repo("r")
    store.create_branch("r", "empty")
    store.put_file("r", "master", "/a/b", b"1")
    reader = open_store(store_url)
    writes: list[str] = []
    for name in ("put", "put_if_absent", "put_if_match", "put_file", "delete"):
        real = getattr(reader.backend, name)

        def spy(key, *args, _real=real, **kwargs):
            writes.append(key)
            return _real(key, *args, **kwargs)

        setattr(reader.backend, name, spy)
    assert [r.name for r in reader.list_repos()] == ["r"]
    assert [f.path for f in reader.walk("r", "master")] == ["/a/b"]
    assert reader.list_file("r", "empty") == []
    assert reader.inspect_file("r", "master", "/a").type == "dir"
    list(reader.list_commits("r"))
    list(reader.diff_file("r", "master"))
    assert writes == []


def test_long_history_reads_in_order(store, store_url):
    store.create_repo("r")
    ids = [store.put_file("r", "master", f"/f{i}", b"%d" % i) for i in range(40)]
    fresh = open_store(store_url)
    assert [c.id for c in fresh.list_commits("r", "master")] == ids[::-1]
    assert fresh.inspect_commit("r", "master^35").id == ids[4]
    assert fresh.inspect_commit("r", "master.3").id == ids[2]
    assert [c.id for c in fresh.list_commits("r", "master", limit=3)] == ids[:-4:-1]
