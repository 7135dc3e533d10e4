"""Which offset the notifier may commit while alerts finish out of order."""

from __future__ import annotations

from stream.notify.offsets import OffsetBook, PartitionOffsets


def test_commit_stops_at_the_first_unfinished_offset() -> None:
    part = PartitionOffsets()
    for offset in range(10, 15):
        part.add(offset, now=100.0 + offset)
    assert part.commit_position() == 10 and part.in_flight() == 5
    part.done(12)
    part.done(13)
    assert part.commit_position() == 10  # 10 and 11 are still out
    part.done(10)
    assert part.commit_position() == 11 and part.oldest() == 111.0
    part.done(11)
    assert part.commit_position() == 14 and part.in_flight() == 1
    part.done(14)
    assert part.commit_position() == 15 and part.in_flight() == 0 and part.oldest() is None


def test_book_reports_only_moved_positions_and_forgets_revoked_partitions() -> None:
    book = OffsetBook()
    book.add(0, 0, 1.0)
    book.add(1, 7, 2.0)
    book.done(1, 7)
    assert book.to_commit() == {0: 0, 1: 8}
    book.committed({0: 0, 1: 8})
    assert book.to_commit() == {}
    assert book.in_flight() == 1 and book.oldest() == 1.0
    book.revoke(0)
    book.done(0, 0)  # a late finish for a partition handed away is ignored
    assert book.to_commit() == {} and book.in_flight() == 0
