"""Pre-warming (store.prewarm): `snapshot warm` reads every section a query touches, and
`--prefetch` / `PersistentKB.open(prefetch=True)` reads the same ranges in the background;
neither changes an answer."""

from __future__ import annotations

import os
from types import SimpleNamespace

import pytest
from test_cli import cli

from metta_numba.store import layout
from metta_numba.store.actfile import ActFile
from metta_numba.store.kb import PersistentKB
from metta_numba.store.prewarm import query_ranges, warm_generation
from metta_numba.syntax import parse_atom

FACTS = [f"(edge n{i} n{(i * 7) % 50})" for i in range(400)] + [f"(= (f{i} $x) (g $x {i}))" for i in range(50)]


@pytest.fixture(scope="module")
def kb_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("warm") / "kb"
    with PersistentKB.create(path, sync="never") as kb, kb.batch():
        for text in FACTS:
            kb.add(parse_atom(text))
    with PersistentKB.open(path) as kb:
        kb.checkpoint()
    return path


def section_lengths(path) -> dict[str, int]:
    act = ActFile.open(path / layout.act_name(layout.read_current(path)))
    return {name: section.length for name, section in act.sections.items() if section.length}


def test_warm_reads_every_section_and_the_term_store(kb_path):
    with PersistentKB.open(kb_path, readonly=True) as kb:
        generation = kb.snapshot_generation()
        report = warm_generation(generation)
        ranges = query_ranges(generation)
    expected = section_lengths(kb_path)
    h5 = layout.h5_name(layout.read_current(kb_path))
    expected[h5] = os.path.getsize(kb_path / h5)
    assert {item["section"]: item["bytes"] for item in report["sections"]} == expected
    assert report["bytes"] == sum(expected.values())
    assert [offset for _, offset, _ in ranges] == sorted(offset for _, offset, _ in ranges)
    assert {"trie.children", "trie.child_rank_offset", "argindex.ranks", "argindex.key_start"} <= {
        name for name, _, _ in ranges
    }


def test_prefetch_covers_the_same_bytes_and_keeps_the_answers(kb_path):
    patterns = [parse_atom(text) for text in ("(edge $x n7)", "(edge n3 $y)", "(= (f4 1) $r)")]
    with PersistentKB.open(kb_path, readonly=True) as plain:
        expected = [sorted(str(atom) for atom, _ in plain.query(p)) for p in patterns]
        assert plain.prefetch is None
    with PersistentKB.open(kb_path, readonly=True, prefetch=True) as kb:
        assert kb.prefetch is not None
        assert [sorted(str(atom) for atom, _ in kb.query(p)) for p in patterns] == expected
        assert kb.prefetch.wait(30)
        assert kb.prefetch.error is None
        h5 = layout.h5_name(kb.generation)
        assert kb.prefetch.bytes == sum(section_lengths(kb_path).values()) + os.path.getsize(kb_path / h5)
    assert all(expected)


def test_a_writer_prefetches_each_new_generation(kb_path, tmp_path):
    import shutil

    path = tmp_path / "kb"
    shutil.copytree(kb_path, path)
    with PersistentKB.open(path, prefetch=True) as kb:
        first = kb.prefetch
        kb.add(parse_atom("(edge n1000 n1001)"))
        kb.checkpoint()
        assert kb.prefetch is not first
        assert kb.prefetch.wait(30) and kb.prefetch.error is None
        assert [str(atom) for atom, _ in kb.query(parse_atom("(edge n1000 $y)"))] == ["(edge n1000 n1001)"]


def test_the_warm_command_and_prefetch_options(kb_path):
    proc = cli("snapshot", "warm", str(kb_path))
    assert proc.returncode == 0, proc.stderr
    assert "trie.children" in proc.stdout and "page cache" in proc.stdout
    total = sum(section_lengths(kb_path).values())
    h5 = layout.h5_name(layout.read_current(kb_path))
    assert f"read {total + os.path.getsize(kb_path / h5):,} bytes" in proc.stdout
    plain = cli("query", str(kb_path), "(edge $x n7)")
    prefetched = cli("query", "--prefetch", str(kb_path), "(edge $x n7)")
    assert plain.returncode == prefetched.returncode == 0
    assert prefetched.stdout == plain.stdout and plain.stdout
    program = "!(match &self (edge n3 $y) $y)\n"
    ran = cli("run", "--prefetch", "--load-snapshot", str(kb_path), "-", stdin=program)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == "[n21]"


def _mapped_pages(array) -> int:
    """Pages of `array` mapped into this process (the present bits of /proc/self/pagemap)."""
    import numpy as np

    page = os.sysconf("SC_PAGE_SIZE")
    first = array.ctypes.data // page
    count = (array.ctypes.data + array.nbytes + page - 1) // page - first
    with open("/proc/self/pagemap", "rb") as f:
        f.seek(first * 8)
        entries = np.frombuffer(f.read(count * 8), dtype=np.uint64)
    return int(((entries >> np.uint64(63)) & np.uint64(1)).sum())


def _assert_one_read_maps_few_pages(data) -> None:
    """One read near the end of `data` (where the kernel's readahead had grown its blocks: 256
    pages a fault before the fixes) maps about a page; fault-around maps up to 16 pages (64 KiB)
    by default."""
    before = _mapped_pages(data)
    index = len(data) * 9 // 10
    assert int(data[index]) == index
    assert _mapped_pages(data) - before <= 32


def test_a_warmed_file_is_mapped_page_by_page_not_in_large_blocks(tmp_path):
    # After an open and a warm, a fault must map about the page it needs: a kernel that keeps
    # file pages in large folios maps a whole folio (up to 2 MB) per fault when the first read
    # of the file was a plain one, which made the RSS of query processes grow with the KB.
    import numpy as np

    from metta_numba.bench.measure import drop_from_page_cache
    from metta_numba.store.actfile import write_act

    if not os.path.exists("/proc/self/pagemap"):
        pytest.skip("no /proc/self/pagemap to see which pages are mapped")
    path = tmp_path / "big.act"
    write_act(path, {"data": np.arange(4 << 20, dtype=np.int64)})  # 32 MiB
    (tmp_path / "terms.h5").write_bytes(b"t" * 4096)
    drop_from_page_cache([path])
    act = ActFile.open(path)
    generation = SimpleNamespace(number=1, act=act, terms=SimpleNamespace(path=tmp_path / "terms.h5"))
    assert warm_generation(generation)["bytes"] == act.sections["data"].length + 4096
    _assert_one_read_maps_few_pages(act.arrays["data"])


def test_a_written_file_is_cached_again_page_by_page(tmp_path):
    # Pages a writer leaves in the page cache are in large blocks too: publishing a
    # generation has them read again one by one (store.actfile.cache_page_by_page).
    import numpy as np

    from metta_numba.store.actfile import cache_page_by_page, write_act

    if not os.path.exists("/proc/self/pagemap"):
        pytest.skip("no /proc/self/pagemap to see which pages are mapped")
    path = tmp_path / "written.act"
    write_act(path, {"data": np.arange(4 << 20, dtype=np.int64)})  # 32 MiB
    with open(path, "rb") as f:
        os.fsync(f.fileno())  # as publishing a generation does first
    cache_page_by_page(path)
    _assert_one_read_maps_few_pages(ActFile.open(path).arrays["data"])
