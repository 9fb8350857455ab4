"""CRIU stats images: real files from CRIU 4.2.1 plus hand-built edge cases."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from core.criu_stats import (
    IMG_COMMON_MAGIC,
    IMG_SERVICE_MAGIC,
    STATS_MAGIC,
    DumpStats,
    RestoreStats,
    StatsError,
    parse_dump_stats,
    parse_restore_stats,
    read_dump_stats,
    read_restore_stats,
)

DATA = Path(__file__).resolve().parent.parent / "data" / "criu-stats"

# Independent numbers: CRIU's own --display-stats output and the size of pages-1.img
# (see tests/data/criu-stats/README.md).
PAGES_IMG_BYTES = 28_020_736


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field_varint(number: int, value: int) -> bytes:
    return _varint(number << 3) + _varint(value)


def _field_bytes(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _image(*entries: bytes, head: int = IMG_SERVICE_MAGIC, magic: int = STATS_MAGIC) -> bytes:
    out = struct.pack("<II", head, magic)
    for entry in entries:
        out += struct.pack("<I", len(entry)) + entry
    return out


# --- real images -------------------------------------------------------------------------


def test_real_stats_dump_matches_criu_output() -> None:
    stats = parse_dump_stats((DATA / "stats-dump").read_bytes())
    assert stats == DumpStats(
        freezing_time_us=163,
        frozen_time_us=40415,
        memdump_time_us=30206,
        memwrite_time_us=25822,
        pages_scanned=6938,
        pages_skipped_parent=0,
        pages_written=6841,
        pages_lazy=0,
        page_pipes=8,
        page_pipe_bufs=8,
        shpages_scanned=0,
        shpages_skipped_parent=0,
        shpages_written=0,
        irmap_resolve=0,
    )


def test_real_pages_written_equals_pages_image_size() -> None:
    stats = read_dump_stats(DATA)
    assert stats.pages_written * 4096 == PAGES_IMG_BYTES
    assert stats.bytes_written() == PAGES_IMG_BYTES
    assert stats.frozen_time_s == pytest.approx(0.040415)
    # A 20 MiB buffer was touched page by page: at least 5120 pages must have been written.
    assert stats.pages_written >= 20 * 1024 * 1024 // 4096
    assert stats.pages_written <= stats.pages_scanned


def test_real_stats_restore_matches_criu_output() -> None:
    stats = parse_restore_stats((DATA / "stats-restore").read_bytes())
    assert stats == RestoreStats(
        pages_compared=0,
        pages_skipped_cow=0,
        forking_time_us=0,
        restore_time_us=19830,
        pages_restored=6841,
    )
    assert read_restore_stats(DATA) == stats
    assert stats.restore_time_s == pytest.approx(0.01983)


def test_restored_pages_equal_dumped_pages() -> None:
    assert read_restore_stats(DATA).pages_restored == read_dump_stats(DATA).pages_written


def test_real_header_is_service_magic_then_stats_magic() -> None:
    raw = (DATA / "stats-dump").read_bytes()
    assert struct.unpack_from("<II", raw) == (IMG_SERVICE_MAGIC, STATS_MAGIC)
    (size,) = struct.unpack_from("<I", raw, 8)
    assert 12 + size == len(raw)  # exactly one entry


def test_dump_parser_refuses_a_restore_image() -> None:
    with pytest.raises(StatsError, match=r"no dump statistics \(this looks like stats-restore\)"):
        parse_dump_stats((DATA / "stats-restore").read_bytes())
    with pytest.raises(StatsError, match=r"no restore statistics \(this looks like stats-dump\)"):
        parse_restore_stats((DATA / "stats-dump").read_bytes())


# --- hand-built images ---------------------------------------------------------------------


def test_old_criu_image_without_newer_fields_reads_zeroes() -> None:
    # CRIU 3.x: fields 1-9 only, no page_pipes / shpages_*.
    dump = b"".join(
        _field_varint(n, v) for n, v in [(1, 10), (2, 2000), (3, 5), (4, 6), (5, 300), (6, 200)]
    )
    dump += _field_varint(7, 100) + _field_varint(9, 0)
    stats = parse_dump_stats(_image(_field_bytes(1, dump)))
    assert stats.frozen_time_us == 2000
    assert stats.pages_scanned == 300
    assert stats.pages_skipped_parent == 200
    assert stats.pages_written == 100
    assert stats.page_pipes == 0
    assert stats.shpages_written == 0
    assert stats.irmap_resolve == 0


def test_large_uint64_and_unknown_fields() -> None:
    big = 2**40 + 7
    dump = (
        _field_varint(7, big)
        + _field_varint(99, 5)  # unknown varint field from a newer CRIU
        + _field_bytes(100, b"future")  # unknown message field
        + _varint(101 << 3 | 5)
        + b"\x01\x02\x03\x04"  # unknown fixed32
        + _field_varint(14, 3)
    )
    stats = parse_dump_stats(_image(_field_bytes(1, dump)))
    assert stats.pages_written == big
    assert stats.shpages_written == 3


def test_pre_v1_1_image_without_head_magic() -> None:
    entry = _field_bytes(2, _field_varint(5, 42))
    data = struct.pack("<I", STATS_MAGIC) + struct.pack("<I", len(entry)) + entry
    assert parse_restore_stats(data).pages_restored == 42


def test_empty_section_means_all_zero() -> None:
    assert parse_restore_stats(_image(_field_bytes(2, b""))) == RestoreStats()


# --- damaged input -------------------------------------------------------------------------


def test_bad_head_magic() -> None:
    data = bytearray((DATA / "stats-dump").read_bytes())
    data[0:4] = struct.pack("<I", 0xDEADBEEF)
    with pytest.raises(StatsError, match="head magic 0xdeadbeef"):
        parse_dump_stats(bytes(data))


def test_common_magic_is_named() -> None:
    with pytest.raises(StatsError, match="IMG_COMMON_MAGIC"):
        parse_dump_stats(_image(b"", head=IMG_COMMON_MAGIC))


def test_bad_image_magic() -> None:
    with pytest.raises(StatsError, match="image magic 0x56084025"):
        parse_dump_stats(_image(b"", magic=0x56084025))  # a pagemap image


def test_big_endian_image_is_explained() -> None:
    data = struct.pack(">II", IMG_SERVICE_MAGIC, STATS_MAGIC)
    with pytest.raises(StatsError, match="big-endian"):
        parse_dump_stats(data)


def test_too_short_for_header() -> None:
    with pytest.raises(StatsError, match="3 bytes"):
        parse_dump_stats(b"\x40\x59\x10")
    with pytest.raises(StatsError):
        parse_dump_stats(b"")


def test_header_only_has_no_entry() -> None:
    with pytest.raises(StatsError, match="no entry"):
        parse_dump_stats(struct.pack("<II", IMG_SERVICE_MAGIC, STATS_MAGIC))


@pytest.mark.parametrize("cut", [9, 11, 13, 20, 40, 50])
def test_every_truncation_of_the_real_image_is_an_error(cut: int) -> None:
    raw = (DATA / "stats-dump").read_bytes()
    assert cut < len(raw)
    with pytest.raises(StatsError, match="truncated"):
        parse_dump_stats(raw[:cut])


def test_all_truncations_raise_stats_error_not_something_else() -> None:
    raw = (DATA / "stats-dump").read_bytes()
    for cut in range(len(raw)):
        with pytest.raises(StatsError):
            parse_dump_stats(raw[:cut])


def test_truncated_inside_the_message() -> None:
    # The entry length is right, but the nested dump message claims more than is there.
    entry = _varint(1 << 3 | 2) + _varint(30) + _field_varint(7, 1)
    with pytest.raises(StatsError, match="truncated field 1 in stats_entry"):
        parse_dump_stats(_image(entry))


def test_truncated_varint() -> None:
    dump = _varint(7 << 3) + b"\xff\xff"
    with pytest.raises(StatsError, match="truncated varint in dump_stats_entry"):
        parse_dump_stats(_image(_field_bytes(1, dump)))


def test_overlong_varint() -> None:
    dump = _varint(7 << 3) + b"\xff" * 11 + b"\x01"
    with pytest.raises(StatsError, match="longer than 10 bytes"):
        parse_dump_stats(_image(_field_bytes(1, dump)))


def test_wrong_wire_type_for_a_known_field() -> None:
    dump = _field_bytes(7, b"\x01")
    with pytest.raises(StatsError, match=r"field 7 \(pages_written\) is not a varint"):
        parse_dump_stats(_image(_field_bytes(1, dump)))


def test_stats_error_is_a_value_error() -> None:
    assert issubclass(StatsError, ValueError)
