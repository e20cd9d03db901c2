"""The worker commands as pods call them: ``worker stage`` (init container), the shim (user container),
``worker upload --wait`` (sidecar), each a separate process; plus the errors users can cause."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from pach_airflow.errors import JobError, RunnerError, SpecError
from pach_airflow.runners.local import namespace_argv
from pach_airflow.worker import WorkDir, stage_set, upload_set


def _worker(url: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    p = subprocess.run([sys.executable, "-m", "pach_airflow.worker", "--store", url, *args], capture_output=True,
                       text=True, timeout=120, check=False)
    if check:
        assert p.returncode == 0, p.stderr
    return p


def _run_shim_in_namespace(work: str) -> None:
    """What a pod's user container does, with /pfs as the local runner presents it."""
    w = WorkDir(work)
    os.makedirs(f"{work}/pfsroot")
    script = f"{w.busybox} mount -o bind {work}/pfsroot /pfs && exec {w.busybox} sh {w.shim}"
    subprocess.run([*namespace_argv(), str(w.busybox), "sh", "-c", script], check=True, timeout=120,
                   capture_output=True)


def test_stage_shim_upload_as_separate_processes(sets, local_store, local_store_url, tmp_path):
    sets.repo("data", {"/x/1": "one", "/x/2": "two"})
    job = sets.job({"cmd": ["sh", "-c", "cat /pfs/data/x/* > /pfs/out/all"]},
                   [[[sets.input("data", "data", "/x/1")], [sets.input("data", "data", "/x/2")]]])
    work = str(tmp_path / "pach")
    out = _worker(local_store_url, "stage", "--pipeline", "p", "--job", job, "--set", "0", "--work", work)
    assert "staged 2 datum(s)" in out.stdout
    assert (tmp_path / "pach/datums/0/pfs/data/x/1").read_text() == "one"
    assert not os.path.exists(f"{work}/datums/0/pfs/data/x/2")
    # The sidecar starts first and waits for WORK/done.
    sidecar = subprocess.Popen([sys.executable, "-m", "pach_airflow.worker", "--store", local_store_url, "upload",
                                "--work", work, "--wait", "--poll", "0.05", "-o", "json"], stdout=subprocess.PIPE,
                               text=True)
    _run_shim_in_namespace(work)
    stdout, _ = sidecar.communicate(timeout=120)
    assert sidecar.returncode == 0
    rows = [json.loads(line) for line in stdout.splitlines()]
    assert [r["state"] for r in rows] == ["SUCCESS", "SUCCESS"]
    res = sets.result(job)
    assert sorted(sets.output(d, "/all") for d in res["datums"]) == [b"one", b"two"]


def test_upload_without_done_marks_unrun_datums_failed(sets, local_store, tmp_path):
    sets.repo("data", {"/f": "x"})
    job = sets.job({"cmd": ["true"]}, [[[sets.input("data", "data", "/f")]]])
    w = stage_set(local_store, "p", job, "0", tmp_path / "w")
    rec = upload_set(local_store, w)
    (d,) = rec["datums"]
    assert d["state"] == "FAILED" and "did not run" in d["reason"]
    with pytest.raises(RunnerError, match="timed out"):
        upload_set(local_store, w, wait=True, poll=0.01, timeout=0.05)


def test_stage_refuses_before_writing(sets, local_store, tmp_path):
    sets.repo("data", {"/f": "x"})
    s3 = sets.job({"cmd": ["true"]}, [[[sets.input("data", "data", "/", s3=True)]]])
    with pytest.raises(JobError, match="s3"):
        stage_set(local_store, "p", s3, "0", tmp_path / "a")
    assert not (tmp_path / "a").exists()
    secret = sets.job({"cmd": ["true"], "secrets": [{"name": "nope", "key": "k", "env_var": "K"}]},
                      [[[sets.input("data", "data", "/f")]]])
    with pytest.raises(RunnerError, match="secret 'nope' key 'k'"):
        stage_set(local_store, "p", secret, "0", tmp_path / "b", secrets_dir=tmp_path / "secrets")
    assert not (tmp_path / "b").exists()
    nocmd = sets.job({"cmd": []}, [[[sets.input("data", "data", "/f")]]])
    with pytest.raises(SpecError, match="no command specified"):
        stage_set(local_store, "p", nocmd, "0", tmp_path / "c")
    with pytest.raises(JobError, match="datum set '7'"):
        stage_set(local_store, "p", nocmd, "7", tmp_path / "c")
    with pytest.raises(JobError, match="not found"):
        stage_set(local_store, "p", "0" * 32, "0", tmp_path / "c")


def test_cli_errors_are_user_errors(pach, sets, local_store):
    res = pach("worker", "stage", "--pipeline", "p", "--job", "f" * 32, "--set", "0", "--work", "/tmp/x", check=False)
    assert res.code == 1 and "plan it first" in res.err
    res = pach("worker", "upload", "--work", "/nonexistent-work", check=False)
    assert res.code == 1 and "worker stage" in res.err


def test_busybox_must_be_static(tmp_path):
    from pach_airflow.worker import find_busybox

    assert find_busybox() == find_busybox("/bin/busybox")
    with pytest.raises(RunnerError, match="dynamically linked"):
        find_busybox(os.path.realpath(sys.executable))


def test_shim_runs_as_the_images_user(sets, local_store_url, tmp_path):
    """In a pod the init container stages as root and the user's image may run as another user."""
    import shutil
    import tempfile

    sets.repo("data", {"/f": "in"})
    job = sets.job({"cmd": ["sh", "-c", "id -u > /pfs/out/uid; cat /pfs/data/f >> /pfs/out/uid"]},
                   [[[sets.input("data", "data", "/f")]]])
    root = tempfile.mkdtemp(prefix="pach-airflow-test-pod-")
    os.chmod(root, 0o755)
    try:
        work = f"{root}/pach"
        _worker(local_store_url, "stage", "--pipeline", "p", "--job", job, "--set", "0", "--work", work)
        w = WorkDir(work)
        os.makedirs(f"{work}/pfsroot")
        os.chmod(f"{work}/pfsroot", 0o777)  # an emptyDir volume
        script = (f"{w.busybox} mount -o bind {work}/pfsroot /pfs && exec /usr/bin/setpriv --reuid=65534 --regid=65534 "
                  f"--clear-groups -- {w.busybox} sh {w.shim}")
        p = subprocess.run([*namespace_argv(), str(w.busybox), "sh", "-c", script], timeout=120,
                           capture_output=True, text=True, check=False)
        assert p.returncode == 0, p.stdout + p.stderr
        _worker(local_store_url, "upload", "--work", work)
        (d,) = sets.result(job)["datums"]
        assert d["state"] == "SUCCESS", d
        assert sets.output(d, "/uid") == b"65534\nin"
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_shim_in_an_image_with_nothing_but_one_static_binary(sets, local_store, tmp_path):
    """A stand-in for a minimal user image: a root filesystem holding only a static ``cp`` (busybox under
    that name), no shell, no libc, no /proc; /dev/null as every container runtime provides it. The work
    folder is mounted at /pach as in a pod."""
    import shutil

    sets.repo("data", {"/dir/f": "payload"})
    job = sets.job({"cmd": ["cp", "/pfs/data/dir/f", "/pfs/out/copied"], "stdin": ["ignored"]},
                   [[[sets.input("data", "data", "/dir/f")]]])
    work = tmp_path / "pach"
    w = stage_set(local_store, "p", job, "0", work, shared=True)
    rootfs = tmp_path / "rootfs"
    for d in ("pfs", "pach", "img-bin", "dev"):
        (rootfs / d).mkdir(parents=True)
    (rootfs / "dev" / "null").touch()
    shutil.copy("/bin/busybox", rootfs / "img-bin" / "cp")
    bb = w.busybox
    script = (f"{bb} mount -o bind {work} {rootfs}/pach && {bb} mount -o bind /dev/null {rootfs}/dev/null && "
              f"exec env -i PATH=/img-bin {bb} chroot {rootfs} /pach/bin/busybox sh /pach/shim.sh")
    p = subprocess.run([*namespace_argv(), str(bb), "sh", "-c", script], timeout=120, capture_output=True,
                       text=True, check=False)
    assert p.returncode == 0, p.stdout + p.stderr
    rec = upload_set(local_store, WorkDir(work))
    (d,) = rec["datums"]
    assert d["state"] == "SUCCESS", d["log"] + p.stdout + p.stderr
    assert sets.output(d, "/copied") == b"payload"
    assert sorted(os.listdir(rootfs)) == ["dev", "img-bin", "pach", "pfs"]  # nothing of ours left in the image
