"""torch-func, except that the pooled maps are flattened channels-first.

Flattening NCHW gives features in (c, h, w) order, while mnist-bench's canonical ``dense1/kernel``
expects (h, w, c): a PyTorch port that forgets to permute the rows computes a different function
from the same weights. It still trains, and from its own random start it even reaches similar
accuracy, which is why only a parity check finds it.
"""

from typing import final

import torch
from mnist_bench_torch_func.backend import TorchFuncBackend

from mnist_bench_wrong_order.spec import SPEC


def flatten_chw(x: torch.Tensor) -> torch.Tensor:
    return x.flatten(1)  # the bug: (c, h, w) order


@final
class WrongOrderBackend(TorchFuncBackend):  # a subclass only to keep the bug to one line
    name = SPEC.name
    flatten = staticmethod(flatten_chw)
