"""The content store: verified ingest, idempotence, atomicity, crash leftovers, concurrency."""

from __future__ import annotations

import fcntl
import hashlib
import io
import os
import threading
from pathlib import Path

import pytest

from dockyard.image import (
    BlobNotFoundError,
    ContentStore,
    Digest,
    DigestError,
    DigestMismatchError,
    sha256_of,
)

DATA = b"hello, content store\n" * 1000


def _state(root: Path) -> tuple[set[str], list[str]]:
    blobs = {str(p.relative_to(root)) for p in (root / "blobs").rglob("*") if p.is_file()}
    return blobs, sorted(os.listdir(root / "ingest"))


def test_ingest_bytes_and_stream(tmp_path: Path) -> None:
    store = ContentStore(tmp_path)
    digest, size = store.ingest(DATA)
    assert digest == sha256_of(DATA) and size == len(DATA)
    assert store.path(digest) == tmp_path / "blobs" / "sha256" / digest.hex
    assert store.has(digest) and store.size(digest) == len(DATA)
    assert store.read_bytes(digest) == DATA
    with store.open(digest) as handle:
        assert handle.read() == DATA
    other = b"another blob"
    assert store.ingest(io.BytesIO(other), sha256_of(other), len(other)) == (sha256_of(other),
                                                                             len(other))
    assert sorted(store.digests()) == sorted([digest, sha256_of(other)])
    assert _state(tmp_path)[1] == []  # nothing left in ingest/
    assert store.path(digest).stat().st_mode & 0o777 == 0o444  # blobs are immutable


def test_ingest_is_idempotent(tmp_path: Path) -> None:
    store = ContentStore(tmp_path)
    added: set[Digest] = set()
    first = store.ingest(DATA, added=added)
    assert added == {first[0]}
    added.clear()
    assert store.ingest(io.BytesIO(DATA), first[0], len(DATA), added=added) == first
    assert store.ingest(DATA, added=added) == first
    assert added == set()  # neither call created the blob
    assert _state(tmp_path) == ({f"blobs/sha256/{first[0].hex}"}, [])


@pytest.mark.parametrize("present", [False, True])
def test_ingest_refuses_wrong_digest_and_leaves_nothing(tmp_path: Path, present: bool) -> None:
    store = ContentStore(tmp_path)
    if present:
        store.ingest(DATA)
    before = _state(tmp_path)
    with pytest.raises(DigestMismatchError, match="digest mismatch"):
        store.ingest(io.BytesIO(b"not the data"), sha256_of(DATA))
    with pytest.raises(DigestMismatchError, match="size mismatch: expected 5 bytes, got 12"):
        store.ingest(b"not the data", size=5)
    with pytest.raises(DigestMismatchError, match="size mismatch"):
        store.ingest(io.BytesIO(DATA), sha256_of(DATA), len(DATA) + 1)
    assert _state(tmp_path) == before


def test_ingest_stops_reading_a_stream_longer_than_announced(tmp_path: Path) -> None:
    class Endless:
        reads = 0

        def read(self, size: int = -1) -> bytes:
            self.reads += 1
            return b"x" * (1 << 20)

    source = Endless()
    store = ContentStore(tmp_path)
    with pytest.raises(DigestMismatchError, match="expected 100 bytes, got more"):
        store.ingest(source, size=100)
    assert source.reads == 1
    assert _state(tmp_path) == (set(), [])


def test_ingest_failure_of_the_source_leaves_nothing(tmp_path: Path) -> None:
    class Broken:
        def read(self, size: int = -1) -> bytes:
            raise OSError("disk on fire")

    store = ContentStore(tmp_path)
    with pytest.raises(OSError, match="disk on fire"):
        store.ingest(Broken())
    assert _state(tmp_path) == (set(), [])


def test_read_verifies_the_digest(tmp_path: Path) -> None:
    store = ContentStore(tmp_path)
    digest, _ = store.ingest(DATA)
    path = store.path(digest)
    path.chmod(0o644)
    path.write_bytes(b"corrupted" + DATA[9:])
    with pytest.raises(DigestMismatchError, match=f"blob {digest} is corrupt"):
        store.read_bytes(digest)
    assert store.read_bytes(digest, verify=False).startswith(b"corrupted")
    with store.open(digest, verify=True) as handle:
        with pytest.raises(DigestMismatchError, match="is corrupt"):
            while handle.read(4096):
                pass


def test_missing_blobs_and_bad_digests(tmp_path: Path) -> None:
    store = ContentStore(tmp_path)
    missing = sha256_of(b"absent")
    assert not store.has(missing)
    for call in (store.read_bytes, store.open, store.size):
        with pytest.raises(BlobNotFoundError, match=f"blob {missing} not found"):
            call(missing)
    assert store.delete(missing) is False
    digest, _ = store.ingest(b"x")
    assert store.delete(digest) is True and not store.has(digest)
    # A digest is validated before it becomes a path: no way out of the store.
    with pytest.raises(DigestError):
        store.path("sha256:../../../../etc/passwd")
    with pytest.raises(DigestError):
        store.has("sha256:" + "A" * 64)


def test_interrupted_ingests_are_removed_at_start(tmp_path: Path) -> None:
    ContentStore(tmp_path)
    leftover = tmp_path / "ingest" / "0123abcd"
    leftover.write_bytes(b"half a blob")
    # An ingest still in progress (its writer holds the lock) must survive.
    live = tmp_path / "ingest" / "live"
    live.write_bytes(b"being written")
    with live.open("rb") as holder:
        fcntl.flock(holder.fileno(), fcntl.LOCK_EX)
        store = ContentStore(tmp_path)
        assert not leftover.exists()
        assert live.exists()
    ContentStore(tmp_path)
    assert not live.exists()
    assert list(store.digests()) == []
    # Things the store did not make are left alone rather than crashing the start-up.
    (tmp_path / "ingest" / "a-directory").mkdir()
    (tmp_path / "ingest" / "a-link").symlink_to(tmp_path / "elsewhere")
    (tmp_path / "blobs" / "stray-file").write_bytes(b"")
    assert list(ContentStore(tmp_path).digests()) == []
    assert sorted(os.listdir(tmp_path / "ingest")) == ["a-directory", "a-link"]


def test_concurrent_ingest_of_the_same_content(tmp_path: Path) -> None:
    store = ContentStore(tmp_path)
    added: list[set[Digest]] = [set() for _ in range(16)]
    results: list[tuple[Digest, int]] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(added))

    def work(index: int) -> None:
        try:
            barrier.wait()
            # Half with the expected digest (verify-only when present), half without.
            expected = sha256_of(DATA) if index % 2 else None
            results.append(store.ingest(io.BytesIO(DATA), expected, added=added[index]))
        except BaseException as error:  # reported by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(added))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert set(results) == {(sha256_of(DATA), len(DATA))}
    assert sum(len(a) for a in added) == 1  # exactly one call created the blob
    assert _state(tmp_path) == ({f"blobs/sha256/{sha256_of(DATA).hex}"}, [])
    assert store.read_bytes(sha256_of(DATA)) == DATA


def test_sha512_blobs(tmp_path: Path) -> None:
    store = ContentStore(tmp_path)
    expected = "sha512:" + hashlib.sha512(DATA).hexdigest()
    digest, _ = store.ingest(DATA, expected)
    assert digest == expected and store.path(digest).parent.name == "sha512"
    assert store.read_bytes(digest) == DATA
