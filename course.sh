#!/usr/bin/env bash
# The course's one entry point.
#
#   ./course.sh open    set up what the lessons need (venv with requirements-learner.txt, package, data) and
#                       open the course in JupyterLab
#   ./course.sh instructor  the same JupyterLab on the whole repository, with nbgrader's instructor UI
#   ./course.sh test    set everything up and run the whole test suite (--fast: the unit tier only, tests/unit)
#   ./course.sh setup   only set up, everything (requirements.txt; idempotent: re-running skips what is done)
#   ./course.sh release regenerate notebooks/ from solutions/ (--check: only compare, --gradebook: also fill gradebook.db)
#   ./course.sh bench   re-run the benchmarks in bench/ and regenerate BENCHMARKS.md (arguments go to python -m bench)
#
# Environment: PYTHON (interpreter for the venv, default python3), VENV (default ./.venv),
# COURSE_DATA_DIR (default ./data), JUPYTER_ARGS (extra arguments for `jupyter lab`), TORCH_INDEX_URL (an index
# to take torch and torchvision from, e.g. https://download.pytorch.org/whl/cpu for the CPU-only wheels).
# `open` hides nbgrader's instructor UI (its JupyterLab extension and its server extensions) for that
# server only, through the config directory learner_config writes; `instructor` shows it.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$REPO"
PYTHON="${PYTHON:-python3}"
VENV="${VENV:-$REPO/.venv}"
export COURSE_DATA_DIR="${COURSE_DATA_DIR:-$REPO/data}"
DEBIAN_DATA=/usr/share/datasets/fashion-mnist

log() { printf '\033[1m[course]\033[0m %s\n' "$*"; }

install_apt_data() {
    # FashionMNIST for offline use, from Debian's package dataset-fashion-mnist (optional online).
    if [ -f "$DEBIAN_DATA/train-images-idx3-ubyte.gz" ]; then return 0; fi
    if ! command -v apt-get >/dev/null 2>&1; then
        log "no apt-get here: FashionMNIST will be downloaded by torchvision on first use."
        return 0
    fi
    local SUDO=""
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
            log "not root: skipping 'apt-get install dataset-fashion-mnist'; torchvision will download the data instead."
            return 0
        fi
    fi
    log "installing Debian's dataset-fashion-mnist (offline FashionMNIST)"
    $SUDO apt-get update -qq || log "apt-get update failed; trying the install anyway"
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq dataset-fashion-mnist >/dev/null \
        || log "could not install dataset-fashion-mnist; torchvision will download the data instead."
}

install_sandbox() {
    # Debian's bubblewrap: the grading command (python -m course_utils.autograde) runs every submission in
    # it and refuses untrusted grading without it; its end-to-end tests need it. setpriv is in util-linux.
    if command -v bwrap >/dev/null 2>&1; then return 0; fi
    if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        log "bubblewrap is missing and cannot be installed here (root and apt-get needed): the grading tests will be skipped."
        return 0
    fi
    log "installing Debian's bubblewrap (the grader's sandbox)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap >/dev/null \
        || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap >/dev/null; } \
        || log "could not install bubblewrap; the grading tests will be skipped (they fail in CI)."
}

install_browser() {
    # Headless Chromium for the browser tests (tests/e2e/test_browser.py drives it with Playwright; nothing
    # is downloaded by Playwright itself). Only `./course.sh test` needs it.
    if command -v chromium >/dev/null 2>&1; then return 0; fi
    local SUDO=""
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
            log "not root: skipping 'apt-get install chromium'; the browser tests will be skipped."
            return 0
        fi
    fi
    command -v apt-get >/dev/null 2>&1 || { log "no apt-get: the browser tests will be skipped."; return 0; }
    log "installing Debian's chromium (for the browser tests; about a minute)"
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null \
        || { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null; } \
        || log "could not install chromium; the browser tests will be skipped (they fail in CI)."
}

setup_venv() {
    # $1: "learner" (requirements-learner.txt: what the lessons need) or "full" (requirements.txt: also
    # nbgrader, the tests and the benchmarks; the default). A full venv serves both; a learner venv is
    # completed by the first command that needs the rest.
    local level="${1:-full}"
    if [ ! -x "$VENV/bin/python" ]; then
        log "creating the virtual environment $VENV"
        "$PYTHON" -m venv "$VENV"
    fi
    local stamp="$VENV/.course-requirements.sha256"
    local want_learner want_full have=""
    want_learner="learner $(cat requirements-learner.txt pyproject.toml | sha256sum | cut -d' ' -f1)"
    want_full="full $(cat requirements-learner.txt requirements.txt pyproject.toml | sha256sum | cut -d' ' -f1)"
    [ -f "$stamp" ] && have="$(cat "$stamp")"
    if [ "$have" = "$want_full" ] || { [ "$level" = learner ] && [ "$have" = "$want_learner" ]; }; then
        log "virtual environment up to date"
    else
        local req=requirements.txt want="$want_full"
        [ "$level" = learner ] && { req=requirements-learner.txt; want="$want_learner"; }
        pipq() { "$VENV/bin/python" -m pip install -q "$@" 2> >(grep -v "is ignored: it is neither" >&2); }
        # uv (PyPI's `uv`, Astral's Rust installer) resolves and installs the same pins as pip, faster: the
        # full venv was ready 65 s after a clean clone instead of 169 s with pip, measured on a 2-core machine
        # on 2026-12-02 (README); it goes into the venv itself. COURSE_INSTALLER=pip, or any uv failure, falls back
        # to pip (uv reads PyPI and UV_* settings, not pip.conf: a machine behind a pip-only mirror gets pip).
        local installer="${COURSE_INSTALLER:-uv}"
        use_pip() { installer=pip; pipq --upgrade pip >/dev/null; }
        if [ "$installer" = uv ] && ! { [ -x "$VENV/bin/uv" ] || pipq "uv==0.13.*"; }; then installer=pip; fi
        [ "$installer" = pip ] && use_pip
        inst() {
            if [ "$installer" = uv ]; then
                # --compile-bytecode: write the .pyc files at install, as pip does; without them every process
                # (each grader sandbox, whose root is read-only) would recompile torch's modules on import
                if "$VENV/bin/uv" pip install -q --compile-bytecode --python "$VENV/bin/python" "$@"; then return 0; fi
                log "uv could not install $*; falling back to pip"
                use_pip
            fi
            pipq "$@"
        }
        log "installing $req with $installer (a minute or two the first time)"
        if [ -n "${TORCH_INDEX_URL:-}" ]; then
            # e.g. https://download.pytorch.org/whl/cpu: torch and torchvision from that index first (the
            # CPU-only wheels), at requirements-learner.txt's pins, so that the requirements are already satisfied
            log "installing torch and torchvision from $TORCH_INDEX_URL"
            # shellcheck disable=SC2046
            inst --index-url "$TORCH_INDEX_URL" $(grep -E '^(torch|torchvision)==' requirements-learner.txt | cut -d' ' -f1)
        fi
        inst -r "$req"
        # rfc3987-syntax (pulled in by jupyter-events' jsonschema[format-nongpl] extra) compiles an Earley
        # grammar when imported, and jsonschema imports it with nbformat: 2.6 s added to every nbformat import
        # (each nbgrader command, nbval run, grader sandbox, JupyterLab start). jsonschema treats it as
        # optional (only the "iri" format check needs it, and nothing here validates IRIs), so it goes.
        "$VENV/bin/python" -m pip uninstall -y -q rfc3987-syntax >/dev/null 2>&1 || true
        inst --no-deps -e .
        echo "$want" > "$stamp"
    fi
    export PATH="$VENV/bin:$PATH"   # nbgrader runs `alembic` and `jupyter` from PATH
}

prepare_data() {
    "$VENV/bin/python" -m course_utils.data prepare --root "$COURSE_DATA_DIR" \
        || log "FashionMNIST is not ready; the lessons say how to get it (see README, 'Data')."
}

learner_config() {
    # A Jupyter config directory for the learner's server, put first on JUPYTER_CONFIG_PATH for this
    # launch only (nothing global changes): nbgrader's JupyterLab extension ("Nbgrader" menu, "Create
    # Assignment" sidebar, "Validate" button) and its four server extensions are switched off.
    LEARNER_CONFIG="$VENV/etc/course-learner"
    mkdir -p "$LEARNER_CONFIG/labconfig"
    cat > "$LEARNER_CONFIG/labconfig/page_config.json" <<'JSON'
{"disabledExtensions": {"@jupyter/nbgrader": true}}
JSON
    cat > "$LEARNER_CONFIG/jupyter_server_config.json" <<'JSON'
{"ServerApp": {"jpserver_extensions": {
  "nbgrader.server_extensions.formgrader": false,
  "nbgrader.server_extensions.validate_assignment": false,
  "nbgrader.server_extensions.assignment_list": false,
  "nbgrader.server_extensions.course_list": false}}}
JSON
    export JUPYTER_CONFIG_PATH="$LEARNER_CONFIG${JUPYTER_CONFIG_PATH:+:$JUPYTER_CONFIG_PATH}"
}

setup() {
    # $1: the venv level, "learner" or "full" (the default); see setup_venv. Further arguments name more
    # Debian installers (install_browser, install_sandbox). The apt-get runs (one after another) go on while
    # the venv installs; the data is prepared once both are done.
    local level="${1:-full}"
    shift || true
    ( install_apt_data; for f in "$@"; do "$f"; done ) &
    local apt_pid=$!
    setup_venv "$level"
    wait "$apt_pid" || log "installing the Debian packages failed; what needs them says so"
    prepare_data
}

cmd="${1:-help}"
shift || true
case "$cmd" in
    setup) setup ;;
    open)
        setup learner
        learner_config
        # The learner's root is notebooks/ (the student copies); the start page opens first.
        url=/lab/tree
        [ -f notebooks/00_start_here.ipynb ] && url=/lab/tree/00_start_here.ipynb
        log "opening JupyterLab in notebooks/ at $url (Ctrl-C to stop)"
        root_flag=""
        [ "$(id -u)" -eq 0 ] && root_flag="--allow-root"    # jupyter refuses to run as root without it
        # shellcheck disable=SC2086
        exec "$VENV/bin/jupyter" lab --ServerApp.root_dir="$REPO/notebooks" --LabApp.default_url="$url" \
            $root_flag ${JUPYTER_ARGS:-} "$@"
        ;;
    instructor)
        # The instructor's view: the whole repository (solutions/, notebooks/, nbgrader_config.py) with
        # nbgrader's menu, Create Assignment sidebar and formgrader.
        setup
        log "opening JupyterLab on the repository, with nbgrader's instructor UI (Ctrl-C to stop)"
        root_flag=""
        [ "$(id -u)" -eq 0 ] && root_flag="--allow-root"
        # shellcheck disable=SC2086
        exec "$VENV/bin/jupyter" lab --ServerApp.root_dir="$REPO" $root_flag ${JUPYTER_ARGS:-} "$@"
        ;;
    release)
        setup_venv
        exec "$VENV/bin/python" scripts/release_notebooks.py "$@"
        ;;
    bench)
        # Re-measure and regenerate BENCHMARKS.md (CPU: about an hour); arguments go to `python -m bench`.
        setup
        log "running the benchmarks (python -m bench $*)"
        exec "$VENV/bin/python" -m bench "$@"
        ;;
    test)
        # --fast: the unit tier (tests/unit: no notebook execution, no nbgrader, no browser) without the
        # tests marked slow, on two xdist workers with one torch thread each (later arguments win, e.g.
        # -n 0); no --fast: every test, as CI runs them. Other arguments go to pytest.
        fast=0
        args=()
        for a in "$@"; do
            if [ "$a" = --fast ]; then fast=1; else args+=("$a"); fi
        done
        if [ "$fast" -eq 1 ]; then
            setup
            log "running the unit tests (tests/unit, not the ones marked slow)"
            export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
            exec "$VENV/bin/python" -m pytest tests/unit -m "not slow" -n 2 ${args[@]+"${args[@]}"}
        fi
        setup full install_browser install_sandbox
        log "running the tests"
        exec "$VENV/bin/python" -m pytest ${args[@]+"${args[@]}"}
        ;;
    *)
        sed -n '2,14p' "$0"
        [ "$cmd" = help ] || exit 2
        ;;
esac
