#!/usr/bin/env bash
# The GPU check (issue 21): bench/gpu_check.py on the device machine, in about 8 minutes.
#
# THE COMMANDS FOR A SESSION THAT HAS A GPU (the device tool), in this order:
#
#   1. Here, on the CPU machine (no device time):
#        bench/gpu_check.sh prepare
#      It fills build/gpu_carry/ (ignored by git): wheels of the packages the GPU machine's image lacks
#      (diffusers, nbclient, ipykernel, ipywidgets and what they need; the image has python3 3.12 with torch,
#      torchvision, numpy, matplotlib, sympy, einops, pytest, hypothesis, …) and the FashionMNIST .gz files
#      (about 30 MB). It prints what will travel: the working tree plus build/gpu_carry must stay under the
#      tool's 64 MiB. Then it runs the tiny mode of the same script on this CPU (add --no-tiny to skip).
#
#   2. One device call (590 s limit: the script budgets 450 s for its sections, plus set-up):
#        run(command="bash bench/gpu_check.sh run", carry=["build/gpu_carry"], timeout_s=590)
#      Every results file is copied into $OUT as soon as it is written (7 JSON files + gpu_check.log, the
#      tool's 8-file limit), so a timeout still brings figures back.
#
#   3. Here again: copy what came back and render the report:
#        cp <files_at>/*_cuda.json bench/results/ && OMP_NUM_THREADS=1 .venv/bin/python -m bench --render-only
#      and commit bench/results/*_cuda.json with BENCHMARKS.md.
#
#   4. At most one rerun of what failed, at once while the machine is warm (30 s), e.g.
#        run(command="bash bench/gpu_check.sh run --only lessons", carry=["build/gpu_carry"], timeout_s=300)
#      Other options of bench/gpu_check.py pass through: --airbench-args '--channels 64,128,256 --batch 512',
#      --throughput-args '--repeats 3', --lessons 07_final_assessment, --budget-s 240.
#
# The GPU machine reaches no package registry, so ./course.sh setup cannot build a venv there, and torch
# is far over the 64 MiB that travels: `run` uses the image's own python3 (PyTorch with CUDA; KINDS.md
# read torch 2.11 there, the course pins 2.14) with the carried wheels installed into /tmp/gpu_site, and the
# repository on PYTHONPATH. Where a .venv with a CUDA torch exists (a GPU workstation), `run` uses it instead.
#
#   bench/gpu_check.sh prepare [--no-tiny]     # here: the carry folder, its size, the tiny run
#   bench/gpu_check.sh run [gpu_check options]  # on the GPU machine (or any machine with CUDA)
#   bench/gpu_check.sh tiny                     # the CPU smoke run only
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
REPO=$PWD
CARRY=$REPO/build/gpu_carry

local_python() {
    if [ -x "$REPO/.venv/bin/python" ]; then echo "$REPO/.venv/bin/python"; else command -v python3; fi
}

cmd=${1:-run}
shift || true
case "$cmd" in
prepare)
    PY=$(local_python)
    OMP_NUM_THREADS=1 "$PY" -m bench.gpu_check --prepare-carry "$CARRY" || exit $?
    if [ "${1:-}" != "--no-tiny" ]; then
        OMP_NUM_THREADS=1 "$PY" -m bench.gpu_check --tiny || exit $?
    fi
    ;;
tiny)
    OMP_NUM_THREADS=1 "$(local_python)" -m bench.gpu_check --tiny "$@"
    ;;
run)
    PY=""
    for cand in "$REPO/.venv/bin/python" /opt/torch/.venv/bin/python3 "$(command -v python3)"; do
        if [ -n "$cand" ] && [ -x "$cand" ] && "$cand" -c "import torch, sys; sys.exit(not torch.cuda.is_available())" 2>/dev/null; then
            PY=$cand
            break
        fi
    done
    if [ -z "$PY" ]; then
        echo "gpu_check.sh: no python here imports a torch that sees a CUDA device (tried .venv, /opt/torch/.venv, python3)." >&2
        echo "gpu_check.sh: on a machine without a GPU, run 'bench/gpu_check.sh tiny' instead." >&2
        exit 2
    fi
    OUT=${OUT:-$REPO/build/gpu_out}              # the device tool sets OUT: what is there comes back
    mkdir -p "$OUT"
    echo "gpu_check.sh: python $PY ($("$PY" -c 'import torch; print("torch", torch.__version__, "CUDA", torch.version.cuda)'))"
    if [ "$PY" != "$REPO/.venv/bin/python" ]; then
        if [ -d "$CARRY/wheels" ]; then
            "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/gpu_site \
                "$CARRY"/wheels/*.whl || { echo "gpu_check.sh: installing the carried wheels failed" >&2; exit 3; }
            export PYTHONPATH=/tmp/gpu_site${PYTHONPATH:+:$PYTHONPATH}
        else
            echo "gpu_check.sh: no $CARRY/wheels (run 'bench/gpu_check.sh prepare' first and carry build/gpu_carry);" \
                 "diffusers, nbclient and ipykernel may be missing" >&2
        fi
        export PYTHONPATH=$REPO:$PYTHONPATH
        export PATH=/tmp/gpu_site/bin:$PATH
    fi
    if [ -d "$CARRY/data/FashionMNIST/raw" ]; then
        export COURSE_DATA_DIR=$CARRY/data        # course_utils.data unzips the .gz files there on first use
    fi
    export PYTHONUNBUFFERED=1
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm --format=csv 2>/dev/null || true
    "$PY" -m bench.gpu_check --mirror "$OUT" "$@" 2>&1 | tee "$OUT/gpu_check.log"
    exit "${PIPESTATUS[0]}"
    ;;
*)
    echo "usage: bench/gpu_check.sh prepare [--no-tiny] | run [bench.gpu_check options] | tiny" >&2
    exit 64
    ;;
esac
