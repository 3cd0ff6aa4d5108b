"""The loops that move sessions forward: timers fire, effects run, outcomes come back."""

from .effects import EffectRunner, RetryPolicy
from .timers import TimerWorker

__all__ = ["EffectRunner", "RetryPolicy", "TimerWorker"]
