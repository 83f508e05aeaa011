#!/usr/bin/env bash
# Evaluate a training run: the baseline ("pretrained" = the eval config's model.ckpt, or the fresh
# projection when it is null) and every RUN_DIR/checkpoint_{epoch}.pth in epoch order, skipping those
# whose RUN_DIR/eval/<name>/metrics.json already exists; then write RUN_DIR/eval/summary.{csv,md,png}.
# All checkpoints are evaluated by one job (one model load, one METEOR).
#
# Usage: bash evaluate.sh RUN_DIR [--cfg-path EVAL_YAML] [--limit N] [--nproc N] [--options KEY=VALUE ...]
#   --cfg-path  evaluation config (default: eval_configs/minigpt4_flickr_eval.yaml next to this script);
#               its model section must describe the model the run trained (a warning lists differences
#               from RUN_DIR/config.yaml)
#   --limit     score only the first N images, into RUN_DIR/eval_limit<N>/ (CIDEr is then not comparable
#               with the full split)
#   --nproc     processes (torchrun --standalone when > 1); captions and scores do not depend on it
#   --options   config overrides passed to eval_scripts/eval_flickr30k.py (must come last)
# See docs/evaluation.md.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

usage() { sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-2}"; }
[ $# -ge 1 ] || usage 2
case $1 in -h|--help) usage 0;; esac
RUN_DIR=$1; shift
CFG="$HERE/eval_configs/minigpt4_flickr_eval.yaml"; LIMIT=""; NPROC=1; OPTIONS=()
while [ $# -gt 0 ]; do
  case $1 in
    --cfg-path) CFG=${2:?--cfg-path needs a value}; shift 2;;
    --limit) LIMIT=${2:?--limit needs a value}; shift 2;;
    --nproc) NPROC=${2:?--nproc needs a value}; shift 2;;
    --options) shift; OPTIONS=("$@"); break;;
    -h|--help) usage 0;;
    *) echo "evaluate.sh: unknown argument '$1'" >&2; usage 2;;
  esac
done
[ -d "$RUN_DIR" ] || { echo "evaluate.sh: run folder not found: $RUN_DIR" >&2; exit 2; }
[[ $NPROC =~ ^[1-9][0-9]*$ ]] || { echo "evaluate.sh: --nproc expects an integer >= 1, got '$NPROC'" >&2; exit 2; }
export PYTHONPATH="$HERE${PYTHONPATH:+:$PYTHONPATH}"

EVAL_DIR="$RUN_DIR/eval${LIMIT:+_limit$LIMIT}"  # a quick --limit check never replaces full-split results
todo=$(python -m minigpt4.evaluation.rundir "$RUN_DIR" --eval-dir "$EVAL_DIR" ${LIMIT:+--limit "$LIMIT"})
if [ -n "$todo" ]; then
  args=(--cfg-path "$CFG" --save-path "$EVAL_DIR")
  while IFS= read -r ckpt; do args+=(--ckpt "$ckpt"); done <<< "$todo"
  [ -z "$LIMIT" ] || args+=(--limit "$LIMIT")
  [ ! -f "$RUN_DIR/config.yaml" ] || args+=(--train-config "$RUN_DIR/config.yaml")
  [ ${#OPTIONS[@]} -eq 0 ] || args+=(--options "${OPTIONS[@]}")
  if [ "$NPROC" -gt 1 ]; then
    torchrun --standalone --nproc-per-node "$NPROC" "$HERE/eval_scripts/eval_flickr30k.py" "${args[@]}"
  else
    python "$HERE/eval_scripts/eval_flickr30k.py" "${args[@]}"
  fi
fi
python -m minigpt4.evaluation.summary "$RUN_DIR" --eval-dir "$EVAL_DIR"
