"""Every stored artefact verified on read: a fault matrix over the artefact kinds a study writes (derived
ones rebuilt with one line, primary ones refused in one line), each damaged three ways (truncated, zeroed,
replaced by another file of the same kind) in a copy of one finished tiny study, then read back by the
command that reads it: no traceback, and the finished results unchanged."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.tuner.test_study import CLI, ENV, run_until, write_study
from trials.files import DamagedFileError, read_json, read_torch
from tuner.store.records import read_trials

STEM = "hopper-random-2k"
SWEEP = f"out/tiny/sweeps/{STEM}"
CONFIRM_ARGS = ["confirm", SWEEP, "--top-k", "1", "--seeds", "1", "--set", "epochs=4", "--no-run"]


@pytest.fixture(scope="module")
def study_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One finished tiny study (sweep, comparison, calibration, confirmation, report), made by the real CLI;
    each case damages a copy of it."""
    home = tmp_path_factory.mktemp("study")
    study = write_study(home, trials=3, init_trials=2, compare={"seeds": 1},
                        confirm={"top_k": 1, "seeds": 1, "set": {"epochs": 4}})
    code, out = run_until(study, None)
    assert code == 0, out[-3000:]
    return home


def _truncate(path: Path, other: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _zero(path: Path, other: Path) -> None:
    path.write_bytes(bytes(max(path.stat().st_size, 64)))


def _swap(path: Path, other: Path) -> None:
    path.write_bytes(other.read_bytes())


DAMAGES: dict[str, Callable[[Path, Path], None]] = {"truncated": _truncate, "zeroed": _zero, "swapped": _swap}


@dataclass(frozen=True)
class Kind:
    """One artefact kind: where it is in the study, a file of the same kind to swap in, the command that
    reads it, and what that command must say (``rebuilt``: derived, exit 0; ``refused``: exit 2)."""

    file: str
    other: str
    command: tuple[str, ...]
    says: str
    refused: bool = False


KINDS: dict[str, Kind] = {
    "dynamics pool": Kind(f"{SWEEP}/pools/pool-*-s0-*.pt", f"{SWEEP}/pools/pool-*-s1-*.pt",
                          ("train", "--config", "best.yaml", "--set", "epochs=1", "--quiet", "--out", "t"),
                          "training it again"),
    "dataset given by path": Kind(f"data/{STEM}.hdf5", "other.hdf5", ("compare", SWEEP, "--seeds", "1", "--no-run"),
                                  f"{STEM}.hdf5", refused=True),
    "comparison plan": Kind(f"{SWEEP}/compare/mopo_official/plan.json", f"{SWEEP}/confirm/mopo_official/plan.json",
                            ("report", SWEEP, "--out", "rep"), "damaged plan"),
    "confirmation plan": Kind(f"{SWEEP}/confirm/mopo_official/plan.json", f"{SWEEP}/compare/mopo_official/plan.json",
                              ("status", SWEEP), "damaged plan"),
    "comparison table": Kind(f"{SWEEP}/compare/mopo_official/comparison.json",
                             f"{SWEEP}/confirm/mopo_official/confirmation.json",
                             ("compare", SWEEP, "--seeds", "1", "--no-run"), "rebuilt from the runs"),
    "confirmation table": Kind(f"{SWEEP}/confirm/mopo_official/confirmation.json",
                               f"{SWEEP}/compare/mopo_official/comparison.json", tuple(CONFIRM_ARGS),
                               "rebuilt from the runs"),
    "calibration table": Kind(f"{SWEEP}/calibration/calibration.json", f"{SWEEP}/compare/mopo_official/plan.json",
                              ("report", SWEEP, "--out", "rep"), "calibration"),
    "study stages": Kind("out/tiny/stages.json", "out/tiny/study.yaml", ("status", "out/tiny"), "stages.json"),
    "study record": Kind("out/tiny/study.yaml", f"{SWEEP}/calibration/calibration.json", ("status", "out/tiny"),
                         "study.yaml", refused=True),
    "trial config": Kind(f"{SWEEP}/{STEM}/trial-0001-*/params.json", f"{SWEEP}/{STEM}/trial-0002-*/params.json",
                         ("status", SWEEP), "3/3 trials complete"),
    "sweep spec": Kind(f"{SWEEP}/sweep.json", f"{SWEEP}/compare/mopo_official/plan.json", ("status", SWEEP),
                       "sweep.json", refused=True),
}


def _all(home: Path, pattern: str) -> list[Path]:
    found = sorted(home.glob(pattern))
    assert found, pattern
    return found


def _rows(path: Path) -> object:
    """A stored table's rows (a comparison's JSON also names its sweep folder, which a copy changes)."""
    data = json.loads(path.read_text())
    return data["rows"] if isinstance(data, dict) else data


def _finished(home: Path) -> dict[str, float]:
    """Every finished sweep trial and comparison/confirm run of the study, by folder: its final score."""
    runs = [home / SWEEP / STEM, *sorted((home / SWEEP).glob("c*/mopo_official/*/run-*"))]
    return {str(r.path.relative_to(home)): r.last["score"] for run in runs for r in read_trials(run)
            if r.status == "finished"}


@pytest.mark.parametrize("damage", list(DAMAGES))
@pytest.mark.parametrize("kind", list(KINDS))
def test_a_damaged_artefact_is_rebuilt_or_refused_in_one_line(kind: str, damage: str, study_home: Path,
                                                               tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               cli: Callable[..., subprocess.CompletedProcess]
                                                               ) -> None:
    spec = KINDS[kind]
    home = tmp_path / "home"
    shutil.copytree(study_home, home, ignore=shutil.ignore_patterns("events.*", ".study.lock"))
    monkeypatch.chdir(home)
    tables = {p: p.read_text() for p in home.glob(f"{SWEEP}/c*/mopo_official/c*.json")}
    before = _finished(home)
    if kind == "dynamics pool":
        assert cli("export", SWEEP, "--out", "best.yaml").returncode == 0
    if kind == "dataset given by path":  # another dataset of the same kind: same env and size, another seed
        assert cli("datasets", "generate", "--env", "hopper", "--level", "random", "--size", "2000", "--seed", "9",
                   "--out", "other.hdf5").returncode == 0
    targets = _all(home, spec.file)  # every pool of seed 0 (the baseline's pool is a larger one)
    for target in targets:
        DAMAGES[damage](target, _all(home, spec.other)[0])
    target = targets[0]

    done = cli(*spec.command)
    text = done.stdout + done.stderr
    assert "Traceback" not in text, text[-3000:]
    if spec.refused:
        assert done.returncode == 2 and spec.says in done.stderr and done.stderr.count("\n") == 1, (done.stdout,
                                                                                                  done.stderr)
    else:
        assert done.returncode == 0, (done.stdout[-2000:], done.stderr[-2000:])
        assert spec.says in text, text[-3000:]
    assert _finished(home) == before, "finished results are unchanged"
    originals = {p: _rows(study_home / p.relative_to(home)) for p in tables}
    for path in tables:  # tables rebuilt from the runs say what they said
        if path != target and path.is_file():
            assert _rows(path) == originals[path], path
    if kind in ("comparison table", "confirmation table"):
        assert _rows(target) == originals[target], "rebuilt as it was"


def test_verified_readers_name_the_file_and_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "x.pt"
    path.write_bytes(b"PK\x03\x04 not a whole zip")
    with pytest.raises(DamagedFileError, match=r"x\.pt: behaviour policy unreadable \(.*\); delete it"):
        read_torch(path, "behaviour policy", "delete it", weights_only=True)
    path.write_bytes(b"\xff\xfe\x00binary")
    with pytest.raises(DamagedFileError, match=r"x\.pt: plan unreadable"):
        read_json(path, "plan", "run it again")


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_a_damaged_behaviour_policy_is_refused_in_one_line(damage: str, tmp_path: Path,
                                                           cli: Callable[..., subprocess.CompletedProcess]) -> None:
    """A behaviour policy is primary (45 minutes of training, and not portable): refused, not retrained."""
    committed = Path(__file__).resolve().parents[2] / "docs/results/behaviour"
    policy = next(committed.glob("hopper-seed0-medium-*.pt"))
    shutil.copy(policy, tmp_path / policy.name)
    other = tmp_path / "other.pt"
    other.write_bytes(json.dumps({"not": "a policy"}).encode())
    DAMAGES[damage](tmp_path / policy.name, other)
    done = cli("datasets", "generate", "--env", "hopper", "--level", "medium", "--size", "50", "--seed", "0",
               "--policy-dir", str(tmp_path), "--out", str(tmp_path / "d.hdf5"))
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
    assert f"{tmp_path / policy.name}: " in done.stderr and "train the policy again" in done.stderr, done.stderr
    assert not (tmp_path / "d.hdf5").exists()


@pytest.fixture
def full_copy(study_home: Path, mount_tmpfs: Callable[[str], Path],
              fill: Callable[[Path], Path]) -> Iterator[tuple[Path, Path]]:
    """The finished study copied onto a real 48 MiB filesystem (tmpfs), the best configuration exported
    beside it; yields (home, filler) once the filesystem is full."""
    fs = mount_tmpfs("48m")
    home = fs / "home"
    shutil.copytree(study_home, home, ignore=shutil.ignore_patterns("events.*", ".study.lock"))
    done = subprocess.run([*CLI, "export", SWEEP, "--out", "best.yaml"], cwd=home, capture_output=True, text=True,
                          env=ENV, timeout=300)
    assert done.returncode == 0, done.stderr
    yield home, fill(fs)


def _disk_full_line(done: subprocess.CompletedProcess, command: str) -> None:
    assert done.returncode == 1, (done.stdout[-2000:], done.stderr[-2000:])
    last = done.stderr.strip().splitlines()[-1]
    assert "is full (no space left on device)" in last and command in last, done.stderr[-2000:]
    assert "Traceback" not in done.stderr + done.stdout, done.stderr[-3000:]


@pytest.mark.parametrize("phase", ["pool training", "report"])
def test_a_full_filesystem_is_named_in_one_line(phase: str, full_copy: tuple[Path, Path], monkeypatch,
                                                cli: Callable[..., subprocess.CompletedProcess]) -> None:
    home, filler = full_copy
    monkeypatch.chdir(home)
    before = _finished(home)
    argv = {"pool training": ("train", "--config", "best.yaml", "--set", "seed=5", "--quiet", "--out", "t"),
            "report": ("report", SWEEP, "--out", "rep")}[phase]
    _disk_full_line(cli(*argv), f"mbrl-tune {argv[0]}")
    assert _finished(home) == before
    filler.unlink()
    assert cli(*argv).returncode == 0, "the same command completes once space is freed"


def test_confirm_on_a_full_filesystem_stops_in_one_line_then_completes(full_copy: tuple[Path, Path]) -> None:
    """A confirmation whose runs cannot write their checkpoints: one line naming the full filesystem and the
    command that continues, exit 1; nothing finished is lost, and the same command completes later."""
    home, filler = full_copy
    before = _finished(home)
    argv = [*CLI, "confirm", SWEEP, "--top-k", "1", "--seeds", "1", "--set", "epochs=6"]
    done = subprocess.run(argv, cwd=home, capture_output=True, text=True, env=ENV, timeout=900, start_new_session=True)
    _disk_full_line(done, "confirm")
    assert all(_finished(home).get(k) == v for k, v in before.items())
    filler.unlink()
    done = subprocess.run(argv, cwd=home, capture_output=True, text=True, env=ENV, timeout=900, start_new_session=True)
    assert done.returncode == 0, done.stderr[-3000:]
    table = json.loads((home / SWEEP / "confirm/mopo_official/confirmation.json").read_text())[0]
    assert table["updates"]["confirm"] == 6 * 40 and all(a["confirm"]["n"] == 1 for a in table["arms"])
