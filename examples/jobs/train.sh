#!/bin/sh
# A stand-in training loop for the examples and the demo, with real checkpoints: STEPS steps of
# STEP_SECONDS each; after every step the step number goes to $SWITCHYARD_CHECKPOINT_DIR/step.
# With --resume it starts from the last checkpoint. The placer sets SWITCHYARD_* and
# CUDA_VISIBLE_DEVICES (logical GPUs on the local engine).
set -eu
steps=${STEPS:-5}
pause=${STEP_SECONDS:-1}
ckpt="${SWITCHYARD_CHECKPOINT_DIR:-.}/step"
i=0
if [ "${1:-}" = "--resume" ] && [ -f "$ckpt" ]; then
  i=$(cat "$ckpt")
  echo "resumed from step $i"
fi
echo "training on ${SWITCHYARD_OFFERING:-unplaced} with GPUs ${CUDA_VISIBLE_DEVICES:-none}"
while [ "$i" -lt "$steps" ]; do
  i=$((i + 1))
  sleep "$pause"
  echo "step $i/$steps"
  echo "$i" > "$ckpt.tmp"
  mv "$ckpt.tmp" "$ckpt"
done
echo "done after $steps steps"
