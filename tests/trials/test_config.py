"""The trial config: round trip, overrides, and one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from trials.config import ConfigError, TrialConfig, parse_overrides


def test_round_trip_yaml_and_json(tmp_path: Path) -> None:
    cfg = TrialConfig(dataset="d.hdf5", penalty="ll_var", lam=0.3, rollout={"horizon": 7})
    for name in ("c.yaml", "c.json"):
        assert TrialConfig.load(cfg.save(tmp_path / name)) == cfg


def test_overrides_are_dotted_and_typed(tmp_path: Path) -> None:
    path = TrialConfig(dataset="d.hdf5").save(tmp_path / "c.yaml")
    cfg = TrialConfig.load(path, parse_overrides(["rollout.horizon=12", "penalty=loo_kl", "lam=0.5",
                                                  "sac.auto_alpha=false"]))
    assert (cfg.rollout.horizon, cfg.penalty, cfg.lam, cfg.sac.auto_alpha) == (12, "loo_kl", 0.5, False)


def test_defaults_are_mopo_published_settings() -> None:
    cfg = TrialConfig(dataset="d.hdf5")
    assert (cfg.num_models, cfg.num_elites, cfg.real_ratio, cfg.rollout.batch_size, cfg.rollout.retain_epochs,
            cfg.steps_per_epoch, cfg.eval_episodes) == (7, 5, 0.05, 50_000, 5, 1000, 10)


@pytest.mark.parametrize("overrides, message", [
    (["penalty=bogus"], "field 'penalty': value 'bogus': Input should be 'none', 'max_aleatoric'"),
    (["rollout.horizon=0"], "field 'rollout.horizon': value 0: Input should be greater than or equal to 1"),
    (["rollout.precision=float16"], "value 'float16': Input should be 'float32' or 'bfloat16'"),
    (["lam=-1"], "field 'lam': value -1: Input should be greater than or equal to 0"),
    (["rollout.horizn=3"], "unknown field 'rollout.horizn'"),
    (["num_elites=9"], "num_elites=9 exceeds num_models=7"),
    (["num_models=1", "num_elites=1", "penalty=loo_kl"], "penalty 'loo_kl' needs num_models >= 2"),
    (["num_models=20"], "num_models=20 exceeds dynamics.pool_size=7"),
])
def test_invalid_values_are_one_line(tmp_path: Path, overrides: list[str], message: str) -> None:
    path = TrialConfig(dataset="d.hdf5").save(tmp_path / "c.yaml")
    with pytest.raises(ConfigError) as err:
        TrialConfig.load(path, parse_overrides(overrides))
    assert message in str(err.value) and "\n" not in str(err.value)
    assert str(err.value).startswith(str(path))


def test_bad_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        TrialConfig.load(tmp_path / "none.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        TrialConfig.load(bad)
    bad.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        TrialConfig.load(bad)
    with pytest.raises(ConfigError, match="expected key=value"):
        parse_overrides(["horizon"])


def test_every_cut_of_a_saved_trial_config_is_refused_and_the_whole_one_reads(tmp_path: Path) -> None:
    # YAML cut short often parses, as another valid config (a list or a number left short, a key lost): a file
    # this tool writes opens and closes with a comment line, and one that opens so and does not close is refused.
    cfg = TrialConfig(dataset="d.hdf5", penalty="ensemble_var", lam=20.28, real_ratio=0.82)
    path = cfg.save(tmp_path / "config.yaml")
    assert TrialConfig.load(path) == cfg
    whole = path.read_bytes()
    named = 0
    for cut in range(len(whole) - 1):  # every cut short of the closing line's last character
        path.write_bytes(whole[:cut])
        with pytest.raises(ConfigError) as refused:
            TrialConfig.load(path)
        named += "cut short" in str(refused.value)
    first = len(whole.split(b"\n", 1)[0]) + 1
    assert named == len(whole) - 1 - first, "every cut after the opening line is named as cut short"
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(ConfigError, match=r"config.yaml: trial config cut short \(no closing line"):
        TrialConfig.load(path)
    # Harmless changes read: the final newline gone, blanks after the closing line, a byte-order mark.
    for same in (whole[:-1], whole + b"\n\n", whole[:-1] + b"  \n", b"\xef\xbb\xbf" + whole):
        path.write_bytes(same)
        assert TrialConfig.load(path) == cfg
    path.write_bytes(b"\xef\xbb\xbf" + whole[: len(whole) // 2])  # the mark does not hide a cut
    with pytest.raises(ConfigError, match="cut short"):
        TrialConfig.load(path)
    path.write_bytes(whole + b"seed: 3\n")  # an edit below the closing line is named as such
    with pytest.raises(ConfigError, match=r"trial config has text after its closing line '# end of trial config'; "
                                          r"put edits above that line") as edited:
        TrialConfig.load(path)
    assert "\n" not in str(edited.value)
    path.write_text(whole.decode().split("\n", 1)[1])  # hand-written (no opening line): read as plain YAML
    assert TrialConfig.load(path) == cfg
