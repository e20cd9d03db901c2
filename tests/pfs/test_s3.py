"""The S3 features the store relies on, checked against the real server of the test session.

Server: SeaweedFS 4.48 (``weed server -s3``, tests/fixtures/s3.py). What these tests proved on it:
- conditional writes: ``IfNoneMatch="*"`` on an existing key and ``IfMatch`` with a stale etag both
  answer 412 (``S3Backend.put_if_absent/put_if_match`` return False), and in a 16-thread race exactly
  one create wins per key;
- multipart upload (a 40 MiB blob through boto3's transfer manager, 16 MiB parts) reads back intact;
- ``list_objects_v2`` with ``Delimiter="/"`` returns common prefixes, ``StartAfter`` skips, and
  listings page past 1,000 keys (1,050);
- transient errors (503 Slow Down from a proxy in front of it) are retried with backoff; permanent ones
  (a missing bucket) become BackendError naming the bucket and key.
"""

from __future__ import annotations

import hashlib
import socket
import threading

import pytest

from pach_airflow.errors import BackendError
from pach_airflow.pfs import open_store
from pach_airflow.pfs.s3 import S3Backend


@pytest.fixture
def backend(s3_env):
    return S3Backend(s3_env.make_bucket(), "pfx", client=s3_env.client())


def test_conditional_writes_412(backend):
    assert backend.put_if_absent("k", b"1") is True
    assert backend.put_if_absent("k", b"2") is False
    data, etag = backend.get_with_etag("k")
    assert data == b"1"
    assert backend.put_if_match("k", b"3", etag) is True
    assert backend.put_if_match("k", b"4", etag) is False  # stale etag → 412
    assert backend.get("k") == b"3"
    assert backend.put_if_match("missing", b"x", etag) is False


def test_conditional_create_race(backend):
    wins = []
    barrier = threading.Barrier(16)

    def racer(i: int) -> None:
        barrier.wait()
        for k in range(3):
            if backend.put_if_absent(f"race/{k}", str(i).encode()):
                wins.append(k)

    ts = [threading.Thread(target=racer, args=(i,)) for i in range(16)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert sorted(wins) == [0, 1, 2]


def test_multipart_upload(backend, tmp_path):
    big = tmp_path / "big"
    with open(big, "wb") as f:
        f.writelines(hashlib.sha256(bytes([i])).digest() * (1 << 15) for i in range(40))
    backend.put_file("blob", big)
    head = backend.client.head_object(Bucket=backend.bucket, Key="pfx/blob")
    assert "-" in head["ETag"]  # a multipart etag: <md5 of part md5s>-<parts>
    backend.get_to_file("blob", tmp_path / "back")
    assert (tmp_path / "back").read_bytes() == big.read_bytes()


def test_listing(backend):
    for k in ["a/1", "a/2", "b/x/1", "c", "a-b"]:
        backend.put(k, b"")
    assert list(backend.list("")) == ["a-b", "a/1", "a/2", "b/x/1", "c"]
    assert list(backend.list("", delimiter="/")) == ["a-b", "a/", "b/", "c"]
    assert list(backend.list("a/", start_after="a/1")) == ["a/2"]
    assert list(backend.list("b/", delimiter="/")) == ["b/x/"]


def test_listing_pages(backend):
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(16) as ex:
        list(ex.map(lambda i: backend.put(f"many/{i:05d}", b""), range(1050)))
    keys = list(backend.list("many/"))
    assert len(keys) == 1050 and keys == sorted(keys)


def test_permanent_error_names_bucket_and_key(s3_env):
    store = open_store("s3://no-such-bucket-here/p")
    # SeaweedFS answers a put into a missing bucket with AccessDenied, a get with NoSuchBucket.
    with pytest.raises(BackendError, match="s3://no-such-bucket-here/p/repos/r/repo.json"):
        store.create_repo("r")
    with pytest.raises(BackendError, match="no-such-bucket-here"):
        store.get_record("x")


class _FlakyProxy:
    """A TCP proxy that answers the first ``fail`` connections with 503 Slow Down, then forwards."""

    def __init__(self, target: str, fail: int):
        host, port = target.removeprefix("http://").split(":")
        self.target = (host, int(port))
        self.fail = fail
        self.failed = 0
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.endpoint = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.stop = False
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self.stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            if self.failed < self.fail:
                self.failed += 1
                conn.recv(65536)
                body = b"<Error><Code>SlowDown</Code><Message>slow down</Message></Error>"
                conn.sendall(b"HTTP/1.1 503 Slow Down\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
                             % (len(body), body))
                conn.close()
                continue
            up = socket.create_connection(self.target)
            for a, b in ((conn, up), (up, conn)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self.stop = True
        self.sock.close()


def test_transient_errors_are_retried(s3_env, monkeypatch):
    bucket = s3_env.make_bucket()
    proxy = _FlakyProxy(s3_env.endpoint, fail=2)
    try:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.endpoint)
        store = open_store(f"s3://{bucket}/p")
        store.create_repo("r")  # the first requests meet 503s and are retried
        assert proxy.failed == 2
        store.put_file("r", "master", "/a", b"1")
        assert store.read_file("r", "master", "/a") == b"1"
    finally:
        proxy.close()
