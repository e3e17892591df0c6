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
# What the figures back (docs/efficacy.md), said plainly: the search's mAP rising is
# not by itself evidence that it beats random backbones.
cat <<MSG

What this demo shows: a real DetNAS search (supernet, evolution, COCO mAP) ran end to end.
It does not show that its pick beats random backbones, and on this toy that is not shown
(docs/efficacy.md): in one measured run the pick trained alone scored 0.315 bbox mAP, above
all 8 random backbones of the space trained the same way (median 0.255), but trained with two
more seeds it scored 0.212 and 0.338: the standalone training's noise is as large as the gap.
To check this run's pick: $python tools/diagnose.py configs/detnas/detnas_retinanet_toy.py $work_dir --random 8 --pick-seeds 3
MSG
