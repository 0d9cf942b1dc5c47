"""Flax NNX's plain training loops, written as Flax users write them; they share nothing with the harness.

* ``nnx-jit``: Flax's NNX ``examples/mnist``: an ``nnx.Module`` CNN defined here, an
  ``nnx.Optimizer(model, optax.sgd(lr, momentum), wrt=nnx.Param)`` and an ``@nnx.jit`` ``train_step``
  using ``nnx.value_and_grad``, fed NumPy batches.
* ``split-merge``: the functional training loop of Flax's performance guide: ``nnx.split`` before the
  loop, a plain ``jax.jit`` step that ``nnx.merge``s and returns ``nnx.state``, ``nnx.update`` after.

:mod:`mnist_bench.bench.perf.plain_loops` times them against ``mnist-bench run``.
"""

from __future__ import annotations

from functools import partial

import numpy as np


def nnx_loop(recipe, train_x, train_y, log_every: int, functional: bool = False, seed: int = 0):
    import jax
    import optax
    from flax import nnx

    class CNN(nnx.Module):
        def __init__(self, *, rngs: nnx.Rngs):
            self.conv1 = nnx.Conv(1, recipe.conv1_filters, kernel_size=(3, 3), padding="VALID", rngs=rngs)
            self.conv2 = nnx.Conv(recipe.conv1_filters, recipe.conv2_filters, kernel_size=(3, 3), padding="VALID",
                                  rngs=rngs)
            self.dropout1 = nnx.Dropout(recipe.dropout1, rngs=rngs)
            self.linear1 = nnx.Linear(12 * 12 * recipe.conv2_filters, recipe.hidden, rngs=rngs)
            self.dropout2 = nnx.Dropout(recipe.dropout2, rngs=rngs)
            self.linear2 = nnx.Linear(recipe.hidden, 10, rngs=rngs)

        def __call__(self, x):
            x = nnx.relu(self.conv1(x))
            x = nnx.relu(self.conv2(x))
            x = nnx.max_pool(x, window_shape=(2, 2), strides=(2, 2))
            x = self.dropout1(x)
            x = x.reshape(x.shape[0], -1)
            x = self.dropout2(nnx.relu(self.linear1(x)))
            return self.linear2(x)

    model = CNN(rngs=nnx.Rngs(seed))
    optimizer = nnx.Optimizer(model, optax.sgd(recipe.learning_rate, recipe.momentum), wrt=nnx.Param)

    def loss_fn(model, batch):
        logits = model(batch["image"])
        return optax.softmax_cross_entropy_with_integer_labels(logits=logits, labels=batch["label"]).mean()

    def step(model, optimizer, batch):
        loss, grads = nnx.value_and_grad(loss_fn)(model, batch)
        optimizer.update(model, grads)
        return loss

    images, labels = train_x[..., None], train_y.astype(np.int32)

    state = None
    if functional:
        graphdef, state = nnx.split((model, optimizer))

        @jax.jit
        def train_step(state, batch):
            model, optimizer = nnx.merge(graphdef, state)
            loss = step(model, optimizer, batch)
            return nnx.state((model, optimizer)), loss
    else:
        train_step = nnx.jit(step)

    def train(rows: np.ndarray) -> float:
        nonlocal state
        for batch_idx, index in enumerate(rows):
            batch = {"image": images[index], "label": labels[index]}
            if functional:
                state, loss = train_step(state, batch)
            else:
                loss = train_step(model, optimizer, batch)
            if batch_idx % log_every == 0:
                float(loss)
        return float(loss)

    return train


# mode -> the plain loop that mode of the harness is measured against (the tuned mode has none:
# it is split-merge plus the Linen implementation's tuned ideas, whose plain loop measures them).
LOOPS = {"nnx-jit": nnx_loop, "split-merge": partial(nnx_loop, functional=True)}
