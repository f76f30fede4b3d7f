"""Training: the run configuration, the algorithm (losses, discriminator, monitor), the TRL trainers, the
staged and resumable pipeline, forks, the run folder, memory arithmetic, launch commands and run plots."""
