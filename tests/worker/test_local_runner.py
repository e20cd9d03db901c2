"""The worker end to end on the local runner: stage → shim (busybox, private /pfs) → upload, for real."""

from __future__ import annotations

import os

import pytest

from pach_airflow.runners.local import run_set, wait_for_deletions


def test_cross_same_repo_two_names(sets, local_store):
    """Conformance case cross-same-repo-two-names: full paths under /pfs/<name>, stdin run by bash."""
    sets.repo("data", {"/dirA/file": "foo\n", "/dirB/file": "foo\n"})
    job = sets.job({"cmd": ["bash"], "stdin": ["cat /pfs/out/file", "cat /pfs/dirA/dirA/file >> /pfs/out/file",
                                                 "cat /pfs/dirB/dirB/file >> /pfs/out/file"]},
                   [[[sets.input("dirA", "data", "/dirA/file"), sets.input("dirB", "data", "/dirB/file")]]])
    summary = run_set(local_store, "p", job, "0")
    assert summary["SUCCESS"] == 1 and summary["datums"] == 1
    (d,) = sets.result(job)["datums"]
    assert d["state"] == "SUCCESS", d
    assert sets.output(d, "/file") == b"foo\nfoo\n"
    # The first line (`cat /pfs/out/file`) failed: /pfs/out starts empty.
    assert "No such file" in d["log"]
    wait_for_deletions()  # finished work folders are deleted in the background
    assert not os.listdir(os.environ["PACH_AIRFLOW_WORK_ROOT"])  # work folders and their locks are removed


def _env_of(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        k, sep, v = line.partition("=")
        if sep:
            out[k] = v
    return out


def test_env_vars_secrets_and_dotenv(sets, local_store, tmp_path):
    """Conformance case env-vars: what Pachyderm's UserCodeEnv sets, transform.env, a secret as env var
    and mounted as a file."""
    secret = tmp_path / "secrets" / "mysecret"
    secret.mkdir(parents=True)
    (secret / "foo").write_text("foo\n")
    commit = sets.repo("data", {"/file": "foo\n"})
    inp = sets.input("data", "data", "/file")
    job = sets.job({"cmd": ["sh", "-c", ("env > /pfs/out/env; cat /var/secret/foo > /pfs/out/secret; "
                                        "cp /pfs/.env /pfs/out/dotenv")],
                    "env": {"bar": "bar"},
                    "secrets": [{"name": "mysecret", "key": "foo", "env_var": "foo"},
                                {"name": "mysecret", "mount_path": "/var/secret"}]},
                   [[[inp]]])
    run_set(local_store, "p", job, "0")
    (d,) = sets.result(job)["datums"]
    assert d["state"] == "SUCCESS", d
    env = _env_of(sets.output(d, "/env").decode())
    assert env["data"] == "/pfs/data/file"
    assert env["data_COMMIT"] == commit
    assert env["PACH_JOB_ID"] == job
    assert env["PACH_OUTPUT_COMMIT_ID"] == job
    assert env["PACH_DATUM_ID"] == d["id"]
    assert env["PPS_PIPELINE_NAME"] == "p"
    assert env["bar"] == "bar"
    assert env["foo"] == "foo"  # "foo\n" -- env prints the newline as a line break
    assert sets.output(d, "/secret") == b"foo\n"
    dotenv = _env_of(sets.output(d, "/dotenv").decode())
    assert dotenv["data"] == "/pfs/data/file" and dotenv["PACH_DATUM_ID"] == d["id"]
    assert "foo" not in dotenv  # secrets stay out of /pfs/.env


def test_err_cmd_recovery_counts(sets, local_store):
    """Conformance case err-cmd-recovery-counts: relative paths from cwd /, cmd and err_cmd by bash."""
    sets.repo("data", {"/file1": "foo\n", "/file2": "bar\n", "/file3": "bar\n"})
    datums = [[sets.input("data", "data", f"/file{i}")] for i in (1, 2, 3)]
    job = sets.job({"cmd": ["bash"], "stdin": ["if", "[ -a pfs/data/file1 ]", "then", "exit 0", "fi", "exit 1"],
                    "err_cmd": ["bash"],
                    "err_stdin": ["if", "[ -a pfs/data/file3 ]", "then", "exit 0", "fi", "exit 1"]},
                   [datums])
    summary = run_set(local_store, "p", job, "0")
    assert (summary["SUCCESS"], summary["RECOVERED"], summary["FAILED"]) == (1, 1, 1)
    by_path = {d["id"]: d for d in sets.result(job)["datums"]}
    states = {}
    for inputs in datums:
        from pach_airflow.datum import datum_id

        states[inputs[0].path] = by_path[datum_id(inputs)]
    assert states["/file1"]["state"] == "SUCCESS" and states["/file1"]["tries"] == 1
    assert states["/file2"]["state"] == "FAILED" and states["/file2"]["tries"] == 3
    assert states["/file3"]["state"] == "RECOVERED" and states["/file3"]["outputs"] == []
    assert states["/file3"]["log"].count("finished running user error handling code") == 3


def test_datum_tries_counts_attempts(sets, local_store):
    """TestDatumTries: datum_tries 5 gives 5 'errored running user code' lines."""
    sets.repo("data", {"/f": "x"})
    job = sets.job({"cmd": ["false"]}, [[[sets.input("data", "data", "/f")]]], datum_tries=5)
    run_set(local_store, "p", job, "0")
    (d,) = sets.result(job)["datums"]
    assert d["state"] == "FAILED" and d["tries"] == 5
    assert d["log"].count("errored running user code") == 5
    assert d["reason"] == "exit status 1"
    assert d["started"] <= d["finished"]


def test_accept_return_code(sets, local_store):
    sets.repo("data", {"/f": "x"})
    job = sets.job({"cmd": ["sh", "-c", "echo kept > /pfs/out/o; exit 3"], "accept_return_code": [3]},
                   [[[sets.input("data", "data", "/f")]]])
    run_set(local_store, "p", job, "0")
    (d,) = sets.result(job)["datums"]
    assert d["state"] == "SUCCESS" and d["tries"] == 1
    assert sets.output(d, "/o") == b"kept\n"


def test_datum_timeout_kills_the_process_group(sets, local_store, tmp_path):
    """datum_timeout bounds each attempt and kills the whole process group: a background child of the
    first attempt is gone when the second attempt starts (in a pod there is no PID namespace to help)."""
    import time

    marker, report = tmp_path / "child-pid", tmp_path / "report"
    sets.repo("data", {"/f": "x"})
    script = (f"if [ -f {marker} ]; then if kill -0 $(cat {marker}) 2>/dev/null; then echo alive >> {report}; "
              f"else echo dead >> {report}; fi; fi; sleep 60 & echo $! > {marker}; sleep 60")
    job = sets.job({"cmd": ["sh", "-c", script]}, [[[sets.input("data", "data", "/f")]]], datum_timeout="1s",
                   datum_tries=2)
    t0 = time.monotonic()
    run_set(local_store, "p", job, "0")
    elapsed = time.monotonic() - t0
    (d,) = sets.result(job)["datums"]
    assert d["state"] == "FAILED" and d["tries"] == 2
    assert "datum_timeout" in d["reason"]
    assert d["log"].count("errored running user code") == 2
    assert report.read_text() == "dead\n"
    assert elapsed < 30


def test_bad_output_name_fails_the_datum(sets, local_store):
    sets.repo("data", {"/f": "x"})
    job = sets.job({"cmd": ["sh", "-c", "echo a > '/pfs/out/a*b'; echo ok > /pfs/out/fine"]},
                   [[[sets.input("data", "data", "/f")]]])
    summary = run_set(local_store, "p", job, "0")
    (d,) = sets.result(job)["datums"]
    assert summary["FAILED"] == 1
    assert d["state"] == "FAILED" and d["outputs"] == []
    assert "a*b" in d["reason"] and "cannot be represented in PFS" in d["reason"]
    assert "errored uploading output" in d["log"]


def test_missing_command_fails_with_the_error_in_the_log(sets, local_store):
    sets.repo("data", {"/f": "x"})
    job = sets.job({"cmd": ["no-such-command-here", "arg"]}, [[[sets.input("data", "data", "/f")]]], datum_tries=1)
    run_set(local_store, "p", job, "0")
    (d,) = sets.result(job)["datums"]
    assert d["state"] == "FAILED"
    assert "no-such-command-here" in d["log"]
    assert "127" in d["reason"]
    assert "executable file not found in $PATH" in d["log"]


def test_stdin_and_working_dir(sets, local_store, tmp_path):
    wd = tmp_path / "a dir with 'quotes'"
    wd.mkdir()
    sets.repo("data", {"/f": "x"})
    job = sets.job({"cmd": ["sh"], "stdin": ["pwd > /pfs/out/pwd", "read -r line || true", "echo done > /pfs/out/d"],
                    "working_dir": str(wd)}, [[[sets.input("data", "data", "/f")]]])
    run_set(local_store, "p", job, "0")
    (d,) = sets.result(job)["datums"]
    assert d["state"] == "SUCCESS", d
    assert sets.output(d, "/pwd").decode().strip() == str(wd)
    assert sets.output(d, "/d") == b"done\n"


def test_missing_working_dir_fails_the_datum(sets, local_store):
    sets.repo("data", {"/f": "x"})
    job = sets.job({"cmd": ["true"], "working_dir": "/no/such/dir"}, [[[sets.input("data", "data", "/f")]]],
                   datum_tries=1)
    run_set(local_store, "p", job, "0")
    (d,) = sets.result(job)["datums"]
    assert d["state"] == "FAILED" and "/no/such/dir" in d["log"]


NASTY = ["it's", 'say "hi"', "$HOME and $(echo no) `echo no`", "two\nlines", "  spaces  ", "back\\slash", "*", "",
         "semi; colon && amp | pipe > redirect", "ünïcödé"]


def test_shell_quoting_of_nasty_strings(sets, local_store):
    """cmd args, env values and stdin reach the code byte for byte, nothing is expanded by the shim."""
    import json

    sets.repo("data", {"/f": "x"})
    prog = ("import json, os, sys; "
            "json.dump({'argv': sys.argv[1:], 'env': [os.environ.get('V%d' % i) for i in range(len(sys.argv) - 1)], "
            "'stdin': sys.stdin.read()}, open('/pfs/out/r.json', 'w'))")
    import sys

    job = sets.job({"cmd": [sys.executable, "-c", prog, *NASTY],
                    "env": {f"V{i}": s for i, s in enumerate(NASTY)},
                    "stdin": NASTY}, [[[sets.input("data", "data", "/f")]]])
    run_set(local_store, "p", job, "0")
    (d,) = sets.result(job)["datums"]
    assert d["state"] == "SUCCESS", d
    r = json.loads(sets.output(d, "/r.json"))
    assert r["argv"] == NASTY
    assert r["env"] == NASTY
    assert r["stdin"] == "\n".join(NASTY) + "\n"


def test_input_names_that_are_not_shell_identifiers(sets, local_store):
    """Repo (and so input) names may hold '-': Pachyderm still sets <name>=... in the env."""
    sets.repo("my-data", {"/f": "x"})
    # Not `sh -c env`: dash drops variables whose names it cannot represent before running env.
    job = sets.job({"cmd": ["python3", "-c", ("import os; open('/pfs/out/env', 'w').write("
                                              "''.join(f'{k}={v}\\n' for k, v in os.environ.items()))")]},
                   [[[sets.input("my-data", "my-data", "/f")]]])
    run_set(local_store, "p", job, "0")
    (d,) = sets.result(job)["datums"]
    env = _env_of(sets.output(d, "/env").decode())
    assert env["my-data"] == "/pfs/my-data/f"


def test_user_image_without_a_shell(sets, local_store, tmp_path, monkeypatch):
    """PATH holds only one static binary (busybox named cp): the shim needs nothing from PATH."""
    import shutil

    img = tmp_path / "image-bin"
    img.mkdir()
    shutil.copy("/bin/busybox", img / "cp")
    monkeypatch.setenv("PATH", str(img))
    sets.repo("data", {"/dir/f": "payload"})
    job = sets.job({"cmd": ["cp", "/pfs/data/dir/f", "/pfs/out/copied"]}, [[[sets.input("data", "data", "/dir/f")]]])
    run_set(local_store, "p", job, "0")
    (d,) = sets.result(job)["datums"]
    assert d["state"] == "SUCCESS", d
    assert sets.output(d, "/copied") == b"payload"


def test_directory_match_and_root_glob_stage_subtrees(sets, local_store):
    sets.repo("data", {"/dir1/a": "1", "/dir1/sub/b": "2", "/dir10/c": "3", "/top": "4"})
    listing = ["sh", "-c", "cd /pfs/data && find . -type f | sort > /pfs/out/files; echo \"$data\" > /pfs/out/var"]
    job = sets.job({"cmd": listing}, [[[sets.input("data", "data", "/dir1/")], [sets.input("data", "data", "/")]]])
    run_set(local_store, "p", job, "0")
    d1, d2 = sets.result(job)["datums"]
    assert sets.output(d1, "/files").decode().split() == ["./dir1/a", "./dir1/sub/b"]
    assert sets.output(d1, "/var") == b"/pfs/data/dir1\n"
    assert sets.output(d2, "/files").decode().split() == ["./dir1/a", "./dir1/sub/b", "./dir10/c", "./top"]
    assert sets.output(d2, "/var") == b"/pfs/data\n"


def test_empty_files_symlinked_into_out_upload_real_content(sets, local_store):
    """TestEmptyFiles: placeholders are empty; a symlink to one in /pfs/out uploads the real content."""
    sets.repo("data", {"/big": "real content"})
    job = sets.job({"cmd": ["sh", "-c", ("wc -c < /pfs/data/big > /pfs/out/size; ln -s /pfs/data/big /pfs/out/big; "
                                        "ln -s ../data /pfs/out/alldata")]},
                   [[[sets.input("data", "data", "/big", empty_files=True)]]])
    run_set(local_store, "p", job, "0")
    (d,) = sets.result(job)["datums"]
    assert d["state"] == "SUCCESS", d
    assert sets.output(d, "/size").strip() == b"0"
    assert sets.output(d, "/big") == b"real content"
    assert sets.output(d, "/alldata/big") == b"real content"


def test_each_attempt_gets_an_empty_out(sets, local_store, tmp_path):
    counter = tmp_path / "n"
    sets.repo("data", {"/f": "x"})
    job = sets.job({"cmd": ["sh", "-c", (f"echo >> {counter}; n=$(wc -l < {counter}); touch /pfs/out/try$n; "
                                        "[ $n -ge 2 ]")]}, [[[sets.input("data", "data", "/f")]]])
    run_set(local_store, "p", job, "0")
    (d,) = sets.result(job)["datums"]
    assert d["state"] == "SUCCESS" and d["tries"] == 2
    assert [o[0] for o in d["outputs"]] == ["/try2"]


def test_transform_user(sets, local_store, monkeypatch, tmp_path):
    """As root, transform.user runs the code under that uid/gid (util-linux setpriv)."""
    import shutil
    import tempfile

    from pach_airflow.errors import RunnerError

    sets.repo("data", {"/f": "x"})
    transform = {"cmd": ["true"], "user": "65534"}
    with pytest.raises(RunnerError, match="not reachable by that user"):  # pytest's tmp is 0700
        run_set(local_store, "p", sets.job(transform, [[[sets.input("data", "data", "/f")]]]), "0")
    root = tempfile.mkdtemp(prefix="pach-airflow-test-work-")
    os.chmod(root, 0o755)
    monkeypatch.setenv("PACH_AIRFLOW_WORK_ROOT", root)
    job = sets.job({"cmd": ["sh", "-c", ("id -u > /pfs/out/uid; id -g > /pfs/out/gid; cat /pfs/data/f > /pfs/out/f; "
                                        "touch /pfs/data/scratch")],  # the datum's data is the user's, as in Pachyderm
                    "user": "65534:65534"}, [[[sets.input("data", "data", "/f")]]])
    try:
        run_set(local_store, "p", job, "0")
    finally:
        wait_for_deletions()
        shutil.rmtree(root)
    (d,) = sets.result(job)["datums"]
    assert d["state"] == "SUCCESS", d
    assert sets.output(d, "/uid") == b"65534\n" and sets.output(d, "/gid") == b"65534\n"
    assert sets.output(d, "/f") == b"x"


def test_parallel_sets_each_see_their_own_pfs(sets, local_store):
    import concurrent.futures

    sets.repo("data", {f"/f{i}": f"content {i}" for i in range(4)})
    job = sets.job({"cmd": ["sh", "-c", "sleep 0.3; cat /pfs/data/* > /pfs/out/seen; ls /pfs/data > /pfs/out/ls"]},
                   [[[sets.input("data", "data", f"/f{i}")]] for i in range(4)])
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        summaries = list(pool.map(lambda s: run_set(local_store, "p", job, s), ["0", "1", "2", "3"]))
    assert all(s["SUCCESS"] == 1 for s in summaries)
    for i in range(4):
        (d,) = sets.result(job, str(i))["datums"]
        assert sets.output(d, "/seen") == f"content {i}".encode()
        assert sets.output(d, "/ls") == f"f{i}\n".encode()


def test_cmd_runs_the_images_programs_not_busybox_applets(sets, local_store):
    """cmd ["sh"] / ["ls"] run the image's /bin/sh and ls (PATH lookup), never busybox's applets."""
    sets.repo("data", {"/f": "x"})
    job = sets.job({"cmd": ["sh", "-c", "readlink /proc/$$/exe > /pfs/out/sh; ls --version > /pfs/out/ls"]},
                   [[[sets.input("data", "data", "/f")]]])
    run_set(local_store, "p", job, "0")
    (d,) = sets.result(job)["datums"]
    assert d["state"] == "SUCCESS", d
    assert b"busybox" not in sets.output(d, "/sh")
    assert sets.output(d, "/ls").startswith(b"ls (GNU coreutils)")
    job = sets.job({"cmd": ["ls", "--version"]}, [[[sets.input("data", "data", "/f")]]])
    run_set(local_store, "p", job, "0")
    (d,) = sets.result(job)["datums"]
    assert "GNU coreutils" in d["log"]


def test_symlinks_out_of_pfs_are_uploaded_as_copies(sets, local_store, tmp_path):
    """A link to a file outside /pfs is copied by the shim, in the user's container (a pod's upload
    sidecar could not read it); a later change to that file does not change the output."""
    (tmp_path / "models").mkdir()
    outside = tmp_path / "models" / "model.bin"
    outside.write_bytes(b"weights")
    sets.repo("data", {"/f": "x"})
    job = sets.job({"cmd": ["sh", "-c", (f"ln -s {outside} /pfs/out/model; mkdir /pfs/out/d; "
                                        f"ln -s {tmp_path / 'models'} /pfs/out/d/tree")]}, [[[sets.input("data", "data", "/f")]]])
    run_set(local_store, "p", job, "0")
    (d,) = sets.result(job)["datums"]
    assert d["state"] == "SUCCESS", d
    assert sets.output(d, "/model") == b"weights"
    assert sets.output(d, "/d/tree/model.bin") == b"weights"


def test_group_and_join_datums_env(sets, local_store):
    """A group datum with several files under one name stages them all; $<name> is the last one; the
    join_on / group_by keys are in PACH_DATUM_<name>_JOIN_ON / _GROUP_BY."""
    import json
    import sys

    sets.repo("g", {"/k1-a": "A", "/k1-b": "B"})
    sets.repo("j", {"/x1": "X"})
    inputs = [sets.input("g", "g", "/k1-a", group_by="k1"), sets.input("g", "g", "/k1-b", group_by="k1"),
              sets.input("j", "j", "/x1", join_on="1")]
    prog = ("import json, os; json.dump({k: v for k, v in os.environ.items() if k in ('g', 'j') or "
            "k.startswith('PACH_DATUM_')}, open('/pfs/out/env.json', 'w')); "
            "open('/pfs/out/files', 'w').write(' '.join(sorted(os.listdir('/pfs/g'))))")
    job = sets.job({"cmd": [sys.executable, "-c", prog]}, [[inputs]])
    run_set(local_store, "p", job, "0")
    (d,) = sets.result(job)["datums"]
    assert d["state"] == "SUCCESS", d
    env = json.loads(sets.output(d, "/env.json"))
    assert env["g"] == "/pfs/g/k1-b" and env["j"] == "/pfs/j/x1"
    assert env["PACH_DATUM_g_GROUP_BY"] == "k1" and env["PACH_DATUM_j_JOIN_ON"] == "1"
    assert "PACH_DATUM_j_GROUP_BY" not in env
    assert sets.output(d, "/files") == b"k1-a k1-b"


def test_background_children_die_when_the_code_exits(sets, local_store, tmp_path):
    """driver_unix.go: the process group is killed when the user code exits, leftovers included."""
    marker = tmp_path / "child-pid"
    sets.repo("data", {"/a": "1", "/b": "2"})
    script = (f"if [ -f {marker} ]; then kill -0 $(cat {marker}) 2>/dev/null && echo alive > /pfs/out/r "
              f"|| echo dead > /pfs/out/r; else sleep 60 & echo $! > {marker}; fi")
    job = sets.job({"cmd": ["sh", "-c", script]}, [[[sets.input("data", "data", "/a")],
                                                   [sets.input("data", "data", "/b")]]])
    run_set(local_store, "p", job, "0")
    d1, d2 = sets.result(job)["datums"]
    assert d1["state"] == d2["state"] == "SUCCESS"
    assert sets.output(d2, "/r") == b"dead\n"


def test_long_logs_keep_a_tail_in_the_record_and_all_in_a_blob(sets, local_store):
    sets.repo("data", {"/f": "x"})
    job = sets.job({"cmd": ["sh", "-c", ("i=0; while [ $i -lt 3000 ]; do echo line-$i-0123456789012345678901234567890; "
                                        "i=$((i+1)); done; echo the-end >&2")]}, [[[sets.input("data", "data", "/f")]]])
    run_set(local_store, "p", job, "0")
    (d,) = sets.result(job)["datums"]
    whole = local_store.get_blob(d["log_blob"]).decode()
    assert "line-0-" in whole and "line-2999-" in whole and "the-end" in whole
    assert len(d["log"].encode()) <= 64 * 1024 and "line-0-" not in d["log"]
    assert whole.endswith(d["log"])
