"""Export of a sweep's best configurations as files ``mbrl-tune train --config`` runs unchanged."""

from __future__ import annotations

from pathlib import Path

from trials.data.dataset import load_dataset
from trials.files import atomic_write_text, framed_yaml
from tuner.errors import UsageError
from tuner.store.records import read_trials
from tuner.store.spec import MEASURE_FIELDS, SweepSpec
from tuner.store.status import best_trials

#: What an exported configuration's framing lines call it (``trials.files.framed_yaml``).
EXPORT_KIND = "exported configuration"


def export_best(sweep_dir: Path, out: Path, top: int, dataset: str | None = None) -> list[Path]:
    """Write the ``top`` best configurations of one dataset's experiment: rank 1 to ``out``, rank k to
    ``<stem>-k<suffix>``. Each file holds ``config`` (the full trial config) and ``sweep`` (provenance)."""
    spec = SweepSpec.load(sweep_dir)
    if dataset is None:
        chosen = spec.datasets[0]
    else:
        matches = [d for d in spec.datasets if d == str(Path(dataset).resolve()) or Path(d).stem == dataset]
        if not matches:
            raise UsageError(f"--dataset {dataset}: not in this sweep; it has "
                             f"{', '.join(Path(d).stem for d in spec.datasets)}")
        chosen = matches[0]
    if spec.dataset_hashes:  # the configs name the file: it must still hold the data they were found on
        spec.verify_dataset(chosen, load_dataset(chosen).content_hash())
    best = best_trials(read_trials(spec.root / spec.experiment_name(chosen)), top, spec.metric)
    if not best:
        raise UsageError(f"{sweep_dir}: no completed trial to export yet")
    written = []
    for rank, record in enumerate(best, start=1):
        path = out if rank == 1 else out.with_name(f"{out.stem}-{rank}{out.suffix}")
        doc = {
            "sweep": {"name": spec.name, "trial": record.trial_id, "rank": rank,
                      "score": record.last["score"], "status": record.status,
                      **({"objective": spec.objective, spec.metric: record.last[spec.metric]}
                         if spec.objective != "simulator" else {}),
                      "seed_scores": {s: record.last.get(f"score_seed{s}") for s in record.seeds},
                      "searched": record.overrides},
            # The dataset and pool folder where the sweep is now (a moved sweep's trials stored the old ones).
            # Without the offline estimates (MEASURE_FIELDS): a measurement of the sweep, not part of the setting.
            "config": {k: v for k, v in record.trial_config().with_overrides(
                {"dataset": chosen, "pool_dir": str(spec.pool_dir)}).to_dict().items() if k not in MEASURE_FIELDS},
        }
        atomic_write_text(path, framed_yaml(doc, EXPORT_KIND))  # a copy cut short is refused by `train`
        written.append(path)
    return written
