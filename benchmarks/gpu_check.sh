#!/usr/bin/env bash
# One-shot check on a lent GPU machine (CUDA; CI never has one). Runs, with logs in $OUT:
#   1. the tiny-model tests on CUDA (MEMKIT_TEST_DEVICE=cuda): RecaLLM's transformers
#      processor + training, TransformersLLM, MemSifter GRPO (bf16), consolidation;
#   2. benchmarks/sifter_train.py unchanged on CUDA (GRPO on the category toy, SIMULATED
#      working LLM), with 4x the CPU run's prompts per step.
# Usage (repo root): OUT=/tmp/gpu_check bash benchmarks/gpu_check.sh
# Packages the machine lacks travel as wheels in .whl/ (see the device notes); PYTHONPATH
# must already point at them.
set -u
OUT=${OUT:-/tmp/gpu_check}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
nvidia-smi -L
python3 - <<'EOF'
import sys, torch, transformers, trl, datasets, pyarrow
print(sys.version.split()[0], "torch", torch.__version__, "transformers", transformers.__version__,
      "trl", trl.__version__, "datasets", datasets.__version__, "pyarrow", pyarrow.__version__,
      torch.cuda.get_device_name())
EOF
start=$(date +%s)
MEMKIT_TEST_DEVICE=cuda timeout 300 python3 -m pytest -q -p no:cacheprovider -W default \
    -m "not realmodel" -o addopts="" \
    tests/generate/test_recall_hf.py tests/generate/test_recall_train.py \
    tests/generate/test_recall_tokens.py tests/llm/test_transformers_llm.py \
    tests/sifter/test_sifter_train.py tests/consolidate \
    2>&1 | tee "$OUT/pytest_cuda.log" | tail -25
echo "pytest on cuda: $(( $(date +%s) - start )) s"
start=$(date +%s)
timeout 240 python3 benchmarks/sifter_train.py --toy category --hidden 64 --n-train 4000 \
    --n-eval 200 --steps 400 --eval-steps 50 --save-steps 400 --lr 1e-3 \
    --prompts-per-step 64 --bf16 --threads 4 --out "$OUT/sifter_gpu" 2>&1 \
    | grep -v "it/s\]" > "$OUT/sifter_gpu.log"
tail -4 "$OUT/sifter_gpu.log"
echo "sifter_train on cuda: $(( $(date +%s) - start )) s"
python3 - "$OUT" <<'EOF'
import json, sys
from pathlib import Path
out = Path(sys.argv[1]) / "sifter_gpu"
for name in ("eval_log.jsonl", "grpo/eval_log.jsonl"):
    if (out / name).exists():
        for line in (out / name).read_text().splitlines():
            d = json.loads(line)
            print("eval step", d.get("step"), "policy_ndcg@1", d["policy_ndcg@1"],
                  "format_ok", d["format_ok"])
EOF
cp "$OUT"/sifter_gpu/{summary.json,training.png} "$OUT"/ 2>/dev/null
rm -rf "$OUT/sifter_gpu"
