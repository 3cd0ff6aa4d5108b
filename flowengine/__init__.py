"""flowengine: payment-session lifecycles written in YAML, compiled to python-statemachine.

The names an embedding user needs are exported here; everything else is reachable
through its module (``flowengine.spec``, ``flowengine.compiler``, …).
"""

from .clock import ManualClock, SystemClock
from .compiler import CompiledFlow, compile_flow
from .engine import Engine, EventInput, SendResult
from .errors import (
    FlowEngineError,
    FlowValidationError,
    IdempotencyConflict,
    SessionNotFound,
    TransitionNotAllowed,
    ValidationError,
)
from .flows import FlowRegistry
from .registry import Registry
from .sessions import Catalog, Session
from .spec import FlowSpec, load_flow
from .store import MemoryStore, Store, open_store

__all__ = [
    "Catalog",
    "CompiledFlow",
    "Engine",
    "EventInput",
    "FlowEngineError",
    "FlowRegistry",
    "FlowSpec",
    "FlowValidationError",
    "IdempotencyConflict",
    "ManualClock",
    "MemoryStore",
    "Registry",
    "SendResult",
    "Session",
    "SessionNotFound",
    "Store",
    "SystemClock",
    "TransitionNotAllowed",
    "ValidationError",
    "compile_flow",
    "load_flow",
    "open_store",
]
