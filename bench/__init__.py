"""The harness, the command line and the benchmark suite. Importing it imports no framework."""
