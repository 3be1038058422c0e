#!/usr/bin/env bash
# The cpu2 MBPO half as it runs: two lanes side by side (one core each), each a list of resumable sweeps
# from the frozen checkout of the preregistration (docs/cpu2.md, "Run order" and "Commands"). A sweep skips
# complete cells and resumes partial ones, so the same command restarts the grid after a kill.
#
#   bash tools/cpu2_lanes.sh FROZEN OUT      # e.g. /work/frozen/cpu2 (a checkout of d0f3f84 with its .venv) runs/cpu2
#
# Before it on a new machine: `python tools/grid_records.py restore records/cpu2 OUT` (the committed cells);
# after each cell: `python tools/grid_records.py save OUT records/cpu2`, then commit records/cpu2.
# The lanes' split balances the projected CPU time (docs/cpu2.md, Budget and Amendments: about 1 h per
# MBPO cell but IterVAML's, 3-4 h for IterVAML's anchor and 2x8 cells, 1.4 h for its d=20 cell).
set -u
if [ $# -ne 2 ] || [ ! -x "$1/.venv/bin/python" ]; then
  echo "usage: cpu2_lanes.sh FROZEN OUT (FROZEN: a checkout of d0f3f84 with its .venv; got: $*)" >&2
  exit 2
fi
frozen=$(cd "$1" && pwd) out=$(mkdir -p "$2" && cd "$2" && pwd)
d0=InvertedPendulumDistract-0-v0 d5=InvertedPendulumDistract-5-v0 d10=InvertedPendulumDistract-10-v0
d20=InvertedPendulumDistract-20-v0 c16=InvertedPendulumCapacity-2x16-v0 c8=InvertedPendulumCapacity-2x8-v0

sweep() {  # lane agents tasks
  echo "[$(date -u +%FT%TZ)] lane $1: $2 on $3"
  (cd "$frozen" && .venv/bin/python -m vagram_bench.sweep protocol=cpu2 agents="$2" tasks="$3" out="$out" local.workers=1)
  echo "[$(date -u +%FT%TZ)] lane $1: $2 done (exit $?)"
}
(  # lane A: primary MLE cells, then sac, MSE, IterVAML on 2x8 (rule (c), evaluated 2026-12-07 21:06 UTC)
  sweep A mbpo_mle "$d0,$d20,$c8"
  sweep A sac "$d0,$d5,$d10,$d20,$c16,$c8"
  sweep A mbpo_mse "$d0,$d20,$c8,$d5,$d10,$c16"
  sweep A mbpo_itervaml "$c8"
) > "$out-laneA.log" 2>&1 &
(  # lane B: primary VaGraM cells, then MLE and VaGraM on the intermediate doses, IterVAML on the anchor and d=20
  sweep B mbpo_vagram "$d0,$d20,$c8"
  sweep B mbpo_mle "$d5,$d10,$c16"
  sweep B mbpo_vagram "$d5,$d10,$c16"
  sweep B mbpo_itervaml "$d0,$d20"
) > "$out-laneB.log" 2>&1 &
wait
