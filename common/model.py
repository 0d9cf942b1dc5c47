"""The network every backend builds, as numbers: image size, kernel, feature-map sizes and classes.

Two valid 3x3 convolutions (28 -> 26 -> 24), a 2x2 max-pool (24 -> 12), two dense
layers ending in :data:`NUM_CLASSES` logits. The filter and hidden widths are the
recipe's (:class:`mnist_bench.common.recipe.Recipe`); these are fixed by the data and
the architecture. Plain Python, no framework.
"""

IMAGE_SIZE = 28
KERNEL_SIZE = 3
NUM_CLASSES = 10
CONV1_OUT = IMAGE_SIZE - KERNEL_SIZE + 1  # 26
CONV2_OUT = CONV1_OUT - KERNEL_SIZE + 1  # 24
POOLED_SIZE = CONV2_OUT // 2  # 12
