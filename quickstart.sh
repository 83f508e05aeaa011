#!/usr/bin/env bash
# The whole workflow on CPU in a few minutes, on a synthetic Flickr30k sample:
#   1. a synthetic Flickr30k sample (real JPEGs + flickr_annotations_30k.csv)      [cached]
#   2. prepare_flickr30k.py -> per-split annotation files                          [cached]
#   3. stand-ins: a tiny stack pre-trained in two short stages (0: the ViT alone on
#      caption words; 1: the rest jointly with the MiniGPT-4 loss), saved in the
#      official formats (LLaMA HF dir, eva_vit_g.pth, blip2_pretrained.pth)         [cached]
#   4. stage 2, what this project does: a fresh llama_proj fine-tuned with
#      torchrun through train.py and train_configs/minigpt4_flickr_quickstart.yaml
#   5. evaluate.sh on the run: every epoch checkpoint + the untrained baseline
#   6. the summary table, sample captions next to the true ones, where summary.png and
#      the caption gallery report.html are,
#      and how often the captions name the right shape and colours
#
# Usage: bash quickstart.sh            (environment overrides, e.g. for a smaller run:
#        QS_IMAGES QS_SEED QS_VISION_STEPS QS_STAGE1_STEPS QS_NPROC QS_EPOCHS QS_ITERS QS_LIMIT QS_CACHE;
#        QS_PREPARE_ONLY=1 stops after step 3, with the sample and the stand-ins ready;
#        QS_TRAIN_OPTIONS: more stage-2 --options, e.g. QS_TRAIN_OPTIONS="model.lora.r=8" adds LoRA adapters;
#        QS_STANDIN_OPTIONS: more flags of python -m minigpt4.quickstart.standins, e.g. "--vision-lr 2e-3")
set -euo pipefail
cd "$(dirname "$0")"

CACHE=${QS_CACHE:-cache/quickstart}
IMAGES=${QS_IMAGES:-1875}
SEED=${QS_SEED:-0}
VISION_STEPS=${QS_VISION_STEPS:-1000}
STAGE1_STEPS=${QS_STAGE1_STEPS:-300}
NPROC=${QS_NPROC:-2}
EPOCHS=${QS_EPOCHS:-4}
ITERS=${QS_ITERS:-40}
LIMIT=${QS_LIMIT:-}
read -r -a TRAIN_OPTIONS <<< "${QS_TRAIN_OPTIONS:-}"
read -r -a STANDIN_OPTIONS <<< "${QS_STANDIN_OPTIONS:-}"
DATA="$CACHE/synthetic_flickr30k"
STANDINS="$CACHE/standins"
RUNS="$CACHE/runs"
start=$(date +%s)

echo "== 1-2. synthetic Flickr30k sample ($IMAGES images) and annotation files: $DATA"
if [ ! -f "$DATA/flickr30k_test.json" ] || [ "$(cat "$DATA/.images" 2>/dev/null)" != "$IMAGES seed $SEED" ]; then
  rm -rf "$DATA"
  python -m minigpt4.quickstart.synthetic --out "$DATA" --images "$IMAGES" --seed "$SEED" --image-size 112
  python prepare_flickr30k.py --root "$DATA"
  echo "$IMAGES seed $SEED" > "$DATA/.images"
else
  echo "   (reusing the prepared sample)"
fi

echo "== 3. stand-ins ($VISION_STEPS stage-0 + $STAGE1_STEPS stage-1 steps, cached): $STANDINS"
python -m minigpt4.quickstart.standins --ann "$DATA/flickr30k_train.json" --images "$DATA/flickr30k-images" \
  --out "$STANDINS" --vision-steps "$VISION_STEPS" --steps "$STAGE1_STEPS" --seed "$SEED" \
  ${STANDIN_OPTIONS[@]+"${STANDIN_OPTIONS[@]}"}
if [ -n "${QS_PREPARE_ONLY:-}" ]; then
  echo "QS_PREPARE_ONLY is set: the sample and the stand-ins are ready under $CACHE; stopping before training"
  exit 0
fi

echo "== 4. stage 2: fine-tune a fresh llama_proj with torchrun ($NPROC processes, $EPOCHS epochs)"
paths=(model.llama_model="$STANDINS/llama" model.vit_ckpt="$STANDINS/eva_vit_g.pth"
       model.q_former_model="$STANDINS/blip2_pretrained.pth" run.feature_cache="$CACHE/features")
data=(datasets.flickr30k_caption.build_info.ann_path="$DATA/flickr30k_train.json"
      datasets.flickr30k_caption.build_info.image_path="$DATA/flickr30k-images")
python -m minigpt4.cli torchrun --standalone --nproc-per-node "$NPROC" train.py --cfg-path train_configs/minigpt4_flickr_quickstart.yaml \
  --options "${paths[@]}" "${data[@]}" run.output_dir="$RUNS" run.max_epoch="$EPOCHS" run.iters_per_epoch="$ITERS" \
  ${TRAIN_OPTIONS[@]+"${TRAIN_OPTIONS[@]}"}
run_dir=$(ls -1d "$RUNS"/minigpt4_flickr_quickstart/*/ | sort | tail -n 1)
run_dir=${run_dir%/}

echo "== 5. evaluate every checkpoint of $run_dir"
eval_opts=("${paths[@]}" evaluation_datasets.flickr30k_eval.build_info.ann_path="$DATA/flickr30k_test.json"
           evaluation_datasets.flickr30k_eval.build_info.image_path="$DATA/flickr30k-images")
bash evaluate.sh "$run_dir" --cfg-path eval_configs/minigpt4_flickr_quickstart_eval.yaml --nproc "$NPROC" \
  ${LIMIT:+--limit "$LIMIT"} --options "${eval_opts[@]}"

echo "== 6. results"
python -m minigpt4.quickstart.report "$run_dir" --samples 3 --check
echo "quickstart finished in $(( $(date +%s) - start )) s"
