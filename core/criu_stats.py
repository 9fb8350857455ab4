"""Read CRIU's statistics images (``stats-dump``, ``stats-restore``) with the standard library.

CRIU writes these two files into the images directory at the end of ``criu dump`` /
``pre-dump`` / ``restore``. Their layout (CRIU 3.x and 4.x, x86-64 and other
little-endian hosts):

* ``u32`` head magic ``IMG_SERVICE_MAGIC`` (0x55105940). Ordinary images carry
  ``IMG_COMMON_MAGIC`` (0x54564319) here; stats and the irmap cache are "service" files.
* ``u32`` image magic ``STATS_MAGIC`` (0x57093306).
* Entries, each a ``u32`` payload length followed by a protobuf (proto2) message
  ``stats_entry``. CRIU writes exactly one entry per file.

``stats_entry`` holds ``dump`` (field 1, ``dump_stats_entry``) or ``restore`` (field 2,
``restore_stats_entry``). Every numeric field in both sub-messages is a plain
``uint32``/``uint64`` varint (no zig-zag, no fixed-width encoding). Times are in
microseconds, stored as ``uint32``. Fields added in later CRIU releases (``page_pipes``,
``page_pipe_bufs``, ``shpages_*``) are absent from images written by older releases and
read as 0 here, as are any other missing fields.

The integers are written in the host's byte order; CRIU images are not portable between
hosts of different endianness, and this module reads the little-endian form.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

IMG_COMMON_MAGIC = 0x54564319
IMG_SERVICE_MAGIC = 0x55105940
STATS_MAGIC = 0x57093306

# Protobuf wire types.
_VARINT = 0
_FIXED64 = 1
_LEN = 2
_FIXED32 = 5

_U64_MASK = (1 << 64) - 1


class StatsError(ValueError):
    """The bytes are not a CRIU stats image, or the image is damaged."""


@dataclass(frozen=True)
class DumpStats:
    """``dump_stats_entry``: what one ``criu dump`` or ``criu pre-dump`` did."""

    freezing_time_us: int = 0
    frozen_time_us: int = 0
    memdump_time_us: int = 0
    memwrite_time_us: int = 0
    pages_scanned: int = 0
    pages_skipped_parent: int = 0
    pages_written: int = 0
    pages_lazy: int = 0
    page_pipes: int = 0
    page_pipe_bufs: int = 0
    shpages_scanned: int = 0
    shpages_skipped_parent: int = 0
    shpages_written: int = 0
    irmap_resolve: int = 0  # microseconds

    @property
    def frozen_time_s(self) -> float:
        return self.frozen_time_us / 1e6

    def bytes_written(self, page_size: int = 4096) -> int:
        """Bytes of private memory the dump wrote (the size of its ``pages-*.img``)."""
        return self.pages_written * page_size


@dataclass(frozen=True)
class RestoreStats:
    """``restore_stats_entry``: what one ``criu restore`` did."""

    pages_compared: int = 0
    pages_skipped_cow: int = 0
    forking_time_us: int = 0
    restore_time_us: int = 0
    pages_restored: int = 0

    @property
    def restore_time_s(self) -> float:
        return self.restore_time_us / 1e6


# Field number -> attribute name, as numbered in CRIU's images/stats.proto.
_DUMP_FIELDS: dict[int, str] = {
    1: "freezing_time_us",
    2: "frozen_time_us",
    3: "memdump_time_us",
    4: "memwrite_time_us",
    5: "pages_scanned",
    6: "pages_skipped_parent",
    7: "pages_written",
    8: "irmap_resolve",
    9: "pages_lazy",
    10: "page_pipes",
    11: "page_pipe_bufs",
    12: "shpages_scanned",
    13: "shpages_skipped_parent",
    14: "shpages_written",
}

_RESTORE_FIELDS: dict[int, str] = {
    1: "pages_compared",
    2: "pages_skipped_cow",
    3: "forking_time_us",
    4: "restore_time_us",
    5: "pages_restored",
}

_STATS_DUMP = 1
_STATS_RESTORE = 2


def _read_varint(buf: bytes, pos: int, what: str) -> tuple[int, int]:
    """Decode one base-128 varint at ``pos``; return (value, next position)."""
    value = 0
    shift = 0
    while True:
        if pos >= len(buf):
            raise StatsError(f"truncated varint in {what} at byte {pos}")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value & _U64_MASK, pos
        shift += 7
        if shift >= 70:
            raise StatsError(f"varint longer than 10 bytes in {what} at byte {pos}")


def _iter_fields(buf: bytes, what: str) -> list[tuple[int, int, int | bytes]]:
    """Split a protobuf message into (field number, wire type, value) triples.

    Varints come back as ints, length-delimited fields as bytes; fixed-width fields
    (which stats messages do not use) are skipped over, as protobuf readers skip
    fields they do not know.
    """
    fields: list[tuple[int, int, int | bytes]] = []
    pos = 0
    while pos < len(buf):
        key, pos = _read_varint(buf, pos, what)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise StatsError(f"invalid field number 0 in {what}")
        if wire == _VARINT:
            value, pos = _read_varint(buf, pos, what)
            fields.append((number, wire, value))
        elif wire == _LEN:
            length, pos = _read_varint(buf, pos, what)
            if pos + length > len(buf):
                raise StatsError(
                    f"truncated field {number} in {what}: needs {length} bytes, "
                    f"{len(buf) - pos} left"
                )
            fields.append((number, wire, buf[pos : pos + length]))
            pos += length
        elif wire in (_FIXED64, _FIXED32):
            width = 8 if wire == _FIXED64 else 4
            if pos + width > len(buf):
                raise StatsError(f"truncated field {number} in {what}")
            pos += width
        else:
            raise StatsError(f"unsupported protobuf wire type {wire} (field {number}) in {what}")
    return fields


def _decode_numbers(buf: bytes, names: dict[int, str], what: str) -> dict[str, int]:
    values: dict[str, int] = {}
    for number, wire, value in _iter_fields(buf, what):
        name = names.get(number)
        if name is None:
            continue  # a field from a newer CRIU: skip it, as protobuf readers do
        if wire != _VARINT or not isinstance(value, int):
            raise StatsError(f"{what} field {number} ({name}) is not a varint")
        values[name] = value  # a repeated field: the last one wins, as in protobuf
    return values


def _entries(data: bytes) -> list[bytes]:
    """Check the magics and return the payload of each entry."""
    if len(data) < 8:
        raise StatsError(f"not a CRIU stats image: {len(data)} bytes, the header needs 8")
    head, magic = struct.unpack_from("<II", data, 0)
    if head == STATS_MAGIC:
        # Images from before v1.1 had no head magic; accept them.
        pos = 4
    elif head != IMG_SERVICE_MAGIC:
        if head == IMG_COMMON_MAGIC:
            raise StatsError(
                "not a CRIU stats image: head magic is IMG_COMMON_MAGIC (0x54564319), "
                "which ordinary images use; stats images carry IMG_SERVICE_MAGIC (0x55105940)"
            )
        if head == struct.unpack("<I", struct.pack(">I", IMG_SERVICE_MAGIC))[0]:
            raise StatsError("CRIU stats image written by a big-endian host; not supported")
        raise StatsError(
            f"not a CRIU stats image: head magic 0x{head:08x}, "
            f"expected IMG_SERVICE_MAGIC 0x{IMG_SERVICE_MAGIC:08x}"
        )
    elif magic != STATS_MAGIC:
        raise StatsError(
            f"not a CRIU stats image: image magic 0x{magic:08x}, "
            f"expected STATS_MAGIC 0x{STATS_MAGIC:08x}"
        )
    else:
        pos = 8

    payloads: list[bytes] = []
    while pos < len(data):
        if pos + 4 > len(data):
            raise StatsError(
                f"truncated CRIU stats image: {len(data) - pos} stray bytes at {pos} "
                "where a 4-byte entry length should be"
            )
        (size,) = struct.unpack_from("<I", data, pos)
        pos += 4
        if pos + size > len(data):
            raise StatsError(
                f"truncated CRIU stats image: entry at byte {pos - 4} needs {size} bytes, "
                f"{len(data) - pos} left"
            )
        payloads.append(data[pos : pos + size])
        pos += size
    if not payloads:
        raise StatsError("CRIU stats image has no entry (truncated after the magic)")
    return payloads


def _section(data: bytes, number: int, label: str) -> bytes:
    """The serialized sub-message ``number`` of the first entry that has it."""
    others: set[int] = set()
    for payload in _entries(data):
        found: bytes | None = None
        for field_number, wire, value in _iter_fields(payload, "stats_entry"):
            if field_number == number:
                if wire != _LEN or not isinstance(value, bytes):
                    raise StatsError(f"stats_entry field {number} ({label}) is not a message")
                found = value
            elif field_number in (_STATS_DUMP, _STATS_RESTORE):
                others.add(field_number)
        if found is not None:
            return found
    hint = ""
    if others:
        other = "stats-dump" if _STATS_DUMP in others else "stats-restore"
        hint = f" (this looks like {other})"
    raise StatsError(f"CRIU stats image has no {label} statistics{hint}")


def parse_dump_stats(data: bytes) -> DumpStats:
    """Decode the contents of a ``stats-dump`` file."""
    body = _section(data, _STATS_DUMP, "dump")
    return DumpStats(**_decode_numbers(body, _DUMP_FIELDS, "dump_stats_entry"))


def parse_restore_stats(data: bytes) -> RestoreStats:
    """Decode the contents of a ``stats-restore`` file."""
    body = _section(data, _STATS_RESTORE, "restore")
    return RestoreStats(**_decode_numbers(body, _RESTORE_FIELDS, "restore_stats_entry"))


def read_dump_stats(images_dir: str | Path) -> DumpStats:
    """Read ``stats-dump`` from a CRIU images directory."""
    return parse_dump_stats((Path(images_dir) / "stats-dump").read_bytes())


def read_restore_stats(images_dir: str | Path) -> RestoreStats:
    """Read ``stats-restore`` from a CRIU images directory."""
    return parse_restore_stats((Path(images_dir) / "stats-restore").read_bytes())
