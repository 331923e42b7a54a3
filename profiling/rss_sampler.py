"""Usage: python profiling/rss_sampler.py [--interval SECONDS] CMD [ARGS...]

Samples the RSS and USS of CMD while it runs, writes them as CSV and, when matplotlib is
installed, as a PNG plot, in the results folder.
"""

import argparse
import csv
import os
import sys
import time

from metta_numba.bench.measure import sample_rss


def main() -> int:
    parser = argparse.ArgumentParser(description="Sample the memory of a command over time.")
    parser.add_argument("--interval", type=float, default=0.01, help="seconds between samples")
    parser.add_argument("cmd", nargs=argparse.REMAINDER, help="the command to run")
    args = parser.parse_args()
    if not args.cmd:
        parser.print_usage()
        return 2
    out = os.environ.get("METTA_PROFILE_OUT", "profile-results")
    os.makedirs(out, exist_ok=True)
    samples, code = sample_rss(args.cmd, args.interval)
    stem = os.path.join(out, time.strftime("%Y%m%d-%H%M%S") + "-rss")
    with open(stem + ".csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["seconds", "rss_bytes", "uss_bytes"])
        writer.writerows(samples)
    peak = max((s[1] for s in samples), default=0)
    print(f"{len(samples)} samples, peak RSS {peak / 2**20:.1f} MiB; wrote {stem}.csv")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return code
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot([s[0] for s in samples], [s[1] / 2**20 for s in samples], label="RSS")
    ax.plot([s[0] for s in samples], [s[2] / 2**20 for s in samples], label="USS")
    ax.set_xlabel("seconds")
    ax.set_ylabel("MiB")
    ax.set_title(" ".join(args.cmd)[:80])
    ax.legend()
    fig.tight_layout()
    fig.savefig(stem + ".png", dpi=100)
    print(f"wrote {stem}.png")
    return code


if __name__ == "__main__":
    sys.exit(main())
