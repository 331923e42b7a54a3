"""Shared test setup: the Numba cache location and the hypothesis profiles.

Profiles: `default` (local runs), `ci` (fewer examples) and `thorough` (many more); choose
one with HYPOTHESIS_PROFILE=name. Atom and program strategies live in tests/strategies.py.
"""

from __future__ import annotations

import os
from pathlib import Path

# Before anything imports numba: compiled kernels are cached in the project, not in site-packages.
os.environ.setdefault("NUMBA_CACHE_DIR", str(Path(__file__).resolve().parent.parent / ".numba_cache"))
# Kernels missing from the cache compile, as they always did, rather than run as Python twins
# while a background warmup starts (metta_numba.cold_start): each test sees compiled kernels.
# test_cold_start.py chooses the other modes itself.
os.environ.setdefault("METTA_NUMBA_COLD", "compile")

from hypothesis import HealthCheck, settings  # noqa: E402

_COMMON = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large]}
settings.register_profile("default", max_examples=100, **_COMMON)
settings.register_profile("ci", max_examples=40, **_COMMON)
settings.register_profile("thorough", max_examples=2000, **_COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
