#!/bin/bash
# CamVid trainings on a lent GPU machine (one H200: JAX and PyTorch, no TensorFlow, no network),
# four at once under KERAS_BACKEND=jax. Run there, from the repository root, with .device/ (built
# here by scripts/gpu/pack.sh) carried beside the working tree:
#   bash scripts/gpu/camvid.sh first    # then `second`: the same recipes with seed 1
# Each run folder comes back in $OUT as .tgz parts (no npz checkpoints; at most 8 files of
# 16 MB a call), to unpack into runs/camvid/recipes/ here and score on the test drive with
#   python scripts/gpu/rescore_run.py --machine "H200 GPU, KERAS_BACKEND=jax" RUN ...
# DRY=1 runs the same flow on this machine's environment (with EXTRA="--set ..." to shrink it).
set -u
SET=${1:?which runs: first, second or third}
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
PY=${PY:-python3}
exec > >(tee -a "$OUT/device.log") 2>&1
date; nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null
if [ -z "${DRY:-}" ]; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .device/whl/*.whl || exit 3
  export PYTHONPATH=/tmp/site:$PWD/.device/site:$PWD/src
fi
# Up to four processes share the GPU: each takes under a fifth of its memory.
export KERAS_BACKEND=jax XLA_PYTHON_CLIENT_MEM_FRACTION=0.18 PYTHONUNBUFFERED=1
$PY scripts/gpu/prep.py || exit 4
$PY -c "import keras, jax, albumentations, cityseg.cli; print('keras', keras.__version__, keras.backend.backend(), jax.devices())" || exit 5
CLI="$PY -c 'from cityseg.cli import main; main()'"
# The best CPU recipe (lite0_480_hflip_scale_exposure): 480x352, hflip + scale_crop + exposure.
BASE="--config configs/camvid/lraspp_lite0_384x288_ce.yaml --set data.size=480x352 --set data.workers=${WORKERS:-4} --set train.time_limit_min=${LIMIT:-6.5} --set data.augment=[hflip,scale_crop,exposure]"
SCRATCH="--set model.name=lraspp_mobilenetv3 --set model.encoder_weights=null --set model.freeze_epochs=0 --set train.encoder_lr_scale=1.0 --set train.loss=ce_dice"
case $SET in
  first) RUNS=(
    "h200_lite0_480_exposure_e10 --set train.epochs=10"
    "h200_lite0_480_exposure_e30 --set train.epochs=30"
    "h200_dlv3p_lite0_480_exposure_e25 --set model.name=deeplabv3plus_lite0 --set train.epochs=25"
    "h200_mbv3_scratch_480_exposure_cedice_e60 $SCRATCH --set train.epochs=60") ;;
  second) RUNS=(
    "h200_lite0_480_exposure_e10_seed1 --set train.epochs=10 --set train.seed=1"
    "h200_lite0_480_exposure_e30_seed1 --set train.epochs=30 --set train.seed=1"
    "h200_dlv3p_lite0_480_exposure_e25_seed1 --set model.name=deeplabv3plus_lite0 --set train.epochs=25 --set train.seed=1"
    "h200_mbv3_scratch_480_exposure_cedice_e75 $SCRATCH --set train.epochs=75") ;;
  third) RUNS=(  # two at once in the session's last 5 device minutes, LIMIT=3 WORKERS=8: both
    # stopped by the time limit after 2 epochs, as each phase's first epoch holds its XLA
    # compilation (~70 s) and the limit expects the next epoch to last as long as the last one
    "h200_lite0_480_exposure_e60 --set train.epochs=60"
    "h200_dlv3p_lite0_480_exposure_e40 --set model.name=deeplabv3plus_lite0 --set train.epochs=40") ;;
  *) echo "unknown set $SET: first, second or third"; exit 2 ;;
esac
pids=()
names=()
for spec in "${RUNS[@]}"; do
  set -- $spec; name=$1; shift
  names+=("$name")
  (eval "$CLI train $BASE --out runs/device/$name $* ${EXTRA:-}" >"/tmp/$name.log" 2>&1
   echo "$name exit $? $(date +%T)") &
  pids+=($!)
done
wait "${pids[@]}"  # a plain wait would also wait for the tee above
for name in "${names[@]}"; do  # only this call's runs: a warm machine keeps the last call's
  tar -C runs/device --exclude='*.npz' -czf "/tmp/$name.tgz" "$name" && split -b 16000000 -d "/tmp/$name.tgz" "$OUT/$name.tgz."
  echo "=== $name"; grep -v "^\s*$" "/tmp/$name.log"
done > "$OUT/runs.log"
for name in "${names[@]}"; do grep -h "val mIoU" "/tmp/$name.log"; done
ls -la "$OUT"
