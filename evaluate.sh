#!/usr/bin/env bash
# Evaluate a training run: the baseline ("pretrained" = the eval config's model.ckpt, or the fresh
# projection when it is null) and every RUN_DIR/checkpoint_{epoch}.pth in epoch order, except those
# whose RUN_DIR/eval/<name>/metrics.json has the same fingerprint (checkpoint, model, generation
# settings, prompt, data, limit); then write RUN_DIR/eval/summary.{csv,md,png}. One job (python -m
# minigpt4.cli eval, also the minigpt4-eval command) does all of it: one model load, one METEOR.
#
# Usage: bash evaluate.sh RUN_DIR [--cfg-path EVAL_YAML] [--limit N] [--split S] [--nproc N] [--options KEY=VALUE ...]
#   (flags in any order, also after --options, which takes the KEY=VALUE words up to the next flag)
#   --cfg-path  evaluation config (default: eval_configs/minigpt4_flickr_eval.yaml next to this script);
#               its model must match RUN_DIR/config.yaml's (else an error; --allow-model-mismatch)
#   --limit     score only the first N images, into RUN_DIR/eval_limit<N>/ (CIDEr is then not comparable
#               with the full split)
#   --nproc     processes (minigpt4-torchrun --standalone when > 1); captions and scores do not depend on it
#   --options   config overrides, e.g. run.batch_size_eval=16
# Ctrl-C / SIGTERM: exit 130 / 143, finished results kept. See docs/evaluation.md.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

usage() { sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-2}"; }
[ $# -ge 1 ] || usage 2
case $1 in -h|--help) usage 0;; esac
NPROC=1; HAS_CFG=""; ARGS=()
while [ $# -gt 0 ]; do
  case $1 in
    --nproc) NPROC=${2:?--nproc needs a value}; shift 2;;
    --cfg-path) HAS_CFG=1; ARGS+=("$1" "${2:?--cfg-path needs a value}"); shift 2;;
    -h|--help) usage 0;;
    *) ARGS+=("$1"); shift;;
  esac
done
[[ $NPROC =~ ^[1-9][0-9]*$ ]] || { echo "error: evaluate.sh: --nproc expects an integer >= 1, got '$NPROC'" >&2; exit 2; }
[ -n "$HAS_CFG" ] || ARGS+=(--cfg-path "$HERE/eval_configs/minigpt4_flickr_eval.yaml")
if [ "$NPROC" -gt 1 ]; then
  exec python -m minigpt4.cli torchrun --standalone --nproc-per-node "$NPROC" -m minigpt4.cli eval "${ARGS[@]}"
fi
exec python -m minigpt4.cli eval "${ARGS[@]}"
