"""Saved sweeps keep working after the package layout moved (``tuner.aliases``): Ray Tune pickled the
committed evidence study (``docs/results/evidence-state.tar``, saved 2026-12-02..04) with the module paths
of its day. Every name it holds must unpickle, its sweep must restore and run to completion with Tune, and
``status`` and ``report`` must read it, each in a fresh process as a user's would be."""

from __future__ import annotations

import io
import pickle
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
STATE = ROOT / "docs" / "results" / "evidence-state.tar"
PACKAGES = ("tuner", "trials", "search_spaces", "analysis")
#: What the evidence state names (found by unpickling every pickle in it with the code of its day).
PICKLED = {
    "search_spaces.space.ChoiceParameter", "search_spaces.space.Constraint", "search_spaces.space.RangeParameter",
    "search_spaces.space.SearchSpace", "tuner.ax_searcher.AxSearcher", "tuner.searcher.AxSearcher",
    "tuner.compare.CompareArm", "tuner.compare.CompareDataset", "tuner.compare.run_key",
    "tuner.records.trial_dirname", "tuner.recovery.StateBackup", "tuner.storage.WholeFileLocalHandler",
    "tuner.study.StudyEta", "tuner.sweep.EarlyStopMarker", "tuner.sweep.ProgressPrinter",
}
SWEEP = "evidence/sweeps/walker2d-random-100k"

pytestmark = pytest.mark.skipif(not STATE.is_file(), reason="the evidence state is not in this checkout")


class _Recording(pickle.Unpickler):
    """An unpickler that notes each class or function path of this project it resolves."""

    def __init__(self, data: bytes, seen: set[str]) -> None:
        super().__init__(io.BytesIO(data))
        self.seen = seen

    def find_class(self, module: str, name: str) -> object:
        found = super().find_class(module, name)
        if module.split(".")[0] in PACKAGES:
            self.seen.add(f"{module}.{name}")
            assert found.__module__.split(".")[0] in PACKAGES  # the object itself, wherever it lives now
        return found


def test_every_name_the_evidence_state_pickled_still_resolves() -> None:
    import tuner  # noqa: F401, PLC0415  (installs the finder, as any import of the package does)

    seen: set[str] = set()
    loaded = 0
    with tarfile.open(STATE) as tar:
        for member in tar.getmembers():
            if member.isfile() and member.name.endswith(".pkl"):
                data = tar.extractfile(member).read()  # type: ignore[union-attr]
                if any(p.encode() + b"." in data for p in PACKAGES):
                    _Recording(data, seen).load()
                    loaded += 1
    assert loaded == 12  # the Tune states (tuner.pkl) and searcher states that name our code
    assert seen == PICKLED


@pytest.fixture(scope="module")
def evidence(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The evidence study unpacked (the walker2d sweep, its comparison and the study's records)."""
    root = tmp_path_factory.mktemp("evidence")
    with tarfile.open(STATE) as tar:
        wanted = [m for m in tar.getmembers() if m.name.startswith((SWEEP, "evidence/study.yaml",
                                                                      "evidence/stages.json"))]
        tar.extractall(root, members=wanted, filter="data")
    return root


RESTORE = """
import sys
import ray
from ray import tune
from trials.run.trainable import tune_trainable
from tuner.faults.storage import whole_file_fs
ray.init(include_dashboard=False, log_to_driver=False, num_cpus=1)
tuner = tune.Tuner.restore(sys.argv[1], trainable=tune_trainable, resume_errored=True,
                           storage_filesystem=whole_file_fs())
searcher = type(tuner._local_tuner._tune_config.search_alg).__module__
results = tuner.fit()
print(searcher, len(results), results.num_errors, round(max(r.metrics["score"] for r in results), 2))
"""


def test_the_evidence_sweep_restores_and_runs_to_completion(evidence: Path) -> None:
    """Tune restores the experiment (its searcher, callbacks and storage handler unpickled by their old
    names) and ``fit`` ends it at its 16 trials, without running one again."""
    experiment = evidence / SWEEP / "walker2d-random-100k"
    out = subprocess.run([sys.executable, "-c", RESTORE, str(experiment)], capture_output=True, text=True,
                         timeout=600, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "tuner.search.ax 16 0 10.35"
    assert len(list(experiment.glob("searcher-state-*.pkl"))) == 3  # saved again, under the new names


def test_status_and_report_read_the_evidence_state(evidence: Path, tmp_path: Path) -> None:
    cli = [sys.executable, "-m", "tuner.cli.main"]
    status = subprocess.run([*cli, "status", str(evidence / SWEEP)], capture_output=True, text=True, timeout=300)
    assert status.returncode == 0, status.stderr
    assert "16/16 trials complete" in status.stdout and "best: trial-0011-9b40e588 score 10.3" in status.stdout
    study = subprocess.run([*cli, "status", str(evidence / "evidence")], capture_output=True, text=True, timeout=300)
    assert study.returncode == 0, study.stderr
    assert "walker2d-random-100k" in study.stdout
    report = subprocess.run([*cli, "report", str(evidence / SWEEP), "--out", str(tmp_path / "report")],
                            capture_output=True, text=True, timeout=600)
    assert report.returncode == 0, report.stderr[-2000:]
    text = (tmp_path / "report" / "report.md").read_text()
    assert "walker2d-random-100k" in text and "10.3" in text
