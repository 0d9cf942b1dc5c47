"""Floating-point operations per sample for the benchmark CNN, from its layer shapes.

The model: conv1 (1 -> C1, 3x3, valid: 28x28 -> 26x26), conv2 (C1 -> C2, 3x3,
valid: 26x26 -> 24x24), 2x2 max-pool (-> 12x12), dense1 (12*12*C2 -> H),
dense2 (H -> 10).

Conventions, chosen so the numbers are comparable with published MFU figures:

* one multiply-add (MAC) counts as 2 FLOPs;
* only convolutions and dense layers are counted -- ReLU, max-pool, dropout,
  bias adds, softmax and the optimizer update are O(activations) or
  O(parameters), together under 1% of the total for the default model, so
  they are ignored;
* backward is counted exactly rather than with the usual "training = 3x
  forward" shortcut: each layer needs a weight gradient (same MACs as its
  forward) and a gradient with respect to its input (same MACs again), except
  conv1, whose input is the image and needs no gradient.
"""

from __future__ import annotations

from mnist_bench.common.model import CONV1_OUT, CONV2_OUT, KERNEL_SIZE, NUM_CLASSES, POOLED_SIZE


def _check_positive(**sizes: int) -> None:
    for name, value in sizes.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")


def layer_macs(conv1_filters: int = 32, conv2_filters: int = 64, hidden: int = 128) -> dict[str, int]:
    """Multiply-accumulates per sample of each counted layer's forward pass.

    Returns ``{"conv1", "conv2", "dense1", "dense2"}`` -> MACs. A valid
    convolution does ``out_h * out_w * out_channels * in_channels * k * k``
    MACs; a dense layer ``in_features * out_features``. Raises ``ValueError``
    for a non-positive or non-integer size.
    """
    _check_positive(conv1_filters=conv1_filters, conv2_filters=conv2_filters, hidden=hidden)
    kk = KERNEL_SIZE * KERNEL_SIZE
    return {
        "conv1": CONV1_OUT * CONV1_OUT * conv1_filters * 1 * kk,
        "conv2": CONV2_OUT * CONV2_OUT * conv2_filters * conv1_filters * kk,
        "dense1": POOLED_SIZE * POOLED_SIZE * conv2_filters * hidden,
        "dense2": hidden * NUM_CLASSES,
    }


def forward_flops(conv1_filters: int = 32, conv2_filters: int = 64, hidden: int = 128) -> int:
    """Forward-pass FLOPs per sample: 2 x the conv and dense MACs.

    For the default model (32, 64, 128) this is 23,984,896 (about 24 MFLOP),
    88% of it in conv2.
    """
    return 2 * sum(layer_macs(conv1_filters, conv2_filters, hidden).values())


def train_flops(conv1_filters: int = 32, conv2_filters: int = 64, hidden: int = 128) -> int:
    """FLOPs per training sample: forward plus exact backward.

    Backward is 2x each layer's forward (weight gradient + input gradient),
    except conv1, which needs only its weight gradient because nothing upstream
    of the image is trained. So ``train = 3 * forward - conv1_forward``; for
    the default model 71,565,312 (about 72 MFLOP).
    """
    macs = layer_macs(conv1_filters, conv2_filters, hidden)
    forward = 2 * sum(macs.values())
    conv1_forward = 2 * macs["conv1"]
    return 3 * forward - conv1_forward
