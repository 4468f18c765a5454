"""The Edge TPU paths that this machine cannot exercise for real: the compiler step of export
(with a stand-in `edgetpu_compiler` on PATH that behaves like the real one's CLI) and the
CPU fallback when an `_edgetpu` model exists but no TPU answers."""

import logging
import os
import shutil
import stat

import pytest

from cube_detect.inference import load_detector
from cube_detect.modelspec import sidecar_path
from cube_detect.reader import reader_path

FAKE_COMPILER = """#!/bin/sh
# Stand-in for edgetpu_compiler 16: `-s -o OUTDIR MODEL` writes OUTDIR/<stem>_edgetpu.tflite.
out="$3"; model="$4"; stem=$(basename "$model" .tflite)
cp "$model" "$out/${stem}_edgetpu.tflite"
echo "Edge TPU Compiler version 16.0.384591198"
echo "Number of operations that will run on Edge TPU: 27"
echo "Number of operations that will run on CPU: 0"
"""


@pytest.fixture
def model_copy(shipped_model, tmp_path):
    model = tmp_path / "m.tflite"
    shutil.copy(shipped_model, model)
    shutil.copy(sidecar_path(shipped_model), sidecar_path(model))
    shutil.copy(reader_path(shipped_model), tmp_path)  # the sidecar names it
    return model


def test_export_compiles_with_edgetpu_compiler_when_installed(model_copy, tmp_path, monkeypatch):
    from cube_detect.export import compile_edgetpu

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    compiler = bin_dir / "edgetpu_compiler"
    compiler.write_text(FAKE_COMPILER)
    compiler.chmod(compiler.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    result = compile_edgetpu(model_copy)
    assert result == {"ok": True, "tpu_ops": 27, "cpu_ops": 0}
    assert (tmp_path / "m_edgetpu.tflite").is_file()


def test_export_without_compiler_says_how_to_compile_later(model_copy, monkeypatch, caplog):
    from cube_detect.export import compile_edgetpu

    monkeypatch.setenv("PATH", "/nonexistent")
    with caplog.at_level(logging.INFO, logger="cube_detect.export"):
        assert compile_edgetpu(model_copy) is None
    assert "edgetpu_compiler -s -o" in caplog.text


def test_edgetpu_model_without_a_tpu_falls_back_to_the_cpu_twin(model_copy):
    # An `_edgetpu` file beside the model, but no pycoral and no libedgetpu here.
    shutil.copy(model_copy, model_copy.with_name("m_edgetpu.tflite"))
    detector = load_detector(model_copy)
    assert detector.backend == "cpu"
    assert detector.model_path == model_copy
    assert "libedgetpu" in detector.backend_reason and "pycoral" in detector.backend_reason
    # Given the compiled model's path, the CPU twin beside it is used.
    assert load_detector(model_copy.with_name("m_edgetpu.tflite")).model_path == model_copy
