"""Usage: python profiling/cold_cache.py PATH [PATH...]

Drops the files of a KB directory (or any files) from the page cache with
posix_fadvise(DONTNEED), so that the next open and query measure a cold start.
"""

import sys

from metta_numba.bench.measure import drop_from_page_cache


def main() -> int:
    if len(sys.argv) < 2 or sys.argv[1] in ("-h", "--help"):
        print(__doc__.strip())
        return 2
    count = drop_from_page_cache(sys.argv[1:])
    print(f"advised {count} files out of the page cache")
    return 0


if __name__ == "__main__":
    sys.exit(main())
