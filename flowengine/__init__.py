"""flowengine: payment-session lifecycles written in YAML, compiled to python-statemachine.

The names an embedding user needs are exported here; everything else is reachable
through its module (``flowengine.spec``, ``flowengine.compiler``, …).
"""

from .compiler import CompiledFlow, compile_flow
from .errors import FlowEngineError, FlowValidationError, TransitionNotAllowed
from .registry import Registry
from .spec import FlowSpec, load_flow

__all__ = [
    "CompiledFlow",
    "FlowEngineError",
    "FlowSpec",
    "FlowValidationError",
    "Registry",
    "TransitionNotAllowed",
    "compile_flow",
    "load_flow",
]
