"""Training: the run config, the train loop, callbacks (checkpoint and resume), losses, tracking."""
