"""This implementation is wrong on purpose; the same parity check that passes torch-func must fail it.

mnist-bench's own tests (tests/test_plugins.py) run this file and require the failure, with a
message naming the check and the figures.
"""


def test_numerically_the_same_model_as_torch_and_float64(mnist_parity):
    mnist_parity.numerical("torch-func-wrong-order", against=["torch"]).assert_passed()
