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
live under ``$PACH_AIRFLOW_WORK_ROOT`` (default ``<tmp>/pach-airflow-work``), each guarded by a lock file
beside it (``ROOT/<name>.lock``, ``flock``) that exists, already locked, *before* the folder does and goes
*after* it: a later run removes the folders whose lock nobody holds, and can never see a folder whose lock
is not yet taken (see :func:`_claim_work_folder`). Finished folders are deleted by a background ``rm -rf``
that holds their lock until they are gone, so a set's result does not wait for thousands of small
unlinks (:func:`wait_for_deletions` waits for them).

Several sets may run at once (``jobs.run_job`` runs up to ``parallelism_spec.constant``): each has its
own namespace and so its own ``/pfs``.

``transform.user`` (``uid``, ``uid:gid`` or a user name on this machine): the code runs under it via
util-linux ``setpriv`` (root only; busybox has no uid switch); ``/pfs/out`` is given to that user.
Secrets: ``$PACH_AIRFLOW_SECRETS_DIR/<secret name>/<key>`` (default ``~/.pach-airflow/secrets``) gives
``env_var`` values, and a secret with ``mount_path`` has its folder bind-mounted there, inside the
namespace only (the mount point is created on the host if missing, as ``/pfs`` is).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import pwd
import re
import secrets
import shlex
import shutil
import subprocess
import tempfile
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pach_airflow.errors import RunnerError
from pach_airflow.worker.stage import DEFAULT_SECRETS_DIR, find_busybox, load_set, stage_set
from pach_airflow.worker.upload import upload_set
from pach_airflow.worker.workdir import WorkDir, write_text_atomic

__all__ = ["PFS_MOUNT_POINT", "default_work_root", "namespace_argv", "run_set", "user_prefix",
           "wait_for_deletions"]

log = logging.getLogger(__name__)

PFS_MOUNT_POINT = "/pfs"
LEGACY_LOCK_NAME = ".lock"  # inside the folder, before the lock moved beside it


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


# Work folder names: ROOT/<pipeline>-<set>-<random> with its lock ROOT/<name>.lock beside it; on the way,
# ROOT/.claim-<random> is a lock file not yet published under its name.
LOCK_SUFFIX = ".lock"
CLAIM_PREFIX = ".claim-"
# What the cleaner may judge (the work root may be a folder shared with other things: touch only ours).
_OURS = re.compile(r"(?P<claim>\.claim-[0-9a-f]{16})|(?P<lock>.+-[0-9a-f]{8}\.lock)")
# Tests set this to run code at named points of the claim / clean protocol (a deterministic interleaving
# instead of a timing race): ``hook(point, path)``.
_race_hook: Callable[[str, Path], None] | None = None


def _hook(point: str, path: Path) -> None:
    if _race_hook is not None:
        _race_hook(point, path)


def _try_lock(path: Path) -> int | None:
    """An fd holding ``path``'s flock, or ``None`` when it is held elsewhere or gone (or was replaced by
    another file while we waited: the lock must be the very file that is at ``path`` now)."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        st, now = os.fstat(fd), os.stat(path, follow_symlinks=False)
        if (st.st_dev, st.st_ino) == (now.st_dev, now.st_ino):
            return fd
    except OSError:
        pass
    os.close(fd)
    return None


def _claim_work_folder(root: Path, prefix: str) -> tuple[Path, int]:
    """Create a fresh work folder under ``root`` whose lock is held by us; returns ``(folder, lock fd)``.

    The lock file is made and flocked under a private name, then published as ``<name>.lock`` with
    ``link()`` (which refuses an existing name), and only then is the folder created. So every folder a
    cleaner can see already has a held lock beside it: there is no window between "created" and "locked".
    """
    for _ in range(100):
        claim = root / f"{CLAIM_PREFIX}{secrets.token_hex(8)}"
        try:
            fd = os.open(claim, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        except FileExistsError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.write(fd, f"{os.getpid()}\n".encode())
            _hook("claimed", claim)
            name = f"{prefix}{secrets.token_hex(4)}"
            work, lock = root / name, root / (name + LOCK_SUFFIX)
            try:
                os.link(claim, lock, follow_symlinks=False)
            except (FileExistsError, FileNotFoundError):
                # The name is taken, or a cleaner removed our claim before we locked it: try again.
                os.close(fd)
                continue
            finally:
                with contextlib.suppress(OSError):
                    os.unlink(claim)
            st, now = os.fstat(fd), os.stat(lock, follow_symlinks=False)
            if (st.st_dev, st.st_ino) != (now.st_dev, now.st_ino):  # pragma: no cover - defensive
                os.close(fd)
                continue
            _hook("locked", lock)
            os.mkdir(work, 0o700)
            _hook("created", work)
            return work, fd
        except BaseException:
            with contextlib.suppress(OSError):
                os.close(fd)
            raise
    raise RunnerError(f"could not create a work folder under {root}; check that it is writable "
                      f"(PACH_AIRFLOW_WORK_ROOT)")


def _release_work_folder(work: Path, lock_fd: int, *, keep: bool) -> None:
    """End of a set: delete the folder (in the background) or keep it, and drop its lock.

    The lock file goes only once the folder is gone, so a folder is never without a lock. A kept folder
    has no lock file at all: cleaners leave lock-less folders alone.
    """
    lock = work.with_name(work.name + LOCK_SUFFIX)
    try:
        if keep:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(lock)
        else:
            _delete_in_background(work, lock, lock_fd)
    finally:
        os.close(lock_fd)


def _delete_in_background(work: Path, lock: Path, lock_fd: int) -> None:
    """Delete ``work``, then its lock file, in a process of its own that inherits the held lock: one datum
    set leaves thousands of small files, and the set's result must not wait for their unlinks (nor the
    next set's staging for Python's GIL). The lock stays held until the folder is gone, so cleaners leave
    it alone meanwhile; a deleter killed half way releases it, and the next cleaner finishes the job."""
    script = 'rm -rf -- "$1" && rm -f -- "$2"'
    with _deleters_lock:
        _deleters[:] = [d for d in _deleters if d.poll() is None]  # reaps finished ones
        sh = shutil.which("sh")
        if sh:
            try:
                _deleters.append(subprocess.Popen([sh, "-c", script, "pach-airflow-rm", str(work), str(lock)],
                                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                                  stderr=subprocess.DEVNULL, pass_fds=(lock_fd,),
                                                  start_new_session=True, cwd="/"))
                return
            except OSError:
                pass
    shutil.rmtree(work, ignore_errors=True)
    if not work.exists():
        with contextlib.suppress(FileNotFoundError):
            os.unlink(lock)


_deleters: list[subprocess.Popen] = []
_deleters_lock = threading.Lock()


def wait_for_deletions(timeout: float | None = None) -> None:
    """Wait until the background deletions of finished work folders are done (tests, benchmarks)."""
    with _deleters_lock:
        pending = list(_deleters)
    for d in pending:
        with contextlib.suppress(subprocess.TimeoutExpired):
            d.wait(timeout)


def _clean_stale(root: Path) -> None:
    """Remove work folders whose runner is gone (their lock file is free), and what dead runners left
    on the way (unpublished claims, orphan locks)."""
    try:
        entries = list(os.scandir(root))
    except FileNotFoundError:
        return
    names = {e.name for e in entries}
    for e in entries:
        path = Path(e.path)
        try:
            is_dir = e.is_dir(follow_symlinks=False)
        except OSError:
            continue
        ours = _OURS.fullmatch(e.name)
        if ours and (ours["claim"] or (ours["lock"] and e.name[:-len(LOCK_SUFFIX)] not in names)):
            # A claim or a lock without its folder: free means its runner died before making the folder
            # (or after removing it). A claim not yet locked may be taken here; its runner then sees its
            # claim gone at link() and starts over.
            _hook("clean-lock", path)
            fd = _try_lock(path)
            if fd is not None:
                try:
                    if e.name.startswith(CLAIM_PREFIX) or not (root / e.name[:-len(LOCK_SUFFIX)]).exists():
                        with contextlib.suppress(OSError):
                            os.unlink(path)
                finally:
                    os.close(fd)
        elif is_dir and not e.name.startswith("."):
            _clean_folder(path)


def _clean_folder(folder: Path) -> None:
    lock = folder.with_name(folder.name + LOCK_SUFFIX)
    if not os.path.lexists(lock):
        _clean_legacy_folder(folder)  # a kept folder, or one of an older version of this runner
        return
    _hook("clean-folder", folder)
    fd = _try_lock(lock)
    if fd is None:
        return  # a live runner holds it
    try:
        shutil.rmtree(folder, ignore_errors=True)
        log.info("removed stale work folder %s", folder)
        if not folder.exists():
            with contextlib.suppress(FileNotFoundError):
                os.unlink(lock)
    finally:
        os.close(fd)


def _clean_legacy_folder(d: Path) -> None:
    """Folders of earlier versions kept their lock inside (``.lock``; empty = kept or being created)."""
    lock = d / LEGACY_LOCK_NAME
    try:
        if lock.stat().st_size == 0:
            return
    except OSError:  # no lock file at all: a kept folder
        return
    fd = _try_lock(lock)
    if fd is None:
        return
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
    work, lock_fd = _claim_work_folder(root, f"{pipeline}-{set_id}-")
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
        _release_work_folder(work, lock_fd, keep=keep)
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
