"""One module per framework, each defining one final :class:`mnist_bench.common.interface.Backend`.

Modules are named after the backend (``torch_backend``) so they never shadow the
framework they import. Importing this package imports no framework: use
:func:`mnist_bench.common.registry.load_backend` to get a backend class.
"""
