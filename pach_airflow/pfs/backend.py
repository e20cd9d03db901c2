"""Object stores under the PFS logic: the small interface, the local-folder backend, URL parsing.

Owns: :class:`Backend` (what PFS needs from an object store: get/put, conditional puts for
compare-and-swap, head, ordered listing with a delimiter, delete, file upload/download) and
:class:`LocalBackend`, which gives a folder the same guarantees S3 gives a bucket:

- every write is atomic (a temp file in the same filesystem, then ``rename``), so a reader or a killed
  writer never leaves a half-written object under its key;
- ``put_if_absent`` is ``os.link`` (fails atomically when the key exists);
- ``put_if_match`` compares the etag under an ``fcntl.flock`` lock and ``os.replace``-s, so two
  processes moving one branch head serialise.

Keys are ``/``-separated. A key may be both an object and the prefix of others (``a`` and ``a/b``), as
on S3; the local backend therefore stores object ``a/b`` at ``<root>/a/b`` and would clash on such a
pair: PFS and record keys never create one (records carry a suffix, see ``store.py``).
The S3 backend lives in ``s3.py`` so that boto3 is imported only when it is used.
"""

from __future__ import annotations

import fcntl
import hashlib
import itertools
import os
import shutil
import threading
from collections.abc import Iterator
from typing import BinaryIO, Self

from pach_airflow.errors import BackendError, NotFound

__all__ = ["Backend", "KeyMissing", "LocalBackend", "open_backend"]


class KeyMissing(NotFound):
    """An object the backend was asked for does not exist (translated to a friendlier NotFound)."""

    def __init__(self, where: str, key: str):
        self.key = key
        super().__init__(f"{where}: {key} not found")


class Backend:
    """What PFS needs from an object store. Keys are relative (no leading ``/``)."""

    url: str
    # True when ``exists`` is as cheap as a local stat; False when it is a network round trip (S3),
    # where small blobs are better written with one conditional put than checked first.
    cheap_exists: bool = True

    def get(self, key: str) -> bytes:
        raise NotImplementedError

    def get_with_etag(self, key: str) -> tuple[bytes, str]:
        raise NotImplementedError

    def put(self, key: str, data: bytes) -> None:
        raise NotImplementedError

    def put_if_absent(self, key: str, data: bytes) -> bool:
        """Write ``key`` only if it does not exist; False if it did (nothing written)."""
        raise NotImplementedError

    def put_if_match(self, key: str, data: bytes, etag: str) -> bool:
        """Replace ``key`` only if its etag is still ``etag``; False if it changed or vanished."""
        raise NotImplementedError

    def head(self, key: str) -> int | None:
        """The size of ``key``, or None when it does not exist."""
        raise NotImplementedError

    def exists(self, key: str) -> bool:
        return self.head(key) is not None

    def list(self, prefix: str, *, start_after: str | None = None, delimiter: str | None = None
             ) -> Iterator[str]:
        """Keys beginning with ``prefix`` in byte order. With ``delimiter="/"``, keys are cut after the
        first ``/`` following the prefix, and each such common prefix (ending in ``/``) appears once."""
        raise NotImplementedError

    def delete(self, key: str) -> None:
        """Delete ``key``; deleting a missing key is not an error."""
        raise NotImplementedError

    def delete_many(self, keys: list[str]) -> None:
        """Delete many keys (S3 does it 1,000 a request)."""
        for key in keys:
            self.delete(key)

    def put_file(self, key: str, local_path: str | os.PathLike) -> None:
        raise NotImplementedError

    def get_to_file(self, key: str, local_path: str | os.PathLike) -> None:
        raise NotImplementedError

    def open(self, key: str) -> BinaryIO:
        raise NotImplementedError

    def where(self, key: str) -> str:
        """Human-readable location of ``key`` for error messages."""
        return f"{self.url.rstrip('/')}/{key}"


def _etag(data: bytes) -> str:
    return hashlib.sha1(data, usedforsecurity=False).hexdigest()


class LocalBackend(Backend):
    """Objects as files below ``root``; temp files and locks live in ``root/.tmp`` and ``root/.locks``."""

    def __init__(self, root: str | os.PathLike):
        self.root = os.path.abspath(os.path.expanduser(os.fspath(root)))
        self.url = "file://" + self.root
        self._tmp = os.path.join(self.root, ".tmp")
        self._locks = os.path.join(self.root, ".locks")
        try:
            os.makedirs(self._tmp, exist_ok=True)
            os.makedirs(self._locks, exist_ok=True)
        except OSError as exc:
            raise BackendError(f"cannot use {self.root} as a store folder: {exc}") from exc
        self._dirs: set[str] = set()
        self._dirs_lock = threading.Lock()
        self._seq = itertools.count()

    # -- helpers -------------------------------------------------------------------------------
    def _path(self, key: str) -> str:
        if not key or key.startswith(("/", ".")) or ".." in key.split("/"):
            raise BackendError(f"{self.root}: invalid key {key!r}")
        return os.path.join(self.root, key)

    def _ensure_parent(self, path: str) -> None:
        parent = os.path.dirname(path)
        if parent in self._dirs:
            return
        os.makedirs(parent, exist_ok=True)
        with self._dirs_lock:
            self._dirs.add(parent)

    def _tmpfile(self) -> tuple[int, str]:
        # Cheaper than mkstemp (no random names to try): pid + thread + counter is unique already.
        path = os.path.join(self._tmp, f"w-{os.getpid()}-{threading.get_ident()}-{next(self._seq)}")
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644), path

    def _write_tmp(self, data: bytes) -> str:
        fd, tmp = self._tmpfile()
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
        except BaseException:
            _unlink(tmp)
            raise
        return tmp

    def _lock(self, key: str):
        return _FileLock(os.path.join(self._locks, hashlib.sha1(key.encode()).hexdigest()))

    def _fail(self, key: str, exc: OSError) -> BackendError:
        return BackendError(f"{self.root}: {key}: {exc.strerror or exc}")

    # -- interface -----------------------------------------------------------------------------
    def get(self, key: str) -> bytes:
        try:
            with open(self._path(key), "rb") as f:
                return f.read()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise KeyMissing(self.root, key) from None
        except OSError as exc:
            raise self._fail(key, exc) from exc

    def get_with_etag(self, key: str) -> tuple[bytes, str]:
        data = self.get(key)
        return data, _etag(data)

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        try:
            self._ensure_parent(path)
            tmp = self._write_tmp(data)
            os.replace(tmp, path)
        except OSError as exc:
            raise self._fail(key, exc) from exc

    def put_if_absent(self, key: str, data: bytes) -> bool:
        path = self._path(key)
        try:
            self._ensure_parent(path)
            tmp = self._write_tmp(data)
            try:
                os.link(tmp, path)
                return True
            except FileExistsError:
                return False
            finally:
                _unlink(tmp)
        except OSError as exc:
            raise self._fail(key, exc) from exc

    def put_if_match(self, key: str, data: bytes, etag: str) -> bool:
        path = self._path(key)
        try:
            with self._lock(key):
                try:
                    with open(path, "rb") as f:
                        current = _etag(f.read())
                except FileNotFoundError:
                    return False
                if current != etag:
                    return False
                tmp = self._write_tmp(data)
                os.replace(tmp, path)
                return True
        except OSError as exc:
            raise self._fail(key, exc) from exc

    def head(self, key: str) -> int | None:
        try:
            st = os.stat(self._path(key))
        except (FileNotFoundError, NotADirectoryError):
            return None
        return None if _isdir(st) else st.st_size

    def list(self, prefix: str, *, start_after: str | None = None, delimiter: str | None = None
             ) -> Iterator[str]:
        if delimiter not in (None, "/"):
            raise ValueError("only '/' is supported as a delimiter")
        dir_part, _, name_prefix = prefix.rpartition("/")
        base = os.path.join(self.root, dir_part) if dir_part else self.root
        keys: list[str] = []
        try:
            entries = list(os.scandir(base))
        except (FileNotFoundError, NotADirectoryError):
            return iter(())
        for e in entries:
            if not e.name.startswith(name_prefix) or (not dir_part and e.name.startswith(".")):
                continue
            key = f"{dir_part}/{e.name}" if dir_part else e.name
            if e.is_dir(follow_symlinks=False):
                if delimiter:
                    keys.append(key + "/")
                else:
                    keys.extend(self._walk(key))
            else:
                keys.append(key)
        keys.sort()
        if start_after is not None:
            keys = [k for k in keys if k > start_after]
        return iter(keys)

    def _walk(self, key_dir: str) -> Iterator[str]:
        for dirpath, _dirs, files in os.walk(os.path.join(self.root, key_dir)):
            rel = os.path.relpath(dirpath, self.root).replace(os.sep, "/")
            for name in files:
                yield f"{rel}/{name}"

    def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            with self._lock(key):
                _unlink(path)
        except OSError as exc:
            raise self._fail(key, exc) from exc

    def put_file(self, key: str, local_path: str | os.PathLike) -> None:
        path = self._path(key)
        try:
            self._ensure_parent(path)
            fd, tmp = self._tmpfile()
            os.close(fd)
            try:
                shutil.copyfile(local_path, tmp)
                os.replace(tmp, path)
            except BaseException:
                _unlink(tmp)
                raise
        except FileNotFoundError as exc:
            raise BackendError(f"cannot read {local_path}: {exc.strerror}") from exc
        except OSError as exc:
            raise self._fail(key, exc) from exc

    def get_to_file(self, key: str, local_path: str | os.PathLike) -> None:
        try:
            shutil.copyfile(self._path(key), local_path)
        except FileNotFoundError:
            if not os.path.exists(self._path(key)):
                raise KeyMissing(self.root, key) from None
            raise
        except OSError as exc:
            raise self._fail(key, exc) from exc

    def open(self, key: str) -> BinaryIO:
        try:
            return open(self._path(key), "rb")
        except (FileNotFoundError, NotADirectoryError):
            raise KeyMissing(self.root, key) from None
        except OSError as exc:
            raise self._fail(key, exc) from exc


def _isdir(st: os.stat_result) -> bool:
    import stat

    return stat.S_ISDIR(st.st_mode)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


class _FileLock:
    """An exclusive ``flock`` held for a ``with`` block (works across threads and processes)."""

    def __init__(self, path: str):
        self.path = path
        self.fd = -1

    def __enter__(self) -> Self:
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc: object) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


def open_backend(url: str, *, client: object | None = None) -> Backend:
    """``file:///dir`` (``~`` expanded) or a plain path → :class:`LocalBackend`;
    ``s3://bucket[/prefix]`` → :class:`~pach_airflow.pfs.s3.S3Backend` (``client``: a boto3 S3 client
    to use instead of ``boto3.client("s3")``)."""
    from pach_airflow.errors import StoreError

    if url.startswith("s3://"):
        from pach_airflow.pfs.s3 import S3Backend

        bucket, _, prefix = url[len("s3://"):].partition("/")
        if not bucket:
            raise StoreError(f"store URL {url!r} has no bucket: use s3://bucket/prefix")
        return S3Backend(bucket, prefix.strip("/"), client=client)
    if url.startswith("file://"):
        path = url[len("file://"):]
        if path.startswith("localhost/"):
            path = path[len("localhost"):]
        return LocalBackend(path)
    if "://" in url:
        raise StoreError(f"store URL {url!r} not understood: use file:///dir or s3://bucket/prefix")
    return LocalBackend(url)
