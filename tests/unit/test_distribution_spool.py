"""The spool that hands a downloading layer to the unpacker."""

from __future__ import annotations

import threading

import pytest

from dockyard.distribution._spool import Spool


def test_chunks_are_read_in_order_and_the_end_waits_for_verification() -> None:
    spool = Spool(cap=100)
    assert spool.attach()
    spool.feed(b"abc")
    spool.feed(b"defg")
    assert spool.read(2) == b"ab"
    assert spool.read() == b"c"
    assert spool.read(10) == b"defg"
    ended = []

    def reader() -> None:
        ended.append(spool.read())

    thread = threading.Thread(target=reader)
    thread.start()
    thread.join(0.05)
    assert thread.is_alive()  # no end of stream before the download is verified
    spool.finish()
    thread.join(5)
    assert ended == [b""]


def test_a_failed_download_is_an_error_in_the_stream() -> None:
    spool = Spool(cap=100)
    spool.attach()
    spool.feed(b"data")
    spool.finish(ValueError("digest mismatch"))
    assert spool.read() == b"data"
    with pytest.raises(ValueError, match="digest mismatch"):
        spool.read()


def test_past_the_cap_before_the_unpacker_comes_the_spool_gives_up() -> None:
    spool = Spool(cap=5)
    spool.feed(b"1234")
    spool.feed(b"56")
    assert not spool.attach()


def test_a_finished_download_nobody_reads_frees_its_memory() -> None:
    spool = Spool(cap=100)
    spool.feed(b"1234")
    spool.finish()
    assert not spool.attach()  # the blob is in the store by then


def test_an_attached_reader_holds_the_download_back_until_it_reads_or_closes() -> None:
    spool = Spool(cap=4)
    spool.attach()
    spool.feed(b"12345")  # past the cap: the next feed waits
    fed = threading.Event()

    def producer() -> None:
        spool.feed(b"6")
        fed.set()

    thread = threading.Thread(target=producer)
    thread.start()
    assert not fed.wait(0.05)
    assert spool.read() == b"12345"
    assert fed.wait(5)
    thread.join(5)
    spool.feed(b"x" * 10)
    late = threading.Thread(target=spool.feed, args=(b"y",))
    late.start()
    spool.close()  # the unpacker is gone: the download goes on without it
    late.join(5)
    assert not late.is_alive()


def test_closing_the_spool_fails_a_waiting_reader() -> None:
    from dockyard.distribution._spool import SpoolClosed

    spool = Spool(cap=100)
    assert spool.attach()
    errors: list[BaseException] = []

    def reader() -> None:
        try:
            spool.read()
        except SpoolClosed as e:
            errors.append(e)

    thread = threading.Thread(target=reader)
    thread.start()
    thread.join(0.05)
    assert thread.is_alive()
    spool.close()  # another layer failed: the pull gives up
    thread.join(5)
    assert not thread.is_alive() and len(errors) == 1
