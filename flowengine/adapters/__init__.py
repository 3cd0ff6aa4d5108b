"""Adapters: the code that touches the outside world, behind small protocols."""

from .base import EffectAdapter, EffectCall, EffectResult, Outcome

__all__ = ["EffectAdapter", "EffectCall", "EffectResult", "Outcome"]
