"""USAspending's own published totals of an awarding sub-agency: obligations and transaction counts
by fiscal year (action date), contracts and IDVs, from the advanced-search endpoints.

- ``POST /api/v2/search/spending_over_time/`` with ``group: fiscal_year``, ``spending_level: transactions``
  answers ``results[].aggregated_amount`` per ``time_period.fiscal_year``
  (usaspending-api api_contracts/contracts/v2/search/spending_over_time.md);
- ``POST /api/v2/search/spending_by_transaction_count/`` answers ``results.contracts`` and
  ``results.idvs`` for the filters (spending_by_transaction_count.md), so it is asked once per year.

Amounts come as JSON floats: each is rounded to the cent (half up) before it is compared.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from awardwatch.flows.sources.http import Http, HttpError
from awardwatch.flows.sources.usaspending import CONTRACT_TYPES, IDV_TYPES

CENT = Decimal("0.01")


@dataclass(frozen=True)
class Published:
    """USAspending's figures for one sub-agency and fiscal year."""

    obligations: Decimal
    transactions: int


def cents(value: object) -> Decimal:
    """An API amount (float, int or string) as an exact decimal rounded to the cent."""
    if value is None:
        return Decimal("0.00")
    return Decimal(str(value)).quantize(CENT, rounding=ROUND_HALF_UP)


def period(fiscal_year: int) -> dict:
    return {"start_date": f"{fiscal_year - 1}-10-01", "end_date": f"{fiscal_year}-09-30"}


def filters(subtier_name: str, fiscal_years: list[int], toptier_name: str | None = None) -> dict:
    agency = {"type": "awarding", "tier": "subtier", "name": subtier_name}
    if toptier_name:
        agency["toptier_name"] = toptier_name
    return {"agencies": [agency], "award_type_codes": [*CONTRACT_TYPES, *IDV_TYPES], "time_period": [period(fy) for fy in fiscal_years]}


def obligations(http: Http, subtier_name: str, fiscal_years: list[int], toptier_name: str | None = None) -> dict[int, Decimal]:
    """Obligations per fiscal year (one request for all the years)."""
    body = {"group": "fiscal_year", "spending_level": "transactions", "filters": filters(subtier_name, fiscal_years, toptier_name)}
    answer = http.json("POST", "/api/v2/search/spending_over_time/", json=body)
    results = answer.get("results")
    if not isinstance(results, list):
        raise HttpError(f"USAspending spending_over_time answered without results for {subtier_name!r}: {str(answer)[:200]}")
    found = {}
    for r in results:
        try:
            found[int(r["time_period"]["fiscal_year"])] = cents(r.get("aggregated_amount"))
        except (KeyError, TypeError, ValueError):
            raise HttpError(f"USAspending spending_over_time answered a result without time_period.fiscal_year: {str(r)[:200]}") from None
    return {fy: found.get(fy, Decimal("0.00")) for fy in fiscal_years}


def transactions(http: Http, subtier_name: str, fiscal_year: int, toptier_name: str | None = None) -> int:
    """Contract plus IDV transactions of one fiscal year."""
    answer = http.json("POST", "/api/v2/search/spending_by_transaction_count/", json={"filters": filters(subtier_name, [fiscal_year], toptier_name)})
    results = answer.get("results")
    if not isinstance(results, dict):
        raise HttpError(f"USAspending spending_by_transaction_count answered without results for {subtier_name!r} FY{fiscal_year}")
    return int(results.get("contracts") or 0) + int(results.get("idvs") or 0)


def published(http: Http, subtier_name: str, fiscal_years: list[int], toptier_name: str | None = None) -> dict[int, Published]:
    """Both figures for each fiscal year of one sub-agency."""
    money = obligations(http, subtier_name, fiscal_years, toptier_name)
    return {fy: Published(money[fy], transactions(http, subtier_name, fy, toptier_name)) for fy in fiscal_years}
