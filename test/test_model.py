"""The detector network: pruning a trained one to fewer channels, rebuilding it at another input size."""

import numpy as np
import pytest

from cube_detect.model import build_model, channels, prune_channels, with_input_size
from cube_detect.modelspec import ModelSpec

SPEC = ModelSpec(width=64, height=48)


def _network(seed=0):
    model = build_model(SPEC, width=1)  # stem 16, context 64
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(0, 0.3, w.shape).astype(np.float32) if w.ndim > 1 else
                       np.abs(rng.normal(1, 0.2, w.shape)).astype(np.float32) for w in model.get_weights()])
    return model, rng.random((8, 48, 64, 1)).astype(np.float32)


def _silence(model, stem_channels, stream_channels, head_channels):
    """Zero every weight that reads these channels: the network's outputs no longer depend on them."""
    def zero_rows(name, rows):
        weights = model.get_layer(name).get_weights()
        weights[0][:, :, rows, :] = 0
        model.get_layer(name).set_weights(weights)
    zero_rows("s4_pw_conv", stem_channels)
    for i in range(4):
        zero_rows(f"ctx{i}_pw_conv", stream_channels)
    zero_rows("head_conv", stream_channels)
    zero_rows("heatmap", head_channels)
    zero_rows("boxes", head_channels)


def test_pruning_drops_the_channels_nothing_reads_and_keeps_the_outputs():
    model, images = _network()
    dropped_stem, dropped_stream, dropped_head = [1, 4, 9, 15], list(range(0, 64, 4)), list(range(2, 64, 4))
    _silence(model, dropped_stem, dropped_stream, dropped_head)
    pruned, kept_stem, kept_context = prune_channels(model, SPEC, images, stem=12, context=48)
    assert channels(pruned) == (12, 48) and pruned.count_params() < model.count_params()
    assert kept_stem == pytest.approx(1.0) and kept_context == pytest.approx(1.0)
    for before, after in zip(model(images, training=False), pruned(images, training=False)):
        np.testing.assert_allclose(np.asarray(after), np.asarray(before), rtol=1e-4, atol=1e-5)


def test_pruning_to_as_many_channels_is_the_same_network_and_keeps_no_more():
    model, images = _network(1)
    same, kept_stem, kept_context = prune_channels(model, SPEC, images, stem=16, context=64)
    assert (kept_stem, kept_context) == (1.0, 1.0)
    for before, after in zip(model(images, training=False), same(images, training=False)):
        np.testing.assert_allclose(np.asarray(after), np.asarray(before), rtol=1e-5, atol=1e-6)
    # Fewer channels that all matter: the shares it keeps say how much is lost.
    _, kept_stem, kept_context = prune_channels(model, SPEC, images, stem=8, context=32)
    assert 0.5 < kept_stem < 1.0 and 0.5 < kept_context < 1.0
    with pytest.raises(ValueError, match="at most"):
        prune_channels(model, SPEC, images, stem=32, context=64)


def test_a_pruned_network_is_rebuilt_at_another_input_size_with_its_weights():
    model, images = _network(2)
    pruned, _, _ = prune_channels(model, SPEC, images, stem=8, context=40)
    bigger = with_input_size(pruned, ModelSpec(width=96, height=64))
    assert tuple(bigger.input_shape[1:3]) == (64, 96) and channels(bigger) == (8, 40)
    for a, b in zip(pruned.get_weights(), bigger.get_weights()):
        assert (a == b).all()
    heatmap, boxes = bigger(np.zeros((2, 64, 96, 1), np.float32))
    assert heatmap.shape == (2, 8, 12, SPEC.num_classes) and boxes.shape == (2, 8, 12, 4)
