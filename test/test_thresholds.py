"""The default threshold chosen on the user's own photos: the rules (thresholds.py) and
`evaluate --set-threshold` on real TFLite with the shipped model and synthetic photos."""

import dataclasses
import json
import re
import shutil

import pytest

from cube_detect.cli import main
from cube_detect.inference import load_detector
from cube_detect.thresholds import pick_threshold
from cube_detect.voc import read_voc, write_voc

ROOT = __import__("pathlib").Path(__file__).resolve().parent.parent


def test_on_real_photos_the_middle_of_the_best_plateau_is_taken():
    curve = {"0.20": 0.8, "0.25": 1.0, "0.30": 1.0, "0.35": 1.0, "0.40": 0.9}
    assert pick_threshold(curve) == 0.25  # synthetic validation: the low end keeps more real faces
    assert pick_threshold(curve, real_photos=True) == 0.30  # the user's photos: no edge to fall off


def test_on_real_photos_a_spike_one_photo_above_its_plateau_does_not_move_the_threshold_to_its_edge():
    # A fine-tune's 13 reviewed photos (bench.cell_proxy, cell 4): 12 of 13 from 0.35 to 0.65 and
    # 13 at 0.70 alone. The judging photos of that cell read 12 of 13 at 0.50, 8 at 0.70.
    cell4 = {"0.15": 0.8462, "0.20": 0.8462, "0.25": 0.8462, "0.30": 0.8462, "0.35": 0.9231, "0.40": 0.9231,
             "0.45": 0.9231, "0.50": 0.9231, "0.55": 0.9231, "0.60": 0.9231, "0.65": 0.9231, "0.70": 1.0,
             "0.75": 0.8462, "0.80": 0.6923}
    assert pick_threshold(cell4, real_photos=True, images=13) == 0.50  # the middle of 0.35 .. 0.70
    assert pick_threshold(cell4, real_photos=True) == 0.70  # no image count: only the equally best
    # Two photos below the best is not the plateau; of two runs holding a best, the longer counts.
    dip = {"0.30": 1.0, "0.35": 0.8462, "0.40": 1.0, "0.45": 1.0, "0.50": 0.9231, "0.55": 0.8}
    assert pick_threshold(dip, real_photos=True, images=13) == 0.45
    # Counted in photos: 14 of 15 is kept as 0.9333, a hair below 1 - 1/15, and is on the plateau.
    fifteen = {"0.30": 1.0, "0.35": 0.9333, "0.40": 0.9333, "0.45": 0.9333, "0.50": 0.9333, "0.55": 0.8}
    assert pick_threshold(fifteen, real_photos=True, images=15) == 0.40
    # Of two runs as long, the lower (real faces score low).
    twins = {"0.30": 1.0, "0.35": 1.0, "0.40": 0.8, "0.45": 1.0, "0.50": 1.0}
    assert pick_threshold(twins, real_photos=True, images=10) == 0.30
    # F1 (other class sets) keeps the middle of the equally best.
    assert pick_threshold(cell4, criterion="f1", real_photos=True, images=13) == 0.70


def mark_reviewed(split_dir, count):
    """Accept ``count`` images of a split as a reviewer would (labelImg's verified="yes")."""
    for xml in sorted(split_dir.glob("*.xml"))[:count]:
        write_voc(xml, dataclasses.replace(read_voc(xml), verified=True))


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    root = tmp_path_factory.mktemp("photos")
    assert main(["synth", "--out", str(root / "data"), "--count", "60", "--seed", "77", "--test-share", "0.5"]) == 0
    model = root / "model" / "m.tflite"
    model.parent.mkdir()
    for suffix in (".tflite", ".json", "_reader.tflite"):  # the sidecar names the reader
        shutil.copy(ROOT / "models" / f"cube_detect{suffix}", model.parent / f"cube_detect{suffix}")
    for suffix in (".tflite", ".json"):
        (model.parent / f"cube_detect{suffix}").rename(model.with_suffix(suffix))
    return root / "data", model


def test_evaluate_prints_the_curve_and_refuses_to_set_a_threshold_from_unreviewed_photos(photos, capsys, tmp_path):
    data, model = photos
    report = tmp_path / "eval.json"
    assert main(["evaluate", "--model", str(model), "--data", str(data), "--json", str(report)]) == 0
    out = capsys.readouterr().out
    result = json.loads(report.read_text())
    assert "exact sequences (%) by threshold" in out and "0.40: " in out and "<" in out and "* chosen" in out
    chosen = result["best_threshold"]  # the candidate --set-threshold would write is the one marked
    assert re.search(rf"{chosen:.2f}: \d+\*", out), out
    assert set(result["by_threshold"]) >= {"0.15", "0.40", "0.80"} and result["reviewed_images"] == 0
    assert main(["evaluate", "--model", str(model), "--data", str(data), "--set-threshold"]) == 2
    assert "only 0 reviewed images" in capsys.readouterr().err
    # The shipped model's sidecar is tracked by git: changing it takes naming it.
    assert main(["evaluate", "--data", str(data), "--set-threshold"]) == 2
    assert "name the model with --model" in capsys.readouterr().err


def test_set_threshold_writes_the_best_on_reviewed_photos_and_keeps_the_model_valid(photos, tmp_path, capsys):
    data, model = photos
    mark_reviewed(data / "test", 12)
    sidecar_before = json.loads(model.with_suffix(".json").read_text())
    report = tmp_path / "eval.json"
    assert main(["evaluate", "--model", str(model), "--data", str(data), "--set-threshold",
                 "--json", str(report)]) == 0
    result = json.loads(report.read_text())
    sidecar = json.loads(model.with_suffix(".json").read_text())
    assert result["reviewed_images"] == result["curve_images"] == 12 < result["images"]  # the reviewed ones only
    assert sidecar["threshold"] == result["best_threshold"] == pick_threshold(
        result["by_threshold"], real_photos=True, images=result["curve_images"])
    assert sidecar["model_sha256"] == sidecar_before["model_sha256"]
    assert "evaluate on" in sidecar["metrics"]["threshold_source"]
    assert load_detector(model).threshold == sidecar["threshold"]  # the pair still loads


def test_evaluate_says_what_it_scored_and_warns_about_weak_figures(photos, capsys, caplog):
    data, model = photos
    assert main(["evaluate", "--model", str(model), "--data", str(data), "--split", "all"]) == 0
    out = capsys.readouterr().out
    train, test = len(list((data / "train").glob("*.png"))), len(list((data / "test").glob("*.png")))
    assert f"scored {train + test} images of split all" in out
    assert main(["evaluate", "--model", str(model), "--data", str(data / "test")]) == 0  # a plain folder
    assert f"scored {test} images of the folder" in capsys.readouterr().out
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any(w.startswith(f"only {test} images scored (the folder): a shaky figure") for w in warnings) == (test < 20)
