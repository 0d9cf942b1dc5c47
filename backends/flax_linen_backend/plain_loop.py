"""JAX's plain training loop, written as Flax ``examples/mnist`` (Linen) is: a ``TrainState`` and a jitted
``train_step`` fed NumPy batches; shares nothing with the harness.

The tuned mode's loop writes its one idea plainly: patch-GEMM convolutions in a ``lax.scan``, with the
backend's module, since that module *is* the idea.
:mod:`mnist_bench.bench.perf.plain_loops` times it against ``mnist-bench run``."""

from __future__ import annotations

from functools import partial

import numpy as np


def jax_loop(recipe, train_x, train_y, log_every: int, tuned: bool = False, seed: int = 0):
    import jax
    import jax.numpy as jnp
    import optax
    from flax import linen as nn
    from flax.training import train_state

    if tuned:
        return _jax_tuned_loop(recipe, train_x, train_y, seed)

    class CNN(nn.Module):
        @nn.compact
        def __call__(self, x, train: bool):
            x = nn.relu(nn.Conv(recipe.conv1_filters, (3, 3), padding="VALID")(x))
            x = nn.relu(nn.Conv(recipe.conv2_filters, (3, 3), padding="VALID")(x))
            x = nn.max_pool(x, (2, 2), strides=(2, 2))
            x = nn.Dropout(recipe.dropout1, deterministic=not train)(x)
            x = x.reshape((x.shape[0], -1))
            x = nn.relu(nn.Dense(recipe.hidden)(x))
            x = nn.Dropout(recipe.dropout2, deterministic=not train)(x)
            return nn.Dense(10)(x)

    model = CNN()
    init_key, dropout_key = jax.random.split(jax.random.PRNGKey(seed))
    params = model.init(init_key, jnp.zeros((1, 28, 28, 1)), train=False)["params"]
    state = train_state.TrainState.create(apply_fn=model.apply, params=params,
                                          tx=optax.sgd(recipe.learning_rate, recipe.momentum))

    @jax.jit
    def train_step(state, images, labels, rng):
        def loss_fn(params):
            logits = state.apply_fn({"params": params}, images, train=True, rngs={"dropout": rng})
            return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

        loss, grads = jax.value_and_grad(loss_fn)(state.params)
        return state.apply_gradients(grads=grads), loss

    images, labels = train_x[..., None], train_y.astype(np.int32)

    def train(rows: np.ndarray) -> float:
        nonlocal state
        for batch_idx, index in enumerate(rows):
            rng = jax.random.fold_in(dropout_key, state.step)
            state, loss = train_step(state, images[index], labels[index], rng)
            if batch_idx % log_every == 0:
                float(loss)
        return float(loss)

    return train


def _jax_tuned_loop(recipe, train_x, train_y, seed: int):
    import jax
    import jax.numpy as jnp
    import optax

    from mnist_bench.backends.flax_linen_backend.backend import CNN

    model = CNN(recipe.conv1_filters, recipe.conv2_filters, recipe.hidden, recipe.dropout1, recipe.dropout2,
                matmul_convs=True)
    init_key, dropout_key = jax.random.split(jax.random.PRNGKey(seed))
    params = model.init(init_key, jnp.zeros((1, 28, 28, 1)), train=False)["params"]
    tx = optax.sgd(recipe.learning_rate, recipe.momentum)
    state = (params, tx.init(params), jnp.uint32(0))

    def step(state, batch):
        params, opt_state, i = state

        def loss_fn(params):
            logits = model.apply({"params": params}, batch[0], train=True,
                                 rngs={"dropout": jax.random.fold_in(dropout_key, i)})
            return optax.softmax_cross_entropy_with_integer_labels(logits, batch[1]).mean()

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state, i + 1), loss

    train_steps = jax.jit(lambda state, xs, ys: jax.lax.scan(step, state, (xs, ys)), donate_argnums=0)
    images, labels = train_x[..., None], train_y.astype(np.int32)

    def train(rows: np.ndarray) -> float:
        nonlocal state
        state, losses = train_steps(state, images[rows], labels[rows])
        return float(losses[-1])

    return train


# mode -> the plain loop that mode of the harness is measured against.
LOOPS = {"compiled": jax_loop, "tuned": partial(jax_loop, tuned=True)}
