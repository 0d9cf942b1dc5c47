"""The wrong implementation's spec: everything but its name is torch-func's."""

import dataclasses

from mnist_bench_torch_func.spec import SPEC as RIGHT

SPEC = dataclasses.replace(RIGHT, name="torch-func-wrong-order", package="mnist_bench_wrong_order",
                           backend="backend:WrongOrderBackend", install="pip install -e examples/torch-func-wrong-order",
                           description="torch-func with dense1 reading features in (c, h, w) order: wrong on purpose")
