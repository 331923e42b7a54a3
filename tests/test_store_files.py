"""File-format layers of the store: .act sections, the .h5 term store, the delta log, CURRENT
and the locks. Each is checked for a round trip and for the typed error on damage."""

from __future__ import annotations

import mmap
import os
import struct

import crc32c
import numpy as np
import pytest
import xxhash
from hypothesis import given
from hypothesis import strategies as st

from metta_numba.store import actfile, crc, layout, wal
from metta_numba.store.actfile import ActFile, write_act
from metta_numba.store.errors import (
    CorruptSnapshotError,
    LockedError,
    StoreWarning,
    UnsupportedFormatError,
    WalCorruptError,
)
from metta_numba.store.termfile import GenerationTerms, TermArrays, read_h5_metadata, write_terms_h5


def _flip(path, offset, mask=0x01):
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)[0]
        f.seek(offset)
        f.write(bytes((byte ^ mask,)))


SAMPLE = {
    "labels": np.frombuffer(b"hello world", dtype=np.uint8),
    "child_start": np.array([0, 2, 5, 9], dtype=np.int64),
    "value": np.array([1, 0, 3], dtype=np.uint64),
    "grid": np.arange(12, dtype=np.int32).reshape(3, 4),
    "flags": np.array([True, False]),
    "empty": np.zeros(0, dtype=np.int64),
    "weights": np.array([0.5, -2.25], dtype=np.float64),
}


def _is_file_mapped(array) -> bool:
    """True when the array is a view into a memory map of the file (not a copy in memory)."""
    while isinstance(array, np.ndarray):
        array = array.base
    if isinstance(array, memoryview):
        array = array.obj
    return isinstance(array, mmap.mmap)


# ---- .act ----------------------------------------------------------------------------------


def test_act_round_trip_gives_aligned_read_only_memmap_views(tmp_path):
    path = tmp_path / "a.act"
    size = write_act(path, SAMPLE)
    assert size == os.path.getsize(path)
    act = ActFile.open(path)
    assert set(act.arrays) == set(SAMPLE)
    for name, expected in SAMPLE.items():
        got = act.arrays[name]
        assert got.dtype == expected.dtype and got.shape == expected.shape
        np.testing.assert_array_equal(got, expected)
        assert act.sections[name].offset % 64 == 0
    assert _is_file_mapped(act.arrays["child_start"])
    with pytest.raises(ValueError):
        act.arrays["value"][0] = 7
    act.verify()


def test_act_big_endian_input_is_stored_little_endian(tmp_path):
    path = tmp_path / "be.act"
    write_act(path, {"x": np.array([1, 2, 258], dtype=">u4")})
    got = ActFile.open(path).arrays["x"]
    assert got.dtype.str == "<u4"
    assert got.tolist() == [1, 2, 258]


def test_act_rejects_object_dtype(tmp_path):
    with pytest.raises(TypeError):
        write_act(tmp_path / "o.act", {"x": np.array(["a"], dtype=object)})


def test_act_data_damage_is_found_by_verify_and_named(tmp_path):
    path = tmp_path / "a.act"
    write_act(path, SAMPLE)
    section = ActFile.open(path).sections["child_start"]
    _flip(path, section.offset + 3)
    act = ActFile.open(path)  # opening reads no data, so it succeeds
    with pytest.raises(CorruptSnapshotError, match="child_start"):
        act.verify()


@pytest.mark.parametrize("offset", [0, 9, 13, 17, 25, 33, 41, 57, 64 + 10, 64 + 50, 64 + 100])
def test_act_header_or_table_damage_fails_at_open(tmp_path, offset):
    path = tmp_path / "a.act"
    write_act(path, SAMPLE)
    _flip(path, offset)
    with pytest.raises(CorruptSnapshotError):
        ActFile.open(path)


@pytest.mark.parametrize("cut", [0, 10, 63, 64, 200, -1])
def test_act_truncation_fails_at_open(tmp_path, cut):
    path = tmp_path / "a.act"
    size = write_act(path, SAMPLE)
    os.truncate(path, cut if cut >= 0 else size - 1)
    with pytest.raises(CorruptSnapshotError):
        ActFile.open(path)


def _rewrite_header(path, **fields):
    """Re-stamp header fields with valid checksums, as a future writer would."""
    with open(path, "r+b") as f:
        head = bytearray(f.read(actfile.HEADER_SIZE))
        values = list(actfile._HEADER.unpack_from(head))
        names = ["magic", "major", "minor", "bom", "count", "entry", "size", "table_offset", "table_hash"]
        for key, value in fields.items():
            values[names.index(key)] = value
        packed = actfile._HEADER.pack(*values)
        f.seek(0)
        f.write(packed + struct.pack("<Q", xxhash.xxh64_intdigest(packed)))


def test_act_newer_major_version_is_unsupported(tmp_path):
    path = tmp_path / "a.act"
    write_act(path, SAMPLE)
    _rewrite_header(path, major=actfile.FORMAT_MAJOR + 1)
    with pytest.raises(UnsupportedFormatError):
        ActFile.open(path)


def test_act_unknown_dtype_or_out_of_file_section_is_corrupt(tmp_path):
    path = tmp_path / "a.act"
    write_act(path, {"x": np.arange(4, dtype=np.int64)})
    with open(path, "r+b") as f:
        f.seek(actfile.HEADER_SIZE)
        entry = bytearray(f.read(actfile.ENTRY_SIZE))
    for patch in ({"dtype": b"<c16"}, {"offset": 1 << 40}):
        bad = bytearray(entry)
        fields = list(actfile._ENTRY.unpack_from(bad))
        if "dtype" in patch:
            fields[1] = patch["dtype"]
        else:
            fields[8] = patch["offset"]
        table = actfile._ENTRY.pack(*fields)
        with open(path, "r+b") as f:
            f.seek(actfile.HEADER_SIZE)
            f.write(table)
        _rewrite_header(path, table_hash=xxhash.xxh64_intdigest(table))
        with pytest.raises(CorruptSnapshotError):
            ActFile.open(path)


# ---- .h5 term store ------------------------------------------------------------------------

TEXTS = ["hello", "x y", "", "ünïcödé ✓", "a" * 300, "h t y"]


def test_term_store_round_trip_and_lookup(tmp_path):
    path = tmp_path / "t.h5"
    lay = write_terms_h5(path, TermArrays.from_texts(TEXTS), {"generation": 3, "source_files": [{"path": "k"}]})
    terms = GenerationTerms(path, lay)
    assert len(terms) == len(TEXTS)
    assert [terms.text(i) for i in range(len(TEXTS))] == TEXTS
    assert [terms.find(t) for t in TEXTS] == list(range(len(TEXTS)))
    assert terms.find("absent") is None
    with pytest.raises(KeyError):
        terms.text(len(TEXTS))
    for name, (offset, _, _, _) in lay["datasets"].items():
        assert offset % 64 == 0, name
    terms.verify()
    meta = read_h5_metadata(path)
    assert meta["generation"] == 3 and meta["source_files"] == [{"path": "k"}]


def test_term_store_extension_keeps_old_ids(tmp_path):
    first = tmp_path / "1.h5"
    old = GenerationTerms(first, write_terms_h5(first, TermArrays.from_texts(TEXTS), {}))
    added = ["new", "another ✓"]
    second = tmp_path / "2.h5"
    new = GenerationTerms(second, write_terms_h5(second, old.arrays.extended(added), {}))
    everything = TEXTS + added
    assert [new.text(i) for i in range(len(everything))] == everything
    assert [new.find(t) for t in everything] == list(range(len(everything)))
    new.verify()


def test_empty_term_store(tmp_path):
    path = tmp_path / "e.h5"
    terms = GenerationTerms(path, write_terms_h5(path, TermArrays.from_texts([]), {}))
    assert len(terms) == 0 and terms.find("x") is None
    terms.verify()


def test_term_store_verify_finds_an_unsorted_hash_index(tmp_path):
    # Written as is, so every checksum matches: only the order check can tell.
    good = TermArrays.from_texts(TEXTS)
    swapped = [0, 1]
    order = np.arange(len(TEXTS))
    order[swapped] = order[swapped[::-1]]
    assert good.hashes[0] != good.hashes[1]
    unsorted = TermArrays(good.blob, good.offsets, good.hashes[order], good.hash_ids[order])
    path = tmp_path / "u.h5"
    terms = GenerationTerms(path, write_terms_h5(path, unsorted, {}))
    with pytest.raises(CorruptSnapshotError, match="not sorted"):
        terms.verify()
    sorted_path = tmp_path / "s.h5"
    GenerationTerms(sorted_path, write_terms_h5(sorted_path, good, {})).verify()


def test_term_store_metadata_damage_fails_at_open_and_data_damage_at_verify(tmp_path):
    path = tmp_path / "t.h5"
    lay = write_terms_h5(path, TermArrays.from_texts(TEXTS), {"generation": 1})
    _flip(path, 10)  # inside the HDF5 superblock
    with pytest.raises(CorruptSnapshotError):
        GenerationTerms(path, lay)
    _flip(path, 10)
    blob_offset = lay["datasets"]["terms/blob"][0]
    _flip(path, blob_offset + 1)
    terms = GenerationTerms(path, lay)
    with pytest.raises(CorruptSnapshotError, match="terms/blob"):
        terms.verify()
    os.truncate(path, lay["size"] - 1)
    with pytest.raises(CorruptSnapshotError):
        GenerationTerms(path, lay)


def test_term_offsets_pointing_outside_the_blob_raise_not_crash(tmp_path):
    path = tmp_path / "t.h5"
    lay = write_terms_h5(path, TermArrays.from_texts(TEXTS), {})
    offsets_at = lay["datasets"]["terms/offsets"][0]
    with open(path, "r+b") as f:
        f.seek(offsets_at + 8 * 2)
        f.write(struct.pack("<q", 1 << 50))
    terms = GenerationTerms(path, lay)
    with pytest.raises(CorruptSnapshotError):
        terms.text(1)
    with pytest.raises(CorruptSnapshotError):
        terms.verify()


# ---- delta log -----------------------------------------------------------------------------

RECORDS = [
    wal.WalRecord(wal.OP_ADD, b"\x02\xc3foo\xc0", ("x",), ()),
    wal.WalRecord(wal.OP_ADD, b"\x02\xc3foo\x42" + bytes(8), (), ((7, "a string ✓"),)),
    wal.WalRecord(wal.OP_REMOVE, b"\x02\xc3foo\xc0", (), ()),
    wal.WalRecord(wal.OP_ADD, b"\xc1z", (), ()),
]


def _write_log(path, generation=5, records=RECORDS):
    wal.create_wal(path, generation)
    writer = wal.WalWriter(path, wal.HEADER_SIZE)
    ends = []
    for record in records:
        writer.append(wal.encode_record(record))
        ends.append(writer.position)
    writer.sync()
    writer.close()
    return ends


def test_log_round_trip(tmp_path):
    path = tmp_path / "w.log"
    ends = _write_log(path)
    scan = wal.scan_wal(path, 5)
    assert scan.records == RECORDS and not scan.torn and scan.end == ends[-1]
    tail = wal.scan_wal(path, 5, start=ends[1])
    assert tail.records == RECORDS[2:] and tail.end == ends[-1]


def test_log_every_cut_point_is_a_torn_tail_keeping_the_whole_records_before_it(tmp_path):
    path = tmp_path / "w.log"
    ends = _write_log(path)
    data = path.read_bytes()
    starts = [wal.HEADER_SIZE] + ends[:-1]
    for cut in range(wal.HEADER_SIZE, len(data)):
        path.write_bytes(data[:cut])
        scan = wal.scan_wal(path, 5)
        complete = sum(1 for end in ends if end <= cut)
        assert scan.records == RECORDS[:complete], cut
        assert scan.torn == (cut not in starts)
        assert scan.end == starts[complete] if complete < len(ends) else ends[-1]


def test_writer_truncates_a_torn_tail_and_appends_after_it(tmp_path):
    path = tmp_path / "wal-000005.log"
    ends = _write_log(path)
    os.truncate(path, ends[-1] - 3)
    scan = wal.scan_wal(path, 5)
    assert scan.torn and len(scan.records) == 3
    cut_bytes = path.read_bytes()[scan.end :]
    with pytest.warns(StoreWarning, match=f"torn tail of {len(cut_bytes)} bytes at offset {scan.end}"):
        writer = wal.WalWriter(path, scan.end)
    assert os.path.getsize(path) == ends[-2]
    # The cut bytes are kept next to the log, not dropped without a trace.
    assert wal.torn_tail_copies(tmp_path) == [f"wal-000005.log.torn-{scan.end}"]
    assert (tmp_path / f"wal-000005.log.torn-{scan.end}").read_bytes() == cut_bytes
    writer.append(wal.encode_record(RECORDS[0]))
    writer.close()
    assert wal.scan_wal(path, 5).records == RECORDS[:3] + [RECORDS[0]]
    # A second cut at the same offset keeps its own copy.
    with open(path, "ab") as f:
        f.write(b"\x07\x00")
    with pytest.warns(StoreWarning):
        wal.WalWriter(path, scan.end + len(wal.encode_record(RECORDS[0]))).close()
    assert len(wal.torn_tail_copies(tmp_path)) == 2


def test_log_zero_filled_tail_is_torn(tmp_path):
    path = tmp_path / "w.log"
    _write_log(path)
    with open(path, "ab") as f:
        f.write(bytes(100))
    scan = wal.scan_wal(path, 5)
    assert scan.records == RECORDS and scan.torn


@pytest.mark.parametrize("record_index", [0, 1, 2, 3])
@pytest.mark.parametrize("where", ["head", "body", "crc"])
def test_log_damage_in_a_complete_record_is_corruption(tmp_path, record_index, where):
    path = tmp_path / "w.log"
    ends = _write_log(path)
    start = ([wal.HEADER_SIZE] + ends)[record_index]
    offset = {"head": start + 1, "body": start + 9, "crc": ends[record_index] - 1}[where]
    _flip(path, offset)
    with pytest.raises(WalCorruptError) as info:
        wal.scan_wal(path, 5)
    assert info.value.offset == start and info.value.valid_records == record_index


def test_log_header_checks(tmp_path):
    path = tmp_path / "w.log"
    _write_log(path)
    with pytest.raises(WalCorruptError, match="generation"):
        wal.scan_wal(path, 6)
    _flip(path, 2)
    with pytest.raises(WalCorruptError):
        wal.scan_wal(path, 5)
    os.truncate(path, 10)
    with pytest.raises(WalCorruptError):
        wal.scan_wal(path, 5)
    with pytest.raises(WalCorruptError, match="missing"):
        wal.scan_wal(tmp_path / "none.log", 5)


# ---- CURRENT and locks ---------------------------------------------------------------------


def test_current_round_trip_and_damage(tmp_path):
    layout.write_current(tmp_path, 42)
    assert layout.read_current(tmp_path) == 42
    raw = (tmp_path / "CURRENT").read_bytes()
    for i in range(len(raw)):
        damaged = bytearray(raw)
        damaged[i] ^= 0x04
        (tmp_path / "CURRENT").write_bytes(bytes(damaged))
        with pytest.raises(CorruptSnapshotError):
            layout.read_current(tmp_path)
    (tmp_path / "CURRENT").write_bytes(raw[:-3])
    with pytest.raises(CorruptSnapshotError):
        layout.read_current(tmp_path)
    body = b"MNKB 9 000001"
    (tmp_path / "CURRENT").write_bytes(body + b" %08x\n" % crc32c.crc32c(body))
    with pytest.raises(UnsupportedFormatError):
        layout.read_current(tmp_path)


def test_one_writer_lock(tmp_path):
    first = layout.WriterLock(tmp_path)
    with pytest.raises(LockedError):
        layout.WriterLock(tmp_path)
    first.release()
    layout.WriterLock(tmp_path).release()


def test_reader_lock_keeps_a_generation_from_deletion(tmp_path):
    for name in layout.generation_files(3):
        (tmp_path / name).write_bytes(b"x")
    reader = layout.ReaderLock.acquire(tmp_path, 3)
    assert reader is not None
    assert not layout.try_delete_generation(tmp_path, 3)
    assert all((tmp_path / name).exists() for name in layout.generation_files(3))
    reader.release()
    assert layout.try_delete_generation(tmp_path, 3)
    assert not any((tmp_path / name).exists() for name in layout.generation_files(3))
    assert layout.ReaderLock.acquire(tmp_path, 3) is None


@given(st.binary(max_size=200))
def test_small_crc32c_agrees_with_the_library(data):
    assert crc.crc32c_small(data) == crc32c.crc32c(data) == crc.crc32c(data)
