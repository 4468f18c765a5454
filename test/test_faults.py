"""Fault drills on the workstation tools: bad input is one clear line naming the thing, and
nothing is lost (issue: survive the cell's real faults)."""

import math
import shutil

import cv2
import numpy as np

from cube_detect.cli import main


def test_a_16_bit_or_truncated_image_is_named_and_skip_bad_skips_it(tmp_path, capsys):
    data = tmp_path / "ds"
    assert main(["synth", "--out", str(data), "--count", "12", "--seed", "5", "--test-share", "0.5"]) == 0
    images = sorted((data / "test").glob("*.png"))
    deep = images[0]
    cv2.imwrite(str(deep), (cv2.imread(str(deep)).astype(np.uint16) * 257))  # same size, 16-bit
    assert cv2.imread(str(deep), cv2.IMREAD_UNCHANGED).dtype == np.uint16
    capsys.readouterr()
    assert main(["evaluate", "--data", str(data)]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error")]
    assert errors == [f"error: {deep}: not a readable 8-bit image (truncated, or 16-bit?); --skip-bad skips it"]
    assert main(["evaluate", "--data", str(data), "--skip-bad"]) == 0
    assert f"{len(images) - 1} images" in capsys.readouterr().out
    truncated = images[1]
    truncated.write_bytes(truncated.read_bytes()[:200])
    assert main(["detect", str(truncated)]) == 1  # reported per image, the others go on
    assert '"error": "cannot be read as an 8-bit image"' in capsys.readouterr().out


def test_a_training_budget_that_leaves_no_training_is_refused_before_anything_runs(tmp_path, capsys):
    out = tmp_path / "models" / "m"
    assert main(["train", "--minutes", "0.5", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --minutes 0.5 leaves no time to train") and "at least" in err[0]
    # The minimum it names is one the same check accepts (it once said 2.5 where 1.5 passed).
    from cube_detect.train import EXPORT_RESERVE_S, MIN_TRAIN_S

    named = float(err[0].rsplit("--minutes ", 1)[1])
    assert named * 60 >= EXPORT_RESERVE_S + MIN_TRAIN_S and (named - 0.5) * 60 < EXPORT_RESERVE_S + MIN_TRAIN_S
    assert not out.parent.exists()  # nothing written, nothing replaced


def test_a_fine_tunes_budget_counts_its_readers_tuning(tmp_path, capsys):
    """With --init of a model that has a float reader and --data, the reader's tuning is kept
    out of the budget too; the refusal names the way out (--reader-steps 0)."""
    from cube_detect.inference import DEFAULT_MODEL
    from cube_detect.reader_train import FALLBACK_THRESHOLD_S, TUNE_FIXED_S, TUNE_STEP_S
    from cube_detect.train import EXPORT_RESERVE_S, MIN_TRAIN_S

    data, out = tmp_path / "ds", tmp_path / "models" / "m"
    assert main(["synth", "--out", str(data), "--count", "4", "--seed", "5", "--test-share", "0.5"]) == 0
    capsys.readouterr()
    # Enough for a fine-tune keeping its reader (its 2 test photos are too few: the threshold is
    # picked on rendered scenes, which is counted too).
    minutes = round((EXPORT_RESERVE_S + FALLBACK_THRESHOLD_S + MIN_TRAIN_S + 10) / 60, 2)
    args = ["train", "--init", str(DEFAULT_MODEL), "--data", str(data), "--minutes", f"{minutes:.3f}", "--out",
            str(out), "--workdir", str(tmp_path / "run")]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    reserve = EXPORT_RESERVE_S + TUNE_FIXED_S + TUNE_STEP_S * 300 + FALLBACK_THRESHOLD_S
    assert err == [f"error: --minutes {minutes:g} leaves no time to train: the export and the face reader's tuning "
                   f"and threshold take about {reserve:.0f} s; give at least --minutes "
                   f"{math.ceil((reserve + MIN_TRAIN_S) / 30) / 2:g} (or --reader-steps 0)"]
    assert not out.parent.exists()


def test_a_fine_tunes_budget_counts_the_readers_threshold_only_without_enough_reviewed_photos(tmp_path, capsys):
    """The threshold on rendered scenes is budgeted only when the data has too few reviewed test
    photos to pick it on; tuning only when there are steps."""
    import dataclasses

    from cube_detect.inference import DEFAULT_MODEL
    from cube_detect.reader_train import FALLBACK_THRESHOLD_S, TUNE_FIXED_S, TUNE_STEP_S, reader_seconds
    from cube_detect.thresholds import MIN_REVIEWED_PHOTOS
    from cube_detect.voc import read_voc, write_voc

    data = tmp_path / "ds"
    assert main(["synth", "--out", str(data), "--count", "24", "--seed", "5", "--test-share", "0.5"]) == 0
    tests = sorted((data / "test").glob("*.xml"))
    assert len(tests) >= MIN_REVIEWED_PHOTOS
    tuning = TUNE_FIXED_S + TUNE_STEP_S * 300
    assert reader_seconds(DEFAULT_MODEL, [data], 300) == (tuning + FALLBACK_THRESHOLD_S, "tuning and threshold")
    for xml in tests[:MIN_REVIEWED_PHOTOS - 1]:
        write_voc(xml, dataclasses.replace(read_voc(xml), verified=True))
    assert reader_seconds(DEFAULT_MODEL, [data], 0) == (FALLBACK_THRESHOLD_S, "threshold")  # one too few
    # A data set without a test split, or one that is not there, has no reviewed photo to count.
    no_test = tmp_path / "no_test"
    shutil.copytree(data / "train", no_test / "train")
    assert reader_seconds(DEFAULT_MODEL, [no_test], 0) == (FALLBACK_THRESHOLD_S, "threshold")
    assert reader_seconds(DEFAULT_MODEL, [tmp_path / "missing"], 0) == (FALLBACK_THRESHOLD_S, "threshold")
    write_voc(tests[MIN_REVIEWED_PHOTOS - 1], dataclasses.replace(read_voc(tests[MIN_REVIEWED_PHOTOS - 1]),
                                                                  verified=True))
    assert reader_seconds(DEFAULT_MODEL, [data], 300) == (tuning, "tuning")
    assert reader_seconds(DEFAULT_MODEL, [data], 0) == (0.0, "")
    assert reader_seconds(DEFAULT_MODEL, [], 300) == (FALLBACK_THRESHOLD_S, "threshold")  # no data: no tuning


def test_a_negative_reader_steps_is_refused_before_anything_runs(tmp_path, capsys):
    out = tmp_path / "models" / "m"
    from cube_detect.inference import DEFAULT_MODEL

    assert main(["train", "--init", str(DEFAULT_MODEL), "--reader-steps", "-1", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: --reader-steps -1: expected 0 (keep the reader) or more"]
    assert not out.parent.exists()


def test_train_on_a_folder_without_images_is_an_error_not_a_synthetic_only_run(tmp_path, capsys):
    (tmp_path / "empty" / "train").mkdir(parents=True)
    (tmp_path / "empty" / "test").mkdir()
    assert main(["train", "--data", str(tmp_path / "empty"), "--epochs", "1", "--out", str(tmp_path / "m")]) == 2
    assert "no labelled objects and no label map" in capsys.readouterr().err
