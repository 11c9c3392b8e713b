"""Training: a shared loop (optimizer, schedule, AMP, DDP, per-epoch checkpoints) and its uses."""
from edgekd.training.loop import LoopConfig, TrainOutcome, run_loop
from edgekd.training.run_parts import TrainConfig
from edgekd.training.supervised import train_supervised

__all__ = ["LoopConfig", "TrainOutcome", "run_loop", "TrainConfig", "train_supervised"]
