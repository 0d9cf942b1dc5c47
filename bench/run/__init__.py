"""Running sweeps: the harness, one worker process per run, launching, training, records and progress."""
