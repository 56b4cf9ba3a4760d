"""The two USAspending search endpoints awardwatch reconciles against, computed from the rows the
fake serves (tests only; FakeUSAspending routes to ``answer``).

Follows usaspending-api:
- ``POST /api/v2/search/spending_over_time/`` (api_contracts/contracts/v2/search/spending_over_time.md,
  search/v2/views/spending_over_time.py): transactions bucketed by the fiscal year of ``action_date``,
  ``aggregated_amount`` = the sum of ``federal_action_obligation`` (summed as cents, answered as a float);
  every fiscal year from the earliest to the latest requested period is answered, empty ones with 0.
- ``POST /api/v2/search/spending_by_transaction_count/`` (spending_by_transaction_count.md,
  search/v2/elasticsearch_helper.py ``spending_by_transaction_count``): transaction counts by category.

Filters applied: ``agencies`` (by name, as bulk downloads do), ``award_type_codes``, ``time_period``
(``action_date`` within any period, inclusive). ``Plant`` adds a difference to one agency and year.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from tests.servers.usaspending import (
    ASSISTANCE_CODES,
    CONTRACT_CODES,
    IDV_CODES,
    BadRequest,
    _agency,
    _agency_matches,
    _date,
    _type_matches,
)

ROUTES = {"/api/v2/search/spending_over_time": "spending_over_time", "/api/v2/search/spending_by_transaction_count": "transaction_count"}


@dataclass
class Plant:
    """A planted disagreement: the answers for this subtier name and fiscal year are off by these amounts."""

    agency_name: str
    fiscal_year: int
    obligations: float = 0.0
    transactions: int = 0


def fiscal_year(day: str) -> int:
    d = date.fromisoformat(day[:10])
    return d.year + (d.month >= 10)


def _filters(body: Any) -> tuple[list[dict], list[str], list[tuple[str, str]]]:
    if not isinstance(body, dict) or not isinstance(body.get("filters"), dict):
        raise BadRequest("Missing request parameters: filters")
    f = body["filters"]
    agencies = [_agency(a) for a in f.get("agencies") or []]
    codes = f.get("award_type_codes") or [*CONTRACT_CODES, *IDV_CODES, *ASSISTANCE_CODES]
    unknown = [c for c in codes if c not in CONTRACT_CODES + IDV_CODES + ASSISTANCE_CODES]
    if unknown:
        raise BadRequest(f"Field 'award_type_codes' is outside valid values {unknown}")
    periods = []
    for p in f.get("time_period") or []:
        if not isinstance(p, dict):
            raise BadRequest(f"Invalid Parameter: time_period entries must be objects: {p!r}")
        if p.get("date_type", "action_date") != "action_date":
            raise BadRequest("this fake answers time_period by action_date only")
        periods.append((str(_date(p.get("start_date"), "start_date")), str(_date(p.get("end_date"), "end_date"))))
    return agencies, codes, periods


def _matching(rows: list[dict], body: Any) -> tuple[list[dict], list[tuple[str, str]], list[dict]]:
    agencies, codes, periods = _filters(body)
    picked = [
        r for r in rows
        if _agency_matches(r, agencies) and _type_matches(r, codes)
        and (not periods or any(a <= str(r.get("action_date") or "")[:10] <= b for a, b in periods))
    ]
    return picked, periods, agencies


def _planted(plants: list[Plant], agencies: list[dict], fy: int) -> list[Plant]:
    names = {a["name"] for a in agencies}
    return [p for p in plants if p.fiscal_year == fy and p.agency_name in names]


def spending_over_time(rows: list[dict], body: Any, plants: list[Plant] = ()) -> dict:
    if not isinstance(body, dict) or body.get("group") not in ("fiscal_year", "fy"):
        raise BadRequest("this fake answers group fiscal_year only")
    if body.get("spending_level", "transactions") != "transactions":
        raise BadRequest("this fake answers spending_level transactions only")
    picked, periods, agencies = _matching(rows, body)
    cents: dict[int, int] = {}
    for r in picked:
        value = str(r.get("federal_action_obligation") or "0")
        cents[fiscal_year(r["action_date"])] = cents.get(fiscal_year(r["action_date"]), 0) + round(float(value) * 100)
    years = sorted({fiscal_year(a) for a, _ in periods} | {fiscal_year(b) for _, b in periods}) or sorted(cents)
    results = []
    for fy in range(years[0], years[-1] + 1) if years else []:
        amount = cents.get(fy, 0) / 100 + sum(p.obligations for p in _planted(list(plants), agencies, fy))
        results.append({"aggregated_amount": amount, "time_period": {"fiscal_year": str(fy)}, "Contract_Obligations": amount,
                        "Idv_Obligations": 0, "Grant_Obligations": 0, "Direct_Obligations": 0, "Loan_Obligations": 0,
                        "Other_Obligations": 0, "total_outlays": None})
    return {"group": "fiscal_year", "spending_level": "transactions", "results": results, "messages": []}


def transaction_count(rows: list[dict], body: Any, plants: list[Plant] = ()) -> dict:
    picked, periods, agencies = _matching(rows, body)
    idvs = sum(1 for r in picked if str(r.get("award_or_idv_flag", "")).upper() == "IDV")
    years = {fiscal_year(a) for a, _ in periods}
    extra = sum(p.transactions for fy in years for p in _planted(list(plants), agencies, fy))
    return {"results": {"contracts": len(picked) - idvs + extra, "idvs": idvs, "loans": 0, "direct_payments": 0, "grants": 0, "other": 0}}


def answer(path: str, rows: list[dict], body: Any, plants: list[Plant] = ()) -> dict | None:
    """The answer of a search route (None: not a search route)."""
    name = ROUTES.get(path.rstrip("/"))
    return globals()[name](rows, body, plants) if name else None
