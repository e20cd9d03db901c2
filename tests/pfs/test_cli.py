"""``pach-airflow`` data commands, run in-process (``pach``) and as a real process (``pach_proc``)."""

from __future__ import annotations

import json

import pytest


def test_repo_commands(pach):
    pach("create", "repo", "images", "-d", "pictures")
    out = pach("list", "repo")
    assert out.lines()[0].split() == ["NAME", "CREATED", "SIZE", "(MASTER)", "DESCRIPTION"]
    assert out.lines()[1].startswith("images") and "pictures" in out.lines()[1]
    [row] = pach("list", "repo", "-o", "json").json_lines()
    assert row["name"] == "images" and row["size_bytes"] == 0
    assert json.loads(pach("inspect", "repo", "images", "-o", "json").out)["description"] == "pictures"
    assert "Name: images" in pach("inspect", "repo", "images").out
    r = pach("create", "repo", "images", check=False)
    assert r.code == 1 and "already exists" in r.err
    pach("delete", "repo", "images")
    assert pach("list", "repo", "-o", "json").lines() == []


def test_bad_names_and_paths_write_nothing(pach, tmp_path):
    f = tmp_path / "f"
    f.write_bytes(b"x")
    for args in (["create", "repo", "bad name"], ["create", "repo", "a/b"], ["create", "repo", "x" * 64],
                 ["create", "branch", "r@bad.branch"]):
        r = pach(*args, check=False)
        assert r.code == 1 and "invalid" in r.err, args
    pach("create", "repo", "r")
    for target in ("r@master:/a/../b", "r@master:/a*b", "r@master:/caf\u00e9", "r@master:/a\tb", "nope@master:/x",
                   "r@master^:/x"):
        r = pach("put", "file", target, "-f", str(f), check=False)
        assert r.code == 1, target
        assert r.err.startswith("pach-airflow: error: ") and "Traceback" not in r.err
    r = pach("put", "file", "r@master:/x", "-f", str(tmp_path / "missing"), check=False)
    assert r.code == 1 and "not found" in r.err
    # A directory holding one bad file name is refused as a whole, before any upload.
    d = tmp_path / "d"
    d.mkdir()
    (d / "good").write_bytes(b"1")
    (d / "bad[1]").write_bytes(b"2")
    r = pach("put", "file", "-r", "r@master:/", "-f", str(d), check=False)
    assert r.code == 1 and "globbing character" in r.err
    [repo] = pach("list", "repo", "-o", "json").json_lines()
    assert (repo["name"], repo["size_bytes"], repo["branches"]) == ("r", 0, [])
    assert pach("list", "commit", "r", "-o", "json").lines() == []
    r = pach("list", "file", "r@master", check=False)
    assert r.code == 1 and "branch master not found" in r.err


def test_put_get_list_files(pach, tmp_path):
    pach("create", "repo", "data")
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_bytes(b"A")
    (src / "sub" / "b.txt").write_bytes(b"BB")
    pach("put", "file", "-r", "data@master:/in", "-f", str(src))
    pach("put", "file", "-r", "data@dev", "-f", str(src))  # no target path: the directory keeps its name
    assert [f["path"] for f in pach("list", "file", "data@dev:/src", "-o", "json").json_lines()] == [
        "/src/a.txt", "/src/sub/"]
    pach("put", "file", "data@master:/single", "-f", str(src / "a.txt"))
    pach("put", "file", "data@master:/dir/", "-f", str(src / "a.txt"))  # a trailing / keeps the base name
    pach("put", "file", "data@master:/stdin.txt", "-f", "-", stdin="from stdin\n")
    pach("put", "file", "data@master:/stdin.txt", "-a", "-f", "-", stdin="more\n")
    lst = tmp_path / "list"
    lst.write_text(f"{src / 'a.txt'}\n{src / 'sub' / 'b.txt'}\n")
    pach("put", "file", "data@master:/listed/", "-i", str(lst))
    assert len(pach("list", "commit", "data@master", "-o", "json").lines()) == 6  # one commit per put
    rows = pach("list", "file", "data@master").lines()
    assert rows[0].split() == ["NAME", "TYPE", "SIZE"]
    assert [r.split()[0] for r in rows[1:]] == ["/dir/", "/in/", "/listed/", "/single", "/stdin.txt"]
    files = pach("list", "file", "data@master:/in", "-o", "json").json_lines()
    assert [(f["path"], f["type"], f["size"]) for f in files] == [("/in/a.txt", "file", 1), ("/in/sub/", "dir", 2)]
    assert [f["path"] for f in pach("list", "file", "data@master:/listed", "-o", "json").json_lines()] == [
        "/listed/a.txt", "/listed/b.txt"]
    assert pach("get", "file", "data@master:/stdin.txt").out == "from stdin\nmore\n"
    pach("get", "file", "data@master:/in/sub/b.txt", "-o", str(tmp_path / "b"))
    assert (tmp_path / "b").read_bytes() == b"BB"
    pach("get", "file", "-r", "data@master:/in", "-o", str(tmp_path / "back"))
    assert (tmp_path / "back" / "sub" / "b.txt").read_bytes() == b"BB"
    r = pach("get", "file", "data@master:/in", check=False)
    assert r.code == 1 and "directory" in r.err
    info = json.loads(pach("inspect", "file", "data@master:/in", "-o", "json").out)
    assert info["type"] == "dir" and info["size"] == 3
    assert "Type: file" in pach("inspect", "file", "data@master:/single").out


def test_commits_and_branches(pach):
    pach("create", "repo", "r")
    cid = pach("start", "commit", "r@master", "-m", "batch").out.strip()
    pach("put", "file", "r@master:/a", "-f", "-", stdin="1")
    pach("put", "file", f"r@{cid}:/b", "-f", "-", stdin="2")
    [open_row] = pach("list", "commit", "r@master", "-o", "json").json_lines()
    assert open_row["id"] == cid and open_row["finished"] is None
    assert "-" in pach("list", "commit", "r@master").lines()[1]
    pach("finish", "commit", "r@master")
    c = json.loads(pach("inspect", "commit", "r@master", "-o", "json").out)
    assert c["id"] == cid and c["file_count"] == 2 and c["description"] == "batch" and c["finished"]
    header = pach("list", "commit", "r").lines()[0].split()
    assert header == ["REPO", "BRANCH", "COMMIT", "FINISHED", "SIZE", "ORIGIN", "DESCRIPTION"]
    r = pach("finish", "commit", "r@master", check=False)
    assert r.code == 1 and "no open commit" in r.err

    pach("create", "branch", "r@dev", "--head", "master")
    rows = pach("list", "branch", "r", "-o", "json").json_lines()
    assert {(b["name"], b["head"]) for b in rows} == {("dev", cid), ("master", cid)}
    pach("put", "file", "r@dev:/c", "-f", "-", stdin="3")
    assert len(pach("list", "commit", "r@dev", "-n", "1", "-o", "json").lines()) == 1
    pach("create", "repo", "other")
    pach("put", "file", "other@master:/o", "-f", "-", stdin="o")
    every = pach("list", "commit", "-o", "json").json_lines()
    assert {c["repo"] for c in every} == {"r", "other"} and every[0]["repo"] == "other"
    assert json.loads(pach("inspect", "commit", "r@dev^", "-o", "json").out)["id"] == cid
    pach("delete", "branch", "r@dev")
    assert [b["name"] for b in pach("list", "branch", "r", "-o", "json").json_lines()] == ["master"]


def test_diff_copy_delete(pach):
    pach("create", "repo", "a")
    pach("create", "repo", "b")
    pach("put", "file", "a@master:/d/1", "-f", "-", stdin="one")
    pach("put", "file", "a@master:/d/2", "-f", "-", stdin="two")
    pach("copy", "file", "a@master:/d", "b@master:/copy")
    assert [f["path"] for f in pach("list", "file", "b@master:/copy", "-o", "json").json_lines()] == [
        "/copy/1", "/copy/2"]
    diff = pach("diff", "file", "a@master", "-o", "json").json_lines()
    assert [(d["op"], d["path"]) for d in diff] == [("added", "/d/2")]
    diff = pach("diff", "file", "a@master:/d", "a@master^").lines()
    assert diff[0].split() == ["OP", "NAME", "SIZE"] and diff[1].split() == ["added", "/d/2", "3B"]
    r = pach("delete", "file", "b@master:/copy", check=False)
    assert r.code == 1 and "-r" in r.err
    pach("delete", "file", "b@master:/copy/1")
    pach("delete", "file", "-r", "b@master:/copy")
    assert pach("list", "file", "b@master", "-o", "json").lines() == []


def test_subscribe_streams_commits(pach):
    pach("create", "repo", "r")
    pach("put", "file", "r@master:/a", "-f", "-", stdin="1")
    pach("put", "file", "r@master:/b", "-f", "-", stdin="2")
    rows = pach("subscribe", "commit", "r@master", "--timeout", "0.3", "--poll", "0.05", "-o", "json").json_lines()
    assert len(rows) == 2 and rows[0]["id"] < rows[1]["id"]
    rows2 = pach("subscribe", "commit", "r@master", "--from", rows[0]["id"], "--timeout", "0.3", "--poll", "0.05",
                 "-o", "json").json_lines()
    assert [r["id"] for r in rows2] == [rows[1]["id"]]
    assert pach("subscribe", "commit", "r@master", "--new", "--timeout", "0.3", "--poll", "0.05").out == ""


def test_subscribe_as_process_sees_new_commits(pach_proc, tmp_path):
    import subprocess
    import sys

    pach_proc("create", "repo", "r")
    pach_proc("put", "file", "r@master:/a", "-f", "-", stdin="1")
    first = pach_proc("inspect", "commit", "r@master", "-o", "json").json_lines()[0]["id"]
    # --from (not --new), so the result does not depend on how fast the subscriber starts.
    p = subprocess.Popen([sys.executable, "-m", "pach_airflow", "--store", pach_proc.store_url, "subscribe", "commit",
                          "r@master", "--from", first, "--poll", "0.1", "-o", "json"], stdout=subprocess.PIPE)
    try:
        pach_proc("put", "file", "r@master:/b", "-f", "-", stdin="2")
        line = p.stdout.readline()  # blocks until the subscriber sees the new commit
        got = json.loads(line)
        assert got["repo"] == "r" and got["parent"] == first
    finally:
        p.kill()
        p.wait()


@pytest.mark.parametrize("cmd", [["list", "repo"], ["list", "commit", "r"], ["list", "file", "r@master"],
                                 ["list", "branch", "r"]])
def test_json_is_one_object_per_line(any_pach, cmd):
    any_pach("create", "repo", "r")
    any_pach("put", "file", "r@master:/x/y", "-f", "-", stdin="1")
    any_pach("put", "file", "r@master:/z", "-f", "-", stdin="1")
    for line in any_pach(*cmd, "-o", "json").lines():
        assert isinstance(json.loads(line), dict)


def test_put_file_from_url(pach, tmp_path):
    import functools
    import http.server
    import threading

    (tmp_path / "remote.csv").write_bytes(b"a,b\n1,2\n")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/remote.csv"
        pach("create", "repo", "r")
        pach("put", "file", "r@master:/x.csv", "-f", url)
        pach("put", "file", "r@master", "-f", url)  # no path: the URL's base name
        assert pach("get", "file", "r@master:/x.csv").out == "a,b\n1,2\n"
        assert pach("get", "file", "r@master:/remote.csv").out == "a,b\n1,2\n"
        r = pach("put", "file", "r@master:/y", "-f", url + ".missing", check=False)
        assert r.code == 1 and "cannot fetch" in r.err
        assert len(pach("list", "commit", "r", "-o", "json").lines()) == 2
    finally:
        server.shutdown()
