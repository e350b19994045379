#!/usr/bin/env bash
# What a lent GPU does for this project, in one short run: the device, a bf16 training run (SFT
# steps on MBPP train programs), batched sampling with the transformers backend, and a P3
# evaluation, each with its tokens/s. Run it from the repository root whenever a GPU is lent and
# put the figures in docs/experiments.md:
#
#     bash benchmarks/gpu_check.sh            # CUDA (fails if there is none)
#     STEPS=2 LIMIT=2 N=2 bash benchmarks/gpu_check.sh cpu   # the same steps on the CPU, small:
#                                                             # checks the script itself
#
# The default model (SmolLM2-135M-Instruct, dequantised from its GGUF to bf16 on CUDA, fp32 on
# CPU) is the one trained and measured. Scratch files go to $OUT (a temporary folder by default).
set -euo pipefail
DEVICE=${1:-cuda}
PY=${PYTHON:-.venv/bin/python}
OUT=${OUT:-$(mktemp -d)}
mkdir -p "$OUT"
STEPS=${STEPS:-20}
LIMIT=${LIMIT:-8}
N=${N:-10}
echo "== device ($DEVICE); scratch in $OUT"
$PY - "$DEVICE" <<'EOF'
import sys, torch
device = sys.argv[1]
if device == "cuda":
    assert torch.cuda.is_available(), "no CUDA device: run with 'cpu' to check the script"
    print(f"{torch.cuda.get_device_name(0)}, {torch.cuda.get_device_properties(0).total_memory / 2**30:.0f} GiB,"
          f" bf16 {'yes' if torch.cuda.is_bf16_supported() else 'no'}, torch {torch.__version__}")
else:
    print(f"cpu, {torch.get_num_threads()} threads, torch {torch.__version__}")
EOF

echo "== training: $STEPS SFT steps, batch 8 x 512 tokens (bf16 on CUDA)"
$PY - "$OUT/data.jsonl" <<'EOF'
import json, sys
from engine.datasets.held_out import trainable_mbpp
from engine.evaluate.suite.base import benchmark_data_dir
with open(sys.argv[1], "w") as out:
    for task in trainable_mbpp(benchmark_data_dir(None)):
        out.write(json.dumps({"text": f"# {task.text}\n{task.code}\n"}) + "\n")
EOF
$PY -m engine.training --data "$OUT/data.jsonl" --out "$OUT/sft" --no-resume --device "$DEVICE" \
    --max-steps "$STEPS" --batch-size 8 --block-size 512 --save-steps 1000 2>"$OUT/train.log" >"$OUT/train.json"
$PY -c "import json,sys; r=json.load(open(sys.argv[1])); print(f\"{r['steps']} steps, {r['seconds']} s, {r['tokens_per_s']} tokens/s\")" \
    "$OUT/train.json"

echo "== batched sampling: 32 samples of one prompt, 128 tokens, T=0.8 (on CUDA, then the same on this host's CPU: the baseline)"
$PY - "$DEVICE" <<'EOF'
import sys, time
import torch
from engine.lm.generation import SamplingParams
from engine.lm.transformers_backend import TransformersModel
prompt = [{"role": "user", "content": "Write a Python function that returns the n-th Fibonacci number."}]
params = SamplingParams(max_new_tokens=128, temperature=0.8, top_k=50, seed=0)
rates = {}
for device in dict.fromkeys([sys.argv[1], "cpu"]):
    model = TransformersModel.load("", device=device)
    model.sample(prompt, 32, params)  # warm-up: on an H200 the first full calls ran at 60 ms a step, later ones 21
    runs = []
    for _ in range(3):
        started = time.perf_counter()
        tokens = sum(s.tokens for s in model.sample(prompt, 32, params))
        runs.append((tokens / (time.perf_counter() - started), tokens))
    rate, tokens = sorted(runs)[1]
    rates[device] = rate
    threads = f", {torch.get_num_threads()} threads" if device == "cpu" else ""
    print(f"{tokens} tokens, median of 3 runs: {rate:.0f} tokens/s ({model.device}{threads})")
    del model
if len(rates) == 2:
    print(f"CUDA / CPU on this host: {rates[sys.argv[1]] / rates['cpu']:.1f}x")
EOF

echo "== P3 evaluation: first $LIMIT validation puzzles, n=$N, T=0.8, transformers backend"
$PY -m engine.evaluate run p3-validation --backend transformers --limit "$LIMIT" --n "$N" --temperature 0.8 \
    --out "$OUT/p3.json" 2>"$OUT/p3.log" >/dev/null
$PY -c "import json,sys; r=json.load(open(sys.argv[1])); print(f\"pass@k {r['pass_at_k']}, {r['solved']} solved, {r['tokens']} tokens in {r['seconds']} s: {r['tokens_per_s']} tokens/s\")" \
    "$OUT/p3.json"
