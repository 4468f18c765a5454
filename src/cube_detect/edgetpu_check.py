"""Static check of a .tflite model against the Edge TPU compiler's (v16) rules.

``python -m cube_detect check MODEL.tflite [--json REPORT.json]`` reads the flatbuffer with the
``tflite`` parser package (no TensorFlow, no compiler) and says, op by op in execution order,
whether the compiler would map it, and why not. The compiler maps one segment: everything from
the first refused op on runs on the CPU, so the report names that op and counts the ops before
it. Exit status 0 only when the whole graph would map and the model's inputs and outputs are as
pycoral needs them (uint8, batch 1, static shapes).

Rules: docs/DOMAIN.md ("Edge TPU rules") and Coral's supported-ops table.
Op versions come from TFLite's op_version.cc: a plain int8 CONV_2D / DEPTHWISE_CONV_2D is v3,
grouped conv is v6, TRANSPOSE_CONV with a fused activation is v4, RESIZE_* with
half_pixel_centers is v3 -- the versions compiler 16 fails on. An op code's version is the
highest any op of that code needs, so one grouped conv makes every CONV_2D of the model v6.
"""

from __future__ import annotations

import argparse
import json
import os
import struct
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from cube_detect.errors import ModelError
from cube_detect.files import atomic_write_text

# --- the rules ---------------------------------------------------------------------------------

#: Ops the Edge TPU compiler maps (with the per-op conditions checked in ``_op_reasons``).
#: FULLY_CONNECTED is not in DOMAIN.md's short list but the compiler supports it (Coral's
#: supported-ops table: default weights format, one-dimensional output).
MAPPED_OPS = frozenset({
    "CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV",
    "ADD", "SUB", "MUL", "CONCATENATION",
    "LOGISTIC", "RELU", "RELU6",
    "MAX_POOL_2D", "AVERAGE_POOL_2D", "MEAN",
    "PAD", "RESHAPE", "QUANTIZE",
    "RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR",
    "SOFTMAX",
})

#: Ops known to be refused, with the reason the report gives.
REFUSED_OPS = {
    "HARD_SWISH": "HARD_SWISH is not supported by the Edge TPU (use RELU or RELU6)",
    "EXP": "EXP is not supported by the Edge TPU",
    "DEQUANTIZE": "DEQUANTIZE (back to float) is not supported by the Edge TPU",
}

#: Highest op version compiler 16 maps, for the ops whose failing versions are documented.
#: Plain int8 conv / depthwise: v3 (TF 2.19's converter emits v3); grouped conv: v6;
#: TRANSPOSE_CONV with fused activation: v4; RESIZE_* with half_pixel_centers: v3.
MAX_VERSION = {
    "CONV_2D": 3,
    "DEPTHWISE_CONV_2D": 3,
    "TRANSPOSE_CONV": 3,
    "RESIZE_BILINEAR": 2,
    "RESIZE_NEAREST_NEIGHBOR": 2,
}

#: Input positions that may hold int32 constants (bias, shape, paddings, axes, sizes):
#: every other tensor must be int8/uint8.
INT32_PARAMETER_INPUTS = {
    "CONV_2D": {2},
    "DEPTHWISE_CONV_2D": {2},
    "FULLY_CONNECTED": {2},
    "TRANSPOSE_CONV": {0, 3},  # output_shape, bias
    "RESHAPE": {1},
    "PAD": {1},
    "MEAN": {1},
    "RESIZE_BILINEAR": {1},
    "RESIZE_NEAREST_NEIGHBOR": {1},
}

#: Inputs that are weights and must be constant (buffers in the model), by op.
WEIGHT_INPUTS = {
    "CONV_2D": (1, 2),
    "DEPTHWISE_CONV_2D": (1, 2),
    "FULLY_CONNECTED": (1, 2),
    "TRANSPOSE_CONV": (1, 3),
}

QUANTIZED_TYPES = ("uint8", "int8")
SOFTMAX_MAX_ELEMENTS = 16000  # Coral: "1-D input tensor with a max of 16,000 elements"
MAPS = "maps"

# --- report ------------------------------------------------------------------------------------


@dataclass
class OpVerdict:
    """One op of subgraph 0: what it is and whether the compiler would map it."""

    index: int
    op: str  # builtin name, e.g. "CONV_2D"; "CUSTOM" for custom ops
    version: int
    input_types: List[str]  # "-" for an omitted optional input
    output_types: List[str]
    verdict: str  # "maps", or the reasons it is refused ("; "-joined)
    custom_code: Optional[str] = None

    @property
    def maps(self) -> bool:
        return self.verdict == MAPS

    @property
    def name(self) -> str:
        return f"CUSTOM({self.custom_code})" if self.op == "CUSTOM" else self.op

    def to_dict(self) -> dict:
        return dict(asdict(self), name=self.name)


@dataclass
class CheckReport:
    """The per-op verdicts, the first refused op and the model-level problems."""

    path: str
    ops: List[OpVerdict] = field(default_factory=list)
    first_refused: Optional[OpVerdict] = None
    ok: bool = False
    problems: List[str] = field(default_factory=list)

    @property
    def mapped_count(self) -> int:
        """Ops the compiler would put on the Edge TPU: those before the first refused one."""
        return len(self.ops) if self.first_refused is None else self.first_refused.index

    @property
    def cpu_count(self) -> int:
        return len(self.ops) - self.mapped_count

    def to_dict(self) -> dict:
        return {
            "model": self.path,
            "ok": self.ok,
            "problems": list(self.problems),
            "first_refused": self.first_refused.to_dict() if self.first_refused else None,
            "mapped_ops": self.mapped_count,
            "cpu_ops": self.cpu_count,
            "ops": [
                dict(op.to_dict(), runs_on="edgetpu" if op.index < self.mapped_count else "cpu")
                for op in self.ops
            ],
        }


# --- a plain snapshot of the flatbuffer (all parsing happens here) -----------------------------


@dataclass
class _Tensor:
    name: str
    dtype: str  # lower-case TensorType name: "uint8", "int8", "int32", "float32", ...
    shape: Tuple[int, ...]
    signature: Optional[Tuple[int, ...]]  # shape_signature, when the model has one
    constant: bool
    variable: bool
    int32_values: Optional[Tuple[int, ...]] = None  # small int32 constants (axes, paddings)


@dataclass
class _Op:
    index: int
    name: str
    custom_code: Optional[str]
    version: int
    inputs: List[int]
    outputs: List[int]
    options: Dict[str, object]


@dataclass
class _Graph:
    tensors: List[_Tensor]
    ops: List[_Op]
    inputs: List[int]
    outputs: List[int]


def _enum_names(enum_class) -> Dict[int, str]:
    return {v: k for k, v in vars(enum_class).items() if not k.startswith("_") and isinstance(v, int)}


def _read_options(tfl, op, op_name: str) -> Dict[str, object]:
    """The builtin options the rules look at, as a plain dict."""
    wanted = {
        "CONV_2D": ("Conv2DOptions", ("FusedActivationFunction", "DilationWFactor", "DilationHFactor")),
        "DEPTHWISE_CONV_2D": ("DepthwiseConv2DOptions",
                              ("FusedActivationFunction", "DilationWFactor", "DilationHFactor")),
        "CONCATENATION": ("ConcatenationOptions", ("FusedActivationFunction",)),
        "MAX_POOL_2D": ("Pool2DOptions", ("FusedActivationFunction",)),
        "AVERAGE_POOL_2D": ("Pool2DOptions", ("FusedActivationFunction",)),
        "TRANSPOSE_CONV": ("TransposeConvOptions", ("FusedActivationFunction",)),
        "FULLY_CONNECTED": ("FullyConnectedOptions", ("WeightsFormat", "KeepNumDims")),
        "RESIZE_BILINEAR": ("ResizeBilinearOptions", ("AlignCorners", "HalfPixelCenters")),
        "RESIZE_NEAREST_NEIGHBOR": ("ResizeNearestNeighborOptions", ("AlignCorners", "HalfPixelCenters")),
    }.get(op_name)
    if wanted is None:
        return {}
    class_name, fields = wanted
    table = op.BuiltinOptions()
    if table is None or op.BuiltinOptionsType() != getattr(tfl.BuiltinOptions, class_name):
        return {}  # absent options: the schema's defaults (no activation, no flags)
    options = getattr(tfl, class_name)()
    options.Init(table.Bytes, table.Pos)
    return {name: getattr(options, name)() for name in fields}


def _read_graph(path: Path, data: bytes) -> _Graph:
    import tflite as tfl  # the flatbuffer parser only; never TensorFlow

    if len(data) < 8 or data[4:8] != b"TFL3":
        raise ModelError(f"{path}: not a TFLite model (no 'TFL3' flatbuffer identifier)")
    op_names = _enum_names(tfl.BuiltinOperator)
    type_names = {k: v.lower() for k, v in _enum_names(tfl.TensorType).items()}
    activation_names = _enum_names(tfl.ActivationFunctionType)

    model = tfl.Model.GetRootAsModel(data, 0)
    if model.SubgraphsLength() < 1:
        raise ModelError(f"{path}: TFLite model has no subgraph")
    graph = model.Subgraphs(0)
    # Lengths read from a damaged file can be absurd: refuse them instead of looping for ever.
    limit = len(data) // 4
    for what, count in (("tensors", graph.TensorsLength()), ("operators", graph.OperatorsLength()),
                        ("operator codes", model.OperatorCodesLength()), ("buffers", model.BuffersLength())):
        if not 0 <= count <= limit:
            raise ModelError(f"{path}: corrupt TFLite model ({count} {what})")

    def buffer_is_constant(index: int) -> bool:
        if index <= 0 or index >= model.BuffersLength():
            return False  # buffer 0 is the schema's "no data" sentinel
        buffer = model.Buffers(index)
        # Data inside the flatbuffer, or after it (offset/size, models > 2 GB).
        return buffer.DataLength() > 0 or (buffer.Offset() > 1 and buffer.Size() > 0)

    def small_int32_values(index: int) -> Optional[Tuple[int, ...]]:
        buffer = model.Buffers(index)
        size = buffer.DataLength()
        if not 0 < size <= 256 or size % 4:
            return None
        return struct.unpack(f"<{size // 4}i", buffer.DataAsNumpy().tobytes())

    tensors = []
    for i in range(graph.TensorsLength()):
        t = graph.Tensors(i)
        dtype = type_names.get(t.Type(), f"type{t.Type()}")
        constant = buffer_is_constant(t.Buffer())
        tensors.append(_Tensor(
            name=(t.Name() or b"").decode("utf-8", "replace"),
            dtype=dtype,
            shape=tuple(int(d) for d in t.ShapeAsNumpy()) if t.ShapeLength() else (),
            signature=tuple(int(d) for d in t.ShapeSignatureAsNumpy()) if t.ShapeSignatureLength() else None,
            constant=constant,
            variable=bool(t.IsVariable()),
            int32_values=small_int32_values(t.Buffer()) if constant and dtype == "int32" else None,
        ))

    ops = []
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        if not 0 <= op.OpcodeIndex() < model.OperatorCodesLength():
            raise ModelError(f"{path}: corrupt TFLite model (op {i} has op code {op.OpcodeIndex()})")
        code = model.OperatorCodes(op.OpcodeIndex())
        # schema_utils.cc: the op code is the larger of the two fields (builtin_code for codes
        # >= 127, where deprecated_builtin_code holds the 127 placeholder; the deprecated field
        # alone in old v3 models).
        builtin = int(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()))
        name = op_names.get(builtin, f"BUILTIN_{builtin}")
        custom = code.CustomCode().decode("utf-8", "replace") if name == "CUSTOM" and code.CustomCode() else None
        options = _read_options(tfl, op, name)
        if "FusedActivationFunction" in options:
            activation = options["FusedActivationFunction"]
            options["FusedActivationFunction"] = activation_names.get(int(activation), str(activation))  # type: ignore[call-overload]
        ops.append(_Op(
            index=i, name=name, custom_code=custom, version=int(code.Version()),
            inputs=[int(j) for j in op.InputsAsNumpy()] if op.InputsLength() else [],
            outputs=[int(j) for j in op.OutputsAsNumpy()] if op.OutputsLength() else [],
            options=options,
        ))
        for j in ops[-1].inputs + ops[-1].outputs:
            if not -1 <= j < len(tensors):
                raise ModelError(f"{path}: corrupt TFLite model (op {i} uses tensor {j})")

    io = [int(j) for j in graph.InputsAsNumpy()] if graph.InputsLength() else []
    out = [int(j) for j in graph.OutputsAsNumpy()] if graph.OutputsLength() else []
    if any(not 0 <= j < len(tensors) for j in io + out):
        raise ModelError(f"{path}: corrupt TFLite model (graph input/output out of range)")
    return _Graph(tensors=tensors, ops=ops, inputs=io, outputs=out)


# --- per-op and model-level rules --------------------------------------------------------------


def _dims_over_one(shape: Sequence[int]) -> int:
    return sum(1 for d in shape if d > 1)


def _is_dynamic(tensor: _Tensor) -> bool:
    return tensor.signature is not None and any(d < 0 for d in tensor.signature)


def _op_reasons(op: _Op, graph: _Graph) -> List[str]:
    """Why the compiler would refuse ``op``; empty when it maps."""
    tensors = graph.tensors
    name = op.name
    reasons: List[str] = []

    # Which op.
    if name == "CUSTOM":
        if op.custom_code == "edgetpu-custom-op":
            reasons.append("CUSTOM op 'edgetpu-custom-op': this model is already compiled for the "
                           "Edge TPU; check the uncompiled int8 model")
        else:
            reasons.append(f"CUSTOM op '{op.custom_code}' is not supported by the Edge TPU")
        return reasons
    if name in REFUSED_OPS:
        return [REFUSED_OPS[name]]
    if name not in MAPPED_OPS:
        return [f"{name} is not on the Edge TPU's supported-op list"]

    # Op version and options.
    options = op.options
    activation = options.get("FusedActivationFunction", "NONE")
    if name == "CONV_2D":
        filt = tensors[op.inputs[1]] if len(op.inputs) > 1 and op.inputs[1] >= 0 else None
        data = tensors[op.inputs[0]] if op.inputs and op.inputs[0] >= 0 else None
        if filt and data and len(filt.shape) == 4 and len(data.shape) == 4 and filt.shape[3] != data.shape[3]:
            reasons.append(f"grouped convolution (filter has {filt.shape[3]} input channels, "
                           f"input tensor has {data.shape[3]})")
        elif op.version >= 6:
            reasons.append(f"CONV_2D v{op.version}, set by a grouped convolution elsewhere in the model "
                           f"(the version is per op code); compiler 16 maps v<=3")
    if name in MAX_VERSION and op.version > MAX_VERSION[name] and not (name == "CONV_2D" and op.version >= 6):
        if name.startswith("RESIZE_") and (options.get("HalfPixelCenters") or options.get("AlignCorners")):
            pass  # the option check below names the cause
        elif name == "TRANSPOSE_CONV" and activation != "NONE":
            pass
        else:
            reasons.append(f"{name} v{op.version}: compiler 16 maps v<={MAX_VERSION[name]}")
    if name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        dw, dh = options.get("DilationWFactor", 1), options.get("DilationHFactor", 1)
        if dw != dh:
            reasons.append(f"different dilation in x ({dw}) and y ({dh})")
    if name in ("CONCATENATION", "MAX_POOL_2D", "AVERAGE_POOL_2D") and activation != "NONE":
        reasons.append(f"fused activation {activation} on {name}")
    if name == "TRANSPOSE_CONV" and activation != "NONE":
        reasons.append(f"TRANSPOSE_CONV with fused activation {activation} (v4)")
    if name.startswith("RESIZE_"):
        for flag, label in (("HalfPixelCenters", "half_pixel_centers"), ("AlignCorners", "align_corners")):
            if options.get(flag):
                reasons.append(f"{name} with {label}=True (TF2's tf.image.resize sets half_pixel_centers)")
    if name == "FULLY_CONNECTED":
        if options.get("WeightsFormat", 0) != 0:
            reasons.append("FULLY_CONNECTED weights not in the default format")
        out = tensors[op.outputs[0]] if op.outputs else None
        if out is not None and _dims_over_one(out.shape) > 1:
            reasons.append(f"FULLY_CONNECTED output {list(out.shape)} is not one-dimensional")
    if name == "SOFTMAX" and op.inputs:
        x = tensors[op.inputs[0]]
        if _dims_over_one(x.shape) > 1:
            reasons.append(f"SOFTMAX on {list(x.shape)}: only 1-D inputs map")
        elif _elements(x.shape) > SOFTMAX_MAX_ELEMENTS:
            reasons.append(f"SOFTMAX over more than {SOFTMAX_MAX_ELEMENTS} elements")
    if name == "MEAN" and len(op.inputs) > 1:
        axes = tensors[op.inputs[1]].int32_values
        rank = len(tensors[op.inputs[0]].shape)
        if axes is not None and any(a % max(rank, 1) == 0 for a in axes) and rank > 1:
            reasons.append("MEAN reduces the batch dimension")
    if name == "PAD" and len(op.inputs) > 1:
        pads = tensors[op.inputs[1]].int32_values
        if pads is not None and len(pads) >= 2 and any(pads[:2]):
            reasons.append("PAD pads the batch dimension")

    # Weights.
    for position in WEIGHT_INPUTS.get(name, ()):
        if position < len(op.inputs) and op.inputs[position] >= 0:
            tensor = tensors[op.inputs[position]]
            if not tensor.constant:
                reasons.append(f"weights '{tensor.name}' are not constant")

    # Tensors: types, static shapes, rank. One reason per kind, naming the tensors by position.
    int32_ok = INT32_PARAMETER_INPUTS.get(name, set())
    bad_types, bad_positions, dynamic, over_rank = set(), [], None, None
    for role, indices in (("input", op.inputs), ("output", op.outputs)):
        for position, j in enumerate(indices):
            if j < 0:
                continue
            tensor = tensors[j]
            if tensor.variable:
                reasons.append(f"{role} {position} '{tensor.name}' is a variable tensor")
            if tensor.dtype not in QUANTIZED_TYPES and not (
                    role == "input" and position in int32_ok and tensor.dtype == "int32" and tensor.constant):
                bad_types.add(tensor.dtype)
                bad_positions.append(f"{role} {position}")
            if tensor.constant:
                continue  # weights: a 3x3 conv filter has 4 dimensions > 1 and that is fine
            if dynamic is None and _is_dynamic(tensor):
                dynamic = tensor.signature
            if over_rank is None and _dims_over_one(tensor.shape) > 3:
                over_rank = tensor.shape
    if bad_types:
        floats = any(t.startswith("float") for t in bad_types)
        reasons.append(f"{'/'.join(sorted(bad_types))} tensors ({', '.join(bad_positions)}); the Edge TPU "
                       f"needs int8/uint8" + (" (model not quantized)" if floats else ""))
    if dynamic is not None:
        reasons.append(f"dynamic shape (shape_signature {list(dynamic)})")
    if over_rank is not None:
        reasons.append(f"tensor {list(over_rank)} has more than 3 dimensions > 1")
    return _unique(reasons)


def _elements(shape: Sequence[int]) -> int:
    n = 1
    for d in shape:
        n *= max(d, 1)
    return n


def _unique(items: List[str]) -> List[str]:
    seen, out = set(), []
    for item in items:
        if item not in seen:
            seen.add(item)
            out.append(item)
    return out


def _model_problems(graph: _Graph) -> List[str]:
    """Model-level issues: I/O types and shapes pycoral and the compiler need."""
    problems = []
    for role, indices in (("input", graph.inputs), ("output", graph.outputs)):
        for j in indices:
            tensor = graph.tensors[j]
            label = f"model {role} '{tensor.name}'"
            if tensor.dtype == "int8":
                problems.append(f"{label} is int8: pycoral's adapters need uint8 "
                                f"(convert with inference_{role}_type=tf.uint8)")
            elif tensor.dtype != "uint8":
                problems.append(f"{label} is {tensor.dtype}, not uint8"
                                + (" (model not quantized)" if tensor.dtype.startswith("float") else ""))
            if _is_dynamic(tensor):
                signature = tensor.signature or ()
                if signature and signature[0] < 0:
                    problems.append(f"{label} has a dynamic batch: shape_signature {list(signature)} "
                                    f"(export with a fixed batch of 1)")
                if any(d < 0 for d in signature[1:]):
                    problems.append(f"{label} has dynamic dimensions: shape_signature {list(signature)}")
            elif len(tensor.shape) >= 2 and tensor.shape[0] != 1:
                problems.append(f"{label} has batch {tensor.shape[0]}; the Edge TPU needs batch 1")
    if not graph.ops:
        problems.append("the model has no operators")
    return problems


# --- public API --------------------------------------------------------------------------------


def check_model(path: os.PathLike) -> CheckReport:
    """Check ``path`` against the Edge TPU compiler's rules; ModelError if it cannot be read."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ModelError(f"{path}: model file not found") from None
    except OSError as exc:
        raise ModelError(f"{path}: cannot read model: {exc.strerror or exc}") from None
    try:
        graph = _read_graph(path, data)
    except ModelError:
        raise
    except Exception as exc:  # a damaged flatbuffer fails in many ways (struct, index, unicode)
        raise ModelError(f"{path}: corrupt TFLite model ({type(exc).__name__}: {exc})") from None

    report = CheckReport(path=str(path), problems=_model_problems(graph))
    for op in graph.ops:
        reasons = _op_reasons(op, graph)
        report.ops.append(OpVerdict(
            index=op.index,
            op=op.name,
            version=op.version,
            input_types=[graph.tensors[j].dtype if j >= 0 else "-" for j in op.inputs],
            output_types=[graph.tensors[j].dtype if j >= 0 else "-" for j in op.outputs],
            verdict="; ".join(reasons) if reasons else MAPS,
            custom_code=op.custom_code,
        ))
    report.first_refused = next((v for v in report.ops if not v.maps), None)
    report.ok = report.first_refused is None and not report.problems
    return report


def format_report(report: CheckReport) -> str:
    """An aligned table of the ops, the model-level problems, and one summary line."""
    header = ("#", "op", "ver", "inputs", "outputs", "runs on", "verdict")
    rows = [header]
    for op in report.ops:
        rows.append((
            str(op.index), op.name, f"v{op.version}",
            ",".join(op.input_types), ",".join(op.output_types),
            "edgetpu" if op.index < report.mapped_count else "cpu",
            op.verdict,
        ))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)]
    lines = [
        "  ".join(cell.rjust(w) if i == 0 else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths)))
        + "  " + row[-1]
        for row in rows
    ]
    lines.extend(f"problem: {p}" for p in report.problems)

    total = len(report.ops)
    if report.ok:
        summary = f"OK: all {total} ops would map to the Edge TPU"
    else:
        parts = []
        if report.first_refused is not None:
            first = report.first_refused
            parts.append(f"first refused op #{first.index} {first.name} ({first.verdict}); "
                         f"{report.mapped_count} of {total} ops would map to the Edge TPU, "
                         f"{report.cpu_count} would run on the CPU")
        else:
            parts.append(f"all {total} ops would map")
        if report.problems:
            parts.append(f"{len(report.problems)} model problem(s)")
        summary = "REFUSED: " + "; ".join(parts)
    lines.append(summary)
    return "\n".join(lines)


# --- CLI ---------------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", type=Path, help="the .tflite model to check (the uncompiled int8 one)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the report as JSON to FILE")


def reader_of(model: Path) -> Optional[Path]:
    """The face reader the model's sidecar names (``cube_detect.reader``), if it has a sidecar and a reader."""
    from cube_detect.modelspec import ModelSpec, sidecar_path

    sidecar = sidecar_path(model)
    if model.stem.endswith("_reader") or not sidecar.is_file():
        return None
    spec = ModelSpec.load(sidecar)
    return model.with_name(spec.reader.file) if spec.reader is not None else None


def run(args: argparse.Namespace) -> int:
    """Print the report (and the face reader's, when the model's sidecar names one); exit 0 only
    when the whole model, and its reader, would map to the Edge TPU."""
    report = check_model(args.model)
    print(format_report(report))
    document = report.to_dict()
    ok = report.ok
    try:
        reader = reader_of(Path(args.model))
    except ModelError as exc:  # a bad sidecar: the model's report stands, the check fails on its reader
        print(f"\nface reader: not checked ({exc})")
        document["reader"] = {"ok": False, "problems": [str(exc)]}
        ok, reader = False, None
    if reader is not None:
        reader_report = check_model(reader)
        print(f"\nface reader named by the sidecar ({reader.name}):")
        print(format_report(reader_report))
        document["reader"] = reader_report.to_dict()
        ok = ok and reader_report.ok
    if args.json is not None:
        atomic_write_text(args.json, json.dumps(document, indent=2) + "\n")
    return 0 if ok else 1
