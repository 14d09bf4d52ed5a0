#!/usr/bin/env bash
# Build the sidecar venv that runs the BigQuery emulator for the emulator tests.
#
# Creates .venv-bq/ at the repository root with Python 3.13 (local-bigquery needs
# >= 3.13), installs the pinned closure in scripts/requirements-bq.txt, and installs
# the DuckDB extension files of scripts/requirements-bq-extensions.txt into a DuckDB
# extension directory under .venv-bq/home, so the emulator never downloads one.
# tests/emulators/bigquery_server.py starts the emulator with HOME=.venv-bq/home.
#
# Idempotent: a stamp file records a hash of every pin; when it matches, the script
# exits at once, otherwise it rebuilds .venv-bq/ from scratch.
#
# Environment:
#   DROPLOAD_BQ_PYTHON  a Python 3.13 interpreter to use instead of the search below
#   DROPLOAD_BQ_VENV    where to build the venv (default: <repo>/.venv-bq)
set -euo pipefail

readonly STAMP_FORMAT=1  # bump when this script changes what it builds
readonly PYTHON_SERIES=3.13

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${DROPLOAD_BQ_VENV:-$repo/.venv-bq}"
requirements="$repo/scripts/requirements-bq.txt"
extension_requirements="$repo/scripts/requirements-bq-extensions.txt"
stamp="$venv/.setup-stamp"
log="$venv/setup.log"

die() {
    echo "setup-emulators: $*" >&2
    exit 1
}

# Prints a command that runs Python $PYTHON_SERIES, or nothing. pyenv puts a
# python3.13 shim on PATH that exists but fails unless 3.13 is selected, so every
# candidate is run, not just looked up.
find_python() {
    local candidate
    if [[ -n "${DROPLOAD_BQ_PYTHON:-}" ]]; then
        candidate="$DROPLOAD_BQ_PYTHON"
        is_python_series "$candidate" || die "DROPLOAD_BQ_PYTHON=$candidate is not Python $PYTHON_SERIES"
        echo "$candidate"
        return
    fi
    if is_python_series "python$PYTHON_SERIES"; then
        echo "python$PYTHON_SERIES"
    elif PYENV_VERSION=3.13.0 is_python_series python3; then
        echo "env PYENV_VERSION=3.13.0 python3"
    fi
}

is_python_series() {
    # Word splitting of "$1" is wanted: it may be "env VAR=value python3".
    # shellcheck disable=SC2086
    $1 -c "import sys; sys.exit(sys.version_info[:2] != (3, 13))" >/dev/null 2>&1
}

# A hash of everything that decides what ends up in the venv.
compute_stamp() {
    {
        echo "format=$STAMP_FORMAT python=$PYTHON_SERIES"
        grep -v '^\s*#' "$requirements"
        grep -v '^\s*#' "$extension_requirements"
    } | sha256sum | cut -d' ' -f1
}

# Runs a command with its output going to the log; shows the log's tail on failure.
logged() {
    if ! "$@" >>"$log" 2>&1; then
        echo "setup-emulators: failed: $*" >&2
        tail -n 30 "$log" >&2
        exit 1
    fi
}

build_venv() {
    local python="$1" started=$SECONDS wheels
    rm -rf "$venv"
    # shellcheck disable=SC2086
    $python -m venv "$venv" || die "could not create $venv with: $python"
    : >"$log"
    echo "setup-emulators: installing local-bigquery and its pinned dependencies" >&2
    logged "$venv/bin/python" -m pip install --no-deps --only-binary=:all: \
        --no-input -r "$requirements"

    echo "setup-emulators: installing DuckDB extensions into $venv/home" >&2
    # The extension wheels only carry the files; they are unpacked here and removed.
    wheels="$venv/extension-wheels"
    logged "$venv/bin/python" -m pip install --no-deps --only-binary=:all: \
        --no-input --target "$wheels" -r "$extension_requirements"
    mkdir -p "$venv/home"
    HOME="$venv/home" logged "$venv/bin/python" - "$wheels" <<'PY'
import pathlib
import sys

import duckdb

folder = pathlib.Path(sys.argv[1])
version = duckdb.__version__
files = sorted(folder.glob(f"duckdb_extension_*/extensions/v{version}/*.duckdb_extension"))
if not files:
    sys.exit(f"no extension files for DuckDB v{version} in {folder}")
con = duckdb.connect()
for path in files:
    con.execute(f"INSTALL '{path}'")
    print("installed", path.name)
PY
    rm -rf "$wheels"

    echo "setup-emulators: checking that DuckDB loads them without a download" >&2
    HOME="$venv/home" logged "$venv/bin/python" - "$extension_requirements" <<'PY'
import pathlib
import re
import sys

import duckdb

text = pathlib.Path(sys.argv[1]).read_text()
names = re.findall(r"^duckdb-extension-([a-z_]+)==", text, flags=re.MULTILINE)
# A repository that does not exist: nothing may come from the network here.
nowhere = f"{sys.prefix}/no-extension-repository"
con = duckdb.connect(config={
    "TimeZone": "UTC",
    "autoinstall_known_extensions": False,
    "autoinstall_extension_repository": nowhere,
    "custom_extension_repository": nowhere,
})
for name in names:
    con.execute(f"LOAD {name}")
loaded = {row[0] for row in con.execute(
    "SELECT extension_name FROM duckdb_extensions() WHERE loaded").fetchall()}
missing = set(names) - loaded
if missing:
    sys.exit(f"extensions not loaded: {sorted(missing)}")
print("loaded", sorted(names))
PY
    "$venv/bin/local-bigquery" --help >/dev/null 2>>"$log" ||
        die "local-bigquery does not start; see $log"
    echo "setup-emulators: built $venv in $((SECONDS - started)) s ($(du -sh "$venv" | cut -f1))" >&2
}

# True when the venv was built from these pins and nothing has been removed since
# (the same checks as tests/emulators/bigquery_server.py makes before starting).
is_complete() {
    local want="$1" name files
    [[ -f "$stamp" && "$(cat "$stamp")" == "$want" && -x "$venv/bin/python" ]] || return 1
    while read -r name; do
        files=("$venv"/home/.duckdb/extensions/*/*/"$name".duckdb_extension)
        [[ -f "${files[0]}" ]] || return 1
    done < <(sed -n 's/^duckdb-extension-\([a-z_]*\)==.*/\1/p' "$extension_requirements")
}

main() {
    local want python
    [[ -f "$requirements" && -f "$extension_requirements" ]] ||
        die "missing $requirements or $extension_requirements"
    want="$(compute_stamp)"
    if is_complete "$want"; then
        echo "setup-emulators: $venv is up to date" >&2
        return
    fi
    python="$(find_python)"
    [[ -n "$python" ]] || die "Python $PYTHON_SERIES not found: tried python$PYTHON_SERIES \
and 'PYENV_VERSION=3.13.0 python3'. Install Python $PYTHON_SERIES (for example \
'pyenv install 3.13.0') or set DROPLOAD_BQ_PYTHON to one."
    build_venv "$python"
    echo "$want" >"$stamp"
}

# Serialise concurrent runs (two `make test` at once) on a lock of this script.
if command -v flock >/dev/null; then
    exec 9<"${BASH_SOURCE[0]}"
    flock 9
fi
main "$@"
