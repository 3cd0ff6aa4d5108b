"""The create-session request (``POST /v1/sessions``): every bad field is named at once."""

from typing import Any

import pytest

from flowengine.errors import FieldError, ValidationError
from flowengine.sessions import Catalog, CreateSessionRequest, Token, parse_create_request

MERCHANT = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
REFUNDS = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"
USDC_BASE = "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913"
TEST_TOKEN = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
CALLDATA = "0xb6b55f25" + "00" * 31 + "2a"  # deposit(42)


def body(**changes: Any) -> dict[str, Any]:
    """A valid request, as an integrator would send it, with some top-level keys changed."""
    data: dict[str, Any] = {
        "destination": {
            "type": "evm",
            "address": MERCHANT.lower(),
            "chainId": 8453,
            "tokenAddress": USDC_BASE,
            "amountUnits": "25.00",
        },
        "display": {"title": "Top up your account", "verb": "Deposit"},
        "metadata": {"orderId": "A-1001"},
    }
    data.update(changes)
    return data


def destination(**changes: Any) -> dict[str, Any]:
    return {**body()["destination"], **changes}


def errors_of(data: Any, catalog: Catalog | None = None) -> list[tuple[str, str]]:
    with pytest.raises(ValidationError) as caught:
        parse_create_request(data, catalog)
    return [(e.param, e.code) for e in caught.value.errors]


def test_a_good_request() -> None:
    request = parse_create_request({**body(), "locale": "en-US", "x-unknown": [1, 2]})
    assert isinstance(request, CreateSessionRequest)
    assert request.destination.address == MERCHANT  # checksummed at the edge
    assert request.destination.amount_units == "25.00"
    assert request.flow == "deposit"
    assert request.expires_in == 3600
    assert request.refund_address is None

    assert request.to_session_data(Catalog.default()) == {
        "destination": {
            "type": "evm",
            "address": MERCHANT,
            "chainId": 8453,
            "chainName": "base",
            "tokenAddress": USDC_BASE,
            "tokenSymbol": "USDC",
            "decimals": 6,
            "amountUnits": "25.00",
        },
        "display": {"title": "Top up your account", "verb": "Deposit"},
        "refundAddress": None,
        "metadata": {"orderId": "A-1001"},
        "paymentMethod": None,
    }


def test_a_contract_call_with_every_option() -> None:
    catalog = Catalog.default().extend(tokens=[Token(31337, TEST_TOKEN, "TUSD", 18)])
    request = parse_create_request(
        {
            "destination": {
                "type": "evm",
                "address": MERCHANT,
                "chainId": 31337,
                "tokenAddress": TEST_TOKEN.lower(),
                "calldata": CALLDATA.upper().replace("0X", "0x"),
            },
            "display": {
                "title": "Mint",
                "verb": "Mint",
                "paymentOptions": ["AllWallets", "Coinbase"],
                "themeCssUrl": "https://example.com/theme.css",
                "themeMode": "dark",
            },
            "refundAddress": REFUNDS.lower(),
            "flow": "contract_call",
            "expiresIn": 600,
        },
        catalog,
    )
    assert (request.flow, request.expires_in, request.refund_address) == (
        "contract_call",
        600,
        REFUNDS,
    )
    data = request.to_session_data(catalog)
    assert "amountUnits" not in data["destination"]  # the payer chooses
    assert data["destination"]["calldata"] == CALLDATA
    assert data["destination"]["tokenAddress"] == TEST_TOKEN
    assert data["display"] == {
        "title": "Mint",
        "verb": "Mint",
        "paymentOptions": ["AllWallets", "Coinbase"],
        "themeCssUrl": "https://example.com/theme.css",
        "themeMode": "dark",
    }
    assert data["refundAddress"] == REFUNDS


@pytest.mark.parametrize(
    ("amount", "stored"), [("25", "25.00"), ("25.00", "25.00"), ("25.001", "25.001")]
)
def test_amounts_a_usdc_token_can_hold(amount: str, stored: str) -> None:
    request = parse_create_request(body(destination=destination(amountUnits=amount)))
    assert request.to_session_data(Catalog.default())["destination"]["amountUnits"] == stored


@pytest.mark.parametrize(
    ("amount", "code"),
    [
        ("25.0000001", "too_many_decimals"),
        ("0", "amount_not_positive"),
        ("-25", "amount_not_positive"),
        ("2.5e1", "invalid_amount"),
        (25, "invalid_type"),
        (25.5, "invalid_type"),
    ],
)
def test_amounts_that_are_refused(amount: object, code: str) -> None:
    data = body(destination=destination(amountUnits=amount))
    assert errors_of(data) == [("destination.amountUnits", code)]


def test_a_json_number_amount_says_to_send_a_string() -> None:
    with pytest.raises(ValidationError, match=r'decimal string .* such as "25.00"'):
        parse_create_request(body(destination=destination(amountUnits=25.5)))


@pytest.mark.parametrize(
    ("data", "param", "code"),
    [
        (body(destination=destination(address="0x1234")), "destination.address", "invalid_address"),
        (
            body(destination=destination(address=MERCHANT.replace("C51812dc", "c51812dc"))),
            "destination.address",
            "invalid_checksum",
        ),
        (
            body(destination=destination(address="0x" + "0" * 40)),
            "destination.address",
            "zero_address",
        ),
        (body(destination=destination(type="solana")), "destination.type", "invalid_value"),
        (body(destination=destination(chainId="8453")), "destination.chainId", "invalid_type"),
        (body(destination=destination(chainId=56)), "destination.chainId", "unknown_chain"),
        (
            body(destination=destination(tokenAddress=TEST_TOKEN)),
            "destination.tokenAddress",
            "unknown_token",
        ),
        (body(destination=destination(amountUnit="25")), "destination.amountUnit", "unknown_field"),
        (
            body(destination=destination(calldata="0x123"), refundAddress=REFUNDS),
            "destination.calldata",
            "invalid_calldata",
        ),
        (
            body(destination=destination(calldata="0x"), refundAddress=REFUNDS),
            "destination.calldata",
            "empty_calldata",
        ),
        (
            body(
                destination=destination(calldata="0x" + "ab" * (64 * 1024 + 1)),
                refundAddress=REFUNDS,
            ),
            "destination.calldata",
            "calldata_too_large",
        ),
        (body(destination=None), "destination", "invalid_type"),
        ({"display": body()["display"]}, "destination", "required"),
        (body(display={"verb": "Pay"}), "display.title", "required"),
        (body(display={"title": "x" * 201, "verb": "Pay"}), "display.title", "too_long"),
        (body(display={"title": " ", "verb": "Pay"}), "display.title", "blank"),
        (body(display={"title": "a\x00b", "verb": "Pay"}), "display.title", "invalid_characters"),
        (body(display={"title": "t", "verb": "Pay now"}), "display.verb", "not_one_word"),
        (body(display={"title": "t", "verb": "P" * 33}), "display.verb", "too_long"),
        (
            body(display={"title": "t", "verb": "Pay", "themeCssUrl": "http://example.com/a.css"}),
            "display.themeCssUrl",
            "invalid_url",
        ),
        (
            body(display={"title": "t", "verb": "Pay", "themeMode": "neon"}),
            "display.themeMode",
            "invalid_value",
        ),
        (
            body(display={"title": "t", "verb": "Pay", "paymentOptions": ["All Wallets"]}),
            "display.paymentOptions",
            "invalid_payment_option",
        ),
        (body(refundAddress="0xnope"), "refundAddress", "invalid_address"),
        (body(flow="Deposit-V2"), "flow", "invalid_flow_name"),
        (body(expiresIn=59), "expiresIn", "out_of_range"),
        (body(expiresIn=30 * 86400 + 1), "expiresIn", "out_of_range"),
        (body(expiresIn=3600.0), "expiresIn", "invalid_type"),
        (body(expiresIn=True), "expiresIn", "invalid_type"),
    ],
)
def test_each_bad_field_is_named(data: dict[str, Any], param: str, code: str) -> None:
    assert errors_of(data) == [(param, code)]


def test_a_misspelt_destination_field_gets_a_suggestion() -> None:
    with pytest.raises(ValidationError, match="did you mean 'amountUnits'"):
        parse_create_request(body(destination=destination(amountunits="25")))


def test_several_bad_fields_are_all_listed() -> None:
    data = {
        "destination": {
            "type": "evm",
            "address": "0xdead",
            "chainId": 8453,
            "tokenAddress": USDC_BASE,
            "amountUnits": "1.0000001",
            "calldata": CALLDATA,
        },
        "display": {"title": "", "verb": "Pay"},
        "metadata": {"orderId": 1001},
        "expiresIn": 0,
    }
    assert errors_of(data) == [
        ("destination.address", "invalid_address"),
        ("destination.amountUnits", "too_many_decimals"),
        ("display.title", "too_short"),
        ("metadata.orderId", "invalid_type"),
        ("expiresIn", "out_of_range"),
        # reported although destination itself is invalid
        ("refundAddress", "required"),
    ]


def test_calldata_requires_a_refund_address() -> None:
    with pytest.raises(ValidationError) as caught:
        parse_create_request(body(destination=destination(calldata=CALLDATA)))
    assert caught.value.errors == (
        FieldError(
            "refundAddress",
            "required",
            "is required when destination.calldata is set: if the contract call reverts, "
            "the funds are sent back to this address",
        ),
    )
    request = parse_create_request(
        body(destination=destination(calldata=CALLDATA), refundAddress=REFUNDS)
    )
    assert request.refund_address == REFUNDS


def test_unknown_chain_and_token_name_what_is_supported() -> None:
    with pytest.raises(ValidationError, match=r"supported chains: 1 \(ethereum\)"):
        parse_create_request(body(destination=destination(chainId=56)))
    with pytest.raises(ValidationError, match=f"supported there: USDC {USDC_BASE}"):
        parse_create_request(body(destination=destination(tokenAddress=TEST_TOKEN)))


def test_the_token_must_be_on_the_chain_named() -> None:
    ethereum_usdc = "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48"
    data = body(destination=destination(tokenAddress=ethereum_usdc))  # on base
    assert errors_of(data) == [("destination.tokenAddress", "unknown_token")]


def test_the_catalog_decides_the_decimals() -> None:
    catalog = Catalog.default().extend(tokens=[Token(31337, TEST_TOKEN, "TUSD", 18)])
    data = body(destination=destination(chainId=31337, tokenAddress=TEST_TOKEN))
    data["destination"]["amountUnits"] = "0.000000000000000001"
    assert parse_create_request(data, catalog).destination.amount_units == "0.000000000000000001"
    assert errors_of(data) == [("destination.tokenAddress", "unknown_token")]  # default catalog


def test_metadata_limits() -> None:
    at_limit = {f"k{i}": "v" * 500 for i in range(50)}
    at_limit["x" * 40] = at_limit.pop("k0")
    assert parse_create_request(body(metadata=at_limit)).metadata == at_limit
    assert parse_create_request(body(metadata=None)).metadata is None

    assert errors_of(body(metadata={f"k{i}": "v" for i in range(51)})) == [
        ("metadata", "too_many_keys")
    ]
    assert errors_of(body(metadata={"x" * 41: "v", "ok": "v" * 501, "": "v", "n": None})) == [
        ("metadata." + "x" * 41, "too_long"),
        ("metadata.ok", "too_long"),
        ("metadata.", "too_short"),
        ("metadata.n", "invalid_type"),
    ]
    assert errors_of(body(metadata=["orderId"])) == [("metadata", "invalid_type")]


def test_a_metadata_key_error_says_it_is_the_key() -> None:
    with pytest.raises(ValidationError, match="key must be at most 40 characters"):
        parse_create_request(body(metadata={"x" * 41: "v"}))


@pytest.mark.parametrize("data", [None, [], "{}", 42])
def test_a_body_that_is_not_an_object(data: Any) -> None:
    assert errors_of(data) == [("", "invalid_body")]


def test_to_session_data_needs_the_catalog_the_request_was_checked_with() -> None:
    catalog = Catalog.default().extend(tokens=[Token(31337, TEST_TOKEN, "TUSD", 6)])
    data = body(destination=destination(chainId=31337, tokenAddress=TEST_TOKEN))
    request = parse_create_request(data, catalog)
    with pytest.raises(ValidationError) as caught:
        request.to_session_data(Catalog.default())
    assert [e.param for e in caught.value.errors] == ["destination.tokenAddress"]
