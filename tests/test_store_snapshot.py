"""build_snapshot / snapshot_info / snapshot_verify / snapshot_compact, and `.paths` files."""

from __future__ import annotations

import os
import struct
import zlib
from collections import Counter

import pytest

from metta_numba.store import (
    PathsFormatError,
    PersistentKB,
    SnapshotError,
    build_snapshot,
    describe_sources,
    export_paths,
    import_paths,
    layout,
    paths_batch,
    snapshot_compact,
    snapshot_info,
    snapshot_verify,
)
from metta_numba.store.working import WorkingSet
from metta_numba.syntax import format_atom, parse_atom, parse_program
from metta_numba.syntax.bulk import encode_source

PROGRAM = """
(: Nat Type) (: zero Nat) (: succ (-> Nat Nat))
(= (add zero $x) $x)
(= (add (succ $x) $y) (succ (add $x $y)))
(likes Sam "green tea") (likes Sam "green tea")
(weight Bob 80.5) (age Tom -3) (flag True)
!(add zero zero)
(LLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLL is long)
"""


def program_atoms(text=PROGRAM):
    return Counter(format_atom(item.atom) for item in parse_program(text) if not item.is_query)


@pytest.mark.parametrize("merkleize", [False, True])
def test_build_snapshot_from_the_bulk_reader(tmp_path, merkleize):
    source = tmp_path / "prog.metta"
    source.write_text(PROGRAM)
    batch = encode_source(PROGRAM.encode())
    out = build_snapshot(
        batch, batch.terms, tmp_path / "kb", merkleize=merkleize, source_files=describe_sources([source])
    )
    assert out["generation"] == 1 and out["counts"]["atoms"] == sum(program_atoms().values())
    with PersistentKB.open(tmp_path / "kb", readonly=True) as kb:
        assert Counter(format_atom(a) for a in kb.atoms()) == program_atoms()
        assert kb.count(parse_atom('(likes Sam "green tea")')) == 2
        ((_, values),) = kb.query(parse_atom("(= (add (succ 1) 2) $r)"))
        assert format_atom(next(iter(values.values()))) == "(succ (add 1 2))"
    info = snapshot_info(tmp_path / "kb")
    assert info["generation"] == 1 and info["atoms"] == sum(program_atoms().values())
    metadata = info["metadata"]
    assert metadata["merkleized"] == merkleize
    assert metadata["source_files"][0]["size"] == len(PROGRAM.encode())
    assert metadata["counts"]["atoms"] == info["atoms"]
    assert set(metadata) >= {"created", "library_version", "build_seconds", "format_version"}
    assert snapshot_verify(tmp_path / "kb")["ok"]


def test_build_snapshot_refuses_to_overwrite_unless_asked(tmp_path):
    first = encode_source(b"(a) (b)")
    build_snapshot(first, first.terms, tmp_path / "kb")
    second = encode_source(b'(c "text")')
    with pytest.raises(SnapshotError, match="exists"):
        build_snapshot(second, second.terms, tmp_path / "kb")
    reader = PersistentKB.open(tmp_path / "kb", readonly=True)
    out = build_snapshot(second, second.terms, tmp_path / "kb", overwrite=True)
    assert out["generation"] == 2
    assert sorted(format_atom(a) for a in reader.atoms()) == ["(a)", "(b)"]  # keeps its generation
    reader.refresh()
    assert [format_atom(a) for a in reader.atoms()] == ['(c "text")']
    reader.close()
    with PersistentKB.open(tmp_path / "kb") as kb:  # the writer open collects generation 1
        assert kb.generation == 2
    assert not (tmp_path / "kb" / layout.act_name(1)).exists()


def test_compact_folds_the_log_and_drops_old_generations(tmp_path):
    with PersistentKB.create(tmp_path / "kb") as kb:
        for i in range(50):
            kb.add(parse_atom(f'(n {i} "s{i}")'))
        kb.checkpoint()
        for i in range(10):
            kb.remove(parse_atom(f'(n {i} "s{i}")'))
    out = snapshot_compact(tmp_path / "kb")
    assert out["previous_generation"] == 2 and out["generation"] == 3
    assert out["changes_folded"] == 10 and out["generations_kept_for_readers"] == []
    with PersistentKB.open(tmp_path / "kb", readonly=True) as kb:
        assert len(kb) == 40 and kb.pending_changes == 0
    assert sorted(os.listdir(tmp_path / "kb")) == sorted(["CURRENT", "LOCK", *layout.generation_files(3)])


def test_working_set_index_narrows_a_ground_head_query():
    from metta_numba.codec import TermStore, encode

    terms = TermStore()
    working = WorkingSet()
    for i in range(200):
        for j in range(3):
            working.apply(encode(parse_atom(f"(edge n_{i} n_{j})"), terms)[0], 1)
        working.apply(encode(parse_atom(f"(other {i})"), terms)[0], 1)
    working.apply(encode(parse_atom("($rel n_5 $y)"), terms)[0], 1)
    found = set(working.candidates(encode(parse_atom("(edge n_5 $y)"), terms)[0]))
    expected = {encode(parse_atom(t), terms)[0] for t in ["(edge n_5 n_0)", "(edge n_5 n_1)", "(edge n_5 n_2)"]}
    assert found == expected | {encode(parse_atom("($rel n_5 $y)"), terms)[0]}
    # A variable first argument: the argument index narrows to the edges ending in n_1.
    reverse = set(working.candidates(encode(parse_atom("(edge $x n_1)"), terms)[0]))
    ending_in_n_1 = {encode(parse_atom(f"(edge n_{i} n_1)"), terms)[0] for i in range(200)}
    assert reverse == ending_in_n_1 | {encode(parse_atom("($rel n_5 $y)"), terms)[0]}


# ---- .paths files --------------------------------------------------------------------------

# MORK's encoding of (foo $x $x) and (bar (baz) $y), written out by hand.
FOO = bytes([3, 0xC3]) + b"foo" + bytes([0xC0, 0x80])
BAR = bytes([3, 0xC3]) + b"bar" + bytes([1, 0xC3]) + b"baz" + bytes([0xC0])


def write_paths_file(path, records):
    raw = b"".join(struct.pack("<I", len(r)) + r for r in records)
    path.write_bytes(zlib.compress(raw, 7))


def read_paths_file(path):
    raw = zlib.decompress(path.read_bytes())
    out, position = [], 0
    while position < len(raw):
        (size,) = struct.unpack_from("<I", raw, position)
        out.append(raw[position + 4 : position + 4 + size])
        position += 4 + size
    return out


def test_import_paths_adds_mork_paths_and_skips_the_rest(tmp_path):
    not_mork = [
        bytes([2, 0xC1]) + b"n" + bytes([0x40]) + bytes(8),
        bytes([2, 0xC1]) + b"x",
        bytes([0xC2]) + b"\xff\xfe",
    ]
    write_paths_file(tmp_path / "in.paths", [FOO, BAR, FOO, *not_mork])
    with PersistentKB.create(tmp_path / "kb") as kb:
        assert import_paths(kb, tmp_path / "in.paths") == {"imported": 3, "skipped": 3}
        assert kb.count(parse_atom("(foo $a $a)")) == 2
        assert kb.count(parse_atom("(bar (baz) $q)")) == 1
        assert kb.count(parse_atom("(foo $a $b)")) == 0
    data, offsets, skipped = paths_batch(tmp_path / "in.paths")
    assert skipped == 3 and [data[offsets[i] : offsets[i + 1]].tobytes() for i in range(3)] == [FOO, BAR, FOO]


def test_export_paths_writes_distinct_mork_paths(tmp_path):
    with PersistentKB.create(tmp_path / "kb") as kb:
        kb.add(parse_atom("(foo $x $x)"))
        kb.checkpoint()
        kb.add(parse_atom("(foo $x $x)"))
        kb.add(parse_atom("(bar (baz) $y)"))
        kb.add(parse_atom("(num 42)"))
        kb.add(parse_atom('(text "s")'))
        out = export_paths(kb, tmp_path / "out.paths")
    assert out["written"] == 2 and out["skipped"] == 2
    assert sorted(read_paths_file(tmp_path / "out.paths")) == sorted([FOO, BAR])


def test_truncated_paths_file_is_an_error(tmp_path):
    write_paths_file(tmp_path / "in.paths", [FOO] * 100 + [BAR] * 100)
    data = (tmp_path / "in.paths").read_bytes()
    (tmp_path / "cut.paths").write_bytes(data[: len(data) // 2])
    with PersistentKB.create(tmp_path / "kb") as kb:
        with pytest.raises(PathsFormatError):
            import_paths(kb, tmp_path / "cut.paths")
        assert len(kb) == 0  # nothing from the damaged file went in
    (tmp_path / "junk.paths").write_bytes(b"not zlib at all")
    with pytest.raises(PathsFormatError):
        paths_batch(tmp_path / "junk.paths")
