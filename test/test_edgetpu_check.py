"""Edge TPU static check (cube_detect.edgetpu_check) on tiny models the real converter makes.

Each model is a few layers on a 32x32 input, converted once per session with the documented
Keras 3 path: ``model.export(dir)`` then ``TFLiteConverter.from_saved_model(dir)``, full-integer
quantization with a representative data set, uint8 I/O unless the case says otherwise.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import cube_detect
from cube_detect import cli
from cube_detect.edgetpu_check import check_model, format_report
from cube_detect.errors import ModelError

INPUT_SHAPE = (32, 32, 3)


def _build(kind):
    """(keras model, conversion options) for one named case."""
    import keras
    import tensorflow as tf

    layers = keras.layers

    def sequential(*stack):
        inputs = keras.Input(shape=INPUT_SHAPE)
        x = inputs
        for layer in stack:
            x = layer(x)
        return keras.Model(inputs, x)

    def good_net():
        return sequential(
            layers.Conv2D(8, 3, strides=2, padding="same", activation="relu"),
            layers.DepthwiseConv2D(3, padding="same", activation="relu"),
            layers.Conv2D(2, 1, activation="sigmoid"),
        )

    # Keras 3's export() ignores Input(batch_size=1) (shape_signature keeps -1): a fixed
    # batch needs an explicit input signature.
    static = {"signature": [tf.TensorSpec((1,) + INPUT_SHAPE, tf.float32)]}
    after_conv = lambda *stack: sequential(  # noqa: E731
        layers.Conv2D(8, 3, padding="same"), *stack, layers.Conv2D(4, 1), layers.Activation("sigmoid"))
    cases = {
        "good": lambda: (good_net(), dict(static)),
        "float": lambda: (good_net(), dict(static, quantize=False)),
        "int8_io": lambda: (good_net(), dict(static, io_type=tf.int8)),
        "dynamic_batch": lambda: (good_net(), {}),
        "hard_swish": lambda: (after_conv(layers.Activation("hard_swish")), dict(static)),
        "exp": lambda: (after_conv(layers.Lambda(lambda x: keras.ops.exp(x))), dict(static)),
        "resize_half_pixel": lambda: (
            after_conv(layers.UpSampling2D(interpolation="bilinear")), dict(static)),
        "grouped_conv": lambda: (
            sequential(layers.Conv2D(8, 3, padding="same"), layers.Conv2D(8, 3, padding="same", groups=2)),
            dict(static)),
    }
    return cases[kind]()


def _convert(model, out_dir, signature=None, quantize=True, io_type=None):
    import numpy as np
    import tensorflow as tf

    saved = out_dir / "saved_model"
    if signature is None:
        model.export(str(saved), verbose=False)
    else:
        model.export(str(saved), verbose=False, input_signature=signature)
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved))
    if quantize:
        def representative():
            rng = np.random.default_rng(0)
            for _ in range(4):
                yield [rng.uniform(0.0, 1.0, (1,) + INPUT_SHAPE).astype(np.float32)]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = io_type or tf.uint8
        converter.inference_output_type = io_type or tf.uint8
    return converter.convert()


class _TinyModels:
    """Converts each named case on first use, then hands back the cached .tflite path."""

    def __init__(self, directory):
        self._dir = directory
        self._paths = {}

    def __getitem__(self, kind):
        if kind not in self._paths:
            work = self._dir / kind
            work.mkdir()
            model, options = _build(kind)
            path = work / f"{kind}.tflite"
            path.write_bytes(_convert(model, work, **options))
            self._paths[kind] = path
        return self._paths[kind]


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    pytest.importorskip("tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return _TinyModels(tmp_path_factory.mktemp("tiny_models"))


def _refused(report, op_name):
    return [op for op in report.ops if op.op == op_name and not op.maps]


# --- a model that maps -------------------------------------------------------------------------


def test_good_uint8_model_maps_entirely(tiny_models, capsys):
    report = check_model(tiny_models["good"])
    assert report.ok, format_report(report)
    assert report.problems == []
    assert report.first_refused is None
    assert [op.verdict for op in report.ops] == ["maps"] * len(report.ops)
    names = [op.op for op in report.ops]
    for expected in ("QUANTIZE", "CONV_2D", "DEPTHWISE_CONV_2D", "LOGISTIC"):
        assert expected in names
    # TF 2.19 emits plain int8 conv and depthwise as v3: the check must accept them.
    assert {op.version for op in report.ops if op.op in ("CONV_2D", "DEPTHWISE_CONV_2D")} == {3}
    assert report.mapped_count == len(report.ops) and report.cpu_count == 0
    assert cli.main(["check", str(tiny_models["good"])]) == 0
    out = capsys.readouterr().out
    assert out.strip().splitlines()[-1].startswith("OK: all")


# --- refused, each for its own reason ----------------------------------------------------------


def test_float_model_is_refused_as_not_quantized(tiny_models):
    report = check_model(tiny_models["float"])
    assert not report.ok
    assert report.first_refused is not None and report.first_refused.index == 0
    assert "float32" in report.first_refused.verdict and "not quantized" in report.first_refused.verdict
    assert any("float32" in p and "input" in p for p in report.problems)


def test_int8_io_is_refused_for_pycoral(tiny_models):
    report = check_model(tiny_models["int8_io"])
    assert not report.ok
    # Every op maps (int8 inside is right); the I/O type is the model-level problem.
    assert report.first_refused is None
    inputs = [p for p in report.problems if p.startswith("model input")]
    outputs = [p for p in report.problems if p.startswith("model output")]
    assert len(inputs) == 1 and "is int8" in inputs[0] and "uint8" in inputs[0]
    assert len(outputs) == 1 and "is int8" in outputs[0]


def test_dynamic_batch_is_refused(tiny_models):
    # The converter keeps shape_signature [-1, 32, 32, 3] for a uint8 model exported without
    # an input signature.
    report = check_model(tiny_models["dynamic_batch"])
    assert not report.ok
    assert any("dynamic batch" in p and "[-1, 32, 32, 3]" in p for p in report.problems)
    assert "dynamic shape" in report.first_refused.verdict
    assert not any("int8" in p or "float" in p for p in report.problems)


def test_hard_swish_is_the_first_refused_op_and_the_rest_runs_on_cpu(tiny_models, tmp_path, capsys):
    report = check_model(tiny_models["hard_swish"])
    assert not report.ok and report.problems == []
    first = report.first_refused
    assert first is not None and first.op == "HARD_SWISH"
    assert "HARD_SWISH is not supported" in first.verdict
    # Ops before it map; the ops after it map on their own but run on the CPU.
    assert all(op.maps for op in report.ops[: first.index])
    assert report.mapped_count == first.index
    assert report.cpu_count == len(report.ops) - first.index
    assert any(op.maps for op in report.ops[first.index + 1:])

    json_path = tmp_path / "report.json"
    assert cli.main(["check", str(tiny_models["hard_swish"]), "--json", str(json_path)]) == 1
    summary = capsys.readouterr().out.strip().splitlines()[-1]
    assert summary.startswith(f"REFUSED: first refused op #{first.index} HARD_SWISH")
    assert f"{first.index} of {len(report.ops)} ops would map" in summary
    assert f"{report.cpu_count} would run on the CPU" in summary
    data = json.loads(json_path.read_text())
    assert data["ok"] is False and data["first_refused"]["op"] == "HARD_SWISH"
    assert data["mapped_ops"] == first.index
    assert [op["runs_on"] for op in data["ops"]].count("cpu") == report.cpu_count


def test_exp_is_refused(tiny_models):
    report = check_model(tiny_models["exp"])
    assert report.first_refused.op == "EXP"
    assert "EXP is not supported" in report.first_refused.verdict
    assert len(_refused(report, "EXP")) == 1 and len(report.problems) == 0


def test_bilinear_resize_with_half_pixel_centers_is_refused(tiny_models):
    # Keras 3 UpSampling2D(bilinear) -> tf.image.resize -> RESIZE_BILINEAR v3, half_pixel_centers.
    report = check_model(tiny_models["resize_half_pixel"])
    first = report.first_refused
    assert first.op == "RESIZE_BILINEAR"
    assert "half_pixel_centers=True" in first.verdict
    assert not report.ok


def test_grouped_conv_is_refused(tiny_models):
    report = check_model(tiny_models["grouped_conv"])
    convs = [op for op in report.ops if op.op == "CONV_2D"]
    assert {op.version for op in convs} == {6}  # the op code's version is shared by all its ops
    assert any("grouped convolution" in op.verdict for op in convs)
    assert all(not op.maps for op in convs)
    assert report.first_refused.op == "CONV_2D"


# --- op codes read from a hand-built flatbuffer (no converter emits these) ----------------------


def _handmade_model(ops, dtype_name="UINT8", shape=(1, 8)):
    """A 1-subgraph model: a chain of ``ops`` ((builtin_code, custom_code or None), ...) on
    ``shape`` tensors of ``dtype_name``, op codes written the way the schema does for codes >= 127 (deprecated field
    holds the 127 placeholder)."""
    import flatbuffers
    import tflite as tfl

    b = flatbuffers.Builder(1024)

    def vector(start, offsets, prepend):
        start(b, len(offsets))
        for item in reversed(offsets):
            prepend(item)
        return b.EndVector()

    codes = []
    for code, custom in ops:
        custom_offset = b.CreateString(custom) if custom else None
        tfl.OperatorCodeStart(b)
        tfl.OperatorCodeAddDeprecatedBuiltinCode(b, min(code, tfl.BuiltinOperator.PLACEHOLDER_FOR_GREATER_OP_CODES))
        tfl.OperatorCodeAddBuiltinCode(b, code)
        tfl.OperatorCodeAddVersion(b, 1)
        if custom_offset is not None:
            tfl.OperatorCodeAddCustomCode(b, custom_offset)
        codes.append(tfl.OperatorCodeEnd(b))

    tensors = []
    for i in range(len(ops) + 1):
        name = b.CreateString(f"t{i}")
        dims = vector(tfl.TensorStartShapeVector, list(shape), b.PrependInt32)
        tfl.TensorStart(b)
        tfl.TensorAddShape(b, dims)
        tfl.TensorAddType(b, getattr(tfl.TensorType, dtype_name))
        tfl.TensorAddName(b, name)
        tensors.append(tfl.TensorEnd(b))

    operators = []
    for i in range(len(ops)):
        inputs = vector(tfl.OperatorStartInputsVector, [i], b.PrependInt32)
        outputs = vector(tfl.OperatorStartOutputsVector, [i + 1], b.PrependInt32)
        tfl.OperatorStart(b)
        tfl.OperatorAddOpcodeIndex(b, i)
        tfl.OperatorAddInputs(b, inputs)
        tfl.OperatorAddOutputs(b, outputs)
        operators.append(tfl.OperatorEnd(b))

    tensor_vec = vector(tfl.SubGraphStartTensorsVector, tensors, b.PrependUOffsetTRelative)
    in_vec = vector(tfl.SubGraphStartInputsVector, [0], b.PrependInt32)
    out_vec = vector(tfl.SubGraphStartOutputsVector, [len(ops)], b.PrependInt32)
    op_vec = vector(tfl.SubGraphStartOperatorsVector, operators, b.PrependUOffsetTRelative)
    tfl.SubGraphStart(b)
    tfl.SubGraphAddTensors(b, tensor_vec)
    tfl.SubGraphAddInputs(b, in_vec)
    tfl.SubGraphAddOutputs(b, out_vec)
    tfl.SubGraphAddOperators(b, op_vec)
    subgraph = tfl.SubGraphEnd(b)

    tfl.BufferStart(b)
    empty_buffer = tfl.BufferEnd(b)
    code_vec = vector(tfl.ModelStartOperatorCodesVector, codes, b.PrependUOffsetTRelative)
    subgraph_vec = vector(tfl.ModelStartSubgraphsVector, [subgraph], b.PrependUOffsetTRelative)
    buffer_vec = vector(tfl.ModelStartBuffersVector, [empty_buffer], b.PrependUOffsetTRelative)
    tfl.ModelStart(b)
    tfl.ModelAddVersion(b, 3)
    tfl.ModelAddOperatorCodes(b, code_vec)
    tfl.ModelAddSubgraphs(b, subgraph_vec)
    tfl.ModelAddBuffers(b, buffer_vec)
    b.Finish(tfl.ModelEnd(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def test_op_codes_custom_and_extended_builtins(tmp_path):
    import tflite as tfl

    ops = [
        (tfl.BuiltinOperator.RELU, None),
        (tfl.BuiltinOperator.GELU, None),  # code 150: only in builtin_code
        (tfl.BuiltinOperator.CUSTOM, "edgetpu-custom-op"),
        (tfl.BuiltinOperator.CUSTOM, "TFLite_Detection_PostProcess"),
    ]
    path = tmp_path / "handmade.tflite"
    path.write_bytes(_handmade_model(ops))
    report = check_model(path)
    assert [op.op for op in report.ops] == ["RELU", "GELU", "CUSTOM", "CUSTOM"]
    assert report.ops[0].maps and report.ops[0].input_types == ["uint8"]
    assert "GELU is not on the Edge TPU's supported-op list" in report.ops[1].verdict
    assert report.ops[2].custom_code == "edgetpu-custom-op" and report.ops[2].name == "CUSTOM(edgetpu-custom-op)"
    assert "already compiled" in report.ops[2].verdict
    assert "'TFLite_Detection_PostProcess'" in report.ops[3].verdict
    assert report.first_refused.index == 1 and report.mapped_count == 1 and report.cpu_count == 3
    assert report.problems == []
    table = format_report(report)
    assert "CUSTOM(edgetpu-custom-op)" in table
    assert table.splitlines()[-1].startswith("REFUSED: first refused op #1 GELU")


def test_int16_and_high_rank_tensors_are_refused(tmp_path):
    import tflite as tfl

    relu = [(tfl.BuiltinOperator.RELU, None)]
    path = tmp_path / "int16.tflite"
    path.write_bytes(_handmade_model(relu, dtype_name="INT16"))
    report = check_model(path)
    assert "int16 tensors (input 0, output 0)" in report.ops[0].verdict
    assert any("int16" in p for p in report.problems)

    path = tmp_path / "rank5.tflite"
    path.write_bytes(_handmade_model(relu, shape=(1, 4, 2, 4, 8)))
    report = check_model(path)
    assert "tensor [1, 4, 2, 4, 8] has more than 3 dimensions > 1" in report.ops[0].verdict
    path.write_bytes(_handmade_model(relu, shape=(1, 4, 1, 4, 8)))  # 3 dimensions > 1: fine
    assert check_model(path).ok


# --- unreadable files --------------------------------------------------------------------------


@pytest.mark.parametrize("content", [
    b"",
    b"not a model at all, just some text\n",
    b"\x1c\x00\x00\x00TFL3" + bytes(range(256)) * 3,  # right identifier, garbage tables
])
def test_corrupt_file_raises_model_error_naming_the_file(tmp_path, content):
    path = tmp_path / "broken.tflite"
    path.write_bytes(content)
    with pytest.raises(ModelError) as info:
        check_model(path)
    assert str(path) in str(info.value)


def test_truncated_model_raises_model_error(tiny_models, tmp_path):
    path = tmp_path / "truncated.tflite"
    path.write_bytes(tiny_models["good"].read_bytes()[:200])
    with pytest.raises(ModelError, match="truncated.tflite"):
        check_model(path)


def test_missing_file_raises_model_error_and_cli_exits_2(tmp_path, capsys):
    missing = tmp_path / "nope.tflite"
    with pytest.raises(ModelError, match="nope.tflite"):
        check_model(missing)
    assert cli.main(["check", str(missing)]) == 2
    assert "nope.tflite" in capsys.readouterr().err


def test_check_does_not_import_tensorflow(tiny_models):
    src = str(Path(cube_detect.__file__).resolve().parents[1])
    code = (
        "import sys; from cube_detect.edgetpu_check import check_model; "
        f"assert check_model({str(tiny_models['good'])!r}).ok; "
        "assert 'tensorflow' not in sys.modules, 'tensorflow imported'"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")])))
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_check_of_a_model_checks_the_face_reader_its_sidecar_names(shipped_model, tiny_models, tmp_path, capsys):
    import shutil

    shipped = shipped_model
    json_path = tmp_path / "report.json"
    assert cli.main(["check", str(shipped), "--json", str(json_path)]) == 0
    out = capsys.readouterr().out
    assert "face reader named by the sidecar (cube_detect_reader.tflite):" in out
    assert out.strip().splitlines()[-1] == "OK: all 11 ops would map to the Edge TPU"
    data = json.loads(json_path.read_text())
    assert data["ok"] is True and data["reader"]["ok"] is True and data["reader"]["mapped_ops"] == 11
    # The same model whose reader would not map: the model maps, the check fails on the reader.
    for name in ("cube_detect.tflite", "cube_detect.json"):
        shutil.copy(shipped.with_name(name), tmp_path / name)
    shutil.copy(tiny_models["hard_swish"], tmp_path / "cube_detect_reader.tflite")
    assert cli.main(["check", str(tmp_path / "cube_detect.tflite")]) == 1
    assert "REFUSED: first refused op" in capsys.readouterr().out.strip().splitlines()[-1]
