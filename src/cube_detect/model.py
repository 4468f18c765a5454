"""The detector network and its training targets (training side: imports TensorFlow).

A small anchor-free, CenterNet-style network built only from ops the Edge TPU maps
(CONV_2D, DEPTHWISE_CONV_2D, ADD, RELU, LOGISTIC; batch norm folds into the convolutions):

  gray W x H (the sidecar's input size: 160x120 by default, train --input-size) -> conv 3x3/2
  -> 3 depthwise-separable stages to stride 8 -> 4 residual depthwise 5x5 blocks (receptive
  field 151 px: a whole face, up to the largest close-ups at 224x168) -> two 1x1 heads:
  heatmap (sigmoid, one channel per class) and boxes (ReLU, l/t/r/b distances in cells).

``train --init M --channels STEM,CONTEXT`` makes a trained network smaller and faster
(:func:`prune_channels`: the stem filters and context channels that carry most, then a fine-tune).
"""

from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf
from tensorflow import keras
from tensorflow.keras import layers

from cube_detect.modelspec import ModelSpec

CONTEXT_BLOCKS = 4  # 5x5 separable residual blocks at stride 8: the detector's context
PRIOR = 0.05  # initial heatmap score, as in focal-loss detectors (stable first steps)
# Short CPU runs: moving statistics must follow the weights within a few hundred steps.
BN_MOMENTUM = 0.9


def _conv_bn_relu(x, filters, kernel, strides=1, name=""):
    x = layers.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def _separable(x, filters, kernel=3, strides=1, name=""):
    x = layers.DepthwiseConv2D(kernel, strides=strides, padding="same", use_bias=False, name=f"{name}_dw")(x)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_dw_bn")(x)
    x = layers.ReLU(name=f"{name}_dw_relu")(x)
    return _conv_bn_relu(x, filters, 1, name=f"{name}_pw")


def build_model(spec: ModelSpec, width: int = 1, stem: Optional[int] = None,
                context: Optional[int] = None) -> keras.Model:
    """Float Keras model: input [0, 1] gray image, outputs (heatmap, boxes) at stride 8. ``width``
    multiplies every layer's channels (16, 32, 48, 64); ``stem`` and ``context``, when given, set
    the stem's filters and the context stream's channels (s8_expand, the four context blocks and
    the head) instead: the network :func:`prune_channels` makes."""
    if spec.stride != 8:
        raise ValueError("this network has stride 8")
    c = [stem or 16 * width, 32 * width, 48 * width, context or 64 * width]
    inputs = keras.Input((spec.height, spec.width, spec.channels), batch_size=None, name="image")
    x = _conv_bn_relu(inputs, c[0], 3, strides=2, name="stem")          # /2
    x = _separable(x, c[1], strides=2, name="s4")                       # /4
    x = _separable(x, c[1], name="s4b")
    x = _separable(x, c[2], strides=2, name="s8")                       # /8
    x = _conv_bn_relu(x, c[3], 1, name="s8_expand")
    for i in range(CONTEXT_BLOCKS):
        y = _separable(x, c[3], kernel=5, name=f"ctx{i}")
        x = layers.Add(name=f"ctx{i}_add")([x, y])
    x = _conv_bn_relu(x, c[3], 1, name="head")
    heatmap = layers.Conv2D(spec.num_classes, 1, activation="sigmoid", name="heatmap",
                            bias_initializer=keras.initializers.Constant(-np.log((1 - PRIOR) / PRIOR)))(x)
    boxes = layers.Conv2D(4, 1, activation="relu", name="boxes",
                          bias_initializer=keras.initializers.Constant(2.0))(x)
    return keras.Model(inputs, [heatmap, boxes], name="cube_detect")


def with_input_size(model: keras.Model, spec: ModelSpec) -> keras.Model:
    """The same network, weights included, built for ``spec``'s input size (it is fully
    convolutional: a fine-tune can change the size)."""
    config = model.get_config()
    for layer in config["layers"]:
        if layer["class_name"] == "InputLayer":
            layer["config"]["batch_shape"] = [None, spec.height, spec.width, spec.channels]
    rebuilt = keras.Model.from_config(config)
    rebuilt.set_weights(model.get_weights())
    return rebuilt


def channels(model: keras.Model) -> Tuple[int, int]:
    """(stem filters, context channels) of a network :func:`build_model` built."""
    return model.get_layer("stem_conv").filters, model.get_layer("s8_expand_conv").filters


def prune_channels(model: keras.Model, spec: ModelSpec, images: np.ndarray, stem: int,
                   context: int) -> Tuple[keras.Model, float, float]:
    """A smaller, faster copy of ``model`` (built by :func:`build_model`, at ``spec``'s input
    size) with ``stem`` of its stem filters and ``context`` of its context channels: the ones that
    carry most on ``images`` (N x H x W x C in [0, 1]). A channel's share is its summed |activation|
    where a layer reads it (after the depthwise convolution and ReLU that follow it, for the stem
    and each context block; the stream itself where the head reads it) times the norm of the 1x1
    weights that read it (structured pruning by magnitude, as in Li et al. 2017 and Molchanov et
    al. 2019, here without a gradient); the head's own outputs are chosen the same way by what the
    heatmap and boxes read. The copy needs a fine-tune to recover. Returns the copy and the shares
    kept of the stem's and of the context stream's."""
    had_stem, had_context = channels(model)
    if not (0 < stem <= had_stem and 0 < context <= had_context):
        raise ValueError(f"channels {stem},{context}: this network has {had_stem},{had_context}; "
                         "pruning keeps at most as many")
    ctx = [f"ctx{i}" for i in range(CONTEXT_BLOCKS)]
    probed = ["s4_dw_relu", f"{ctx[-1]}_add", "head_relu"] + [f"{c}_dw_relu" for c in ctx]
    probe = keras.Model(model.input, [model.get_layer(n).output for n in probed])
    activity: dict = dict.fromkeys(probed, 0.0)
    for start in range(0, len(images), 32):
        for name, out in zip(probed, probe(images[start:start + 32], training=False)):
            activity[name] = activity[name] + np.abs(np.asarray(out)).sum(axis=(0, 1, 2))

    def get(name: str) -> List[np.ndarray]:
        return model.get_layer(name).get_weights()

    def reads(name: str) -> np.ndarray:  # norm of the weights a 1x1 conv reads each input channel with
        return np.linalg.norm(get(name)[0][0, 0], axis=1)

    share_stem = activity["s4_dw_relu"] * reads("s4_pw_conv")
    share_stream = activity[f"{ctx[-1]}_add"] * reads("head_conv")
    for c in ctx:
        share_stream = share_stream + activity[f"{c}_dw_relu"] * reads(f"{c}_pw_conv")
    # the head's outputs, read by both heads: the heatmap's weights count four times the boxes'
    # (its logits decide what is found; the boxes' four distances are in cells)
    share_head = activity["head_relu"] * np.linalg.norm(
        np.concatenate([4 * get("heatmap")[0][0, 0], get("boxes")[0][0, 0]], axis=1), axis=1)
    keep_stem, keep_stream, keep_head = (np.sort(np.argsort(-share)[:n]) for share, n in
                                         ((share_stem, stem), (share_stream, context), (share_head, context)))
    width = model.get_layer("s4_pw_conv").filters // 32
    pruned = build_model(spec, width, stem=stem, context=context)

    def put(name: str, weights: List[np.ndarray]) -> None:
        pruned.get_layer(name).set_weights(weights)

    def out_channels(name: str, keep) -> None:  # a conv's kernel by output, or a batch norm
        put(name, [w[..., keep] if w.ndim == 4 else w[keep] for w in get(name)])

    def in_channels(name: str, keep, out=slice(None)) -> None:  # a 1x1 or depthwise kernel by input
        put(name, [w[:, :, keep, :][..., out] if w.ndim == 4 else w[out] for w in get(name)])

    out_channels("stem_conv", keep_stem)
    out_channels("stem_bn", keep_stem)
    in_channels("s4_dw", keep_stem)
    out_channels("s4_dw_bn", keep_stem)
    in_channels("s4_pw_conv", keep_stem)
    for name in ("s4_pw_bn", "s4b_dw", "s4b_dw_bn", "s4b_pw_conv", "s4b_pw_bn", "s8_dw", "s8_dw_bn",
                 "s8_pw_conv", "s8_pw_bn"):
        put(name, get(name))
    out_channels("s8_expand_conv", keep_stream)
    out_channels("s8_expand_bn", keep_stream)
    for c in ctx:
        in_channels(f"{c}_dw", keep_stream)
        out_channels(f"{c}_dw_bn", keep_stream)
        in_channels(f"{c}_pw_conv", keep_stream, keep_stream)
        out_channels(f"{c}_pw_bn", keep_stream)
    in_channels("head_conv", keep_stream, keep_head)
    out_channels("head_bn", keep_head)
    in_channels("heatmap", keep_head)
    in_channels("boxes", keep_head)
    return (pruned, float(share_stem[keep_stem].sum() / share_stem.sum()),
            float(share_stream[keep_stream].sum() / share_stream.sum()))


# ----------------------------------------------------------------------------- targets
#: Heatmap target of a don't-care cell: below the focal loss's positive level (0.999), and so
#: close to 1 that its negative term ((1 - target)^4) vanishes.
IGNORE = 0.998


def encode_targets(boxes: Sequence[Tuple[int, float, float, float, float]], spec: ModelSpec) -> np.ndarray:
    """Training targets for one image, (rows, cols, num_classes + 5) float32.

    ``boxes``: (class_index, x1, y1, x2, y2) in model-input pixels. Channels: per-class
    Gaussian heatmap peaking at 1 in the cell holding each box centre (elliptic, sized by
    the box, as TTFNet), then l/t/r/b distances in cells and a regression weight (the
    Gaussian, so cells near a centre learn the box). A box of class index -1 (a face marked
    VOC ``difficult``) is a don't-care region: every class's heatmap target there is
    :data:`IGNORE` (the focal loss neither rewards nor penalises a score), no box regression.
    """
    rows, cols = spec.grid
    k, s = spec.num_classes, float(spec.stride)
    target = np.zeros((rows, cols, k + 5), np.float32)
    ys, xs = (np.arange(rows, dtype=np.float32) + 0.5), (np.arange(cols, dtype=np.float32) + 0.5)
    for cls, x1, y1, x2, y2 in boxes:
        if int(cls) < 0:
            inside = ((xs[None, :] > x1 / s - 0.5) & (xs[None, :] < x2 / s + 0.5)
                      & (ys[:, None] > y1 / s - 0.5) & (ys[:, None] < y2 / s + 0.5))
            target[:, :, :k][inside] = np.maximum(target[:, :, :k][inside], IGNORE)
    boxes = [b for b in boxes if int(b[0]) >= 0]
    # Large boxes first so a small box's regression wins where they overlap.
    for cls, x1, y1, x2, y2 in sorted(boxes, key=lambda b: -(b[3] - b[1]) * (b[4] - b[2])):
        cls = int(cls)
        w, h = (x2 - x1) / s, (y2 - y1) / s
        if w <= 0 or h <= 0:
            continue
        cx, cy = (x1 + x2) / 2 / s, (y1 + y2) / 2 / s
        ci, cj = min(int(cy), rows - 1), min(int(cx), cols - 1)
        # Centre the Gaussian on the peak cell so that cell is exactly 1.
        sx, sy = max(0.5, 0.16 * w), max(0.5, 0.16 * h)
        g = np.exp(-((xs[None, :] - (cj + 0.5)) ** 2) / (2 * sx * sx)
                   - ((ys[:, None] - (ci + 0.5)) ** 2) / (2 * sy * sy))
        target[:, :, cls] = np.maximum(target[:, :, cls], g)
        inside = (xs[None, :] > x1 / s) & (xs[None, :] < x2 / s) & (ys[:, None] > y1 / s) & (ys[:, None] < y2 / s)
        weight = np.where(inside, g, 0.0)
        update = weight > np.maximum(target[:, :, k + 4], 0.05)
        xx, yy = np.broadcast_to(xs[None, :], (rows, cols)), np.broadcast_to(ys[:, None], (rows, cols))
        dist = np.stack([xx - x1 / s, yy - y1 / s, x2 / s - xx, y2 / s - yy], axis=-1)
        target[:, :, k:k + 4][update] = dist[update]
        target[:, :, k + 4][update] = weight[update]
    return target


# ----------------------------------------------------------------------------- losses
def focal_heatmap_loss(target, pred, alpha: float = 2.0, beta: float = 4.0):
    """CenterNet's penalty-reduced focal loss, normalised by the number of objects."""
    pred = tf.clip_by_value(pred, 1e-4, 1 - 1e-4)
    pos = tf.cast(target >= 0.999, tf.float32)
    pos_loss = -tf.math.log(pred) * tf.pow(1 - pred, alpha) * pos
    neg_loss = -tf.math.log(1 - pred) * tf.pow(pred, alpha) * tf.pow(1 - target, beta) * (1 - pos)
    num_pos = tf.maximum(tf.reduce_sum(pos), 1.0)
    return (tf.reduce_sum(pos_loss) + tf.reduce_sum(neg_loss)) / num_pos


def giou_box_loss(target_ltrb, weight, pred_ltrb):
    """Generalised IoU loss of l/t/r/b boxes sharing a cell centre, weighted per cell."""
    tl, tt, tr, tb = tf.unstack(target_ltrb, axis=-1)
    pl, pt, pr, pb = tf.unstack(pred_ltrb, axis=-1)
    t_area, p_area = (tl + tr) * (tt + tb), (pl + pr) * (pt + pb)
    iw, ih = tf.minimum(tl, pl) + tf.minimum(tr, pr), tf.minimum(tt, pt) + tf.minimum(tb, pb)
    inter = tf.maximum(iw, 0) * tf.maximum(ih, 0)
    union = t_area + p_area - inter + 1e-6
    cw, ch = tf.maximum(tl, pl) + tf.maximum(tr, pr), tf.maximum(tt, pt) + tf.maximum(tb, pb)
    hull = cw * ch + 1e-6
    giou = inter / union - (hull - union) / hull
    return tf.reduce_sum((1 - giou) * weight) / tf.maximum(tf.reduce_sum(weight), 1e-3)


def split_target(target, num_classes: int):
    return target[..., :num_classes], target[..., num_classes:num_classes + 4], target[..., num_classes + 4]


def make_train_step(model: keras.Model, optimizer, num_classes: int, box_weight: float = 2.0):
    @tf.function(reduce_retracing=True)
    def train_step(images, targets):
        heat_t, box_t, weight = split_target(targets, num_classes)
        with tf.GradientTape() as tape:
            heat_p, box_p = model(images, training=True)
            heat_loss = focal_heatmap_loss(heat_t, heat_p)
            box_loss = giou_box_loss(box_t, weight, box_p)
            loss = heat_loss + box_weight * box_loss
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss, heat_loss, box_loss

    return train_step


def predict_fn(model: keras.Model):
    @tf.function(reduce_retracing=True)
    def predict(images):
        return model(images, training=False)

    return predict


def count_macs(model: keras.Model) -> int:
    """Multiply-accumulates of one inference (conv and depthwise layers)."""
    total = 0
    for layer in model.layers:
        if isinstance(layer, layers.DepthwiseConv2D):
            _, h, w, c = layer.output.shape
            total += h * w * c * layer.kernel_size[0] * layer.kernel_size[1]
        elif isinstance(layer, layers.Conv2D):
            _, h, w, c = layer.output.shape
            total += h * w * c * layer.kernel_size[0] * layer.kernel_size[1] * layer.input.shape[-1]
    return int(total)
