"""Expected Glacier retrieval times, for dry-run plans and sensor timeouts."""

from __future__ import annotations

TIERS = ("Expedited", "Standard", "Bulk")

# Typical completion times (hours) published by AWS for each storage class and tier.
_HOURS: dict[str, dict[str, tuple[float, float]]] = {
    "GLACIER": {"Expedited": (1 / 60, 5 / 60), "Standard": (3, 5), "Bulk": (5, 12)},
    "DEEP_ARCHIVE": {"Standard": (0, 12), "Bulk": (0, 48)},
    "INTELLIGENT_TIERING": {"Standard": (3, 5), "Bulk": (5, 12)},
}


def expected_hours(storage_class: str, tier: str) -> tuple[float, float] | None:
    """Return the (low, high) hours a restore typically takes, or None when not offered.

    DEEP_ARCHIVE has no Expedited tier: S3 rejects such a request.
    """
    return _HOURS.get(storage_class, {}).get(tier)


def describe(storage_class: str, tier: str) -> str:
    """Return a short human text such as ``'3-5 h'`` or ``'not offered'``."""
    hours = expected_hours(storage_class, tier)
    if hours is None:
        return "not offered"
    low, high = hours
    if high < 1:
        return f"{round(low * 60)}-{round(high * 60)} min"
    return f"within {high:g} h" if low == 0 else f"{low:g}-{high:g} h"


def tier_for(storage_class: str, tier: str) -> str:
    """DEEP_ARCHIVE offers no Expedited tier: fall back to Standard rather than fail."""
    return "Standard" if storage_class == "DEEP_ARCHIVE" and tier == "Expedited" else tier


def restore_request(storage_class: str, tier: str, days: int) -> dict:
    """Return RestoreObject's ``RestoreRequest`` for an object of ``storage_class``.

    Intelligent-Tiering archive tiers take no ``Days``: the restored object moves back to the
    frequent access tier instead of being a temporary copy.
    """
    request: dict = {"GlacierJobParameters": {"Tier": tier_for(storage_class, tier)}}
    if storage_class != "INTELLIGENT_TIERING":
        request["Days"] = days
    return request
