"""Any class set: the course's layout and label maps through stats -> train -> export -> evaluate -> detect."""

import json

import pytest
from shapes_dataset import SHAPE_LABELS, write_shapes_dataset  # tools/ (pytest.ini's pythonpath)

from cube_detect.cli import main
from cube_detect.dataset import resolve_labels
from cube_detect.errors import DatasetError
from cube_detect.labels import format_label_map, read_labels


# ----------------------------------------------------------------------------- class lists (fast)
def test_label_files_of_every_kind(tmp_path):
    (tmp_path / "map.pbtxt").write_text("item {\n  id: 4\n  name: 'Rock'\n}\n# item { id: 9 name: 'gone' }\n"
                                        "item { name: \"Paper\" id: 2 }\n")
    assert read_labels(tmp_path / "map.pbtxt") == {4: "Rock", 2: "Paper"}  # commented-out items ignored
    (tmp_path / "labels.txt").write_text("1 one\n2 two\n")
    assert read_labels(tmp_path / "labels.txt") == {1: "one", 2: "two"}
    (tmp_path / "classes.txt").write_text("Rock\nPaper\nScissors\n")
    assert read_labels(tmp_path / "classes.txt") == {1: "Rock", 2: "Paper", 3: "Scissors"}


def test_classes_come_from_the_file_then_the_data_sets_label_map_then_the_xml(tmp_path):
    project = write_shapes_dataset(tmp_path / "form_detection", train=3, test=1)
    assert resolve_labels([project]) == SHAPE_LABELS  # found under training/form_detection/
    (tmp_path / "classes.txt").write_text("empty\ncube\ncylinder\n")
    assert resolve_labels([project], tmp_path / "classes.txt") == {1: "empty", 2: "cube", 3: "cylinder"}
    label_map = project / "training" / "form_detection" / "form_detection.pbtxt"
    label_map.unlink()
    assert resolve_labels([project]) == {1: "cube", 2: "cylinder", 3: "empty"}  # sorted XML names
    (project / "a.pbtxt").write_text(format_label_map({1: "cube", 2: "cylinder", 3: "empty"}))
    (project / "b.pbtxt").write_text(format_label_map({1: "cube", 2: "cylinder", 4: "empty"}))
    with pytest.raises(DatasetError, match="a.pbtxt .* and .*b.pbtxt .* name different classes"):
        resolve_labels([project])


def test_data_sets_with_different_classes_in_one_run_are_one_error(tmp_path, capsys):
    shapes = write_shapes_dataset(tmp_path / "shapes", train=2, test=1)
    (shapes / "training" / "shapes" / "form_detection.pbtxt").unlink()
    assert main(["synth", "--out", str(tmp_path / "digits"), "--count", "3"]) == 0
    (tmp_path / "digits" / "label_map.pbtxt").unlink()
    with pytest.raises(DatasetError, match="different classes in one run"):
        resolve_labels([shapes, tmp_path / "digits"])
    assert main(["train", "--data", str(shapes), "--synthetic", "100", "--out", str(tmp_path / "m")]) == 2
    assert "synthetic scenes show the digits only" in capsys.readouterr().err


def test_stats_reads_the_course_layout_with_its_label_map(tmp_path, capsys):
    project = write_shapes_dataset(tmp_path / "form_detection", train=4, test=2)
    assert main(["stats", str(project)]) == 0
    out = capsys.readouterr().out
    assert "classes: 3 cube, 5 cylinder, 7 empty" in out
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines()[1:] if line.strip()}
    assert rows["split"] == ["images", "faces", "cube", "cylinder", "empty", "difficult"]
    assert rows["train"][:2] == ["4", "36"] and rows["test"][:2] == ["2", "18"]  # 9 cells a board


# ----------------------------------------------------------------------------- the whole path (slow)
@pytest.mark.slow
def test_custom_classes_train_export_evaluate_detect(tmp_path):
    project = write_shapes_dataset(tmp_path / "form_detection", train=40, test=10, seed=3)
    out = tmp_path / "models" / "shapes"
    assert main(["train", "--data", str(project), "--epochs", "5", "--color", "--flip", "--seed", "2",
                 "--out", str(out), "--workdir", str(tmp_path / "run")]) == 0
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert sidecar["labels"] == {"3": "cube", "5": "cylinder", "7": "empty"}
    assert sidecar["input"]["channels"] == 3
    assert sidecar["metrics"]["threshold_criterion"] == "f1"  # a board is no row: F1 chooses the threshold
    # Label files named after their model: the digits' files beside it are never overwritten.
    assert read_labels(out.with_name("shapes.label_map.pbtxt")) == SHAPE_LABELS
    assert read_labels(out.with_name("shapes.labels.txt")) == SHAPE_LABELS
    assert not (out.parent / "labels.txt").exists() and not (out.parent / "label_map.pbtxt").exists()
    state = json.loads((tmp_path / "run" / "state.json").read_text())
    assert state["config"]["synthetic"] == 0  # synthetic scenes are digits: none for these classes
    # `export --workdir` rebuilds the same class set and input from the run (not the digits)
    assert main(["export", "--workdir", str(tmp_path / "run"), "--out", str(tmp_path / "again")]) == 0
    assert json.loads((tmp_path / "again.json").read_text())["labels"] == sidecar["labels"]
    # A face reader learns from the synthetic digit scenes: one line, before any work.
    assert main(["train-reader", "--model", str(out.with_suffix(".tflite")), "--out", str(tmp_path / "r")]) == 2
    report = tmp_path / "eval.json"
    assert main(["evaluate", "--model", str(out.with_suffix(".tflite")), "--data", str(project),
                 "--json", str(report)]) == 0
    figures = json.loads(report.read_text())
    assert figures["images"] == 10 and set(figures["AP50_per_class"]) == {"cube", "cylinder", "empty"}
    assert figures["mAP50"] >= 0.3, figures  # five short epochs on 40 boards already find most cells
    detections = tmp_path / "detections.json"
    images = sorted((project / "images" / "test").glob("*.jpg"))[:2]
    assert main(["detect", *map(str, images), "--model", str(out.with_suffix(".tflite")), "--max", "9",
                 "--threshold", "0.2", "--json", str(detections)]) == 0
    found = [d for r in json.loads(detections.read_text()) for d in r["detections"]]
    assert found and all((d["id"], d["label"]) in SHAPE_LABELS.items() for d in found)


def test_the_simulated_camera_serves_any_data_set(tmp_path):
    """sim_camera images:=FOLDER: the classes are the XML's own (shapes here); a bad XML costs
    that image its truth, never the camera."""
    import cv2
    import numpy as np

    from cube_detect.simulation import FolderScenes
    from cube_detect.voc import Annotation, LabeledBox, write_voc

    for i, names in enumerate((["cylinder", "cube"], ["empty"])):
        cv2.imwrite(str(tmp_path / f"board{i}.png"), np.full((224, 224, 3), 90, np.uint8))
        boxes = [LabeledBox(name, 10 + 100 * k, 10, 90 + 100 * k, 90) for k, name in enumerate(names)]
        write_voc(tmp_path / f"board{i}.xml", Annotation(f"board{i}.png", 224, 224, 3, boxes))
    cv2.imwrite(str(tmp_path / "board2.png"), np.zeros((224, 224, 3), np.uint8))
    (tmp_path / "board2.xml").write_text("<annotation><oops>")
    source = FolderScenes(tmp_path)
    scenes = [source.next() for _ in range(4)]
    assert [s.labels for s in scenes] == [["cylinder", "cube"], ["empty"], [], ["cylinder", "cube"]]
    assert list(source.bad_truth) == [str(tmp_path / "board2.xml")]
    assert "malformed XML" in source.bad_truth[str(tmp_path / "board2.xml")]
