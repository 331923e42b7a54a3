"""Usage: python profiling/pagefaults.py CMD [ARGS...]

Runs CMD and records its minor and major page faults, peak RSS, wall and CPU time (getrusage),
as JSON in the results folder. Run profiling/cold_cache.py first for a cold-cache figure.
"""

import json
import os
import sys
import time

from metta_numba.bench.measure import run_with_rusage


def main() -> int:
    if len(sys.argv) < 2 or sys.argv[1] in ("-h", "--help"):
        print(__doc__.strip())
        return 2
    out = os.environ.get("METTA_PROFILE_OUT", "profile-results")
    os.makedirs(out, exist_ok=True)
    result = run_with_rusage(sys.argv[1:])
    target = os.path.join(out, time.strftime("%Y%m%d-%H%M%S") + "-pagefaults.json")
    with open(target, "w") as f:
        json.dump({k: v for k, v in result.items() if k not in ("stdout", "stderr")}, f, indent=2)
    for key in ("wall_s", "user_s", "sys_s", "minor_faults", "major_faults", "peak_rss_bytes"):
        print(f"{key:>16}: {result[key]}")
    print(f"wrote {target}")
    return result["returncode"]


if __name__ == "__main__":
    sys.exit(main())
