"""Egress: copying a job's output files out to an object-store URL after the job succeeded.

Pachyderm's ``egress`` (``{"URL": ...}`` or ``{"object_storage": {"url": ...}}``) copies the output
commit to external storage while the job is EGRESSING. Supported here: ``file:///dir`` (a local or
mounted folder) and ``s3://bucket/prefix`` (any S3, endpoint and credentials from boto3's standard
chain, ``AWS_ENDPOINT_URL`` included). Each file lands at ``<url>/<path in the output repo>``; files
already at the destination and not in the output are left alone, as in Pachyderm. SQL egress is
refused by the spec module.

Each file is copied with retries and exponential backoff; the result (state, files, bytes, attempts,
error) goes into the job record.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from pach_airflow.errors import JobError

RETRIES = 4          # attempts per file
BACKOFF = 0.5        # seconds before the 2nd attempt; doubles each time
THREADS = 8

if TYPE_CHECKING:
    from pach_airflow.pfs import Store


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def check_url(url: str) -> None:
    """Refuse an egress URL we cannot write to, naming the scheme and what works."""
    parsed = urlparse(url)
    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise JobError(f"egress URL {url!r}: file:// URLs take an absolute path (file:///dir)")
        return
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise JobError(f"egress URL {url!r}: name a bucket (s3://bucket/prefix)")
        return
    raise JobError(f"egress URL {url!r}: scheme {parsed.scheme or '(none)'!r} is not supported; "
                   f"use file:///dir or s3://bucket/prefix")


def _file_writer(url: str, store: Store) -> Callable[[Any], None]:
    root = urlparse(url).path or "/"

    def write(f) -> None:
        dst = os.path.join(root, f.path.lstrip("/"))
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(dst), prefix=".egress-")
        try:
            with os.fdopen(fd, "wb") as out, store.open_blob(f.hash) as src:
                shutil.copyfileobj(src, out, 1 << 20)
            os.replace(tmp, dst)  # readers of the destination never see half a file
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise

    return write


def _s3_writer(url: str, store: Store) -> Callable[[Any], None]:
    import boto3

    parsed = urlparse(url)
    bucket, prefix = parsed.netloc, parsed.path.strip("/")
    client = boto3.client("s3")

    def write(f) -> None:
        key = "/".join(p for p in (prefix, f.path.lstrip("/")) if p)
        with store.open_blob(f.hash) as src:
            client.upload_fileobj(src, bucket, key)

    return write


def egress_files(store: Store, files: Sequence[Any], url: str, *, retries: int = RETRIES,
                 backoff: float = BACKOFF) -> dict:
    """Copy ``files`` (``FileInfo`` of type file, blobs in ``store``) under ``url``.

    Never raises for a failed copy: returns ``{"url", "state": "SUCCESS"|"FAILED", "files", "bytes",
    "attempts", "error", "started", "finished"}`` for the job record.
    """
    started = _now()
    result: dict[str, Any] = {"url": url, "state": "SUCCESS", "files": 0, "bytes": 0, "attempts": 0,
                              "error": None, "started": started, "finished": None}
    try:
        check_url(url)
        write = _file_writer(url, store) if urlparse(url).scheme == "file" else _s3_writer(url, store)
    except Exception as exc:  # noqa: BLE001 - a bad URL or a missing client is a failed egress, recorded
        result.update(state="FAILED", error=str(exc), finished=_now())
        return result

    attempts = 0

    def copy(f) -> int:
        nonlocal attempts
        delay = backoff
        for attempt in range(1, retries + 1):
            attempts += 1
            try:
                write(f)
                return int(f.size)
            except Exception as exc:
                if attempt == retries:
                    raise RuntimeError(f"{f.path}: {exc} (after {retries} attempts)") from exc
                time.sleep(delay)
                delay *= 2
        return 0

    try:
        with ThreadPoolExecutor(max_workers=THREADS) as pool:
            for size in pool.map(copy, files):
                result["files"] += 1
                result["bytes"] += size
    except Exception as exc:  # noqa: BLE001 - any copy error ends the egress; the job records it
        result.update(state="FAILED", error=str(exc))
    result["attempts"] = attempts
    result["finished"] = _now()
    return result
