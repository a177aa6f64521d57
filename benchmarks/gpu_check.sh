#!/usr/bin/env bash
# The GPU check: on one GPU, from a fresh clone after `bash install.sh`, offline, in under 8 minutes (an
# estimate: it has not been timed on a GPU yet):
#   1. fp16 and bf16 pretraining of bert-base through main.py (200 steps each; loss scale logged; the loss must fall),
#      on the quickstart's demo corpus (built here, no download) at sequence length 128;
#   2. samples/s and MFU of bert-base and bert-large at batch 256 x 128 (benchmarks/bench_pretrain.py), next to
#      transformers' BertForMaskedLM in the same run;
#   3. one finetuning job in bf16 through the pipeline's finetune stage (the demo task in CoLA's GLUE format);
# with the peak GPU memory of each. It prints one table and writes it to OUT/gpu_check.md, and stops at the first
# error with the phase that failed.
#
#   bash benchmarks/gpu_check.sh [--out DIR] [--cpu-smoke]
#
# --cpu-smoke runs the same phases at toy sizes on the CPU (bert-tiny, fp32 instead of fp16, a few steps), to
# check the script itself on a machine without a GPU.
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=runs/gpu_check
SMOKE=0
while (($#)); do
    case "$1" in
        --out) OUT="${2:?--out needs a folder}"; shift 2 ;;
        --cpu-smoke) SMOKE=1; shift ;;
        -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
        *) echo "gpu_check: unknown argument '$1' (use --out DIR, --cpu-smoke)" >&2; exit 2 ;;
    esac
done
PYTHON="${PYTHON:-.venv/bin/python}"
[[ -x "$PYTHON" ]] || { echo "gpu_check: $PYTHON not found: run bash install.sh first" >&2; exit 2; }
if ((SMOKE)); then
    PRECISIONS=(fp32 bf16)
    PRESET=bert-tiny STEPS=20 BATCH=16 MICRO=16 SEQ=64 GPUS=0
    BENCH=(--presets bert-tiny --batch-size 8 --seq-len 32 --repeats 1 --steps 1 --warmup 1 --device cpu)
    FINETUNE_ROWS=256
else
    PRECISIONS=(fp16 bf16)
    PRESET=bert-base STEPS=200 BATCH=256 MICRO=128 SEQ=128 GPUS=-1
    BENCH=(--presets bert-base bert-large --batch-size 256 --seq-len 128 --repeats 3 --steps 5 --warmup 2)
    FINETUNE_ROWS=0
    command -v nvidia-smi >/dev/null || { echo "gpu_check: nvidia-smi not found: this check needs a GPU" >&2; exit 2; }
    "$PYTHON" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'gpu_check: torch sees no GPU')"
fi
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 WANDB_MODE=disabled PYTHONUNBUFFERED=1

PHASE="setup"
SAMPLER=""
on_exit() {
    local code=$?
    [[ -n "$SAMPLER" ]] && kill "$SAMPLER" 2>/dev/null || true
    if ((code != 0)); then
        echo "gpu_check: FAILED in phase '$PHASE' (exit $code); its output is above and in $OUT/$PHASE.log" >&2
    fi
}
trap on_exit EXIT

# One config for every phase; each main.py call only switches the precision and the finetune stage.
CONFIG="$OUT/gpu_check.yaml"
cat > "$CONFIG" <<EOF
# Written by benchmarks/gpu_check.sh.
DEMO_DATA: {ENABLED: True, OUTPUT_DIR: $OUT/demo_data}
SYSTEM: {OUTPUT_ROOT: $OUT/runs, NUM_GPUS: $GPUS, MAX_MEMORY_IN_GB: 8}
DATASET: {CUSTOMIZED_DATASETS: [$OUT/demo_data/corpus], NUM_TRAIN_SHARDS: 4, NUM_TEST_SHARDS: 1, FRAC_TEST: 0.02,
          MAX_SEQ_LENGTH: $SEQ, MASKING: dynamic}
TOKENIZER: {TRAIN: True, VOCAB_SIZE: 30522}
MODEL: {PRESET: $PRESET}
PRETRAIN: {NUM_STEPS: $STEPS, BATCH_SIZE: $BATCH, MICRO_BATCH_SIZE_PER_GPU: $MICRO, LEARNING_RATE: 5.0e-4,
           WARMUP_PROPORTION: 0.1, SCHEDULER: linear, LOG_EVERY_STEPS: 10, VALIDATION_EVERY_STEPS: 100,
           VALIDATION_MAX_SAMPLES: 2048, CHECKPOINT_EVERY_STEPS: 100}
FINETUNE: {ENABLED: False, TASKS: [CoLA], GLUE_DIR: $OUT/demo_data/glue, PRECISION: bf16, SEEDS: [1],
           MAX_SEQ_LENGTH: 64, MAX_TRAIN_SAMPLES: $FINETUNE_ROWS, STILT: {ENABLED: False},
           SEARCH: {SMALL: {LEARNING_RATES: [5.0e-5], BATCH_SIZES: [32], EPOCHS: [3]}}}
RESULT_COLLECTION: {ENABLED: False}
EOF
: > "$OUT/phases.tsv"

# run_phase NAME COMMAND...: run COMMAND (output to the console and OUT/NAME.log) under a time limit, sampling the
# GPU's memory every 200 ms; records NAME, wall seconds and peak MiB in OUT/phases.tsv.
run_phase() {
    PHASE="$1"
    shift
    echo "== gpu_check: $PHASE: $*"
    local memory="$OUT/$PHASE.memory" started=$SECONDS
    : > "$memory"
    if ((!SMOKE)); then
        nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 200 > "$memory" &
        SAMPLER=$!
    fi
    timeout 420 "$@" 2>&1 | tee "$OUT/$PHASE.log"
    if [[ -n "$SAMPLER" ]]; then
        kill "$SAMPLER" 2>/dev/null || true
        wait "$SAMPLER" 2>/dev/null || true
        SAMPLER=""
    fi
    local peak
    peak=$(sort -n "$memory" | tail -1)
    printf '%s\t%s\t%s\n' "$PHASE" "$((SECONDS - started))" "${peak:--}" >> "$OUT/phases.tsv"
}

for precision in "${PRECISIONS[@]}"; do
    run_phase "pretrain-$precision" "$PYTHON" main.py --config "$CONFIG" --opts PRETRAIN.PRECISION "$precision"
done
run_phase bench "$PYTHON" benchmarks/bench_pretrain.py "${BENCH[@]}" --precision bf16 --json "$OUT/bench.json"
run_phase finetune-bf16 "$PYTHON" main.py --config "$CONFIG" --opts PRETRAIN.PRECISION bf16 FINETUNE.ENABLED True

PHASE="report"
"$PYTHON" benchmarks/gpu_check_report.py --out "$OUT" --config "$CONFIG" --precisions "${PRECISIONS[@]}" \
    | tee "$OUT/gpu_check.md"
echo "gpu_check: passed; table in $OUT/gpu_check.md"
