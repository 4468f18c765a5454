"""bench/cell_proxy.py's simulated cells (real fine-tunes are `python -m bench.cell_proxy`'s job):
one cell's faces come from its own few held-out glyphs, its test photos are reviewed, and the
run records every cell, a failed fine-tune included."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

from bench import cell_proxy  # the repository root is on pytest.ini's pythonpath
from cube_detect.reader import reader_path
from cube_detect.synth import FAMILIES, handwriting
from cube_detect.voc import read_voc

MODEL = Path(__file__).resolve().parents[1] / "models" / "cube_detect.tflite"


def test_a_cell_writes_its_few_held_out_hands_only(monkeypatch, tmp_path):
    pool = cell_proxy.cell_pool(3)
    assert {k: len(v) for k, v in pool.items()} == cell_proxy.GLYPHS_PER_CELL
    held = {id(g) for label in pool for g in sum(handwriting.glyphs(label, "heldout"), [])}
    assert all(id(g) in held for glyphs in pool.values() for g in glyphs)
    assert [id(g) for g in cell_proxy.cell_pool(4)["two"]] != [id(g) for g in pool["two"]]
    assert [id(g) for g in cell_proxy.cell_pool(3)["two"]] == [id(g) for g in pool["two"]]  # a function of the cell
    fonts = {id(g) for label in ("one", "two") for g in handwriting.glyphs(label, "heldout")[1]}
    from_fonts = [sum(id(g) in fonts for g in cell_proxy.cell_pool(c)[label]) for c in range(1, 13)
                  for label in ("one", "two")]
    assert 0.15 < np.mean(from_fonts) / 3 < 0.6  # the held-out fonts take part, about as often as in the scenes

    drawn = []
    original_glyphs = handwriting.glyphs
    real_draw = handwriting.draw_glyph

    def recording(canvas, rng, glyph, *args):
        drawn.append(id(glyph))
        return real_draw(canvas, rng, glyph, *args)

    monkeypatch.setattr(handwriting, "draw_glyph", recording)
    out = cell_proxy.write_cell(tmp_path / "cell3", 3)
    digits = {id(g) for g in pool["one"] + pool["two"]}
    faces, firsts = 0, []
    for folder, count, reviewed in ((out / "cell" / "train", 19, False), (out / "cell" / "test", 13, True),
                                    (out / "judge" / "test", 13, False)):
        xmls = sorted(folder.glob("*.xml"))
        assert len(xmls) == len(list(folder.glob("*.png"))) == count, folder
        annotations = [read_voc(x) for x in xmls]
        assert all(a.verified == reviewed for a in annotations), folder
        assert all((a.width, a.height) == (640, 480) for a in annotations)
        faces += sum(len(a.boxes) for a in annotations)
        firsts.append(cv2.imread(str(xmls[0].with_suffix(".png"))))
    # every labelled face is one of the cell's ones and twos (a face cut by the frame may have no box)
    assert faces and sum(d in digits for d in drawn) >= faces
    assert set(drawn) <= {id(g) for glyphs in pool.values() for g in glyphs}
    assert not np.array_equal(firsts[0], firsts[1]) and not np.array_equal(firsts[1], firsts[2])  # other scenes
    assert cell_proxy.cell_family(3) == FAMILIES[2] and cell_proxy.cell_family(7) == FAMILIES[0]
    assert handwriting.glyphs is original_glyphs  # the cell's pool was patched in for the cell only


def test_the_run_judges_fine_tunes_and_records_a_failed_one(monkeypatch, tmp_path):
    calls = []

    def fake_train(argv, check, stdout):
        """`train` stands in: cell 1's 'fine-tune' is the shipped model copied; cell 2's fails."""
        calls.append(argv)
        out = Path(argv[argv.index("--out") + 1])
        if "cell2" in str(out):
            raise subprocess.CalledProcessError(1, argv)
        for suffix in (".tflite", ".json", ".labels.txt"):
            shutil.copy(MODEL.with_suffix(suffix), out.with_suffix(suffix))
        shutil.copy(reader_path(MODEL), out.parent)  # the sidecar names it

    monkeypatch.setattr(subprocess, "run", fake_train)
    report = tmp_path / "cells.json"
    monkeypatch.setattr(sys, "argv", ["cell_proxy", "--cells", "2", "--finetune", "all", "--model", str(MODEL),
                                      "--workdir", str(tmp_path / "w"), "--json", str(report),
                                      "--train-arg=--reader-steps=0"])
    assert cell_proxy.main() == 0
    assert len(calls) == 2 and calls[0][calls[0].index("--init") + 1] == str(MODEL)
    assert calls[0][-1] == "--reader-steps=0"  # --train-arg passed on to train
    assert calls[0][calls[0].index("--data") + 1] == str(tmp_path / "w" / "cell1" / "cell")
    rows = json.loads(report.read_text())["cells"]
    assert [r["cell"] for r in rows] == [1, 2]
    assert rows[0]["fine_tuned"] == rows[0]["zero_shot"]  # the same model judged on the same photos
    assert rows[0]["zero_shot"]["images"] == 13 and 0 <= rows[0]["zero_shot"]["exact"] <= 13
    assert "fine_tuned" not in rows[1] and "train exited 1" in rows[1]["fine_tune_error"]


def test_first_runs_other_cells_than_the_default_twelve(monkeypatch, tmp_path):
    report = tmp_path / "cells.json"
    monkeypatch.setattr(sys, "argv", ["cell_proxy", "--first", "13", "--cells", "13", "--finetune", "none",
                                      "--model", str(MODEL), "--workdir", str(tmp_path / "w"), "--json", str(report)])
    assert cell_proxy.main() == 0
    result = json.loads(report.read_text())
    assert result["command"] == ("python -m bench.cell_proxy --first 13 --cells 13 --finetune none --model "
                                 f"{MODEL} --workdir {tmp_path / 'w'} --json {report}")
    assert (result["model"], result["first"], result["last"], result["finetune"]) == (
        "models/cube_detect.tflite", 13, 13, "none")  # what ran, as the repository names it
    rows = result["cells"]
    assert [(r["cell"], r["family"]) for r in rows] == [(13, "topdown")] and "fine_tuned" not in rows[0]
    assert rows[0]["zero_shot"]["images"] == 13 and (tmp_path / "w" / "cell13" / "judge").is_dir()


def test_a_relative_model_is_recorded_as_the_repository_names_it(monkeypatch, tmp_path):
    report = tmp_path / "cells.json"
    monkeypatch.chdir(MODEL.parents[1])
    monkeypatch.setattr(sys, "argv", ["cell_proxy", "--first", "2", "--cells", "2", "--finetune", "none",
                                      "--model", "models/cube_detect.tflite", "--workdir", str(tmp_path / "w"),
                                      "--json", str(report)])
    assert cell_proxy.main() == 0
    result = json.loads(report.read_text())
    assert result["model"] == "models/cube_detect.tflite" and "--model models/cube_detect.tflite" in result["command"]
    outside = tmp_path / "copy.tflite"
    for suffix in (".tflite", ".json", ".labels.txt"):
        shutil.copy(MODEL.with_suffix(suffix), outside.with_suffix(suffix))
    shutil.copy(reader_path(MODEL), tmp_path)  # the sidecar names it
    monkeypatch.setattr(sys, "argv", ["cell_proxy", "--first", "2", "--cells", "2", "--finetune", "none",
                                      "--model", str(outside), "--workdir", str(tmp_path / "w"), "--json", str(report)])
    assert cell_proxy.main() == 0
    assert json.loads(report.read_text())["model"] == str(outside)  # outside the repository: its whole path
