"""``worker upload``: each datum's ``/pfs/out``, state, log and timing into the store, as one result.

Owns: turning a work folder the shim has run into ``pps/jobs/<p>/<job>/results/<set>``
(``docs/architecture.md``, "Records the jobs and the worker share"). Output blobs are stored first (in
threads); the result record is written last, in a single write: a process killed before it leaves no
result, so the set runs again, and nothing half-done is ever visible (the jobs' finish step is what
makes outputs visible, from results only).

Rules from Pachyderm (reference §2, §5; ``datum.go`` uploadOutput/handleSymlinks):

* only SUCCESS datums contribute outputs; RECOVERED and FAILED ones keep their log and state only;
* an output name Pachyderm cannot store (non-printable ASCII, glob characters ``*?[]{}!()@+^``)
  fails the datum with a reason naming the file, instead of failing the whole job;
* a symlink in ``/pfs/out`` uploads what it points to: into ``/pfs/<input>`` it reuses the input's
  content hash (so ``empty_files`` placeholders upload their real content, by reference), into another
  place the file (or directory) found there; special files (fifos, sockets, devices) fail the datum.
"""

from __future__ import annotations

import concurrent.futures
import os
import posixpath
import stat
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pach_airflow.errors import InvalidPath, RunnerError
from pach_airflow.worker.workdir import DatumDir, WorkDir

__all__ = ["LOG_TAIL_BYTES", "collect_results", "upload_set", "wait_done"]

LOG_TAIL_BYTES = 64 * 1024
# A set may hold thousands of datums: their log tails share this much of the one result record (the whole
# log of each datum is always in its log_blob).
RECORD_LOG_BUDGET = 8 * 1024 * 1024
UPLOAD_THREADS = 16
MAX_LINK_HOPS = 32


class _BadOutput(Exception):
    """An output the datum cannot upload; the message becomes the datum's reason."""


def wait_done(work: WorkDir, *, poll: float = 0.5, timeout: float | None = None,
              alive: Callable[[], bool] | None = None) -> None:
    """Block until the shim wrote ``WORK/done`` (the upload sidecar of a pod waits like this)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while not work.done.exists():
        if alive is not None and not alive():
            raise RunnerError(f"the per-datum loop stopped before finishing ({work.done} missing)")
        if deadline is not None and time.monotonic() > deadline:
            raise RunnerError(f"timed out after {timeout}s waiting for {work.done}")
        time.sleep(poll)


def _iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


class _Outputs:
    """The files of one datum's ``out/`` as ``/path -> source`` (a local file, or a known blob)."""

    def __init__(self, dd: DatumDir):
        self.dd = dd
        self.manifest = dd.input_manifest()
        self.local: dict[str, Path] = {}
        self.known: dict[str, tuple[str, int]] = {}

    def collect(self) -> None:
        from pach_airflow.pfs.paths import validate_output_path

        if self.dd.out.exists() and not self.dd.out.is_dir():
            raise _BadOutput("/pfs/out was replaced by a file; user code must write files inside /pfs/out")
        for rel, full in self._walk(self.dd.out, ""):
            self._add(rel, full, validate_output_path, hops=0)

    def _walk(self, root: Path, rel: str) -> Iterator[tuple[str, Path]]:
        try:
            entries = sorted(os.scandir(root), key=lambda e: e.name)
        except FileNotFoundError:
            return
        for e in entries:
            r = f"{rel}/{e.name}"
            if e.is_dir(follow_symlinks=False):
                yield from self._walk(Path(e.path), r)
            else:
                yield r, Path(e.path)

    def _check(self, rel: str, validate) -> str:
        try:
            return validate(rel)
        except InvalidPath as exc:
            raise _BadOutput(f"output file {rel!r} cannot be uploaded because its name cannot be represented "
                             f"in PFS: {exc}") from None

    def _add(self, rel: str, full: Path, validate, hops: int) -> None:
        st = os.lstat(full)
        if stat.S_ISLNK(st.st_mode):
            self._add_link(rel, full, validate, hops)
        elif stat.S_ISREG(st.st_mode):
            self.local[self._check(rel, validate)] = full
        elif stat.S_ISDIR(st.st_mode):
            for sub, subfull in self._walk(full, rel):
                self._add(sub, subfull, validate, hops)
        else:
            raise _BadOutput(f"output {rel!r} is a special file (fifo, socket or device); cannot upload it")

    def _add_link(self, rel: str, link: Path, validate, hops: int) -> None:
        if hops > MAX_LINK_HOPS:
            raise _BadOutput(f"output {rel!r}: too many levels of symbolic links")
        target = os.readlink(link)
        # Where the link points as user code saw it: relative links resolve from /pfs/out/<dir>.
        logical_dir = posixpath.dirname(posixpath.join("/pfs/out", rel.lstrip("/")))
        seen = posixpath.normpath(posixpath.join(logical_dir, target))
        if seen == "/pfs" or seen.startswith("/pfs/"):
            parts = seen[len("/pfs/"):]
            top, _, rest = parts.partition("/")
            if top == "out":
                local = self.dd.out / rest if rest else self.dd.out
            else:
                # Into the inputs: the staged manifest knows each file's hash, so nothing is re-read
                # (this is how empty_files placeholders upload their real content).
                key = parts.rstrip("/")
                if key in self.manifest:
                    h, size = self.manifest[key]
                    self.known[self._check(rel, validate)] = (h, int(size))
                    return
                below = {k: v for k, v in self.manifest.items() if k.startswith(key + "/")}
                if below:
                    for k, (h, size) in sorted(below.items()):
                        self.known[self._check(rel + k[len(key):], validate)] = (h, int(size))
                    return
                local = self.dd.pfs / parts
        else:
            local = Path(seen)  # outside /pfs: what this machine has there (the local runner's host)
        if not os.path.lexists(local):
            raise _BadOutput(f"output {rel!r} is a symbolic link to {target!r}, which does not exist "
                             f"(or is outside /pfs where upload cannot read it)")
        self._add(rel, local, validate, hops + 1)


def _datum_result(store, dd: DatumDir, datum: dict[str, Any], pool: concurrent.futures.Executor,
                  tail_bytes: int = LOG_TAIL_BYTES) -> dict:
    state = dd.state
    reason = dd.reason or None
    if state not in ("SUCCESS", "FAILED", "RECOVERED"):
        state, reason = "FAILED", "the datum did not run: the per-datum loop stopped before reaching it"
    outputs: list[list[Any]] = []
    if state == "SUCCESS":
        outs = _Outputs(dd)
        try:
            outs.collect()
        except _BadOutput as exc:
            state, reason = "FAILED", str(exc)
            with open(dd.path / "log", "a") as f:
                f.write(f"errored uploading output: {exc}\n")
        else:
            futures = {path: pool.submit(store.put_blob, src) for path, src in outs.local.items()}
            for path, (h, size) in outs.known.items():
                if not store.has_blob(h):  # an input blob is always there; this is a cheap guard
                    raise RunnerError(f"input blob {h} for output {path} is missing from the store")
                outputs.append([path, h, size])
            for path, fut in futures.items():
                h, size = fut.result()
                outputs.append([path, h, int(size)])
            outputs.sort()
    log_path = dd.path / "log"
    log_text, log_blob = "", None
    if log_path.exists() and log_path.stat().st_size:
        size = log_path.stat().st_size
        with open(log_path, "rb") as f:
            if size > tail_bytes:
                f.seek(size - tail_bytes)
            log_text = f.read().decode(errors="replace")
        log_blob, _ = store.put_blob(log_path)
    started, finished = dd.timing
    return {"id": datum["id"], "hash": datum.get("hash"), "state": state, "reason": reason,
            "started": _iso(started), "finished": _iso(finished), "tries": dd.tries, "recovered": dd.recovered, "log": log_text,
            "log_blob": log_blob, "outputs": outputs}


def collect_results(store, work: WorkDir, *, threads: int = UPLOAD_THREADS) -> dict:
    """Upload every datum's outputs and log blobs; return the result record (not yet written)."""
    info = work.read_set()
    with concurrent.futures.ThreadPoolExecutor(max_workers=threads, thread_name_prefix="upload") as pool:
        tail = max(1024, min(LOG_TAIL_BYTES, RECORD_LOG_BUDGET // max(1, len(info["datums"]))))
        datums = [_datum_result(store, work.datum(n), d, pool, tail) for n, d in enumerate(info["datums"])]
    return {"pipeline": info["pipeline"], "job": info["job"], "set": info["set"], "datums": datums}


def upload_set(store, work: str | os.PathLike[str] | WorkDir, *, wait: bool = False, poll: float = 0.5,
               timeout: float | None = None, threads: int = UPLOAD_THREADS) -> dict:
    """Upload a staged-and-run work folder and write ``results/<set>`` once; returns the record.

    ``wait``: first wait for ``WORK/done`` (the pod's upload sidecar). Without it, datums the shim did not
    reach are recorded FAILED ("did not run").
    """
    from pach_airflow.jobs import result_key

    w = work if isinstance(work, WorkDir) else WorkDir(work)
    if not w.set_file.exists():
        raise RunnerError(f"{w.root} is not a staged work folder ({w.set_file.name} missing): run "
                          f"'pach-airflow worker stage' first")
    if wait:
        wait_done(w, poll=poll, timeout=timeout)
    record = collect_results(store, w, threads=threads)
    store.put_record(result_key(record["pipeline"], record["job"], record["set"]), record)
    return record
