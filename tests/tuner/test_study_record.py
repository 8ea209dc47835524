"""The study record (``study.yaml`` in a study folder) is closed by its last line, so a copy cut short is
refused however short: a truncated YAML file can parse as a different, valid study (the case that made
the fault matrix's truncated-record check depend on the length of the temporary folder's path)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from trials.files import DamagedFileError
from tuner.store.study_folder import STUDY_FILE, read_study_record, stored_study, write_study_record
from tuner.store.study_spec import StudyError, StudySpec
from tuner.store.study_status import study_status

STUDY = {"name": "tiny", "storage": "/somewhere/out",
         "datasets": [{"path": "/somewhere/data/hopper-random-2k.hdf5", "env": "hopper", "level": "random",
                       "size": 2000}],
         "space": "quick", "trials": 6, "init_trials": 3, "concurrency": 2,
         "budget": {"preset": "tiny", "set": {"dynamics.max_epochs": 20}}, "compare": {"seeds": 2},
         "calibrate": {"horizons": [1, 2], "states": 40}, "confirm": {"top_k": 2, "seeds": 1, "set": {"epochs": 30}}}
DAMAGED = (DamagedFileError, ValidationError, yaml.YAMLError, TypeError)


def _parses(text: str) -> bool:
    try:
        StudySpec.model_validate(yaml.safe_load(text))
    except DAMAGED:
        return False
    return True


def test_every_cut_of_a_record_is_refused_and_the_whole_one_reads(tmp_path: Path) -> None:
    spec = StudySpec.model_validate(STUDY)
    data = spec.model_dump(mode="json")
    plain = yaml.safe_dump(data, sort_keys=False)
    assert sum(_parses(plain[:cut]) for cut in range(len(plain))) > 10, "plain YAML: many cuts parse as a study"
    path = tmp_path / STUDY_FILE
    write_study_record(path, data)
    assert stored_study(tmp_path) == spec
    whole = path.read_bytes()
    for cut in range(len(whole) - 1):  # every cut short of the closing line's last character
        path.write_bytes(whole[:cut])
        with pytest.raises(DAMAGED):
            stored_study(tmp_path)
    path.write_bytes(whole[:-1])  # only the final newline gone: the record is whole
    assert stored_study(tmp_path) == spec
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(StudyError, match=r"study.yaml: damaged \(cut short\); run the study command again"):
        study_status(tmp_path)
    with pytest.raises(DamagedFileError, match="cut short"):
        read_study_record(path)


def test_a_record_written_before_its_closing_line_existed_still_reads(tmp_path: Path) -> None:
    (tmp_path / STUDY_FILE).write_text(yaml.safe_dump(STUDY, sort_keys=False))
    assert stored_study(tmp_path) == StudySpec.model_validate(STUDY)
