"""The model, its loss and its gradients written out in NumPy: the oracle's mathematics.

Everything is channels-last, in the canonical layout of :mod:`mnist_bench.common.weights`,
so parameters need no permutation. Arrays are computed in the dtype of the parameters
given (float64 for the oracle, float32 to see what float32 rounding alone does).

The network (B images, C1 = 32, C2 = 64, H = 128 with the default recipe)::

    x   (B, 28, 28, 1)
    z1 = conv(x, conv1) + b1      (B, 26, 26, C1)    a1 = relu(z1)
    z2 = conv(a1, conv2) + b2     (B, 24, 24, C2)    a2 = relu(z2)
    p  = maxpool2x2(a2)           (B, 12, 12, C2)    dropout1, flatten in (h, w, c) order
    z3 = p @ dense1 + b3          (B, H)             a3 = relu(z3), dropout2
    logits = a3 @ dense2 + b4     (B, 10)
    loss = mean over the batch of -log softmax(logits)[label]

A 3x3 'VALID' convolution is one matrix product over image patches (im2col):
``z = patches @ kernel.reshape(9 * Cin, Cout) + bias``, with ``patches`` holding each output
position's 3x3 input neighbourhood in (kh, kw, in) order. Then ``dkernel = patches^T dz`` and
the input gradient is ``dz kernel^T`` scattered back to the nine positions each patch was read
from. conv2's patch matrix is 64 * 24 * 24 rows by 288 columns, 85 MB in float64 for a batch
of 64; inference callers should feed batches of about that size (the backend does).

ReLU's derivative at exactly 0 is taken as 0, as in PyTorch, TensorFlow and JAX.

**Max-pool ties.** When several elements of a 2x2 window share the maximum, the gradient goes
to the *first* of them in row-major window order ((0, 0), (0, 1), (1, 0), (1, 1)). That is
what ``torch.nn.functional.max_pool2d``, ``tf.nn.max_pool2d`` and Flax's ``nn.max_pool`` (XLA's
select-and-scatter) do: checked with a 2x2 window [[1, 3], [3, 2]], all three send the whole
gradient to (0, 1). JAX's ``reshape(...).max(...)`` pooling (the Flax implementations' tuned CPU path)
instead splits it equally among the tied elements.

Whether the choice matters for the parity checks: in practice, no. A window that ties at zero
(common: ReLU zeroes about half of conv2's output) cannot matter, because whichever element
receives the gradient has ``z2 <= 0`` and its ReLU passes no gradient on. Ties at a *positive*
value could matter, since the gradient then reaches a different conv2 output -- and they are
not rare: with the canonical initial weights (seed 0) and the first training batch of 64 MNIST
images, 107,486 of the 64 * 12 * 12 * 64 = 589,824 windows of conv2's ReLU output tie at a
positive value (114,238 and 109,166 in the next two batches; the same in float32). MNIST's
constant background makes conv1's and then conv2's outputs constant, and positive in some
channels, over whole regions. But in every one of those ties the tied elements have identical
5x5 receptive fields in the image (none differed in those three batches), so every parameter
receives the same contribution whichever of them is chosen: sending the gradient to the last
tied element instead of the first changed no gradient by more than 5e-15 relative (rounding;
tests/test_numpy_oracle.py checks both figures); by the same argument JAX's equal split gives
the same gradients too. Only a tie between *different* neighbourhoods
would make the rule matter; it is fixed to the frameworks' rule rather than left to chance.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np

LAYERS = ("conv1", "conv2", "dense1", "dense2")


def round_mantissa(x: np.ndarray, bits: int) -> np.ndarray:
    """float32 values rounded to ``bits`` mantissa bits, to nearest, ties to even, as float32.

    With float32's 8-bit exponent kept, 7 bits is exactly bfloat16 and 10 bits exactly TF32:
    adding half a unit of the last kept place (less one, plus the kept place's own lowest bit,
    for ties to even) to the bit pattern carries into the exponent when it must, as rounding does.
    """
    drop = 23 - bits
    pattern = np.ascontiguousarray(x, np.float32).view(np.uint32)
    half = np.uint32((1 << (drop - 1)) - 1) + ((pattern >> np.uint32(drop)) & np.uint32(1))
    return ((pattern + half) & np.uint32(~((1 << drop) - 1) & 0xFFFFFFFF)).view(np.float32)


def _same(x: np.ndarray) -> np.ndarray:
    return x


class Rounding(NamedTuple):
    """Where a reduced-precision computation rounds, emulated in float32 arithmetic.

    ``operands`` rounds what enters a convolution or matmul (inputs, kernel, bias; in the backward
    pass the incoming gradient too); ``results`` rounds what leaves one, and the gradient that flows
    back into a reduced-precision result. Products accumulate in float32 in between, as the frameworks'
    bfloat16 and float16 kernels do. That is where ``torch.autocast``, Keras's mixed policies and Flax's
    ``dtype`` round (they differ only in whether a bias is added before or after the result is rounded);
    the loss is computed in float32 from the float32 upcast of the logits.
    """

    operands: Callable[[np.ndarray], np.ndarray] = _same
    results: Callable[[np.ndarray], np.ndarray] = _same


EXACT = Rounding()
ROUNDINGS = {
    "fp32": EXACT,
    "bf16": Rounding(lambda x: round_mantissa(x, 7), lambda x: round_mantissa(x, 7)),
    "fp16": Rounding(lambda x: x.astype(np.float16).astype(np.float32),  # float16's range too: numpy has the type
                     lambda x: x.astype(np.float16).astype(np.float32)),
    # TF32 tensor cores round the operands only: the products accumulate and are stored in float32.
    "tf32": Rounding(lambda x: round_mantissa(x, 10), _same),
}


class Cache(NamedTuple):
    """What the backward pass needs from the forward pass."""

    patches1: np.ndarray  # (B * 26 * 26, 9): the image's 3x3 neighbourhoods
    a1: np.ndarray  # relu(z1)
    patches2: np.ndarray  # (B * 24 * 24, 9 * C1): a1's 3x3 neighbourhoods
    a2: np.ndarray  # relu(z2)
    pool_choice: np.ndarray  # (B, 12, 12, C2) int: which window element was taken, 0..3 row-major
    mask1: np.ndarray | None  # dropout1's scaled keep mask on the pooled map, or None
    flat: np.ndarray  # (B, 12 * 12 * C2): pooled map after dropout1, (h, w, c) order
    a3: np.ndarray  # relu(z3)
    mask2: np.ndarray | None  # dropout2's scaled keep mask on a3, or None
    h: np.ndarray  # a3 after dropout2


def patches3x3(x: np.ndarray) -> np.ndarray:
    """(B, H, W, Cin) -> (B * (H - 2) * (W - 2), 9 * Cin): each output position's 3x3 input
    neighbourhood, columns in (kh, kw, in) order to match ``kernel.reshape(9 * Cin, Cout)``."""
    b, hh, ww, cin = x.shape
    oh, ow = hh - 2, ww - 2
    cols = np.concatenate([x[:, i:i + oh, j:j + ow, :] for i in range(3) for j in range(3)], axis=-1)
    return cols.reshape(b * oh * ow, 9 * cin)


def conv3x3(patches: np.ndarray, kernel: np.ndarray, bias: np.ndarray, out_hw: tuple[int, int]) -> np.ndarray:
    """'VALID' 3x3 convolution, stride 1, from :func:`patches3x3`: (B, H - 2, W - 2, Cout)."""
    out = patches @ kernel.reshape(-1, kernel.shape[-1]) + bias
    return out.reshape(-1, *out_hw, kernel.shape[-1])


def conv3x3_backward(patches: np.ndarray, kernel: np.ndarray, dz: np.ndarray, need_dx: bool = True,
                     rounding: Rounding = EXACT) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """Gradients of :func:`conv3x3` with respect to its input (B, H, W, Cin), kernel and bias.

    The input gradient scatters each patch gradient back to the nine positions it was read from, and is
    rounded once, after the scatter: a convolution's input gradient is one reduced-precision result.
    """
    ops, res = rounding
    b, oh, ow, cout = dz.shape
    cin = kernel.shape[2]
    dz_flat = ops(dz.reshape(-1, cout))
    dkernel = res(patches.T @ dz_flat).reshape(kernel.shape)
    dbias = res(dz_flat.sum(axis=0))
    if not need_dx:
        return None, dkernel, dbias
    dpatches = (dz_flat @ kernel.reshape(-1, cout).T).reshape(b, oh, ow, 9, cin)
    dx = np.zeros((b, oh + 2, ow + 2, cin), dtype=dz.dtype)
    for i in range(3):
        for j in range(3):
            dx[:, i:i + oh, j:j + ow, :] += dpatches[:, :, :, 3 * i + j, :]
    return res(dx), dkernel, dbias


def _windows(a: np.ndarray) -> np.ndarray:
    """(B, 2H, 2W, C) -> (B, H, W, C, 4): each 2x2 window's elements in row-major order."""
    b, hh, ww, c = a.shape
    return a.reshape(b, hh // 2, 2, ww // 2, 2, c).transpose(0, 1, 3, 5, 2, 4).reshape(b, hh // 2, ww // 2, c, 4)


def max_pool(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """2x2/2 max-pooling; also returns which element was taken (the first maximum, row-major)."""
    windows = _windows(a)
    choice = windows.argmax(axis=-1)  # argmax returns the first of equal maxima
    return np.take_along_axis(windows, choice[..., None], axis=-1)[..., 0], choice


def max_pool_backward(dp: np.ndarray, choice: np.ndarray) -> np.ndarray:
    """Route each pooled gradient to the element :func:`max_pool` took; zero elsewhere."""
    b, h, w, c = dp.shape
    dwindows = np.where(np.arange(4) == choice[..., None], dp[..., None], dp.dtype.type(0))
    return dwindows.reshape(b, h, w, c, 2, 2).transpose(0, 1, 4, 2, 5, 3).reshape(b, 2 * h, 2 * w, c)


def dropout_mask(rng: np.random.Generator, shape: tuple[int, ...], rate: float, dtype) -> np.ndarray | None:
    """Inverted dropout: keep with probability ``1 - rate``, scale kept values by ``1 / (1 - rate)``.

    Uniforms are drawn in float64 whatever ``dtype`` is, so one seed gives the same masks in
    every mode.
    """
    if rate == 0:
        return None
    keep = rng.random(shape) >= rate
    return (keep * (1.0 / (1.0 - rate))).astype(dtype)


def forward(params: dict[str, np.ndarray], x: np.ndarray, rng: np.random.Generator | None = None,
            rates: tuple[float, float] = (0.0, 0.0), rounding: Rounding = EXACT) -> tuple[np.ndarray, Cache]:
    """Logits (B, 10) for images x (B, 28, 28); dropout only when ``rng`` is given.

    ``params`` are the operands as the layers see them (already rounded where ``rounding`` rounds them);
    the returned logits are float32 (or the parameters' dtype), upcast from the rounded result.
    """
    dtype = params["conv1/kernel"].dtype
    size = x.shape[-1]
    ops, res = rounding
    patches1 = patches3x3(ops(np.asarray(x, dtype=dtype))[..., None])
    a1 = np.maximum(res(conv3x3(patches1, params["conv1/kernel"], params["conv1/bias"], (size - 2, size - 2))), 0)
    patches2 = patches3x3(ops(a1))
    a2 = np.maximum(res(conv3x3(patches2, params["conv2/kernel"], params["conv2/bias"], (size - 4, size - 4))), 0)
    pooled, choice = max_pool(a2)
    mask1 = dropout_mask(rng, pooled.shape, rates[0], dtype) if rng is not None else None
    if mask1 is not None:
        pooled = res(pooled * mask1)
    flat = ops(pooled.reshape(len(x), -1))  # (h, w, c) order, as the canonical dense1 rows
    a3 = np.maximum(res(flat @ params["dense1/kernel"] + params["dense1/bias"]), 0)
    mask2 = dropout_mask(rng, a3.shape, rates[1], dtype) if rng is not None else None
    h = ops(res(a3 * mask2) if mask2 is not None else a3)
    logits = res(h @ params["dense2/kernel"] + params["dense2/bias"])
    return logits, Cache(patches1, a1, patches2, a2, choice, mask1, flat, a3, mask2, h)


def log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def loss(logits: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Mean softmax cross-entropy over the batch, a scalar in the logits' dtype."""
    return -log_softmax(logits)[np.arange(len(y)), y].mean()


def backward(params: dict[str, np.ndarray], logits: np.ndarray, y: np.ndarray, cache: Cache,
             rounding: Rounding = EXACT) -> dict[str, np.ndarray]:
    """Gradients of :func:`loss` with respect to every parameter, by canonical name.

    With a ``rounding``, ``params`` are the rounded operands :func:`forward` used, and each gradient is
    the rounded result its matmul gives (upcast to float32 exactly, as a float32 parameter receives it).
    """
    ops, res = rounding
    n = len(y)
    dlogits = np.exp(log_softmax(logits))  # the float32 loss's gradient, then into the rounded logits
    dlogits[np.arange(n), y] -= 1
    dlogits /= n
    dlogits = ops(res(dlogits))
    g = {"dense2/kernel": res(cache.h.T @ dlogits), "dense2/bias": res(dlogits.sum(axis=0))}
    dh = res(dlogits @ params["dense2/kernel"].T)
    da3 = res(dh * cache.mask2) if cache.mask2 is not None else dh
    dz3 = ops(da3 * (cache.a3 > 0))
    g["dense1/kernel"] = res(cache.flat.T @ dz3)
    g["dense1/bias"] = res(dz3.sum(axis=0))
    dpooled = res(dz3 @ params["dense1/kernel"].T).reshape(cache.pool_choice.shape)
    if cache.mask1 is not None:
        dpooled = res(dpooled * cache.mask1)
    dz2 = max_pool_backward(dpooled, cache.pool_choice) * (cache.a2 > 0)
    da1, g["conv2/kernel"], g["conv2/bias"] = conv3x3_backward(cache.patches2, params["conv2/kernel"], dz2,
                                                               rounding=rounding)
    dz1 = da1 * (cache.a1 > 0)
    _, g["conv1/kernel"], g["conv1/bias"] = conv3x3_backward(cache.patches1, params["conv1/kernel"], dz1,
                                                             need_dx=False, rounding=rounding)
    return g


def rounded(params: dict[str, np.ndarray], rounding: Rounding) -> dict[str, np.ndarray]:
    """The parameters as a reduced-precision layer reads them (float32 masters, rounded operands)."""
    return {name: rounding.operands(p) for name, p in params.items()} if rounding is not EXACT else params


def sgd_momentum(params: dict[str, np.ndarray], grads: dict[str, np.ndarray], velocity: dict[str, np.ndarray],
                 lr: float, momentum: float) -> None:
    """One step of SGD with momentum, in place, as ``torch.optim.SGD`` (no dampening, not Nesterov)
    and ``optax.sgd`` compute it: ``v = momentum * v + g``, then ``w = w - lr * v``.

    (Keras keeps ``v' = momentum * v' - lr * g`` and adds it: the same iterates, with v' = -lr v,
    for a constant learning rate.) The velocity starts at zero, so the first step is ``w - lr * g``,
    which is also what PyTorch does when it initialises its buffer with the first gradient.
    """
    for name, grad in grads.items():
        v = velocity[name]
        v *= momentum
        v += grad
        params[name] -= lr * v
