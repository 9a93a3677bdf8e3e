"""Files: the run folder's names, checkpoints, loggers."""
