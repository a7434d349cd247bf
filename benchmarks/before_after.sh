#!/bin/bash
# Engine and training throughput of two commits in one job, alternating, so that the
# load of a shared machine falls on both alike:
#
#     benchmarks/before_after.sh BASE_COMMIT [NEW_COMMIT=HEAD]
#
# Each commit is exported (git archive) to a temporary folder and run from there at
# nice 10: benchmarks/engine.py (CPU time, batch 1 / 64 / 1024) twice, then
# benchmarks/train.py (a short run: 8 updates of the default Args, steady SPS over 7)
# three times, in the order base new new base base new.
set -euo pipefail
base=${1:?usage: benchmarks/before_after.sh BASE_COMMIT [NEW_COMMIT]}
new=${2:-HEAD}
PY=${PY:-.venv/bin/python}
PY=$(realpath "$PY")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for c in base new; do
    mkdir "$tmp/$c"
    git archive "${!c}" | tar -x -C "$tmp/$c"
done
export OMP_NUM_THREADS=1 SDL_VIDEODRIVER=dummy
eng() { echo "=== engine $1 (${!1}) load $(cut -d' ' -f1 /proc/loadavg)"
        (cd "$tmp/$1" && PYTHONPATH="$tmp/$1" nice -n 10 "$PY" benchmarks/engine.py --batch 1 64 1024 --seconds 3 --cpu-time); }
trn() { echo "=== train $1 (${!1}) load $(cut -d' ' -f1 /proc/loadavg)"
        (cd "$tmp/$1" && PYTHONPATH="$tmp/$1" nice -n 10 "$PY" benchmarks/train.py --steps 32768 --sps-steps 28672 \
            --eval-every 1000 --episodes 1 --env-ticks 100 --full-runs 0) | grep -E "steady|end to end"; }
eng base; eng new; eng new; eng base
trn base; trn new; trn new; trn base; trn base; trn new
