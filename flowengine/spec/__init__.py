"""The flow language: models, loading with positions, static checks."""

from .loader import load_flow
from .models import Edge, FlowSource, FlowSpec, StateSpec, TimerSpec, TransitionSpec

__all__ = [
    "Edge",
    "FlowSource",
    "FlowSpec",
    "StateSpec",
    "TimerSpec",
    "TransitionSpec",
    "load_flow",
]
