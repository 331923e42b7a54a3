"""The hyperon side of a benchmark run. It runs in its own process, under whichever Python has
hyperon installed, and imports nothing from metta_numba, so a crash or a missing package there
shows up as a failed peer instead of taking the benchmark down.

Input (JSON on stdin): {"kb_file": path or null, "queries": [text, ...], "repeat": int,
"programs": {name: text}}. Output (JSON on stdout): load time, per-query times and results,
per-program times, each as a list of samples in milliseconds, and the process's peak RSS.
"""

import json
import resource
import sys
import time


def _ms(start: float) -> float:
    return (time.perf_counter() - start) * 1e3


def _peak_rss_bytes() -> int:
    # VmHWM, not ru_maxrss: the latter starts from the RSS of the process that started this one.
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def main() -> None:
    spec = json.load(sys.stdin)
    import hyperon

    out = {"version": getattr(hyperon, "__version__", "unknown"), "queries": {}, "programs": {}}
    metta = None
    if spec.get("kb_file"):
        with open(spec["kb_file"]) as f:
            text = f.read()
        start = time.perf_counter()
        metta = hyperon.MeTTa()
        metta.run(text)
        out["load_ms"] = _ms(start)
        out["rss_after_load_bytes"] = _peak_rss_bytes()
    for query in spec.get("queries", []):
        samples, results = [], None
        for _ in range(spec.get("repeat", 3)):
            start = time.perf_counter()
            results = metta.run(query)
            samples.append(_ms(start))
        out["queries"][query] = {"ms": samples, "results": [[str(a) for a in r] for r in results]}
    for name, program in spec.get("programs", {}).items():
        samples, results = [], None
        for _ in range(spec.get("program_repeat", spec.get("repeat", 3))):
            fresh = hyperon.MeTTa()
            start = time.perf_counter()
            results = fresh.run(program)
            samples.append(_ms(start))
        out["programs"][name] = {"ms": samples, "results": [[str(a) for a in r] for r in results]}
    out["peak_rss_bytes"] = _peak_rss_bytes()
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
