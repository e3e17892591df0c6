#!/usr/bin/env bash
# Run a search as one Slurm task per GPU, as mmdet's tools/slurm_train.sh:
#   bash tools/slurm_search.sh PARTITION JOB_NAME CONFIG WORK_DIR [tools/search.py arguments]
# GPUS (total, default 8), GPUS_PER_NODE (8), CPUS_PER_TASK (5) and SRUN_ARGS set the job's
# shape. WORK_DIR must be on a file system every node shares (the search checks it).
# --kill-on-bad-exit=1: one task that fails ends them all, so no rank waits for a dead peer.

set -x

PARTITION=$1
JOB_NAME=$2
CONFIG=$3
WORK_DIR=$4
GPUS=${GPUS:-8}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
CPUS_PER_TASK=${CPUS_PER_TASK:-5}
SRUN_ARGS=${SRUN_ARGS:-""}
PYTHON=${PYTHON:-python}

PYTHONPATH="$(dirname "$0")/..":$PYTHONPATH \
srun -p "${PARTITION}" \
    --job-name="${JOB_NAME}" \
    --gres=gpu:"${GPUS_PER_NODE}" \
    --ntasks="${GPUS}" \
    --ntasks-per-node="${GPUS_PER_NODE}" \
    --cpus-per-task="${CPUS_PER_TASK}" \
    --kill-on-bad-exit=1 \
    ${SRUN_ARGS} \
    "$PYTHON" -u "$(dirname "$0")/search.py" "${CONFIG}" --work-dir="${WORK_DIR}" \
    --launcher slurm "${@:5}"
