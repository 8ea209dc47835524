#!/usr/bin/env bash
# The evidence at ten times the search budget (issue 24), one confirmation after the other on this
# machine's two cores. Run from the repository root of a clone that holds the evidence study in
# runs/studies/evidence (docs/results.md says how); the same command continues where it stopped (each
# confirm resumes its unfinished runs from their checkpoints and never repeats a finished one).
#   setsid nohup docs/results/confirm_chain.sh > runs/confirm-$(date +%m%d-%H%M).log 2>&1 &
set -euo pipefail
cd "$(dirname "$0")/../.."
S=runs/studies/evidence/sweeps
confirm() { echo "== $(date -u +%FT%TZ) mbrl-tune confirm $*"; .venv/bin/mbrl-tune confirm "$@"; }
confirm "$S/walker2d-random-100k" --top-k 2 --seeds 3 --set epochs=200
confirm "$S/hopper-medium-100k" --top-k 2 --seeds 3 --set epochs=200
confirm "$S/walker2d-random-100k" --top-k all --set epochs=200
confirm "$S/halfcheetah-random-100k" --top-k 2 --seeds 3 --set epochs=200
echo "== $(date -u +%FT%TZ) chain complete"
