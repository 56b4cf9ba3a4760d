"""Small, literal contract-transaction files for tests."""

from __future__ import annotations

import csv
import zipfile
from pathlib import Path

from awardwatch.schemas.layouts import RENAMES, current_columns, legacy_2018_columns

def row(piid: str = "HSCETC15C00001", mod: str = "0", amount: str = "1000.00", **values: str) -> dict[str, str]:
    """A valid current-layout row (ICE, Palantir) with the given values changed."""
    base = {
        "award_id_piid": piid,
        "modification_number": mod,
        "transaction_number": "0",
        "award_or_idv_flag": "AWARD",
        "award_type_code": "D",
        "award_type": "DEFINITIVE CONTRACT",
        "awarding_agency_code": "070",
        "awarding_agency_name": "Department of Homeland Security",
        "awarding_sub_agency_code": "7012",
        "awarding_sub_agency_name": "U.S. Immigration and Customs Enforcement",
        "funding_agency_code": "070",
        "funding_sub_agency_code": "7012",
        "action_date": "2018-03-05",
        "federal_action_obligation": amount,
        "current_total_value_of_award": "39000000.00",
        "potential_total_value_of_award": "41000000.00",
        "recipient_name": "PALANTIR USG INC.",
        "recipient_uei": "PALUSG000001",
        "recipient_duns": "012345678",
        "recipient_parent_name": "PALANTIR TECHNOLOGIES INC.",
        "recipient_zip_4_code": "02134",
        "product_or_service_code": "D302",
        "naics_code": "541512",
        "transaction_description": 'FALCON OPERATIONS AND MAINTENANCE, "O&M"',
        "small_business_competitiveness_demonstration_program": "f",
        "last_modified_date": "2018-03-06 10:00:00",
    }
    return base | values


def write_csv(path: Path, rows: list[dict[str, str]], layout: str = "current", columns: list[str] | None = None) -> Path:
    """Writes rows (current names) under the given layout's header; the legacy layout uses old names."""
    if columns is None:
        columns = list(current_columns()) if layout == "current" else list(legacy_2018_columns())
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(columns)
        for r in rows:
            writer.writerow([r.get(RENAMES.get(c, c), "") for c in columns])
    return path


def write_zip(path: Path, members: dict[str, Path]) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name, src in members.items():
            z.write(src, name)
    return path


def run_cli(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """The one CLI harness: ``awardwatch ARGS`` in-process through typer's CliRunner, errors turned into
    one line and an exit status as ``awardwatch`` does (``flows.cli.commands.explain``): (status, stdout, stderr)."""
    from typer.testing import CliRunner

    from awardwatch.flows.cli import commands as cli

    result = CliRunner().invoke(cli.app, list(args), env=env)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        code, line = cli.explain(result.exception)
        return code, result.stdout, result.stderr + line + "\n"
    return result.exit_code, result.stdout, result.stderr
