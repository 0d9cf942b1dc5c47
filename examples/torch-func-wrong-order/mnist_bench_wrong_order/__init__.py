"""torch-func with one classic porting bug, for mnist-bench's parity plug-in to catch."""
