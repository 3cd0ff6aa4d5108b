"""Sessions: the public session models, amounts, addresses and the token catalog.

This layer checks what comes in from outside (a create-session request, a deploy
file's catalog) and defines what goes out (the session resource, in Daimo's shape).
It depends on nothing else in flowengine but :mod:`flowengine.errors`; the engine,
the adapters and the API build on it.
"""

from .addresses import ZERO_ADDRESS, checksum_address, is_zero_address
from .amounts import canonical_amount, format_units, parse_amount, to_base_units
from .catalog import Catalog, Chain, Token
from .models import (
    Amounts,
    CreateSessionRequest,
    Delivery,
    Destination,
    DestinationRequest,
    Display,
    FlowRef,
    HistoryEntry,
    Session,
    new_client_secret,
    new_session_id,
    parse_create_request,
)

__all__ = [
    "ZERO_ADDRESS",
    "Amounts",
    "Catalog",
    "Chain",
    "CreateSessionRequest",
    "Delivery",
    "Destination",
    "DestinationRequest",
    "Display",
    "FlowRef",
    "HistoryEntry",
    "Session",
    "Token",
    "canonical_amount",
    "checksum_address",
    "format_units",
    "is_zero_address",
    "new_client_secret",
    "new_session_id",
    "parse_amount",
    "parse_create_request",
    "to_base_units",
]
