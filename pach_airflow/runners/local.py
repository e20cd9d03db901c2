"""The local runner: one datum set on this machine, stage → shim → upload, with ``/pfs`` at its real path.

Owns: the private mount namespace that shows a set's own folder at ``/pfs`` to the shim and the user's
code (so specs run unchanged: ``cmd: ["cp", "/pfs/data/x", "/pfs/out/"]``), the temporary work folders,
and presenting ``transform.user`` and secrets the way a pod would.

How ``/pfs`` appears (``unshare`` from util-linux):

* as root: ``unshare --mount --propagation private --pid --fork --kill-child --mount-proc``, then
  ``mount --bind WORK/pfsroot /pfs`` inside; ``/pfs`` is created on the host as an empty directory if
  it is missing (the mount point itself; nothing is ever written to the host's ``/pfs``);
* as another user: the same in a user namespace (``unshare --map-root-user``); ``/pfs`` must exist.
  Where neither works, :class:`~pach_airflow.errors.RunnerError` says what to do.

The PID namespace makes the set's whole process tree die with the runner: the runner starts ``unshare``
with a parent-death signal (SIGKILL), and ``--kill-child`` takes the namespace's init, hence every
process in it, along. A runner killed mid-set therefore leaves no process behind and no result (upload
writes the result record last, in one write), so the next run simply runs the set again. Work folders
live under ``$PACH_AIRFLOW_WORK_ROOT`` (default ``<tmp>/pach-airflow-work``), each locked with ``flock``
while in use; a later run removes the folders nobody holds.

Several sets may run at once (``jobs.run_job`` runs up to ``parallelism_spec.constant``): each has its
own namespace and so its own ``/pfs``.

``transform.user`` (``uid``, ``uid:gid`` or a user name on this machine): the code runs under it via
util-linux ``setpriv`` (root only; busybox has no uid switch); ``/pfs/out`` is given to that user.
Secrets: ``$PACH_AIRFLOW_SECRETS_DIR/<secret name>/<key>`` (default ``~/.pach-airflow/secrets``) gives
``env_var`` values, and a secret with ``mount_path`` has its folder bind-mounted there, inside the
namespace only (the mount point is created on the host if missing, as ``/pfs`` is).
"""

from __future__ import annotations

import fcntl
import logging
import os
import pwd
import shlex
import shutil
import subprocess
import tempfile
import time
from collections import Counter, deque
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pach_airflow.errors import RunnerError
from pach_airflow.worker.stage import DEFAULT_SECRETS_DIR, find_busybox, load_set, stage_set
from pach_airflow.worker.upload import upload_set
from pach_airflow.worker.workdir import WorkDir, write_text_atomic

__all__ = ["PFS_MOUNT_POINT", "default_work_root", "namespace_argv", "run_set", "user_prefix"]

log = logging.getLogger(__name__)

PFS_MOUNT_POINT = "/pfs"
LOCK_NAME = ".lock"


def default_work_root() -> Path:
    return Path(os.environ.get("PACH_AIRFLOW_WORK_ROOT") or Path(tempfile.gettempdir()) / "pach-airflow-work")


def secrets_dir() -> Path:
    return Path(os.path.expanduser(os.environ.get("PACH_AIRFLOW_SECRETS_DIR") or DEFAULT_SECRETS_DIR))


def _tool(name: str) -> str:
    path = shutil.which(name) or next((p for p in (f"/usr/bin/{name}", f"/bin/{name}") if os.path.exists(p)), None)
    if not path:
        raise RunnerError(f"the local runner needs util-linux's {name} (Debian: apt-get install util-linux)")
    return path


def _ensure_mount_point() -> None:
    p = Path(PFS_MOUNT_POINT)
    if p.is_symlink() or (p.exists() and not p.is_dir()):
        raise RunnerError(f"{p} exists but is not a directory; the local runner mounts each datum set's "
                          f"folder there: remove it (or move it away)")
    if p.is_dir():
        return
    if os.geteuid() == 0:
        p.mkdir(mode=0o755, exist_ok=True)
        return
    raise RunnerError(f"{p} does not exist: the local runner shows each datum set's inputs at {p} through a "
                      f"private mount namespace, which needs an empty directory there. Create it once as "
                      f"root: sudo mkdir -m 755 {p}")


def namespace_argv(root_user: bool | None = None) -> list[str]:
    """``unshare`` arguments for a private mount + PID namespace that dies with its parent."""
    root_user = os.geteuid() == 0 if root_user is None else root_user
    argv = [_tool("setpriv"), "--pdeathsig", "KILL", _tool("unshare")]
    if not root_user:
        argv.append("--map-root-user")
    argv += ["--mount", "--propagation", "private", "--pid", "--fork", "--kill-child=SIGKILL", "--mount-proc"]
    return argv


def user_prefix(spec: Mapping[str, Any]) -> tuple[list[str], str | None]:
    """``(argv before cmd, "uid:gid" owner of /pfs/out)`` for ``transform.user``; ``([], None)`` without."""
    user = str((spec.get("transform") or {}).get("user") or "").strip()
    if not user:
        return [], None
    if os.geteuid() != 0:
        raise RunnerError(f"transform.user {user!r}: the local runner can switch users only as root; run it as "
                          f"root or remove transform.user")
    name, _, group = user.partition(":")
    try:
        uid = int(name)
        gid = int(group) if group else (pwd.getpwuid(uid).pw_gid if _has_uid(uid) else uid)
    except ValueError:
        try:
            pw = pwd.getpwnam(name)
        except KeyError:
            raise RunnerError(f"transform.user {user!r}: no such user on this machine; use a numeric uid[:gid]") from None
        uid = pw.pw_uid
        if group:
            import grp

            try:
                gid = int(group)
            except ValueError:
                try:
                    gid = grp.getgrnam(group).gr_gid
                except KeyError:
                    raise RunnerError(f"transform.user {user!r}: no such group {group!r} on this machine") from None
        else:
            gid = pw.pw_gid
    return [_tool("setpriv"), f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "--"], f"{uid}:{gid}"


def _has_uid(uid: int) -> bool:
    try:
        pwd.getpwuid(uid)
        return True
    except KeyError:
        return False


def _mounts(spec: Mapping[str, Any], sdir: Path) -> list[tuple[Path, str]]:
    """Secret folders to bind at their ``mount_path``."""
    out = []
    for s in (spec.get("transform") or {}).get("secrets") or []:
        mp = s.get("mount_path")
        if not mp:
            continue
        src = sdir / str(s.get("name"))
        if not src.is_dir():
            raise RunnerError(f"transform.secrets: secret {s.get('name')!r} (mount_path {mp}) is not at {src}; "
                              f"create that folder with one file per key ($PACH_AIRFLOW_SECRETS_DIR, default "
                              f"{DEFAULT_SECRETS_DIR})")
        out.append((src, str(mp)))
    return out


def _enter_script(w: WorkDir, pfsroot: Path, mounts: Sequence[tuple[Path, str]]) -> str:
    bb = shlex.quote(str(w.busybox))
    lines = [
        "# Generated by pach_airflow.runners.local: runs inside the private mount namespace.",
        (f"{bb} mount -o bind {shlex.quote(str(pfsroot))} {PFS_MOUNT_POINT} || "
         f"{{ echo 'local runner: cannot bind-mount the set folder at {PFS_MOUNT_POINT}' >&2; exit 70; }}"),
    ]
    for src, mp in mounts:
        q = shlex.quote(mp)
        lines.append(f"{bb} mkdir -p {q} && {bb} mount -o bind {shlex.quote(str(src))} {q} || "
                     f"{{ echo 'local runner: cannot mount secret at '{q} >&2; exit 70; }}")
    lines.append(f"exec {' '.join(shlex.quote(a) for a in w.shim_argv())}")
    return "\n".join(lines) + "\n"


def _chown_inputs(w: WorkDir, owner: str) -> None:
    uid, gid = (int(x) for x in owner.split(":"))
    datums = w.root / "datums"
    os.chmod(datums, 0o755)
    for d in datums.iterdir():
        os.chmod(d, 0o755)
        for dirpath, dirs, files in os.walk(d / "pfs"):
            os.chown(dirpath, uid, gid)
            for name in files:
                os.chown(os.path.join(dirpath, name), uid, gid)


def _check_traversable(root: Path, spec: Mapping[str, Any]) -> None:
    """transform.user reaches its inputs through /pfs symlinks into the work folder: every folder above
    it must be searchable by others."""
    for p in [root.absolute(), *root.absolute().parents]:
        if not os.stat(p).st_mode & 0o001:
            user = (spec.get("transform") or {}).get("user")
            raise RunnerError(f"transform.user {user!r}: the work root {root} is not reachable by that user "
                              f"({p} is not searchable by others); set PACH_AIRFLOW_WORK_ROOT to a folder "
                              f"with mode 755 all the way up (default: <tmp>/pach-airflow-work)")


def _clean_stale(root: Path) -> None:
    """Remove work folders whose runner is gone (their flock is free)."""
    try:
        entries = list(root.iterdir())
    except FileNotFoundError:
        return
    for d in entries:
        lock = d / LOCK_NAME
        # An empty lock file belongs to a runner between creating and locking it: not ours to judge.
        try:
            if not d.is_dir() or lock.stat().st_size == 0:
                continue
        except OSError:  # no lock file (yet), or removed meanwhile
            continue
        try:
            fd = os.open(lock, os.O_RDWR)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue  # a live runner holds it
        try:
            shutil.rmtree(d, ignore_errors=True)
            log.info("removed stale work folder %s", d)
        finally:
            os.close(fd)


def run_set(store, pipeline: str, job_id: str, set_id: str, *, work_root: str | os.PathLike[str] | None = None,
            keep: bool = False) -> dict:
    """Stage, run and upload datum set ``set_id`` of job ``pipeline@job_id`` here.

    Returns a summary: ``{"pipeline", "job", "set", "datums", "SUCCESS", "FAILED", "RECOVERED",
    "stage_seconds", "run_seconds", "upload_seconds"}``. Raises :class:`RunnerError` when the set could not
    run at all (no namespace, the loop was killed); then no result is written. ``keep`` leaves the work
    folder in place (for debugging).
    """
    root = Path(work_root) if work_root else default_work_root()
    root.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0 and root == default_work_root():
        os.chmod(root, 0o755)  # transform.user must be able to traverse to its inputs
    _clean_stale(root)

    job, _datums = load_set(store, pipeline, job_id, set_id)
    spec = job["spec"]
    prefix, owner = user_prefix(spec)
    # Everything this machine lacks is reported before any work folder exists.
    _ensure_mount_point()
    find_busybox()
    ns_argv = namespace_argv()
    sdir = secrets_dir()
    mounts = _mounts(spec, sdir)

    if owner:
        _check_traversable(root, spec)
    work = Path(tempfile.mkdtemp(prefix=f"{pipeline}-{set_id}-", dir=root))
    lock_fd = os.open(work / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(lock_fd, fcntl.LOCK_EX)
    os.write(lock_fd, f"{os.getpid()}\n".encode())  # only now may a cleaner judge the folder (see _clean_stale)
    try:
        t0 = time.monotonic()
        w = stage_set(store, pipeline, job_id, set_id, work, secrets_dir=sdir, user_prefix=prefix)
        pfsroot = w.root / "pfsroot"
        pfsroot.mkdir(mode=0o755)
        if owner:
            # The user's process must reach its inputs through the symlinks in /pfs, and owns them as in
            # Pachyderm (driver_unix.go WithActiveData chowns the datum's data to transform.user).
            os.chmod(w.root, 0o755)
            _chown_inputs(w, owner)
            write_text_atomic(w.root / "owner", owner)
        enter = w.root / "enter.sh"
        write_text_atomic(enter, _enter_script(w, pfsroot, mounts))
        t1 = time.monotonic()
        _run_in_namespace(w, enter, ns_argv)
        t2 = time.monotonic()
        record = upload_set(store, w)
        t3 = time.monotonic()
    finally:
        if keep:
            os.ftruncate(lock_fd, 0)  # an empty lock: later runs leave the folder alone
        else:
            shutil.rmtree(work, ignore_errors=True)
        os.close(lock_fd)
    counts = Counter(d["state"] for d in record["datums"])
    return {"pipeline": pipeline, "job": job_id, "set": set_id, "datums": len(record["datums"]),
            "SUCCESS": counts.get("SUCCESS", 0), "FAILED": counts.get("FAILED", 0),
            "RECOVERED": counts.get("RECOVERED", 0), "stage_seconds": round(t1 - t0, 3),
            "run_seconds": round(t2 - t1, 3), "upload_seconds": round(t3 - t2, 3)}


def _run_in_namespace(w: WorkDir, enter: Path, ns_argv: Sequence[str]) -> None:
    argv = [*ns_argv, str(w.busybox), "sh", str(enter)]
    tail: deque[str] = deque(maxlen=40)
    # The shim's own stdout (a header and the log of each datum) goes to our log: Airflow task logs.
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            cwd="/", env=_user_env())
    assert proc.stdout is not None
    for raw in proc.stdout:
        line = raw.decode(errors="replace").rstrip("\n")
        tail.append(line)
        log.info("%s", line)
    rc = proc.wait()
    if rc == 0 and w.done.exists():
        return
    text = "\n".join(tail)
    if "unshare" in text and ("Operation not permitted" in text or "Invalid argument" in text):
        raise RunnerError("the local runner could not create a private mount namespace for /pfs "
                          f"({text.strip().splitlines()[-1]}). Run it as root, or allow unprivileged user "
                          "namespaces (sysctl kernel.unprivileged_userns_clone=1 / "
                          "user.max_user_namespaces > 0)")
    how = f"was killed by signal {-rc}" if rc < 0 else f"exited {rc}"
    raise RunnerError(f"the per-datum loop {how} before finishing the set; no result was written. "
                      f"Last output:\n{text}")


def _user_env() -> dict[str, str]:
    """The environment the shim and the user's code start from: the runner's own, as a Pachyderm worker
    pod's env is the starting point of ``UserCodeEnv``. A PATH is guaranteed."""
    env = dict(os.environ)
    env.setdefault("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    return env
