#!/bin/bash
# The population engine on a GPU, in one prepared run of at most ~8 minutes: paper-config MBPO
# (2x1024 SAC, 20 updates per env step, 7x(4x200) ensemble) as one population of K = 1, 5, 10 seeds
# on cuda, in seconds per population env step (the target: 10 seeds x 500k steps in <= 8 hours on one
# H200, i.e. <= 58 ms per population env step), then MBPO 2x256/10 at K = 5 in fp32 and with bf16
# autocast (agent.sac_bf16=true agent.rollout_bf16=true).
#
# Run from the repository root where `import vagram_bench` works with a CUDA build of torch:
#     bash benchmarks/device_check.sh            # prints, and writes $OUT/device_check.txt if OUT is set
set -uo pipefail
log="${OUT:-.}/device_check.txt"
export PYTHONUNBUFFERED=1 MUJOCO_GL=egl
{
  date -u
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
  python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.is_available())"
  timeout 330 python benchmarks/bench_population.py --device cuda --configs c --k 1,5,10 --rounds 1 \
      --explore 300 --window 20 --skip-bf16 --timeout 300
  timeout 130 python benchmarks/bench_population.py --device cuda --configs b --k 5 --rounds 1 \
      --explore 300 --window 20 --timeout 120
} 2>&1 | tee "$log"
