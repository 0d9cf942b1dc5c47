"""FLOP counts checked against values worked out by hand."""

import pytest

from mnist_bench.common.flops import forward_flops, layer_macs, train_flops

# Default model (32, 64, 128), MACs per sample:
CONV1 = 26 * 26 * 32 * 1 * 9  # 194,688
CONV2 = 24 * 24 * 64 * 32 * 9  # 10,616,832
DENSE1 = 12 * 12 * 64 * 128  # 1,179,648
DENSE2 = 128 * 10  # 1,280


def test_default_layer_macs():
    assert layer_macs() == {"conv1": 194_688, "conv2": 10_616_832, "dense1": 1_179_648, "dense2": 1_280}
    assert (CONV1, CONV2, DENSE1, DENSE2) == (194_688, 10_616_832, 1_179_648, 1_280)


def test_default_forward():
    assert forward_flops() == 2 * (CONV1 + CONV2 + DENSE1 + DENSE2) == 23_984_896


def test_default_train_skips_conv1_input_gradient():
    # forward (1x) + weight grads (1x) + input grads (1x, all but conv1).
    assert train_flops() == 3 * 23_984_896 - 2 * CONV1 == 71_565_312
    assert train_flops() == forward_flops(32, 64, 128) * 3 - 389_376


def test_small_model_by_hand():
    # (1, 1, 1): conv1 676*9=6,084; conv2 576*9=5,184; dense1 144; dense2 10.
    assert forward_flops(1, 1, 1) == 2 * (6_084 + 5_184 + 144 + 10) == 22_844
    assert train_flops(1, 1, 1) == 3 * 22_844 - 2 * 6_084 == 56_364


def test_keyword_arguments_and_scaling():
    assert forward_flops(conv1_filters=32, conv2_filters=64, hidden=128) == forward_flops()
    # Doubling hidden doubles only the dense layers.
    assert forward_flops(hidden=256) - forward_flops() == 2 * (DENSE1 + DENSE2)


@pytest.mark.parametrize("bad", [0, -1, 2.0, True])
def test_invalid_sizes_raise(bad):
    with pytest.raises(ValueError, match="hidden"):
        forward_flops(hidden=bad)
    with pytest.raises(ValueError, match="conv1_filters"):
        train_flops(conv1_filters=bad)
