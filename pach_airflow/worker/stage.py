"""``worker stage``: lay out one datum set in a work folder, ready for the shim.

Owns: reading the set (``pps/jobs/<p>/<job>/sets/<set>``) and the pinned spec of the job record;
downloading each datum's inputs to ``WORK/datums/<n>/pfs/<input name>/<full path>`` (a directory match
brings its subtree, glob ``/`` the whole commit; paths are not re-rooted, reference §2); the datum's
environment as Pachyderm's ``UserCodeEnv`` builds it; secrets given as files; busybox; the shim.

Downloads run in threads; a blob several datums share is fetched once and hard-linked into place (so
user code must not modify its inputs in place; Pachyderm's inputs are not meant to be written either).
``empty_files`` inputs become zero-byte placeholders; symlinking one into ``/pfs/out`` still uploads the
real content (upload resolves links through ``inputs.json``). ``lazy`` is only a speed hint in
Pachyderm (named pipes filled on first read); here the files are staged normally, so code behaves the
same, it just pays the download up front.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import posixpath
import shlex
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pach_airflow.errors import JobError, NotFound, RunnerError
from pach_airflow.worker.shim import ShimConfig, render_shim, shim_config
from pach_airflow.worker.workdir import WorkDir, format_env_file, write_text_atomic

__all__ = ["DEFAULT_SECRETS_DIR", "datum_env", "find_busybox", "load_set", "secret_env", "stage_set"]

DEFAULT_SECRETS_DIR = "~/.pach-airflow/secrets"
DOWNLOAD_THREADS = 16


def load_set(store, pipeline: str, job_id: str, set_id: str) -> tuple[dict, list[dict]]:
    """The job record (with its pinned ``spec``) and the datums of one set, as stored by jobs.plan_job."""
    from pach_airflow.jobs import job_key, set_key

    try:
        job = store.get_record(job_key(pipeline, job_id))
    except NotFound:
        raise JobError(f"job {pipeline}@{job_id} not found: plan it first (pach-airflow run pipeline)") from None
    try:
        rec = store.get_record(set_key(pipeline, job_id, set_id))
    except NotFound:
        raise JobError(f"datum set {set_id!r} of job {pipeline}@{job_id} not found; the job's sets are "
                       f"{', '.join(map(str, job.get('set_ids') or [])) or 'none'}") from None
    if not isinstance(job.get("spec"), Mapping):
        raise JobError(f"job {pipeline}@{job_id} has no pinned spec in its record; plan it again")
    return job, list(rec.get("datums") or [])


def find_busybox(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The static busybox to put at ``WORK/bin/busybox``: ``explicit``, ``$PACH_AIRFLOW_BUSYBOX``, then
    ``/bin/busybox`` (Debian's ``busybox-static``). A dynamically linked one is refused: it would not
    start in a user image without its libraries."""
    cands = [explicit, os.environ.get("PACH_AIRFLOW_BUSYBOX"), "/bin/busybox", "/usr/bin/busybox",
             shutil.which("busybox")]
    for c in cands:
        if c and os.path.isfile(c) and os.access(c, os.X_OK):
            p = Path(c)
            if _elf_has_interpreter(p):
                raise RunnerError(f"busybox at {p} is dynamically linked; the shim needs a static one "
                                  f"(Debian: apt-get install busybox-static) or set PACH_AIRFLOW_BUSYBOX")
            return p
    raise RunnerError("no busybox found: install Debian's busybox-static (apt-get install busybox-static) "
                      "or set PACH_AIRFLOW_BUSYBOX to a static busybox binary")


def _elf_has_interpreter(path: Path) -> bool:
    """True when the ELF file asks for a dynamic loader (PT_INTERP), i.e. is not static."""
    import struct

    with open(path, "rb") as f:
        head = f.read(64)
        if head[:4] != b"\x7fELF":
            return False
        is64, little = head[4] == 2, head[5] == 1
        end = "<" if little else ">"
        if is64:
            phoff, = struct.unpack(end + "Q", head[32:40])
            phentsize, phnum = struct.unpack(end + "HH", head[54:58])
        else:
            phoff, = struct.unpack(end + "I", head[28:32])
            phentsize, phnum = struct.unpack(end + "HH", head[42:46])
        f.seek(phoff)
        table = f.read(phentsize * phnum)
    for i in range(phnum):
        p_type, = struct.unpack(end + "I", table[i * phentsize:i * phentsize + 4])
        if p_type == 3:  # PT_INTERP
            return True
    return False


def _pfs_var(name: str, path: str) -> str:
    # driver.go: filepath.Join(InputDir, name, path): cleaned, no trailing slash.
    return posixpath.normpath(posixpath.join("/pfs", name, path.lstrip("/")))


def secret_env(spec: Mapping[str, Any], secrets_dir: str | os.PathLike[str] | None) -> list[tuple[str, str]]:
    """``transform.secrets`` with ``env_var``, read from ``secrets_dir/<name>/<key>`` (local runs).

    ``secrets_dir=None`` means the container already has them (Kubernetes sets them from the Secret).
    """
    if secrets_dir is None:
        return []
    root = Path(os.path.expanduser(str(secrets_dir)))
    out = []
    for s in (spec.get("transform") or {}).get("secrets") or []:
        if not s.get("env_var"):
            continue
        name, key = s.get("name"), s.get("key")
        path = root / str(name) / str(key)
        try:
            value = path.read_text()
        except FileNotFoundError:
            raise RunnerError(f"transform.secrets: secret {name!r} key {key!r} (env_var {s['env_var']}) is "
                              f"not at {path}; put the value in that file (directory: "
                              f"$PACH_AIRFLOW_SECRETS_DIR, default {DEFAULT_SECRETS_DIR})") from None
        out.append((str(s["env_var"]), value))
    return out


def datum_env(spec: Mapping[str, Any], pipeline: str, job: Mapping[str, Any], datum: Mapping[str, Any]
              ) -> list[tuple[str, str]]:
    """The variables Pachyderm sets for one datum (``driver.go`` UserCodeEnv), after ``transform.env``.

    Later entries win, as in Pachyderm where the pod env (transform.env) comes first.
    """
    job_id = str(job.get("id") or job.get("job_id") or "")
    env: list[tuple[str, str]] = [(str(k), str(v)) for k, v in ((spec.get("transform") or {}).get("env") or {}).items()]
    env.append(("PPS_PIPELINE_NAME", pipeline))
    env.append(("PPS_PROJECT_NAME", "default"))
    for inp in datum.get("inputs") or []:
        name = inp["name"]
        env.append((name, _pfs_var(name, inp.get("path") or "/")))
        env.append((f"{name}_COMMIT", str(inp.get("commit") or "")))
        if inp.get("join_on"):
            env.append((f"PACH_DATUM_{name}_JOIN_ON", str(inp["join_on"])))
        if inp.get("group_by"):
            env.append((f"PACH_DATUM_{name}_GROUP_BY", str(inp["group_by"])))
    env.append(("PACH_DATUM_ID", str(datum["id"])))
    env.append(("PACH_JOB_ID", job_id))
    out_commit = job.get("output_commit")
    if isinstance(out_commit, Mapping):
        out_commit = out_commit.get("id")
    env.append(("PACH_OUTPUT_COMMIT_ID", str(out_commit or job_id)))
    return env


def _is_dir_match(path: str) -> bool:
    return path == "/" or path.endswith("/") or path == ""


class _Downloads:
    """Every file to place, grouped by blob so each blob is fetched once."""

    def __init__(self) -> None:
        self.by_hash: dict[str, list[Path]] = {}
        self.sizes: dict[str, int] = {}
        self.empty: list[Path] = []

    def add(self, hash_: str, size: int, dest: Path, *, placeholder: bool) -> None:
        if placeholder or size == 0:
            self.empty.append(dest)
        else:
            self.by_hash.setdefault(hash_, []).append(dest)
            self.sizes[hash_] = size

    def run(self, store, blob_dir: Path, threads: int) -> int:
        for p in self.empty:
            p.parent.mkdir(parents=True, exist_ok=True)
            p.touch()
        blob_dir.mkdir(parents=True, exist_ok=True)

        def fetch(h: str) -> int:
            tmp = blob_dir / h
            store.get_blob_to(h, str(tmp))
            os.chmod(tmp, 0o644)  # readable by transform.user, whatever the backend's temp file mode
            dests = self.by_hash[h]
            for i, dest in enumerate(dests):
                dest.parent.mkdir(parents=True, exist_ok=True)
                if i == len(dests) - 1:
                    os.replace(tmp, dest)
                    break
                try:
                    os.link(tmp, dest)
                except OSError:  # another filesystem, or links not allowed: copy
                    shutil.copyfile(tmp, dest)
            return self.sizes[h]

        total = 0
        if self.by_hash:
            with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, min(threads, len(self.by_hash))),
                                                       thread_name_prefix="stage") as pool:
                for n in pool.map(fetch, list(self.by_hash)):
                    total += n
        shutil.rmtree(blob_dir, ignore_errors=True)
        return total


def _plan_datum(store, dd_pfs: Path, inputs: Sequence[Mapping[str, Any]], downloads: _Downloads,
                walk_cache: dict) -> dict[str, list]:
    """Queue one datum's inputs; return its manifest ``"<input>/<path>" -> [hash, size]``."""
    manifest: dict[str, list] = {}
    for inp in inputs:
        name = inp["name"]
        base = dd_pfs / name
        base.mkdir(parents=True, exist_ok=True)
        path = inp.get("path") or "/"
        placeholder = bool(inp.get("empty_files"))
        if _is_dir_match(path):
            prefix = "/" + path.strip("/")
            key = (inp["repo"], inp["commit"], prefix)
            if key not in walk_cache:
                walk_cache[key] = [(fi.path, fi.hash, fi.size) for fi in store.walk(inp["repo"], inp["commit"],
                                                                                  prefix if prefix != "/" else "/")
                                   if prefix == "/" or fi.path == prefix or fi.path.startswith(prefix + "/")]
            files = walk_cache[key]
        else:
            files = [(path, inp.get("hash"), int(inp.get("size") or 0))]
        for fpath, fhash, fsize in files:
            rel = fpath.lstrip("/")
            if not fhash:
                raise JobError(f"input {name}: file {fpath} has no content hash in the datum set record")
            downloads.add(fhash, int(fsize or 0), base / rel, placeholder=placeholder)
            manifest[f"{name}/{rel}"] = [fhash, int(fsize or 0)]
    return manifest


def stage_set(store, pipeline: str, job_id: str, set_id: str, work: str | os.PathLike[str], *,
              secrets_dir: str | os.PathLike[str] | None = None, user_prefix: Sequence[str] = (),
              busybox: str | os.PathLike[str] | None = None, threads: int = DOWNLOAD_THREADS,
              shared: bool = False) -> WorkDir:
    """Stage datum set ``set_id`` of job ``pipeline@job_id`` into ``work``; returns the :class:`WorkDir`.

    ``secrets_dir``: where ``transform.secrets`` values are read for env vars (local runs); ``None`` when
    the container gets them from Kubernetes. ``user_prefix``: argv put before ``cmd``/``err_cmd`` (the
    local runner's ``setpriv`` for ``transform.user``). ``shared``: the shim will run as another user
    than stage (a pod whose image has its own ``USER``): the folders it writes become world-writable.
    Everything that can be refused (no cmd, s3 input, missing secret, no busybox) is refused before the
    work folder is written.
    """
    job, datums = load_set(store, pipeline, job_id, set_id)
    spec = job["spec"]
    job = {**job, "id": job.get("id") or job_id}
    cfg: ShimConfig = shim_config(spec, user_prefix=user_prefix)
    bb = find_busybox(busybox)
    secrets = secret_env(spec, secrets_dir)
    for d in datums:
        for inp in d.get("inputs") or []:
            if inp.get("s3"):
                raise JobError(f"input {inp['name']}: input.pfs.s3 is not supported by pach_airflow's worker yet "
                               f"(no S3 gateway sidecar); remove \"s3\": true and read /pfs/{inp['name']} instead")

    w = WorkDir(work)
    w.root.mkdir(parents=True, exist_ok=True)
    (w.root / "bin").mkdir(exist_ok=True)
    downloads = _Downloads()
    walk_cache: dict = {}
    env_names: set[str] = set()
    for n, d in enumerate(datums):
        dd = w.datum(n)
        dd.pfs.mkdir(parents=True, exist_ok=True)
        dd.out.mkdir(exist_ok=True)  # the shim moves /pfs/out's content here (it need not make it per datum)
        manifest = _plan_datum(store, dd.pfs, d.get("inputs") or [], downloads, walk_cache)
        env = datum_env(spec, pipeline, job, d)
        env_names.update(k for k, _ in (*secrets, *env))
        write_text_atomic(dd.path / "inputs.json", json.dumps(manifest, sort_keys=True))
        # Secrets go into the datum's exec env only, never into /pfs/.env (which users may copy out).
        env_text, dotenv_text = format_env_file([*secrets, *env]), "".join(f"{k}={v}\n" for k, v in env)
        write_text_atomic(dd.path / "env", env_text, mode=0o600 if secrets else 0o644)
        write_text_atomic(dd.path / "dotenv", dotenv_text)
        # Both again as shell assignments: the shim sources this in one read instead of a byte-wise loop.
        write_text_atomic(dd.path / "vars", f"_envtext={shlex.quote(env_text)}\n_dotenv={shlex.quote(dotenv_text)}\n",
                          mode=0o600 if secrets else 0o644)
    downloads.run(store, w.root / ".blobs", threads)

    _install_busybox(bb, w.busybox)
    for name, lines in (("stdin", cfg.stdin), ("err_stdin", cfg.err_stdin)):
        data = ShimConfig.stdin_bytes(lines)
        if data is not None:
            write_text_atomic(w.root / name, data)
    write_text_atomic(w.set_file, json.dumps({"pipeline": pipeline, "job": job_id, "set": set_id,
                                              "datums": [{"id": d["id"], "hash": d.get("hash"),
                                                          "inputs": d.get("inputs") or []} for d in datums]}))
    write_text_atomic(w.shim, render_shim(cfg, len(datums), title=f"pipeline {pipeline}, job {job_id}, set {set_id}",
                                          env_names=env_names), mode=0o755)
    if shared:
        # The shim writes WORK/done and each datum's log, state and out/ under the image's user.
        for p in (w.root, w.root / "datums", *(w.datum(n).path for n in range(len(datums))),
                  *(w.datum(n).out for n in range(len(datums)))):
            os.chmod(p, 0o777)
    return w


def _install_busybox(src: Path, dest: Path) -> None:
    # A copy, not a link: the pod's init container copies it the same way onto the shared volume.
    tmp = dest.with_name(".busybox.tmp")
    shutil.copyfile(src, tmp)
    os.chmod(tmp, 0o755)
    os.replace(tmp, dest)
