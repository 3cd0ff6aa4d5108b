"""The catalog: which chains and destination tokens a deployment supports."""

import pytest

from flowengine.errors import ValidationError
from flowengine.sessions import Catalog, Chain, Token

USDC_BASE = "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913"
TEST_TOKEN = "0x5FbDB2315678afecb367f032d93F642f64180aa3"  # first anvil deployment


def test_default_catalog_has_usdc_on_five_mainnets_and_an_empty_anvil() -> None:
    catalog = Catalog.default()
    assert [(c.chain_id, c.name) for c in catalog.chains] == [
        (1, "ethereum"),
        (10, "optimism"),
        (137, "polygon"),
        (8453, "base"),
        (31337, "anvil"),
        (42161, "arbitrum"),
    ]
    assert {(t.symbol, t.decimals) for t in catalog.tokens()} == {("USDC", 6)}
    assert len(catalog.tokens()) == 5
    assert catalog.tokens(31337) == ()


def test_token_lookup_ignores_letter_case() -> None:
    catalog = Catalog.default()
    token = catalog.token(8453, USDC_BASE.lower())
    assert token == Token(8453, USDC_BASE, "USDC", 6)
    assert catalog.token(8453, USDC_BASE) is token
    assert catalog.token(1, USDC_BASE) is None  # right address, wrong chain
    assert catalog.token(8453, "not an address") is None
    assert catalog.chain(8453) == Chain(8453, "base")
    assert catalog.chain(999) is None


def test_extend_adds_a_test_token_on_anvil() -> None:
    catalog = Catalog.default().extend(tokens=[Token(31337, TEST_TOKEN.lower(), "TUSD", 6)])
    token = catalog.token(31337, TEST_TOKEN)
    assert token is not None
    assert token.address == TEST_TOKEN  # stored checksummed
    assert Catalog.default().token(31337, TEST_TOKEN) is None  # the default is untouched


def test_constructor_refuses_inconsistent_data() -> None:
    with pytest.raises(ValueError, match="does not list"):
        Catalog([Chain(1, "ethereum")], [Token(2, TEST_TOKEN, "T", 6)])
    with pytest.raises(ValueError, match="twice"):
        Catalog([Chain(1, "ethereum"), Chain(1, "mainnet")], [])
    with pytest.raises(ValueError, match="checksum"):
        Token(1, USDC_BASE.replace("fCD6", "fcD6"), "USDC", 6)
    with pytest.raises(ValueError, match="decimals"):
        Token(1, USDC_BASE, "USDC", 78)
    with pytest.raises(ValueError, match="chain name"):
        Chain(1, "Ethereum Mainnet")


def test_from_mapping_reads_a_deploy_file_section() -> None:
    catalog = Catalog.from_mapping(
        {
            "chains": [{"chainId": 31337, "name": "anvil"}],
            "tokens": [
                {"chainId": 31337, "address": TEST_TOKEN.lower(), "symbol": "TUSD", "decimals": 6}
            ],
        }
    )
    assert catalog.tokens() == (Token(31337, TEST_TOKEN, "TUSD", 6),)
    assert Catalog.from_mapping({"chains": [{"chainId": 1, "name": "ethereum"}]}).tokens() == ()


def test_from_mapping_lists_every_mistake() -> None:
    with pytest.raises(ValidationError) as caught:
        Catalog.from_mapping(
            {
                "chains": [
                    {"chainId": 31337, "name": "anvil"},
                    {"chainId": 31337, "name": "anvil2"},
                    {"chainId": True, "name": "yes"},
                    {"chainId": 5, "name": "Goerli", "rpc": "http://x"},
                    "base",
                ],
                "tokens": [
                    {"chainId": 7, "address": TEST_TOKEN, "symbol": "T", "decimals": 6},
                    {"chainId": 31337, "address": "0x12", "symbol": "T", "decimals": "6"},
                    {"chainId": 31337, "address": TEST_TOKEN, "symbol": "T", "decimals": 6},
                    {"chainId": 31337, "address": TEST_TOKEN.lower(), "symbol": "T", "decimals": 6},
                ],
                "extra": 1,
            }
        )
    assert [(e.param, e.code) for e in caught.value.errors] == [
        ("extra", "unknown_field"),
        ("chains.1.chainId", "duplicate"),
        ("chains.2.chainId", "invalid_value"),
        ("chains.3.rpc", "unknown_field"),
        ("chains.3.name", "invalid_value"),
        ("chains.4", "invalid_type"),
        ("tokens.0.chainId", "unknown_chain"),
        ("tokens.1.address", "invalid_address"),
        ("tokens.1.decimals", "invalid_value"),
        ("tokens.3.address", "duplicate"),
    ]


@pytest.mark.parametrize("data", [{}, {"chains": {"1": "ethereum"}}, {"chains": None}])
def test_from_mapping_needs_a_list_of_chains(data: dict[str, object]) -> None:
    with pytest.raises(ValidationError) as caught:
        Catalog.from_mapping(data)
    assert [(e.param, e.code) for e in caught.value.errors] == [("chains", "invalid_type")]
