#!/usr/bin/env bash
# Keep the confirmation's results across machines that do not keep /work: its run folders (results,
# Tune state, run grids, plans, tables) without checkpoints, event files or locks, as a small tar beside
# the study state. Run from the root of the clone that runs docs/results/confirm_chain.sh; it writes
# docs/results/confirm-state.tar there (copy it into the repository and commit it). A new checkout unpacks
# docs/results/evidence-state.tar, then this tar, into runs/studies/: finished runs are read, runs that
# were in progress start over (their checkpoints are not kept: 45-90 MB each).
set -euo pipefail
cd "$(dirname "$0")/../.."
folders=$(cd runs/studies && ls -d evidence/sweeps/*/confirm)
tar cf docs/results/confirm-state.tar -C runs/studies --exclude='checkpoint_*' --exclude='events.out.*' \
    --exclude='*.lock' $folders
ls -la docs/results/confirm-state.tar
