"""PyTorch's plain training loop, written as pytorch/examples ``mnist/main.py`` is; shares nothing with the harness.

The tuned mode's loop writes its one idea plainly: a cheaper dropout draw (``rand >= p``).
:mod:`mnist_bench.bench.perf.plain_loops` times it against ``mnist-bench run``."""

from __future__ import annotations

from functools import partial

import numpy as np


def torch_loop(recipe, train_x, train_y, log_every: int, tuned: bool = False):
    import torch
    import torch.nn.functional as F
    from torch import nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(1, recipe.conv1_filters, 3, 1)
            self.conv2 = nn.Conv2d(recipe.conv1_filters, recipe.conv2_filters, 3, 1)
            self.dropout1 = nn.Dropout(recipe.dropout1)
            self.dropout2 = nn.Dropout(recipe.dropout2)
            self.fc1 = nn.Linear(12 * 12 * recipe.conv2_filters, recipe.hidden)
            self.fc2 = nn.Linear(recipe.hidden, 10)

        def drop(self, layer, x):
            if tuned and self.training:  # the tuned mode's mask: rand >= p instead of bernoulli_
                return x * ((torch.rand_like(x) >= layer.p).to(x.dtype) / (1.0 - layer.p))
            return layer(x)

        def forward(self, x):
            x = F.relu(self.conv1(x))
            x = F.relu(self.conv2(x))
            x = F.max_pool2d(x, 2)
            x = self.drop(self.dropout1, x)
            x = torch.flatten(x, 1)
            x = F.relu(self.fc1(x))
            x = self.drop(self.dropout2, x)
            return F.log_softmax(self.fc2(x), dim=1)

    model = Net()
    optimizer = torch.optim.SGD(model.parameters(), lr=recipe.learning_rate, momentum=recipe.momentum)
    images, labels = torch.from_numpy(train_x).unsqueeze(1), torch.from_numpy(train_y.astype(np.int64))

    def train(rows: np.ndarray) -> float:
        model.train()
        for batch_idx, index in enumerate(torch.from_numpy(rows)):
            data, target = images[index], labels[index]
            optimizer.zero_grad()
            loss = F.nll_loss(model(data), target)
            loss.backward()
            optimizer.step()
            if batch_idx % log_every == 0:
                loss.item()
        return loss.item()

    return train


# mode -> the plain loop that mode of the harness is measured against.
LOOPS = {"eager": torch_loop, "tuned": partial(torch_loop, tuned=True)}
