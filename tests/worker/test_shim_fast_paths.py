"""The shim's cheap paths (applets run by name, links replaced in place, env exported by the shell) behave
exactly like the general ones: each datum still sees a /pfs of its own, whatever the previous one did."""

from __future__ import annotations

import re

import pytest

from pach_airflow.runners.local import run_set
from pach_airflow.worker import ShimConfig, render_shim
from pach_airflow.worker.shim import exportable

LISTING = ["sh", "-c", ("cd /pfs && ls -A | sort | tr '\\n' ' ' > /tmp/ls.$$; cat /pfs/data/* > /pfs/out/data; "
                       "mv /tmp/ls.$$ /pfs/out/ls; "
                       "touch /pfs/junk-$PACH_DATUM_ID; mkdir -p /pfs/dir; echo $PPS_PIPELINE_NAME > /pfs/out/env")]


@pytest.fixture(params=["by-name", "exec"])
def applets(request, monkeypatch):
    """Both ways the shim calls its applets: by name (Debian's busybox-static) and through $BB."""
    if request.param == "exec":
        monkeypatch.setenv("PACH_AIRFLOW_SHIM_EXEC_APPLETS", "1")
    return request.param


def test_what_one_datum_leaves_in_pfs_the_next_does_not_see(sets, local_store, applets):
    sets.repo("data", {f"/f{i}": f"{i}\n" for i in range(4)})
    job = sets.job({"cmd": LISTING}, [[[sets.input("data", "data", f"/f{i}")] for i in range(4)]])
    assert run_set(local_store, "p", job, "0")["SUCCESS"] == 4
    for i, d in enumerate(sets.result(job)["datums"]):
        assert sets.output(d, "/ls") == b".env data out ", (i, d)
        assert sets.output(d, "/data") == f"{i}\n".encode()
        assert sets.output(d, "/env") == b"p\n"


def test_clean_datums_relink_in_place_and_inputs_follow_each_datum(sets, local_store, applets):
    """Datums that leave /pfs alone take the in-place relink; union datums change input names."""
    sets.repo("a", {"/x": "ax\n", "/y": "ay\n"})
    sets.repo("b", {"/z": "bz\n"})
    show = ["sh", "-c", ("cd /pfs && ls -A | sort | tr '\\n' ' ' > /tmp/ls.$$; cat /pfs/[ab]/* > /pfs/out/data; "
                       "mv /tmp/ls.$$ /pfs/out/ls")]
    datums = [[sets.input("a", "a", "/x")], [sets.input("a", "a", "/y")], [sets.input("b", "b", "/z")],
              [sets.input("a", "a", "/x"), sets.input("b", "b", "/z")], [sets.input("a", "a", "/y")]]
    job = sets.job({"cmd": show}, [datums])
    assert run_set(local_store, "p", job, "0")["SUCCESS"] == 5
    got = [(sets.output(d, "/ls"), sets.output(d, "/data")) for d in sets.result(job)["datums"]]
    assert got == [(b".env a out ", b"ax\n"), (b".env a out ", b"ay\n"), (b".env b out ", b"bz\n"),
                   (b".env a b out ", b"ax\nbz\n"), (b".env a out ", b"ay\n")]


def test_retries_err_cmd_and_timeout_with_either_way_of_calling_applets(sets, local_store, applets, tmp_path):
    marks = tmp_path / "marks"
    sets.repo("data", {"/f": "x", "/g": "y"})
    job = sets.job({"cmd": ["sh", "-c", (f"touch /pfs/out/t; echo try >> {marks}-$PACH_DATUM_ID; "
                                        "[ -e /pfs/data/g ] && sleep 30; exit 3")],
                    "err_cmd": ["sh", "-c", "exit 0"]},
                   [[[sets.input("data", "data", "/f")], [sets.input("data", "data", "/g")]]],
                   datum_tries=2, datum_timeout="2s")
    assert run_set(local_store, "p", job, "0")["RECOVERED"] == 1
    first, second = sets.result(job)["datums"]
    assert (first["state"], first["tries"], first["outputs"]) == ("RECOVERED", 2, [])
    assert first["reason"] == "exit status 3"
    assert (second["state"], second["tries"]) == ("FAILED", 2)
    assert "datum_timeout of 2s exceeded" in second["reason"]


def test_env_names_decide_between_export_and_env():
    assert exportable(["PACH_DATUM_ID", "data", "data_COMMIT", "_x1"])
    assert not exportable(["my-data"]) and not exportable(["PATH"]) and not exportable(["1x"])
    assert not exportable(["IFS"]) and not exportable(["LC_ALL"])
    cfg = ShimConfig(cmd=["c"])
    assert 'export "$@"' in render_shim(cfg, 1, env_names=["data"])
    assert 'export "$@"' not in render_shim(cfg, 1, env_names=["my-data"])
    assert 'export "$@"' not in render_shim(cfg, 1)  # unknown names: the general way


def test_every_applet_call_names_its_busybox():
    """Applets are called as `$A applet` (by name when the busybox allows it) or `$BB applet`; never bare,
    except the one probe, which runs with an empty PATH."""
    script = render_shim(ShimConfig(cmd=["c"], err_cmd=["e"], datum_timeout=3), 1, env_names=["x"])
    body = [ln.strip() for ln in script.splitlines() if ln.strip() and not ln.strip().startswith("#")]
    applet = r"(mv|cp|rm|ln|mkdir|cat|date|sleep|setsid|env|chown|readlink|find|basename)"
    calls = [(m.group(1), m.group(2)) for ln in body for m in re.finditer(r"(\S+)\s+" + applet + r"\s", ln)
             if not m.group(1).startswith(("-", "'"))]
    assert len(calls) > 10
    # `"$1" sleep`: the watchdog's own `sh -c`, whose $1 is $BB; `exec basename`: the probe.
    wrong = [c for c in calls if not (c[0].endswith(("$A", "$BB")) or c[0] == '"$1"' or c == ("exec", "basename"))]
    assert wrong == [], wrong


def test_out_is_empty_for_every_datum_whatever_the_previous_one_did(sets, local_store, applets):
    """/pfs/out stays in place between clean datums; a datum that fills it with hidden files and folders,
    or replaces it by a file, leaves nothing behind for the next one."""
    sets.repo("data", {"/a": "a", "/b": "b", "/c": "c", "/d": "d"})
    script = ("n=$(ls -A /pfs/out | wc -l); f=$(ls /pfs/data); echo $n > /pfs/out/.seen; mkdir /pfs/out/sub; "
              "echo $f > /pfs/out/sub/$f; if [ $f = b ]; then rm -rf /pfs/out; echo x > /pfs/out; fi")
    job = sets.job({"cmd": ["sh", "-c", script]}, [[[sets.input("data", "data", f"/{x}")] for x in "abcd"]])
    run_set(local_store, "p", job, "0")
    a, b, c, d = sets.result(job)["datums"]
    assert "replaced by a file" in b["reason"]
    for x, datum in (("a", a), ("c", c), ("d", d)):
        assert datum["state"] == "SUCCESS", datum
        assert sorted(o[0] for o in datum["outputs"]) == ["/.seen", f"/sub/{x}"]
        assert sets.output(datum, "/.seen") == b"0\n"
