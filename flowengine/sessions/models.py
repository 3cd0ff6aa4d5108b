"""The public session models: the create-session request and the session resource.

Both keep the shape of Daimo's Sessions API (camelCase JSON, ``destination`` /
``display`` / ``paymentMethod`` / ``metadata``), so an integrator's client code works
unchanged; what flowengine adds (``flow``, ``state``, ``amounts``, ``txHashes``,
``history``) goes in extra fields. Python attributes are snake_case; the camelCase
JSON names are their aliases, and either may be used to construct a model.

The request side is the edge where input is checked, once and completely:
:func:`parse_create_request` reports every bad field of a body in one
:class:`~flowengine.errors.ValidationError` (params are dotted paths such as
``destination.address``), checks the destination against a :class:`Catalog`, and
leaves addresses checksummed. Below this layer nothing re-validates. The resource
side (:class:`Session`) is what the engine assembles from its store and what the
API returns, as :meth:`Session.public` or :meth:`Session.full`.

JSON output follows TypeScript's reading of Daimo's types: a field typed
``x?`` there (``amountUnits``, ``calldata``, ``delivery``, the optional ``display``
fields) is left out when unset, while a field typed ``x | null`` (``paymentMethod``,
``metadata``) is written as ``null``.
"""

from __future__ import annotations

import difflib
import re
import secrets
from collections.abc import Iterator, Mapping
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationInfo,
    field_validator,
    model_serializer,
)
from pydantic import ValidationError as PydanticValidationError
from pydantic.alias_generators import to_camel
from pydantic_core import ErrorDetails, PydanticCustomError

from ..errors import FieldError, ValidationError
from ..jsonvalue import storable_text
from .addresses import checksum_address, is_zero_address
from .amounts import canonical_amount, parse_amount, to_base_units
from .catalog import Catalog, Token

MAX_TITLE_LENGTH = 200
MAX_VERB_LENGTH = 32
MAX_PAYMENT_OPTIONS = 20
MAX_URL_LENGTH = 2048
#: What one contract call may carry; far above any real deposit call, far below abuse.
MAX_CALLDATA_BYTES = 64 * 1024
MAX_METADATA_KEYS = 50
MAX_METADATA_KEY_LENGTH = 40
MAX_METADATA_VALUE_LENGTH = 500
DEFAULT_EXPIRES_IN = 3600
MIN_EXPIRES_IN = 60
MAX_EXPIRES_IN = 30 * 24 * 3600
FLOW_NAME_PATTERN = r"^[a-z][a-z0-9_]*$"
MAX_FLOW_NAME_LENGTH = 64

_FLOW_NAME = re.compile(FLOW_NAME_PATTERN)
_CALLDATA = re.compile(r"0x(?:[0-9a-fA-F]{2})*")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_PAYMENT_OPTION = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")
_LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


def new_session_id() -> str:
    """A fresh session id: 128 random bits as 32 lowercase hex characters.

    The id is what guards a session's public view (a ``GET`` without credentials
    returns it), so it must be unguessable, not merely unique.
    """
    return secrets.token_hex(16)


def new_client_secret() -> str:
    """A fresh per-session secret for the browser: 256 random bits, URL-safe text."""
    return secrets.token_urlsafe(32)


# --------------------------------------------------------------------------- request


class _Request(BaseModel):
    """Request bodies are strict: no "25" → 25 or 1 → "1" coercion, unknown keys are errors."""

    model_config = ConfigDict(
        strict=True,
        frozen=True,
        extra="forbid",
        populate_by_name=True,
        alias_generator=to_camel,
    )


def _pydantic_error(exc: ValidationError) -> PydanticCustomError:
    """Re-raise a check from :mod:`.amounts` / :mod:`.addresses` inside a pydantic validator,
    so pydantic places it (``loc``) and it joins the other errors of the same body."""
    first = exc.errors[0]
    return PydanticCustomError(first.code, first.message)


def _address(value: str) -> str:
    """A checksummed address that may receive funds (so not the zero address)."""
    try:
        address = checksum_address(value, param="")
    except ValidationError as exc:
        raise _pydantic_error(exc) from None
    if is_zero_address(address):
        raise PydanticCustomError(
            "zero_address", "is the zero address; tokens sent there are lost for good"
        )
    return address


def _catalog(info: ValidationInfo) -> Catalog:
    """The catalog passed as validation context, else the default one."""
    catalog = info.context.get("catalog") if isinstance(info.context, Mapping) else None
    return catalog if isinstance(catalog, Catalog) else Catalog.default()


def _destination_token(info: ValidationInfo) -> Token | None:
    """The destination token, when the fields validated so far identify a known one."""
    chain_id, address = info.data.get("chain_id"), info.data.get("token_address")
    if chain_id is None or address is None:
        return None
    return _catalog(info).token(chain_id, address)


def _is_secure_url(value: str) -> bool:
    if _CONTROL.search(value) or " " in value:
        return False
    try:
        url = urlsplit(value)
        host = url.hostname
    except ValueError:  # e.g. a malformed IPv6 host
        return False
    if url.scheme == "https":
        return bool(host)
    return url.scheme == "http" and host in _LOCAL_HOSTS


def _plain_text(value: str) -> str:
    if _CONTROL.search(value):
        raise PydanticCustomError("invalid_characters", "must not contain control characters")
    if not value.strip():
        raise PydanticCustomError("blank", "must not be blank")
    return value


class DestinationRequest(_Request):
    """Where the money goes: ``destination`` of a create-session request.

    Unknown keys are errors here (not ignored, as at the top level): a misspelt
    ``amountUnits`` would otherwise silently let the payer choose the amount.
    Fields are validated in order, so each check can rely on the ones before it.
    """

    type: Literal["evm"]
    address: str
    chain_id: int
    token_address: str
    amount_units: str | None = None
    calldata: str | None = None

    @field_validator("address")
    @classmethod
    def _checksummed(cls, value: str) -> str:
        return _address(value)

    @field_validator("chain_id")
    @classmethod
    def _known_chain(cls, value: int, info: ValidationInfo) -> int:
        catalog = _catalog(info)
        if catalog.chain(value) is None:
            known = ", ".join(f"{c.chain_id} ({c.name})" for c in catalog.chains)
            raise PydanticCustomError(
                "unknown_chain", f"chain {value} is not supported; supported chains: {known}"
            )
        return value

    @field_validator("token_address")
    @classmethod
    def _known_token(cls, value: str, info: ValidationInfo) -> str:
        try:
            address = checksum_address(value, param="")
        except ValidationError as exc:
            raise _pydantic_error(exc) from None
        chain_id = info.data.get("chain_id")
        if chain_id is None:  # the chain is invalid and already reported
            return address
        catalog = _catalog(info)
        if catalog.token(chain_id, address) is None:
            chain = catalog.chain(chain_id)
            where = f"{chain.name} ({chain_id})" if chain else str(chain_id)
            offered = ", ".join(f"{t.symbol} {t.address}" for t in catalog.tokens(chain_id))
            raise PydanticCustomError(
                "unknown_token",
                f"{address} is not a supported token on {where}; "
                f"supported there: {offered or 'none'}",
            )
        return address

    @field_validator("amount_units", mode="before")
    @classmethod
    def _amount(cls, value: Any, info: ValidationInfo) -> Any:
        """Runs before the type check so a JSON number gets a message that says why not."""
        if value is None:
            return None
        token = _destination_token(info)
        try:
            if token is None:  # no decimals to check against; the token error says why
                parse_amount(value)
            else:
                to_base_units(value, token.decimals)
        except ValidationError as exc:
            raise _pydantic_error(exc) from None
        return value

    @field_validator("calldata")
    @classmethod
    def _calldata(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if len(value) > 2 + 2 * MAX_CALLDATA_BYTES:
            raise PydanticCustomError(
                "calldata_too_large", f"must be at most {MAX_CALLDATA_BYTES} bytes"
            )
        if _CALLDATA.fullmatch(value) is None:
            raise PydanticCustomError(
                "invalid_calldata", "must be 0x followed by an even number of hex characters"
            )
        if value == "0x":
            raise PydanticCustomError(
                "empty_calldata",
                "is empty; leave calldata out to send the token without a contract call",
            )
        return value.lower()


MetadataKey = Annotated[str, Field(min_length=1, max_length=MAX_METADATA_KEY_LENGTH)]
MetadataValue = Annotated[str, Field(max_length=MAX_METADATA_VALUE_LENGTH)]


def _few_keys(value: Any) -> Any:
    """Count before validating the entries, so a huge object is refused cheaply."""
    if isinstance(value, dict) and len(value) > MAX_METADATA_KEYS:
        raise PydanticCustomError(
            "too_many_keys", f"has {len(value)} keys; at most {MAX_METADATA_KEYS} are allowed"
        )
    return value


Metadata = Annotated[dict[MetadataKey, MetadataValue], BeforeValidator(_few_keys)]


class Display(BaseModel):
    """What the checkout page shows. Unknown keys are ignored: they only change looks,
    and newer Daimo clients may send display options this engine does not render."""

    model_config = ConfigDict(
        strict=True,
        frozen=True,
        extra="ignore",
        populate_by_name=True,
        alias_generator=to_camel,
    )

    title: Annotated[str, Field(min_length=1, max_length=MAX_TITLE_LENGTH)]
    #: One word for the pay button, e.g. "Deposit".
    verb: Annotated[str, Field(min_length=1, max_length=MAX_VERB_LENGTH)]
    #: Which ways to pay to offer, in order (Daimo names such as "AllWallets").
    payment_options: (
        Annotated[
            list[Annotated[str, Field(min_length=1, max_length=40)]],
            Field(max_length=MAX_PAYMENT_OPTIONS),
        ]
        | None
    ) = None
    theme_css_url: Annotated[str, Field(max_length=MAX_URL_LENGTH)] | None = None
    theme_mode: Literal["system", "light", "dark"] | None = None

    @field_validator("title")
    @classmethod
    def _title(cls, value: str) -> str:
        return _plain_text(value)

    @field_validator("verb")
    @classmethod
    def _one_word(cls, value: str) -> str:
        if any(c.isspace() for c in value):
            raise PydanticCustomError("not_one_word", 'must be one word, e.g. "Deposit"')
        return _plain_text(value)

    @field_validator("payment_options")
    @classmethod
    def _options(cls, value: list[str] | None) -> list[str] | None:
        for option in value or ():
            if _PAYMENT_OPTION.fullmatch(option) is None:
                raise PydanticCustomError(
                    "invalid_payment_option",
                    f"{option!r} is not a payment option name (letters and digits, "
                    'e.g. "AllWallets")',
                )
        return value

    @field_validator("theme_css_url")
    @classmethod
    def _stylesheet(cls, value: str | None) -> str | None:
        """The checkout page loads this stylesheet: plain http would let anyone on the
        network restyle a payment page, so only https (or http on this machine)."""
        if value is None:
            return None
        if not _is_secure_url(value):
            raise PydanticCustomError("invalid_url", "must be an https:// URL")
        return value

    @model_serializer(mode="wrap")
    def _omit_unset(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return {k: v for k, v in handler(self).items() if v is not None}


class CreateSessionRequest(_Request):
    """The body of ``POST /v1/sessions``; build it with :func:`parse_create_request`.

    Unknown top-level keys (``locale``, newer Daimo fields) are ignored, as Daimo's
    API does, so existing clients keep working.
    """

    model_config = ConfigDict(extra="ignore")

    destination: DestinationRequest
    display: Display
    #: Where funds go when the contract call reverts; required with ``calldata``.
    #: Declared after ``destination`` (and validated even when absent) so it can see it.
    refund_address: str | None = Field(default=None, validate_default=True)
    metadata: Metadata | None = None
    #: The name of the flow that runs the session (``flows/<name>.yaml``).
    flow: Annotated[str, Field(max_length=MAX_FLOW_NAME_LENGTH)] = "deposit"
    #: Seconds from creation until an unpaid session expires.
    expires_in: int = DEFAULT_EXPIRES_IN

    @field_validator("refund_address")
    @classmethod
    def _refund_address(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None:
            return _address(value)
        destination = info.data.get("destination")
        if isinstance(destination, DestinationRequest) and destination.calldata is not None:
            raise _refund_address_required()
        return None

    @field_validator("flow")
    @classmethod
    def _flow_name(cls, value: str) -> str:
        if _FLOW_NAME.fullmatch(value) is None:
            raise PydanticCustomError(
                "invalid_flow_name",
                "must be a flow name: lowercase letters, digits and '_', starting with a letter",
            )
        return value

    @field_validator("expires_in")
    @classmethod
    def _expiry(cls, value: int) -> int:
        if not MIN_EXPIRES_IN <= value <= MAX_EXPIRES_IN:
            raise PydanticCustomError(
                "out_of_range",
                f"must be between {MIN_EXPIRES_IN} seconds and 30 days "
                f"({MAX_EXPIRES_IN}), in seconds",
            )
        return value

    def to_session_data(self, catalog: Catalog) -> dict[str, Any]:
        """The JSON-able part of a new session that the request decides, as the engine stores it.

        The catalog fills in what the request does not carry (chain name, token
        symbol and decimals) and ``amountUnits`` is written in canonical form
        (``"25"`` → ``"25.00"``). Raises :class:`ValidationError` if ``catalog``
        does not know the token, i.e. is not the catalog the request was parsed with.
        """
        d = self.destination
        chain, token = catalog.chain(d.chain_id), catalog.token(d.chain_id, d.token_address)
        if chain is None or token is None:
            raise ValidationError(
                [
                    FieldError(
                        "destination.tokenAddress",
                        "unknown_token",
                        f"{d.token_address} on chain {d.chain_id} is not in this catalog",
                    )
                ]
            )
        destination: dict[str, Any] = {
            "type": d.type,
            "address": d.address,
            "chainId": chain.chain_id,
            "chainName": chain.name,
            "tokenAddress": token.address,
            "tokenSymbol": token.symbol,
            "decimals": token.decimals,
        }
        if d.amount_units is not None:
            destination["amountUnits"] = canonical_amount(
                d.amount_units, token.decimals, param="destination.amountUnits"
            )
        if d.calldata is not None:
            destination["calldata"] = d.calldata
        return {
            "destination": destination,
            "display": self.display.model_dump(mode="json", by_alias=True),
            "refundAddress": self.refund_address,
            "metadata": dict(self.metadata) if self.metadata is not None else None,
            "paymentMethod": None,
        }


def parse_create_request(data: Any, catalog: Catalog | None = None) -> CreateSessionRequest:
    """Validate a create-session body (decoded JSON) against ``catalog`` (default:
    :meth:`Catalog.default`).

    Raises one :class:`ValidationError` listing every bad field, in the order of the
    fields, each with a dotted ``param`` (``destination.amountUnits``,
    ``metadata.orderId``), a stable ``code`` and a message saying what is expected.
    A body that is not a JSON object gets a single error with ``param`` ``""``.
    """
    if catalog is None:
        catalog = Catalog.default()
    if not isinstance(data, Mapping):
        raise ValidationError([FieldError("", "invalid_body", "the body must be a JSON object")])
    unstorable = "must not contain a NUL character (\\u0000) or a lone surrogate"
    with_nul = [
        FieldError(param, "invalid_string", unstorable)
        for param in dict.fromkeys(_unstorable_fields(data, ""))
    ]
    try:
        request = CreateSessionRequest.model_validate(dict(data), context={"catalog": catalog})
    except PydanticValidationError as exc:
        errors = [_field_error(e) for e in exc.errors(include_url=False)]
    else:
        if not with_nul:
            return request
        raise ValidationError(with_nul)
    errors += [e for e in with_nul if e.param not in {f.param for f in errors}]
    # The model checks "calldata needs refundAddress" only when the whole destination
    # is valid; report it also when something else in the destination is wrong.
    if not any(e.param == "refundAddress" for e in errors) and _calldata_without_refund(data):
        required = _refund_address_required()
        errors.append(FieldError("refundAddress", required.type, required.message()))
    raise ValidationError(errors)


def _unstorable_fields(value: Any, path: str) -> Iterator[str]:
    """Where the body holds text a store could not keep as given (see
    :func:`~flowengine.jsonvalue.storable_text`): refused on every store, so a session
    SQLite would keep does not fail on PostgreSQL."""
    if isinstance(value, str):
        if not storable_text(value):
            yield path
    elif isinstance(value, Mapping):
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            if isinstance(key, str) and not storable_text(key):
                yield where
            yield from _unstorable_fields(item, where)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _unstorable_fields(item, f"{path}[{index}]")


def _refund_address_required() -> PydanticCustomError:
    return PydanticCustomError(
        "required",
        "is required when destination.calldata is set: if the contract call reverts, "
        "the funds are sent back to this address",
    )


def _calldata_without_refund(data: Mapping[str, Any]) -> bool:
    destination = data.get("destination")
    calldata = destination.get("calldata") if isinstance(destination, Mapping) else None
    refund = data.get("refundAddress", data.get("refund_address"))
    return calldata is not None and refund is None


_CODES = {
    "missing": "required",
    "extra_forbidden": "unknown_field",
    "model_type": "invalid_type",
    "model_attributes_type": "invalid_type",
    "dict_type": "invalid_type",
    "string_type": "invalid_type",
    "int_type": "invalid_type",
    "list_type": "invalid_type",
    "literal_error": "invalid_value",
    "string_too_long": "too_long",
    "string_too_short": "too_short",
    "too_long": "too_long",
}
_MESSAGES = {
    "missing": "is required",
    "extra_forbidden": "is not a known field here",
    "model_type": "must be a JSON object",
    "model_attributes_type": "must be a JSON object",
    "dict_type": "must be a JSON object",
    "string_type": "must be a string",
    "int_type": "must be an integer",
    "list_type": "must be a list",
}


def _field_error(error: ErrorDetails) -> FieldError:
    """One pydantic error as a :class:`FieldError`: ``loc`` joined with dots, pydantic's
    error types renamed to this API's codes, messages phrased as what is expected."""
    loc = [str(part) for part in error["loc"]]
    if loc and loc[0] in _TOP_LEVEL_ALIASES:  # pydantic names a validated default by its
        loc[0] = _TOP_LEVEL_ALIASES[loc[0]]  # Python name, not the JSON one
    is_key = "[key]" in loc  # pydantic's marker for a problem with a dict key itself
    param = ".".join(part for part in loc if part != "[key]")
    kind = error["type"]
    ctx: dict[str, Any] = dict(error.get("ctx") or {})
    if kind == "string_too_long":
        message = f"must be at most {ctx['max_length']} characters"
    elif kind == "string_too_short":
        message = "must not be empty"
    elif kind == "too_long":
        message = f"must have at most {ctx['max_length']} items"
    elif kind == "extra_forbidden" and loc[:-1] == ["destination"]:
        message = _unknown_destination_field(loc[-1])
    else:
        message = _MESSAGES.get(kind, error["msg"].replace("Input should be", "must be", 1))
    return FieldError(param, _CODES.get(kind, kind), f"key {message}" if is_key else message)


_TOP_LEVEL_ALIASES = {
    name: field.alias
    for name, field in CreateSessionRequest.model_fields.items()
    if field.alias is not None
}


def _unknown_destination_field(name: str) -> str:
    known = [field.alias or key for key, field in DestinationRequest.model_fields.items()]
    close = difflib.get_close_matches(name, known, n=1) or [
        k for k in known if k.lower() == name.lower()
    ]
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f"is not a field of destination; {hint}fields: {', '.join(known)}"


# -------------------------------------------------------------------------- resource


class _Resource(BaseModel):
    """Resource models are built by the engine from its store: lax types (the store's
    JSON is already valid), but unknown keys are errors so a misspelt field fails
    loudly instead of leaving a default in a payment record."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        populate_by_name=True,
        alias_generator=to_camel,
    )


TxHash = Annotated[str, Field(pattern=r"^0x[0-9a-fA-F]{64}$")]
#: A decimal string in token units, e.g. "25.00" (no sign, no exponent).
Units = Annotated[str, Field(pattern=r"^[0-9]+(\.[0-9]+)?$")]


def _as_text(value: Any) -> Any:
    """Flow versions are text (``version: 2`` and ``"2"`` are the same), as in the spec."""
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


class Delivery(_Resource):
    """The transaction that ended the session: the delivery once ``succeeded``, the
    refund once ``bounced``, with the amount it moved."""

    tx_hash: TxHash
    received_units: Units


class Destination(_Resource):
    """``destination`` as stored by :meth:`CreateSessionRequest.to_session_data`, plus
    ``delivery`` once the session has ended with a transfer."""

    type: Literal["evm"]
    address: str
    chain_id: int
    chain_name: str
    token_address: str
    token_symbol: str
    decimals: int
    amount_units: Units | None = None
    calldata: str | None = None
    delivery: Delivery | None = None

    @model_serializer(mode="wrap")
    def _omit_unset(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return {k: v for k, v in handler(self).items() if v is not None}


class FlowRef(_Resource):
    """The flow (and the version of it) that runs the session."""

    name: str
    version: Annotated[str, BeforeValidator(_as_text)]


class Amounts(_Resource):
    """Totals folded from the session's log, as decimal strings in token units."""

    received: Units
    delivered: Units
    refunded: Units
    held: Annotated[str, Field(pattern=r"^-?[0-9]+(\.[0-9]+)?$")]
    """received − delivered − refunded: what the engine holds for this session now.
    Negative only when adapters reported moving more than arrived: a case for review."""


class HistoryEntry(_Resource):
    """One transition: ``event`` moved the session from state ``from`` to ``to`` at ``at``
    (unix seconds). ``from`` is ``None`` for the entry that created the session."""

    event: str
    from_: str | None = Field(alias="from")
    to: str
    at: int


class Session(_Resource):
    """A payment session as the API returns it: Daimo's fields, then flowengine's."""

    session_id: Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")]
    #: The current state's ``status`` name, as the flow declares it.
    status: str
    destination: Destination
    display: Display
    payment_method: dict[str, Any] | None = None
    metadata: dict[str, str] | None = None
    client_secret: str
    #: From the request; kept so a session built from its stored data needs no special
    #: case, and shown in both views since it is where a bounce sends the funds.
    refund_address: str | None = None
    created_at: int
    expires_at: int
    flow: FlowRef
    #: The flow state the session is in (``status`` is its public name).
    state: str
    amounts: Amounts
    tx_hashes: list[str] = Field(default_factory=list)
    history: list[HistoryEntry] = Field(default_factory=list)

    def public(self) -> dict[str, Any]:
        """The view anyone holding the session id may read: no ``metadata`` (the
        merchant's own data) and no ``clientSecret`` (it would let the reader act)."""
        return self.model_dump(mode="json", by_alias=True, exclude={"metadata", "client_secret"})

    def full(self) -> dict[str, Any]:
        """The view for the API key holder: everything."""
        return self.model_dump(mode="json", by_alias=True)
