"""Training: a shared loop (optimizer, schedule, AMP, DDP, per-epoch checkpoints) and its uses."""
from edgekd.training.loop import LoopConfig, TrainOutcome, run_loop
from edgekd.training.supervised import TrainConfig, train_supervised

__all__ = ["LoopConfig", "TrainOutcome", "run_loop", "TrainConfig", "train_supervised"]
