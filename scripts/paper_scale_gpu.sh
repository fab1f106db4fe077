#!/usr/bin/env bash
# Experiments 1 and 4 of docs/RESULTS.md at the papers' scale, with mixed_float16, on one GPU node:
#   e1 (seed 000 §5.1): ResNet-10 on 60,000 patterns (58,000 training, the seed's splits), 20 epochs,
#      for each seed in SEEDS (default "0 1");
#   e4 (seed 001 §3): ResNet-34 on the seed's 30,058 MSFT patterns (the config's splits: 19,958 distinct
#      training patterns, each through the seed's eleven filters), 15 epochs (the seed's 30: EPOCHS_E4=30).
#   scripts/paper_scale_gpu.sh                 # both, into $OUT (default out/paper_scale)
#   scripts/paper_scale_gpu.sh e4              # one of them
# Sized for about 10 minutes of training on one modern GPU (an estimate: no GPU has run it yet; the wall
# times of each step are written to $OUT/times.txt). Generation runs on the node's CPU cores (Beam's
# DirectRunner, one worker per core). Each step is an echoed spizoo command; a finished step is skipped
# on a rerun and a killed training resumes from its last epoch. The same script runs at a tiny scale on a
# CPU (tests/commands/test_paper_scale_script.py). On a GPU node with JAX but no TensorFlow, the experiments run
# with scripts/e1_scale_jax.py (docs/RESULTS.md §7) and scripts/e4_scale_jax.py instead. E1_SETS and E4_SETS add
# --set options to an experiment's generate and train (e.g. E1_SETS="sim.patterns_per_model=1" for enough
# particle models in a tiny run).
set -euo pipefail
SPIZOO=${SPIZOO:-.venv/bin/spizoo}
OUT=${OUT:-out/paper_scale}
PRECISION=${PRECISION:-mixed_float16}
SEEDS=${SEEDS:-0 1}
E1_PATTERNS=${E1_PATTERNS:-60000}
E4_PATTERNS=${E4_PATTERNS:-30058}
EPOCHS_E1=${EPOCHS_E1:-20}
EPOCHS_E4=${EPOCHS_E4:-15}
E1_EXTRA=() E4_EXTRA=()
for s in ${E1_SETS:-}; do E1_EXTRA+=(--set "$s"); done
for s in ${E4_SETS:-}; do E4_EXTRA+=(--set "$s"); done
mkdir -p "$OUT"
run() { echo "+ $*" >&2; local start=$SECONDS; "$@"; echo "$(( SECONDS - start )) s  $*" >> "$OUT/times.txt"; }

e1() {
  local config=configs/experiments/e1_resnet10_hits.yaml  # the reduced e1's config, with the seed's splits:
  local splits="dataset.splits={train: 0.9666, validation: 0.0167, test: 0.0167}"  # 58,000 / 1,000 / 1,000
  for seed in $SEEDS; do
    local data="$OUT/e1_data_seed$seed" run_dir="$OUT/e1_run_seed$seed"
    [ -f "$data/dataset_info.json" ] || run "$SPIZOO" generate "$config" --out "$data" \
      --set seed="$seed" --set dataset.patterns="$E1_PATTERNS" --set "$splits" "${E1_EXTRA[@]}"
    [ -f "$run_dir/training.json" ] || run "$SPIZOO" train "$config" --data "$data" --out "$run_dir" \
      --set seed="$seed" --set "$splits" --set train.epochs="$EPOCHS_E1" --set train.mixed_precision="$PRECISION" \
      "${E1_EXTRA[@]}"
    run "$SPIZOO" evaluate "$run_dir" --data "$data/*-test.tfrecord-*"
  done
}

e4() {
  local config=configs/train_resnet34_msft.yaml  # eleven-fold augmentation of the training split
  local data="$OUT/e4_data" run_dir="$OUT/e4_run"
  [ -f "$data/dataset_info.json" ] || run "$SPIZOO" generate "$config" --out "$data" \
    --set dataset.patterns="$E4_PATTERNS" "${E4_EXTRA[@]}"
  [ -f "$run_dir/training.json" ] || run "$SPIZOO" train "$config" --data "$data" --out "$run_dir" \
    --set train.epochs="$EPOCHS_E4" --set train.mixed_precision="$PRECISION" "${E4_EXTRA[@]}"
  run "$SPIZOO" evaluate "$run_dir" --data "$data/*-test.tfrecord-*"
}

[ $# -gt 0 ] || set -- e1 e4
for experiment in "$@"; do
  case "$experiment" in e1|e4) "$experiment" ;; *) echo "usage: $0 [e1] [e4]" >&2; exit 2 ;; esac
done
