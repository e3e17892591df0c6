#!/usr/bin/env bash
# Run a search on GPUS processes of this node under torchrun, as mmdet's tools/dist_train.sh:
#   bash tools/dist_search.sh CONFIG GPUS [tools/search.py arguments]
# On several nodes, run it on every node with the same MASTER_ADDR and PORT:
#   NNODES=2 NODE_RANK=0 MASTER_ADDR=node0 bash tools/dist_search.sh CONFIG 8 --work-dir /shared/w
#   NNODES=2 NODE_RANK=1 MASTER_ADDR=node0 bash tools/dist_search.sh CONFIG 8 --work-dir /shared/w
# MAX_RESTARTS=N lets torchrun restart the workers N times after one dies; the search
# then resumes from its work directory (docs/distributed.md).

CONFIG=$1
GPUS=$2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}
MAX_RESTARTS=${MAX_RESTARTS:-0}
PYTHON=${PYTHON:-python}

PYTHONPATH="$(dirname "$0")/..":$PYTHONPATH \
"$PYTHON" -m torch.distributed.run \
    --nnodes="$NNODES" \
    --node-rank="$NODE_RANK" \
    --master-addr="$MASTER_ADDR" \
    --master-port="$PORT" \
    --nproc-per-node="$GPUS" \
    --max-restarts="$MAX_RESTARTS" \
    "$(dirname "$0")/search.py" \
    "$CONFIG" \
    --launcher pytorch "${@:3}"
