"""The flow language: models, loading with positions, static checks."""

from .checks import check_upgrade
from .loader import load_flow, load_flows
from .models import (
    Edge,
    FlowSource,
    FlowSpec,
    StateSpec,
    TimerSpec,
    TransitionSpec,
    UpgradeSpec,
)

__all__ = [
    "Edge",
    "FlowSource",
    "FlowSpec",
    "StateSpec",
    "TimerSpec",
    "TransitionSpec",
    "UpgradeSpec",
    "check_upgrade",
    "load_flow",
    "load_flows",
]
