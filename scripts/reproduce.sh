#!/usr/bin/env bash
# Reproduce the papers' experiments at the reduced scale of docs/RESULTS.md: scripts/reproduce.sh e1 [e2 …]
# Experiments: e1 (ResNet-10 hits), e1_scaling (e1 at 2,000 and 4,000 patterns), e1_seeds (e1 with
# other seeds), e2 (icosahedra only → soccer, torus), e2b (three polyhedra → soccer, torus), e2c (icosahedra
# with detector-artefact augmentation → soccer, torus), e3 (VGG16 + logistic regression), e4 (ResNet-34 on
# MSFT), e4_fit (forward-fit baseline), e5 (served model = in-process model). Outputs go to $OUT (default
# out/results). Each step is a spizoo command, echoed.
set -euo pipefail
SPIZOO=${SPIZOO:-.venv/bin/spizoo}
OUT=${OUT:-out/results}
mkdir -p "$OUT"
run() { echo "+ $*" >&2; "$@"; }

dataset() {  # dataset CONFIG NAME: generate once
  [ -d "$OUT/$2" ] || run "$SPIZOO" generate "$1" --out "$OUT/$2"
}

e1() {
  dataset configs/experiments/e1_resnet10_hits.yaml e1_data
  run "$SPIZOO" train configs/experiments/e1_resnet10_hits.yaml --data "$OUT/e1_data" --out "$OUT/e1_run"
  run "$SPIZOO" evaluate "$OUT/e1_run" --data "$OUT/e1_data/*-test.tfrecord-*"
}

e1_scaling() {  # experiment 1 at 2,000 and 4,000 patterns, each tested on e1's own 8,000-pattern test split
  e1
  for n in 2000 4000; do
    [ -d "$OUT/e1_data_$n" ] || run "$SPIZOO" generate configs/experiments/e1_resnet10_hits.yaml \
      --out "$OUT/e1_data_$n" --set dataset.patterns=$n
    run "$SPIZOO" train configs/experiments/e1_resnet10_hits.yaml --data "$OUT/e1_data_$n" --out "$OUT/e1_run_$n"
    run "$SPIZOO" evaluate "$OUT/e1_run_$n" --data "$OUT/e1_data/*-test.tfrecord-*"
  done
}

e1_seeds() {  # experiment 1 again with E1_SEEDS (default 1 2): new particle models, splits, initial weights
  for seed in ${E1_SEEDS:-1 2}; do
    [ -d "$OUT/e1_data_seed$seed" ] || run "$SPIZOO" generate configs/experiments/e1_resnet10_hits.yaml \
      --out "$OUT/e1_data_seed$seed" --set seed=$seed
    run "$SPIZOO" train configs/experiments/e1_resnet10_hits.yaml --data "$OUT/e1_data_seed$seed" \
      --out "$OUT/e1_run_seed$seed" --set seed=$seed
    run "$SPIZOO" evaluate "$OUT/e1_run_seed$seed" --data "$OUT/e1_data_seed$seed/*-test.tfrecord-*"
  done
}

generalisation() {  # generalisation CONFIG NAME
  dataset "$1" "$2_data"
  dataset configs/experiments/e2_test_soccer.yaml e2_test_soccer
  dataset configs/experiments/e2_test_torus.yaml e2_test_torus
  run "$SPIZOO" train "$1" --data "$OUT/$2_data" --out "$OUT/$2_run"
  for test in "$2_data" e2_test_soccer e2_test_torus; do
    run "$SPIZOO" evaluate "$OUT/$2_run" --data "$OUT/$test/*-test.tfrecord-*"
    cp "$OUT/$2_run/evaluation/report.json" "$OUT/$2_run/report_$test.json"
  done
}

e2() { generalisation configs/experiments/e2_icosahedra_only.yaml e2; }
e2b() { generalisation configs/experiments/e2b_shape_variety.yaml e2b; }
e2c() { generalisation configs/experiments/e2c_augmented.yaml e2c; }

e3() {
  local weights=${VGG16_WEIGHTS:-}
  local sets=()
  if [ -n "$weights" ]; then sets=(--set "model.options={weights: $weights}"); else
    echo "e3: no VGG16_WEIGHTS file given: features of a randomly initialised VGG16 (not the paper's)" >&2; fi
  dataset configs/experiments/e3_vgg16_logistic.yaml e3_data
  run "$SPIZOO" train configs/experiments/e3_vgg16_logistic.yaml --data "$OUT/e3_data" --out "$OUT/e3_run" "${sets[@]}"
  run "$SPIZOO" evaluate "$OUT/e3_run" --data "$OUT/e3_data/*-test.tfrecord-*"
}

e4() {
  dataset configs/experiments/e4_resnet34_msft.yaml e4_data
  run "$SPIZOO" train configs/experiments/e4_resnet34_msft.yaml --data "$OUT/e4_data" --out "$OUT/e4_run"
  run "$SPIZOO" evaluate "$OUT/e4_run" --data "$OUT/e4_data/*-test.tfrecord-*"
}

e4_fit() {  # forward fits of FIT_PATTERNS (30) fresh patterns, FIT_WORKERS (2) at a time; finished fits are kept
  local n=${FIT_PATTERNS:-30} fits="$OUT/e4_fit"
  [ -f "$fits/patterns.cxi" ] || run "$SPIZOO" simulate configs/experiments/e4_resnet34_msft.yaml \
    -n "$n" --seed 7 --out "$fits" --overwrite
  echo "+ $SPIZOO fit-pattern configs/experiments/e4_resnet34_msft.yaml $fits/patterns.cxi --index I" \
    "--out $fits/fit_I   (I = 0 … $(( n - 1 )), ${FIT_WORKERS:-2} at a time)" >&2
  seq 0 $(( n - 1 )) | OMP_NUM_THREADS=1 xargs -P "${FIT_WORKERS:-2}" -I{} sh -c "[ -f '$fits/fit_{}/fit_{}.json' ] || \
    '$SPIZOO' fit-pattern configs/experiments/e4_resnet34_msft.yaml '$fits/patterns.cxi' --index {} \
    --out '$fits/fit_{}' > '$fits/fit_{}.log' 2>&1"
  run "$SPIZOO" fit-summary "$fits" --model "$OUT/e4_run"
}

e5() {
  e1
  rm -rf "$OUT/e5_models" "$OUT/e5_"*.h5
  run "$SPIZOO" simulate configs/experiments/e1_resnet10_hits.yaml -n 200 --seed 5 --out "$OUT/e5_frames" --overwrite
  run "$SPIZOO" export "$OUT/e1_run" --name hits --base-path "$OUT/e5_models"
  "$SPIZOO" serve --model-config-file "$OUT/e5_models/models.config" --rest-api-port 0 --port 18500 \
    > "$OUT/e5_serve.log" 2>&1 & local pid=$!
  for _ in $(seq 240); do grep -q "spizoo serve:" "$OUT/e5_serve.log" && break; sleep 0.5; done
  run "$SPIZOO" classify grpc://127.0.0.1:18500/hits "$OUT/e5_frames/patterns.cxi" --out "$OUT/e5_served.h5"
  kill "$pid"; wait "$pid" || true
  run "$SPIZOO" classify "$OUT/e1_run" "$OUT/e5_frames/patterns.cxi" --out "$OUT/e5_in_process.h5" --threshold 0.5 --precision float32
  .venv/bin/python - "$OUT" <<'PY'
import sys, h5py, numpy as np
out = sys.argv[1]
with h5py.File(f"{out}/e5_served.h5") as a, h5py.File(f"{out}/e5_in_process.h5") as b:
    same = np.array_equal(a["classes"][()], b["classes"][()])
    diff = float(np.abs(a["probabilities"][()] - b["probabilities"][()]).max())
print(f"e5: served vs in-process: classes identical {same}, max probability difference {diff:.2e}")
PY
}

[ $# -gt 0 ] || { echo "usage: $0 e1|e1_scaling|e1_seeds|e2|e2b|e2c|e3|e4|e4_fit|e5 ..." >&2; exit 2; }
for experiment in "$@"; do "$experiment"; done
