# Shared by the profiling shell scripts: the results folder and a timestamped file stem.
OUT="${METTA_PROFILE_OUT:-profile-results}"
mkdir -p "$OUT"
STEM="$OUT/$(date +%Y%m%d-%H%M%S)-$(basename "${1:-run}")"
