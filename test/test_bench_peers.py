"""bench/peers.py and bench/report.py without building a peer (that is `make bench`'s job)."""

import json
from pathlib import Path

import numpy as np

from bench import peers, report  # the repository root is on pytest.ini's pythonpath


def test_ssd_anchors_are_the_od_api_layout():
    anchors = peers.ssd_anchors()
    assert anchors.shape == (19 * 19 * 3 + (100 + 25 + 9 + 4 + 1) * 6, 4) == (1917, 4)
    assert np.allclose(anchors[0], [0.5 / 19, 0.5 / 19, 0.1, 0.1])  # first cell, first box
    assert np.allclose(anchors[-1, :2], [0.5, 0.5])  # the 1x1 layer


def test_rpn_anchors_cover_the_640_grid():
    anchors = peers.rpn_anchors()
    assert anchors.shape == (40 * 40 * 12, 4)
    assert anchors[:, 0].max() == 632.0 and np.isclose(anchors[:, 2].max(), 512 / 0.5 ** 0.5)


def test_peer_rows_and_goals():
    results = {
        "latency_ms": {"int8_cpu": {"p50": 1.0, "p95": 2.0, "n": 300},
                       peers.SSD: {"p50": 5.0, "p95": 6.0, "n": 300, "description": peers.DESCRIPTIONS[peers.SSD]},
                       peers.FRCNN: {"p50": 500.0, "p95": 600.0, "n": 20,
                                     "description": peers.DESCRIPTIONS[peers.FRCNN]}},
        "peer_speedup": {peers.SSD: 5.0, peers.FRCNN: 500.0},
        "speedup_int8_vs_float_tf": 3.0, "cycle_ms": {"p50": 30.0, "p95": 39.0, "n": 200},
    }
    assert report.PEERS == peers.PEERS
    results["goals"] = report.goals(results)
    assert [g["key"] for g in results["goals"]] == ["latency_ms.int8_cpu.p50", "cycle_ms.p95", "ready_s",
                                                    "model_total_bytes"]
    table = report.bench_table(results)
    assert f"| peer `{peers.SSD}`: SSD MobileNet V2 300×300" in table and "ours is 5.0× faster" in table
    assert "**lower bound**" in table and f"| speed-up vs `{peers.FRCNN}` (peer median / ours; at least: " in table
    assert "| int8 speed-up vs the same network in float TF (medians) | 3.00× | — | |" in table
    assert "| cycle p95 (takeImage → labels), default 20 Hz poll | 39.0 ms | ≤ 65 ms | pass |" in table
    results["cycle_ms"]["p95"] = 66.0  # the decided goal: 65 ms at the default 20 Hz poll
    results["goals"] = report.goals(results)
    assert "| cycle p95 (takeImage → labels), default 20 Hz poll | 66.0 ms | ≤ 65 ms | **FAIL** |" in \
        report.bench_table(results)


def test_a_run_header_names_its_model_and_its_sha256_when_recorded():
    run = {"model": "models/cube_detect.tflite", "model_sha256": "0a3444a1" + "0" * 56}
    assert report.model_line(run) == "; model `models/cube_detect.tflite` (sha256 0a3444a1…)"
    assert report.model_line({"model": "models/x.tflite"}) == "; model `models/x.tflite`"  # a run before the field
    assert report.model_line({}) == ""
    run["reader_sha256"] = "77322f1b" + "0" * 56
    assert report.model_line(run) == "; model `models/cube_detect.tflite` (sha256 0a3444a1…; its face reader 77322f1b…)"


def test_a_models_fields_count_its_face_reader():
    fields = report.model_fields(report.ROOT / "models" / "cube_detect.tflite")
    reader = report.ROOT / "models" / "cube_detect_reader.tflite"
    assert fields["reader_bytes"] == reader.stat().st_size
    assert fields["model_total_bytes"] == fields["model_bytes"] + fields["reader_bytes"] < 1024 * 1024


def test_committed_figures_name_paths_as_the_repository_does(tmp_path):
    """The JSON files `make bench` and `make soak` commit name no machine's checkout."""
    assert report.repo_path(report.ROOT / "models" / "cube_detect.tflite") == "models/cube_detect.tflite"
    assert report.repo_path(str(report.ROOT / "models" / "cube_detect.tflite")) == "models/cube_detect.tflite"
    assert report.repo_path(tmp_path / "m.tflite") == str(tmp_path / "m.tflite")  # outside: whole
    assert report.repo_path(None) is None  # a detector that never said which model it loaded
    assert report.model_fields(report.ROOT / "models" / "cube_detect.tflite")["model"] == "models/cube_detect.tflite"
    for name in ("results.json", "soak.json", "marks.json", "hands.json"):  # cell_proxy*.json predate model_fields
        data = json.loads((report.ROOT / "bench" / name).read_text())
        named = [data.get("model"), data.get("node_model"), *data.get("node_models", [])]
        assert not any(Path(p).is_absolute() for p in named if p), (name, named)
