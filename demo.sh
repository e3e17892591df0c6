#!/usr/bin/env bash
# Set everything up, generate the toy COCO set and run a real DetNAS search on it:
# supernet training inside RetinaNet, then evolutionary search scored by COCO mAP.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
bash setup.sh
python=.venv/bin/python
work_dir="${1:-work_dirs/detnas_toy}"
$python tools/make_toy_data.py coco data/toy_coco_outline --stroke 3 --num-train 128 --num-heldout 64
# --resume continues an interrupted demo, or starts a new search in an empty work dir.
$python tools/search.py configs/detnas/detnas_retinanet_toy.py --work-dir "$work_dir" --resume
