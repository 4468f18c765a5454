"""The sidecar is validated once: a bad value is one ModelError naming the file and the field."""

import json
from pathlib import Path

import pytest

from cube_detect.errors import ModelError
from cube_detect.export import run_spec
from cube_detect.modelspec import ModelSpec


@pytest.fixture
def sidecar(tmp_path):
    path = tmp_path / "m.json"
    ModelSpec().save(path)
    return path


def rewrite(path, change):
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc).replace("Infinity", "1e400"))


@pytest.mark.parametrize("change, field", [
    (lambda d: d["input"].update(width=float("inf")), "input.width"),  # "width": 1e400
    (lambda d: d.update(stride=0), "stride"),
    (lambda d: d.update(labels="one,two"), "labels"),
    (lambda d: d["input"].update(pad_value=1000000), "input.pad_value"),
    (lambda d: d["input"].update(channels=2), "input.channels"),
    (lambda d: d.update(threshold=1.5), "threshold"),
    (lambda d: d.update(labels={"0": "background"}), "labels"),
    (lambda d: d.update(labels={"1": "one", "2": "one"}), "labels"),
    (lambda d: d["input"].pop("height"), "input.height"),
])
def test_bad_sidecar_values_name_the_file_and_the_field(sidecar, change, field):
    rewrite(sidecar, change)
    with pytest.raises(ModelError) as err:
        ModelSpec.load(sidecar)
    message = str(err.value)
    assert message.startswith(f"{sidecar}: sidecar field '{field}'") and "\n" not in message, message


def test_a_good_sidecar_round_trips(sidecar):
    spec = ModelSpec.load(sidecar)
    assert (spec.width, spec.height, spec.channels, spec.stride, spec.pad_value) == (160, 120, 1, 8, 0)
    assert spec.labels == {1: "one", 2: "two"} and spec.threshold == 0.5


def test_the_shipped_sidecar_reads_and_writes_back_the_same_json():
    shipped = Path(__file__).resolve().parent.parent / "models" / "cube_detect.json"
    spec = ModelSpec.load(shipped)
    assert json.loads(spec.to_json()) == json.loads(shipped.read_text())
    assert ModelSpec.from_dict(spec.to_dict(), shipped) == spec


def test_export_rebuilds_a_training_runs_spec_from_its_state(tmp_path):
    """train saves the sidecar document in state.json; runs of earlier versions kept labels and input."""
    state_path = tmp_path / "state.json"
    spec = ModelSpec(labels={3: "cube", 7: "empty"}, channels=3)
    state = json.loads(json.dumps({"spec": spec.to_dict()}))  # as read back from the file
    assert run_spec(state, state_path) == spec
    older = {"spec": {"labels": {"3": "cube", "7": "empty"}, "channels": 3, "width": 160, "height": 120}}
    assert run_spec(older, state_path) == spec
    assert run_spec({}, state_path) == ModelSpec()
    state["spec"]["stride"] = 0
    with pytest.raises(ModelError, match=f"{state_path}: sidecar field 'stride'"):
        run_spec(state, state_path)
