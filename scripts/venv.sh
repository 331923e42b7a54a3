# Shared by run.sh and test.sh: make sure .venv exists and holds this package with the requested
# extras. The install is skipped when pyproject.toml has not changed since the last one.
VENV="${VENV:-$PWD/.venv}"
ensure_venv() {
    local extras="$1"
    if [ ! -x "$VENV/bin/python" ]; then
        python3 -m venv "$VENV"
        "$VENV/bin/pip" install -q --upgrade pip > /dev/null 2>&1 || true
    fi
    local stamp="$VENV/.installed-$(echo "$extras" | tr ',' '-')"
    if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
        local spec="."
        [ -n "$extras" ] && spec=".[$extras]"
        echo "installing metta-numba${extras:+ with $extras} into $VENV (log: $VENV/install.log)" >&2
        if ! "$VENV/bin/pip" install -e "$spec" > "$VENV/install.log" 2>&1; then
            tail -30 "$VENV/install.log" >&2
            echo "pip install failed; the whole log is $VENV/install.log" >&2
            return 1
        fi
        touch "$stamp"
        # An editable install bundles no compiled kernels (setup.py): fill the cache now, once,
        # rather than at the first big run. NUMBA_CACHE_DIR is the caller's.
        echo "compiling the kernels into the cache (once after installing, about a minute)" >&2
        if ! "$VENV/bin/metta-numba" warmup >> "$VENV/install.log" 2>&1; then
            echo "metta-numba warmup failed (kernels compile at first use instead); see $VENV/install.log" >&2
        fi
    fi
}
