"""The shared pool survives a kill -9 of its training: the next attempt continues from the progress file."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from trials.config import DynamicsConfig
from trials.data.dataset import load_hdf5
from trials.models.dynamics import saved_fit_epoch
from trials.models.pool import load_or_train_pool, pool_key, trainings_in_progress
from trials.models.precision import EMULATE_VARIABLE, native_bfloat16

CFG = DynamicsConfig(pool_size=4, hidden=32, layers=2, max_epochs=60, patience=1000)
TRAIN = ("import sys, torch; torch.set_num_threads(1); from trials.config import DynamicsConfig; "
         "from trials.data.dataset import load_hdf5; from trials.models.pool import load_or_train_pool; "
         "from pathlib import Path; cfg = DynamicsConfig.model_validate_json(sys.argv[3]); "
         "load_or_train_pool(load_hdf5(sys.argv[1]), 0, cfg, Path(sys.argv[2]))")


def test_pool_training_killed_mid_way_continues_to_the_same_pool(hopper_random_file: Path, tmp_path: Path) -> None:
    ds = load_hdf5(hopper_random_file)
    key = pool_key(ds.content_hash(), 0, CFG)
    killed_dir = tmp_path / "killed"
    progress = killed_dir / f".{key}.progress.pt"
    proc = subprocess.Popen([sys.executable, "-c", TRAIN, str(hopper_random_file), str(killed_dir),
                             CFG.model_dump_json()])
    deadline = time.time() + 300
    while not progress.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.kill()  # SIGKILL, mid-training
    proc.wait()
    saved = torch.load(progress, weights_only=False)
    saved_epoch, earlier_seconds = saved["epoch"], saved["seconds"]
    assert 0 < saved_epoch < 60 and earlier_seconds > 0 and not (killed_dir / f"{key}.pt").exists()
    assert saved_fit_epoch(progress) == saved_epoch  # what `mbrl-tune status` shows of a study's pool
    assert trainings_in_progress(killed_dir) == {key: progress}
    cut = tmp_path / "cut.progress.pt"
    cut.write_bytes(progress.read_bytes()[:1000])
    assert saved_fit_epoch(cut) is None and saved_fit_epoch(tmp_path / "absent.pt") is None

    resumed, info = load_or_train_pool(ds, 0, CFG, killed_dir)  # the same call, as a restarted trial makes it
    assert info.trained_here and info.epochs == 60 and not progress.exists()
    # The pool's training time counts the killed run's seconds up to its progress, not only this run's.
    assert info.train_seconds > earlier_seconds
    assert float(torch.load(killed_dir / f"{key}.pt", weights_only=False)["train_seconds"]) == info.train_seconds
    straight, _ = load_or_train_pool(ds, 0, CFG, tmp_path / "straight")
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


SMALL = DynamicsConfig(pool_size=3, hidden=16, layers=2, max_epochs=6, patience=1000)


def _damage(path: Path, how: str, other: Path) -> None:
    data = path.read_bytes()
    if how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif how == "zeroed":
        path.write_bytes(bytes(len(data)))
    else:  # another file of the same kind: a pool of another seed under this pool's name
        path.write_bytes(other.read_bytes())


def test_a_damaged_pool_is_trained_again_with_one_line(hopper_random_file: Path, tmp_path: Path,
                                                       capsys) -> None:
    """A pool is derived (dataset, seed, config): a truncated, zeroed or swapped file is trained again, the
    same pool as before, and one line names the file; never a traceback."""
    ds = load_hdf5(hopper_random_file)
    first, info = load_or_train_pool(ds, 0, SMALL, tmp_path)
    _, other = load_or_train_pool(ds, 1, SMALL, tmp_path)
    for how in ("truncated", "zeroed", "swapped"):
        _damage(info.path, how, other.path)
        capsys.readouterr()
        again, again_info = load_or_train_pool(ds, 0, SMALL, tmp_path)
        line = capsys.readouterr().out
        assert again_info.trained_here and f"pool {info.path}: " in line and "training it again" in line, (how, line)
        assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), again.state_dict().values(),
                                                     strict=True)), how
    loaded, loaded_info = load_or_train_pool(ds, 0, SMALL, tmp_path)
    assert not loaded_info.trained_here and "training it again" not in capsys.readouterr().out


def test_a_damaged_or_swapped_training_progress_starts_over_with_one_line(hopper_random_file: Path,
                                                                         tmp_path: Path, capsys) -> None:
    ds = load_hdf5(hopper_random_file)
    straight, _ = load_or_train_pool(ds, 0, SMALL, tmp_path / "straight")
    key = pool_key(ds.content_hash(), 0, SMALL)
    for how, content in (("truncated", b"PK\x03\x04 cut"), ("another pool's", None)):
        folder = tmp_path / how
        folder.mkdir()
        progress = folder / f".{key}.progress.pt"
        if content is None:  # the progress of another pool, renamed to this one's
            torch.save({"epoch": 3, "file": ".pool-other.progress.pt"}, progress)
        else:
            progress.write_bytes(content)
        capsys.readouterr()
        pool, info = load_or_train_pool(ds, 0, SMALL, folder)
        line = capsys.readouterr().out
        assert f"pool training progress {progress}: " in line and "the training starts over" in line, line
        assert info.epochs == 6 and all(torch.equal(a, b) for a, b in zip(straight.state_dict().values(),
                                                                           pool.state_dict().values(), strict=True))


def test_the_pool_precision_is_part_of_the_key_and_float32_keeps_the_old_keys() -> None:
    """``dynamics.precision``: validated, in the key when bfloat16; a float32 pool's key is the one it had
    before the field existed (recorded from the code of 2026-12-05 at 5251ee6), so stored pools stay valid."""
    assert pool_key("0123456789abcdef", 3, DynamicsConfig()) == "pool-0123456789abcdef-s3-4319cba3ad61"
    assert pool_key("0123456789abcdef", 3, DynamicsConfig(precision="bfloat16")) != pool_key(
        "0123456789abcdef", 3, DynamicsConfig())
    with pytest.raises(ValueError, match="precision"):
        DynamicsConfig(precision="float16")


@pytest.mark.parametrize("path", ["native", "emulate"])
def test_a_bfloat16_pool_trains_loads_and_ranks_its_members_in_float32(
        path: str, hopper_random_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Pool training in bfloat16 (autocast where the CPU has it; forced to the float32-arithmetic path with
    ``MBRL_TUNE_BFLOAT16=emulate``): it trains, is stored under its own key, loads back as the same weights,
    and its holdout errors (float32) are close to a float32 pool's on the same seed."""
    if path == "emulate":
        monkeypatch.setenv(EMULATE_VARIABLE, "emulate")
    elif not native_bfloat16(torch.device("cpu")):
        pytest.skip("this CPU has no native bfloat16 (AVX512-BF16 or AMX)")
    ds = load_hdf5(hopper_random_file)
    small = DynamicsConfig(pool_size=3, hidden=32, layers=2, max_epochs=8, patience=1000)
    pools = {}
    for precision in ("float32", "bfloat16"):
        cfg = small.model_copy(update={"precision": precision})
        pool, info = load_or_train_pool(ds, 0, cfg, tmp_path)
        again, info2 = load_or_train_pool(ds, 0, cfg, tmp_path)
        assert info.trained_here and not info2.trained_here and info.key == info2.key
        assert all(torch.equal(a, b) for a, b in zip(pool.state_dict().values(), again.state_dict().values(),
                                                     strict=True))
        assert all(v.dtype != torch.bfloat16 for v in pool.state_dict().values())  # float32 master weights
        pools[precision] = info
    assert pools["float32"].key != pools["bfloat16"].key
    f32, bf16 = np.array(pools["float32"].holdout_mse), np.array(pools["bfloat16"].holdout_mse)
    assert np.all(np.isfinite(bf16)) and np.allclose(bf16, f32, rtol=0.25), (f32, bf16)
