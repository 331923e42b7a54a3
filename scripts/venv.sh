# Shared by run.sh and test.sh: make sure .venv exists and holds this package with the requested
# extras. The install is skipped when pyproject.toml has not changed since the last one.
VENV="${VENV:-$PWD/.venv}"
ensure_venv() {
    local extras="$1"
    if [ ! -x "$VENV/bin/python" ]; then
        python3 -m venv "$VENV"
        "$VENV/bin/pip" install -q --upgrade pip >&2
    fi
    local stamp="$VENV/.installed-$(echo "$extras" | tr ',' '-')"
    if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
        local spec="."
        [ -n "$extras" ] && spec=".[$extras]"
        "$VENV/bin/pip" install -q -e "$spec" >&2
        touch "$stamp"
    fi
}
