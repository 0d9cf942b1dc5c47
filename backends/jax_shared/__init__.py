"""JAX pieces both Flax implementations (Linen and NNX) use: devices, numerics, versions, memory,
the CPU's patch-matmul convolution and data-parallel placement. Framework-level, not API-level:
nothing here knows Linen or NNX. Importing this package imports no framework."""
