"""The S3 backend: any S3 (AWS, MinIO, SeaweedFS, Ceph) through boto3.

Owns the translation of :class:`~pach_airflow.pfs.backend.Backend` calls to S3 requests:
conditional writes (``IfNoneMatch="*"`` for create-if-absent, ``IfMatch=<etag>`` for compare-and-swap;
412 and 409 mean "lost the race"), ``list_objects_v2`` with ``StartAfter`` and ``Delimiter``, and
multipart uploads/downloads for big blobs (boto3's transfer manager).

Endpoint and credentials come from boto3's standard chain (``AWS_ENDPOINT_URL``, ``AWS_PROFILE``,
``AWS_ACCESS_KEY_ID``...), or pass a ready ``client``. Transient errors (5xx, throttling, dropped
connections) are retried by botocore's ``standard`` retry mode with exponential backoff; permanent
errors become :class:`~pach_airflow.errors.BackendError` naming the bucket and key.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any, BinaryIO

from pach_airflow.errors import BackendError
from pach_airflow.pfs.backend import Backend, KeyMissing

MAX_ATTEMPTS = 8
MULTIPART_THRESHOLD = 16 << 20


def make_client(**kwargs: Any) -> Any:
    """``boto3.client("s3")`` with standard retries, a pool big enough for parallel uploads, and
    path-style addressing when a custom endpoint is set (most self-hosted servers need it)."""
    import boto3
    from botocore.config import Config

    s3_opts = {"addressing_style": "path"} if os.environ.get("AWS_ENDPOINT_URL") or kwargs.get("endpoint_url") \
        else {}
    cfg = Config(retries={"mode": "standard", "max_attempts": MAX_ATTEMPTS}, max_pool_connections=64, s3=s3_opts,
                 connect_timeout=10, read_timeout=60)
    return boto3.client("s3", config=cfg, **kwargs)


class S3Backend(Backend):
    cheap_exists = False

    def __init__(self, bucket: str, prefix: str = "", *, client: Any | None = None):
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self._pfx = self.prefix + "/" if self.prefix else ""
        self.client = client if client is not None else make_client()
        self.url = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        from boto3.s3.transfer import TransferConfig

        self._transfer = TransferConfig(multipart_threshold=MULTIPART_THRESHOLD,
                                        multipart_chunksize=MULTIPART_THRESHOLD, max_concurrency=4)

    def _k(self, key: str) -> str:
        return self._pfx + key

    def where(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._k(key)}"

    def _error(self, exc: Exception, key: str, action: str) -> Exception:
        from botocore.exceptions import ClientError

        if isinstance(exc, ClientError):
            err = exc.response.get("Error", {})
            code = str(err.get("Code", ""))
            if code in ("NoSuchKey", "404", "NotFound"):
                return KeyMissing(f"s3://{self.bucket}", self._k(key))
            if code == "NoSuchBucket":
                return BackendError(f"s3 bucket {self.bucket} does not exist ({action} {self.where(key)}): "
                                    "create it, or fix the store URL")
            return BackendError(f"{action} {self.where(key)} failed: {code}: {err.get('Message', '')}".rstrip(": "))
        return BackendError(f"{action} {self.where(key)} failed: {exc}")

    @staticmethod
    def _lost_race(exc: Exception) -> bool:
        from botocore.exceptions import ClientError

        if not isinstance(exc, ClientError):
            return False
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return code in ("PreconditionFailed", "ConditionalRequestConflict") or status in (409, 412)

    # -- interface -----------------------------------------------------------------------------
    def get(self, key: str) -> bytes:
        return self.get_with_etag(key)[0]

    def get_with_etag(self, key: str) -> tuple[bytes, str]:
        try:
            r = self.client.get_object(Bucket=self.bucket, Key=self._k(key))
            return r["Body"].read(), r["ETag"]
        except Exception as exc:
            raise self._error(exc, key, "get") from exc

    def put(self, key: str, data: bytes) -> None:
        try:
            self.client.put_object(Bucket=self.bucket, Key=self._k(key), Body=data)
        except Exception as exc:
            raise self._error(exc, key, "put") from exc

    def put_if_absent(self, key: str, data: bytes) -> bool:
        try:
            self.client.put_object(Bucket=self.bucket, Key=self._k(key), Body=data, IfNoneMatch="*")
            return True
        except Exception as exc:
            if self._lost_race(exc):
                return False
            raise self._error(exc, key, "put (if absent)") from exc

    def put_if_match(self, key: str, data: bytes, etag: str) -> bool:
        try:
            self.client.put_object(Bucket=self.bucket, Key=self._k(key), Body=data, IfMatch=etag)
            return True
        except Exception as exc:
            if self._lost_race(exc) or isinstance(self._error(exc, key, ""), KeyMissing):
                return False
            raise self._error(exc, key, "put (if match)") from exc

    def head(self, key: str) -> int | None:
        try:
            return int(self.client.head_object(Bucket=self.bucket, Key=self._k(key))["ContentLength"])
        except Exception as exc:
            err = self._error(exc, key, "head")
            if isinstance(err, KeyMissing):
                return None
            raise err from exc

    def list(self, prefix: str, *, start_after: str | None = None, delimiter: str | None = None
             ) -> Iterator[str]:
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": self._k(prefix)}
        if start_after:
            kwargs["StartAfter"] = self._k(start_after)
        if delimiter:
            kwargs["Delimiter"] = delimiter
        cut = len(self._pfx)
        try:
            for page in self.client.get_paginator("list_objects_v2").paginate(**kwargs):
                keys = [o["Key"][cut:] for o in page.get("Contents", [])]
                keys += [p["Prefix"][cut:] for p in page.get("CommonPrefixes", [])]
                yield from sorted(keys)
        except Exception as exc:
            raise self._error(exc, prefix, "list") from exc

    def delete(self, key: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self._k(key))
        except Exception as exc:
            err = self._error(exc, key, "delete")
            if not isinstance(err, KeyMissing):
                raise err from exc

    def delete_many(self, keys: list[str]) -> None:
        for i in range(0, len(keys), 1000):
            batch = [{"Key": self._k(k)} for k in keys[i:i + 1000]]
            try:
                r = self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})
            except Exception as exc:
                raise self._error(exc, keys[i], "delete") from exc
            errors = [e for e in r.get("Errors", []) if e.get("Code") != "NoSuchKey"]
            if errors:
                e = errors[0]
                raise BackendError(f"delete s3://{self.bucket}/{e.get('Key')} failed: {e.get('Code')}: "
                                   f"{e.get('Message', '')} (and {len(errors) - 1} more)")

    def put_file(self, key: str, local_path: str | os.PathLike) -> None:
        try:
            self.client.upload_file(os.fspath(local_path), self.bucket, self._k(key), Config=self._transfer)
        except FileNotFoundError as exc:
            raise BackendError(f"cannot read {local_path}: {exc.strerror}") from exc
        except Exception as exc:
            raise self._error(_unwrap(exc), key, "upload") from exc

    def get_to_file(self, key: str, local_path: str | os.PathLike) -> None:
        try:
            self.client.download_file(self.bucket, self._k(key), os.fspath(local_path), Config=self._transfer)
        except Exception as exc:
            raise self._error(_unwrap(exc), key, "download") from exc

    def open(self, key: str) -> BinaryIO:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._k(key))["Body"]
        except Exception as exc:
            raise self._error(exc, key, "get") from exc


def _unwrap(exc: Exception) -> Exception:
    # boto3's transfer manager wraps ClientErrors (S3UploadFailedError) or raises them as is.
    cause = exc.__cause__ or exc.__context__
    from botocore.exceptions import ClientError

    if not isinstance(exc, ClientError) and isinstance(cause, ClientError):
        return cause
    if type(exc).__name__ == "S3UploadFailedError" or "404" in str(exc):
        from botocore.exceptions import ClientError as CE

        if "404" in str(exc) or "Not Found" in str(exc):
            return CE({"Error": {"Code": "404", "Message": str(exc)}}, "download")
    return exc
