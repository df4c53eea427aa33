"""Expected Glacier retrieval times per storage class and tier."""

from __future__ import annotations

import pytest

from s3br_provider.core.retrieval import TIERS, describe, expected_hours


@pytest.mark.parametrize(
    ("storage_class", "tier", "hours", "text"),
    [
        ("GLACIER", "Expedited", (1 / 60, 5 / 60), "1-5 min"),
        ("GLACIER", "Standard", (3, 5), "3-5 h"),
        ("GLACIER", "Bulk", (5, 12), "5-12 h"),
        ("DEEP_ARCHIVE", "Standard", (0, 12), "within 12 h"),
        ("DEEP_ARCHIVE", "Bulk", (0, 48), "within 48 h"),
        ("INTELLIGENT_TIERING", "Standard", (3, 5), "3-5 h"),
        ("INTELLIGENT_TIERING", "Bulk", (5, 12), "5-12 h"),
    ],
)
def test_expected_hours_and_description(
    storage_class: str, tier: str, hours: tuple[float, float], text: str
) -> None:
    assert expected_hours(storage_class, tier) == pytest.approx(hours)
    assert describe(storage_class, tier) == text


@pytest.mark.parametrize(
    ("storage_class", "tier"),
    [("DEEP_ARCHIVE", "Expedited"), ("STANDARD", "Standard"), ("GLACIER", "Fast"), ("GLACIER", "standard")],
)
def test_not_offered(storage_class: str, tier: str) -> None:
    assert expected_hours(storage_class, tier) is None
    assert describe(storage_class, tier) == "not offered"


def test_tiers() -> None:
    assert TIERS == ("Expedited", "Standard", "Bulk")


@pytest.mark.parametrize("storage_class", ["GLACIER", "DEEP_ARCHIVE"])
def test_cheaper_tiers_take_longer(storage_class: str) -> None:
    offered = [h for tier in TIERS if (h := expected_hours(storage_class, tier)) is not None]
    assert [high for _, high in offered] == sorted(high for _, high in offered)
