"""Who is paid: recipients, parent companies, brands behind resellers, and the company x agency mart.

Everything here is set-based SQL inside the warehouse (no per-row Python), so it runs after
each load on millions of rows.

**Name rule** (``aw_normalise_name``, the one definition; ``install_macros`` creates it as a
temporary macro on any connection, the warehouse's or a snapshot's): upper case, accents
stripped, ``&`` -> ``AND``, periods and apostrophes dropped (``L.P.`` -> ``LP``), every other
run of non-alphanumerics -> one space, a leading ``THE`` dropped, then trailing legal suffixes
dropped (THE, INC, INCORPORATED, LLC, LLP, LP, CORP, CORPORATION, LTD, LIMITED, PLC, PLLC, PC,
and CO/COMPANY unless after AND: ``MCKINSEY & COMPANY`` keeps it). ``GEO GROUP INC., THE``,
``THE GEO GROUP, INC.`` and ``GEO GROUP, INC.`` all become ``GEO GROUP``.

**Parent company** of every transaction, first rule that gives a name wins; the rule is
recorded in ``parent_company_method``:

1. ``uei``: the parent UEI, the row's ``recipient_parent_uei`` or, when the row has none, the
   latest one reported for the same recipient (``recipients``); the company is the name most
   reported with that parent UEI (else the name of the recipient holding that UEI);
2. ``duns``: the same through ``recipient_parent_duns`` (older data);
3. ``alias``: the row's normalised parent name, then recipient name, in the reviewed alias table
   (``warehouse/reference/company_aliases.csv``: exact normalised name, or ``prefix``: the
   normalised name starts with the alias's words);
4. ``name``: the normalised parent name, else the normalised recipient name, as the company;
5. ``unresolved``: no identifier and no name: ``(unresolved)``.

A company found through an identifier is also put through the alias table, so every row of
one family carries the same name (``DELL TECHNOLOGIES INC.`` -> ``Dell Technologies``) whatever
the method. Companies are today's corporate families: renames (Corrections Corporation of
America -> CoreCivic) and the acquisitions listed in the CSV count under today's parent.

**Brands** (``brand_mentions``): rules in ``warehouse/reference/brand_rules.csv`` (brand, owner,
RE2 pattern) are matched case-insensitively between word boundaries on the transaction's
``transaction_description``, else on its award's ``prime_award_base_transaction_description``
(so a reseller's funding modifications count with the award that bought the product). One
mention per transaction and owner: the longest matched text, then the earlier CSV line. Rows
whose parent company is the owner itself are not mentions.

**Technology flag** (``aw_is_technology(psc, naics)``, used by the mart): true when the product
or service code (PSC) starts with ``D`` (IT and telecom services, every PSC edition), ``70``
(IT equipment and software, before FY2021), ``7A``-``7K`` (IT products, FY2021 PSC manual),
``58`` (communication, detection and coherent radiation equipment: radios, surveillance
sensors), or is ``J0``/``K0``/``L0``/``N0``/``W0`` + ``58``/``70`` (maintenance, modification,
technical representatives, installation, lease of that equipment); or when the NAICS code
starts with ``5415`` (computer systems design), ``5182`` (data processing and hosting),
``5112``/``513210`` (software publishers, 2017/2022 NAICS), ``517`` (telecommunications),
``3341``/``3342``/``3344`` (computers, communications equipment, semiconductors) or is
``423430`` (computer and software wholesalers: resellers).
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import duckdb

from schemas.errors import AwardwatchError

REFERENCE = Path(__file__).with_name("reference")
ALIASES_CSV = REFERENCE / "company_aliases.csv"
BRANDS_CSV = REFERENCE / "brand_rules.csv"
METHODS = ("uei", "duns", "alias", "name", "unresolved")
UNRESOLVED = "(unresolved)"
KEY = "contract_transaction_unique_key"
AWARD_KEY = "contract_award_unique_key"

_SUFFIXES = "THE|INC|INCORPORATED|LLC|LLP|LP|CORP|CORPORATION|LTD|LIMITED|PLC|PLLC|PC"

MACROS = f"""
CREATE OR REPLACE TEMP MACRO aw__clean(s) AS
    trim(regexp_replace(regexp_replace(replace(strip_accents(upper(s)), '&', ' AND '), '[.''’]', '', 'g'), '[^A-Z0-9]+', ' ', 'g'));
CREATE OR REPLACE TEMP MACRO aw__suffixes(s) AS regexp_replace(s, '((^| )({_SUFFIXES}))+$', '');
CREATE OR REPLACE TEMP MACRO aw__company(s) AS
    CASE WHEN regexp_matches(s, ' AND (CO|COMPANY)$') THEN s ELSE regexp_replace(s, ' (CO|COMPANY)$', '') END;
CREATE OR REPLACE TEMP MACRO aw_normalise_name(s) AS
    nullif(aw__suffixes(aw__company(aw__suffixes(regexp_replace(aw__clean(s), '^THE ', '')))), '');
CREATE OR REPLACE TEMP MACRO aw_is_technology(psc, naics) AS
    coalesce(regexp_matches(upper(psc), '^(D|70|7[A-K]|58|[JKLNW]0(58|70))'), false)
    OR coalesce(regexp_matches(naics, '^(5415|5182|5112|513210|517|3341|3342|3344|423430)'), false);
CREATE OR REPLACE TEMP MACRO aw_word_match(haystack, needle) AS
    needle IS NOT NULL AND needle <> '' AND contains(' ' || haystack || ' ', ' ' || needle || ' ');
"""


class ReferenceDataError(AwardwatchError):
    """A reviewed reference CSV (aliases, brand rules) that cannot be used as it is."""


def install_macros(con: duckdb.DuckDBPyConnection) -> None:
    """Creates the name rule, the technology flag and word matching as temporary macros."""
    for statement in MACROS.split(";"):
        if statement.strip():
            con.execute(statement)


def normalise(con: duckdb.DuckDBPyConnection, name: str | None) -> str | None:
    """The normalised form of one name (the macro's answer)."""
    install_macros(con)
    return con.execute("SELECT aw_normalise_name(?)", [name]).fetchone()[0]


# ---------------------------------------------------------------------------------------------------------
# Reference data
# ---------------------------------------------------------------------------------------------------------


def _read_csv(path: Path, columns: tuple[str, ...]) -> list[tuple[int, dict[str, str]]]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            missing = [c for c in columns if c not in (reader.fieldnames or [])]
            if missing:
                raise ReferenceDataError(f"{path}: missing column(s) {', '.join(missing)}; expected {','.join(columns)}")
            return [(reader.line_num, {k: (v or "").strip() for k, v in r.items() if k}) for r in reader]
    except OSError as exc:
        raise ReferenceDataError(f"cannot read {path}: {exc.strerror}") from None


def reference_rows(aliases: Path = ALIASES_CSV, brands: Path = BRANDS_CSV,
                   con: duckdb.DuckDBPyConnection | None = None) -> tuple[list[tuple], list[tuple]]:
    """The CSVs' rows, checked: required values, ``match`` exact/prefix, owners that are alias
    companies, and (given a connection) patterns that compile as RE2."""
    alias_rows = []
    for line, r in _read_csv(aliases, ("company", "name", "match", "note")):
        match = (r["match"] or "exact").lower()
        if not r["company"] or not r["name"]:
            raise ReferenceDataError(f"{aliases}:{line}: company and name are required")
        if match not in ("exact", "prefix"):
            raise ReferenceDataError(f"{aliases}:{line}: match must be exact or prefix, not {r['match']!r}")
        alias_rows.append((r["company"], r["name"], match, r["note"] or None, line))
    companies = {row[0] for row in alias_rows}
    rule_rows = []
    for line, r in _read_csv(brands, ("brand", "owner", "pattern", "note")):
        if not r["brand"] or not r["owner"] or not r["pattern"]:
            raise ReferenceDataError(f"{brands}:{line}: brand, owner and pattern are required")
        if r["owner"] not in companies:
            raise ReferenceDataError(f"{brands}:{line}: owner {r['owner']!r} is not a company of {aliases.name}; add it there first")
        rule_rows.append((r["brand"], r["owner"], r["pattern"], r["note"] or None, line))
    if con is not None and rule_rows and not _compiles(con, "|".join(f"(?:{p})" for _, _, p, _, _ in rule_rows)):
        for _, _, pattern, _, line in rule_rows:  # which one
            if not _compiles(con, pattern):
                raise ReferenceDataError(f"{brands}:{line}: pattern {pattern!r} is not a valid RE2 regex")
    return alias_rows, rule_rows


def load_reference(con: duckdb.DuckDBPyConnection, aliases: Path = ALIASES_CSV, brands: Path = BRANDS_CSV) -> None:
    """Replaces ``company_aliases`` and ``brand_rules`` with the CSVs' rows, checked first (``reference_rows``)."""
    install_macros(con)
    alias_rows, rule_rows = reference_rows(aliases, brands, con)
    con.execute("DELETE FROM company_aliases")
    if alias_rows:
        company, name, match, note, line = (list(c) for c in zip(*alias_rows))
        con.execute(
            "INSERT INTO company_aliases SELECT company, name, aw_normalise_name(name), match, note, line FROM ("
            "SELECT unnest(?::VARCHAR[]) AS company, unnest(?::VARCHAR[]) AS name, unnest(?::VARCHAR[]) AS match, "
            "unnest(?::VARCHAR[]) AS note, unnest(?::INTEGER[]) AS line)",
            [company, name, match, note, line],
        )
    empty = con.execute("SELECT line FROM company_aliases WHERE normalised_name IS NULL LIMIT 1").fetchone()
    if empty:
        raise ReferenceDataError(f"{aliases}:{empty[0]}: the name is empty once normalised (only suffixes?)")
    con.execute("DELETE FROM brand_rules")
    if rule_rows:
        brand, owner, pattern, note, line = (list(c) for c in zip(*rule_rows))
        con.execute(
            "INSERT INTO brand_rules SELECT unnest(?::VARCHAR[]), unnest(?::VARCHAR[]), unnest(?::VARCHAR[]), "
            "unnest(?::VARCHAR[]), unnest(?::INTEGER[])",
            [brand, owner, pattern, note, line],
        )


def reference_changed(con: duckdb.DuckDBPyConnection, aliases: Path = ALIASES_CSV, brands: Path = BRANDS_CSV) -> bool:
    """True when the CSVs differ from what the last resolve loaded."""
    alias_rows, rule_rows = reference_rows(aliases, brands)
    stored_aliases = con.execute("SELECT company, name, match, note, line FROM company_aliases ORDER BY line").fetchall()
    stored_rules = con.execute("SELECT brand, owner, pattern, note, line FROM brand_rules ORDER BY line").fetchall()
    return sorted(alias_rows, key=lambda r: r[4]) != stored_aliases or sorted(rule_rows, key=lambda r: r[4]) != stored_rules


def _compiles(con: duckdb.DuckDBPyConnection, pattern: str) -> bool:
    try:
        con.execute("SELECT regexp_matches('', ?)", [_brand_regex(pattern)])
    except duckdb.Error:
        return False
    return True


def _brand_regex(pattern: str) -> str:
    return rf"(?i)\b(?:{pattern})\b"


# ---------------------------------------------------------------------------------------------------------
# Resolution
# ---------------------------------------------------------------------------------------------------------

# The company of one resolved relation ``x`` with columns parent_uei, parent_duns, n_parent, n_recipient:
# used for transactions (row values, else the recipient's) and for the recipients dimension alike.
_RESOLVE_JOINS = """
    LEFT JOIN aw_uei_company u ON u.id = x.parent_uei
    LEFT JOIN aw_duns_company d ON d.id = x.parent_duns
    LEFT JOIN aw_alias ap ON ap.normalised = x.n_parent
    LEFT JOIN aw_alias ar ON ar.normalised = x.n_recipient
"""
_RESOLVE_COMPANY = f"""
    CASE WHEN u.company IS NOT NULL THEN u.company
         WHEN d.company IS NOT NULL THEN d.company
         WHEN ap.company IS NOT NULL THEN ap.company
         WHEN ar.company IS NOT NULL THEN ar.company
         WHEN x.n_parent IS NOT NULL THEN x.n_parent
         WHEN x.n_recipient IS NOT NULL THEN x.n_recipient
         ELSE '{UNRESOLVED}' END
"""
_RESOLVE_METHOD = """
    CASE WHEN u.company IS NOT NULL THEN 'uei'
         WHEN d.company IS NOT NULL THEN 'duns'
         WHEN ap.company IS NOT NULL OR ar.company IS NOT NULL THEN 'alias'
         WHEN x.n_parent IS NOT NULL OR x.n_recipient IS NOT NULL THEN 'name'
         ELSE 'unresolved' END
"""

_STEPS = [
    # every distinct name (recipient or parent) once, normalised
    """
    CREATE OR REPLACE TEMP TABLE aw_names AS
    SELECT name, aw_normalise_name(name) AS normalised
    FROM (SELECT recipient_name AS name FROM transactions UNION SELECT recipient_parent_name FROM transactions)
    WHERE name IS NOT NULL
    """,
    # normalised name -> alias company: exact first, then the longest prefix, then the earlier CSV line
    """
    CREATE OR REPLACE TEMP TABLE aw_alias AS
    WITH names AS (
        SELECT DISTINCT normalised FROM aw_names WHERE normalised IS NOT NULL
        UNION SELECT normalised_name FROM company_aliases
    ),
    candidates AS (
        SELECT n.normalised, a.company, a.match = 'exact' AS exact, length(a.normalised_name) AS len, a.line
        FROM names n JOIN company_aliases a
          ON n.normalised = a.normalised_name
          OR (a.match = 'prefix' AND starts_with(n.normalised, a.normalised_name || ' '))
    )
    SELECT normalised, company FROM candidates
    QUALIFY row_number() OVER (PARTITION BY normalised ORDER BY exact DESC, len DESC, line) = 1
    """,
    # a DUNS -> the UEI most reported with it (links DUNS-only older rows to today's recipient)
    """
    CREATE OR REPLACE TEMP TABLE aw_duns_uei AS
    SELECT recipient_duns AS duns, recipient_uei AS uei FROM (
        SELECT recipient_duns, recipient_uei, count(*) AS n FROM transactions
        WHERE recipient_duns IS NOT NULL AND recipient_uei IS NOT NULL GROUP BY recipient_duns, recipient_uei)
    QUALIFY row_number() OVER (PARTITION BY recipient_duns ORDER BY n DESC, recipient_uei) = 1
    """,
    # the columns resolution needs, every row, with the recipient it belongs to
    f"""
    CREATE OR REPLACE TEMP TABLE aw_tx AS
    SELECT t.{KEY} AS k, t.{AWARD_KEY} AS award_key, t.recipient_uei, t.recipient_duns, t.recipient_name,
           t.recipient_parent_uei, t.recipient_parent_duns, t.recipient_parent_name,
           nr.normalised AS n_recipient, np.normalised AS n_parent,
           t.action_date, t.last_modified_date, t.federal_action_obligation,
           t.parent_company AS stored_company, t.parent_company_method AS stored_method,
           coalesce('UEI:' || t.recipient_uei, 'UEI:' || du.uei, 'DUNS:' || t.recipient_duns,
                    'NAME:' || nr.normalised, 'NONE:') AS recipient_key,
           coalesce(t.recipient_uei, du.uei) AS uei
    FROM transactions t
    LEFT JOIN aw_names nr ON nr.name = t.recipient_name
    LEFT JOIN aw_names np ON np.name = t.recipient_parent_name
    LEFT JOIN aw_duns_uei du ON du.duns = t.recipient_duns
    """,
    # the recipients dimension, without its company (filled below)
    """
    CREATE OR REPLACE TEMP TABLE aw_recipients AS
    WITH named AS (
        SELECT recipient_key, n_recipient, count(*) AS n FROM aw_tx WHERE n_recipient IS NOT NULL GROUP BY recipient_key, n_recipient
        QUALIFY row_number() OVER (PARTITION BY recipient_key ORDER BY n DESC, n_recipient) = 1
    ),
    duns AS (
        SELECT recipient_key, recipient_duns, count(*) AS n FROM aw_tx WHERE recipient_duns IS NOT NULL GROUP BY recipient_key, recipient_duns
        QUALIFY row_number() OVER (PARTITION BY recipient_key ORDER BY n DESC, recipient_duns) = 1
    ),
    final AS (
        SELECT t.recipient_key,
               any_value(t.uei) AS recipient_uei,
               list_sort(list_distinct(list(t.recipient_name))) AS recipient_names,
               arg_max(t.recipient_parent_uei, (t.action_date, t.last_modified_date)) FILTER (WHERE t.recipient_parent_uei IS NOT NULL) AS parent_uei,
               arg_max(t.recipient_parent_duns, (t.action_date, t.last_modified_date)) FILTER (WHERE t.recipient_parent_duns IS NOT NULL) AS parent_duns,
               arg_max(t.recipient_parent_name, (t.action_date, t.last_modified_date)) FILTER (WHERE t.recipient_parent_name IS NOT NULL) AS parent_name,
               arg_max(t.n_parent, (t.action_date, t.last_modified_date)) FILTER (WHERE t.n_parent IS NOT NULL) AS n_parent,
               count(*) AS transactions,
               sum(t.federal_action_obligation) AS obligated_amount,
               min(t.action_date) AS first_action_date,
               max(t.action_date) AS latest_action_date
        FROM aw_tx t GROUP BY t.recipient_key
    )
    SELECT f.*, d.recipient_duns, n.n_recipient AS normalised_name
    FROM final f LEFT JOIN duns d USING (recipient_key) LEFT JOIN named n USING (recipient_key)
    """,
    # parent identifier -> company: the name most reported with it, else its own recipient's name; then aliased
    """
    CREATE OR REPLACE TEMP TABLE aw_uei_company AS
    WITH reported AS (
        SELECT recipient_parent_uei AS id, n_parent AS name, count(*) AS n FROM aw_tx
        WHERE recipient_parent_uei IS NOT NULL AND n_parent IS NOT NULL GROUP BY recipient_parent_uei, n_parent
        QUALIFY row_number() OVER (PARTITION BY recipient_parent_uei ORDER BY n DESC, n_parent) = 1
    ),
    ids AS (SELECT DISTINCT recipient_parent_uei AS id FROM aw_tx WHERE recipient_parent_uei IS NOT NULL),
    named AS (
        SELECT i.id, coalesce(r.name, own.normalised_name) AS name
        FROM ids i LEFT JOIN reported r USING (id) LEFT JOIN aw_recipients own ON own.recipient_key = 'UEI:' || i.id
    )
    SELECT n.id, coalesce(a.company, n.name) AS company FROM named n LEFT JOIN aw_alias a ON a.normalised = n.name
    WHERE n.name IS NOT NULL
    """,
    """
    CREATE OR REPLACE TEMP TABLE aw_duns_company AS
    WITH reported AS (
        SELECT recipient_parent_duns AS id, n_parent AS name, count(*) AS n FROM aw_tx
        WHERE recipient_parent_duns IS NOT NULL AND n_parent IS NOT NULL GROUP BY recipient_parent_duns, n_parent
        QUALIFY row_number() OVER (PARTITION BY recipient_parent_duns ORDER BY n DESC, n_parent) = 1
    ),
    ids AS (SELECT DISTINCT recipient_parent_duns AS id FROM aw_tx WHERE recipient_parent_duns IS NOT NULL),
    own AS (
        SELECT recipient_duns AS id, normalised_name FROM aw_recipients WHERE recipient_duns IS NOT NULL
        QUALIFY row_number() OVER (PARTITION BY recipient_duns ORDER BY transactions DESC, recipient_key) = 1
    ),
    named AS (
        SELECT i.id, coalesce(r.name, own.normalised_name) AS name
        FROM ids i LEFT JOIN reported r USING (id) LEFT JOIN own USING (id)
    )
    SELECT n.id, coalesce(a.company, n.name) AS company FROM named n LEFT JOIN aw_alias a ON a.normalised = n.name
    WHERE n.name IS NOT NULL
    """,
]


def _check_table(name: str | None) -> None:
    if name is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.]*", name):
        raise ValueError(f"not a table name: {name!r}")


def resolve(con: duckdb.DuckDBPyConnection, award_keys_table: str | None = None, *,
            aliases: Path = ALIASES_CSV, brands: Path = BRANDS_CSV) -> None:
    """(Re)computes ``recipients``, ``parent_company``/``parent_company_method`` of transactions
    and awards, and ``brand_mentions``.

    Without ``award_keys_table`` everything is rebuilt. With it (a table with column
    ``award_key``: the awards a load touched), awards and brand mentions are rebuilt for those
    awards and for any award whose rows changed company. Parent companies are evaluated for every
    row either way (set-based, only changed rows are written): a load that teaches the recipients
    dimension something (a parent UEI, a DUNS linked to a UEI) also corrects older rows of that
    recipient. The reference CSVs are reloaded first. Runs in the caller's transaction if one is open."""
    _check_table(award_keys_table)
    load_reference(con, aliases, brands)
    for step in _STEPS:
        con.execute(step)
    con.execute("DELETE FROM recipients")
    con.execute(
        f"""
        INSERT INTO recipients
        WITH x AS (SELECT *, normalised_name AS n_recipient FROM aw_recipients)
        SELECT x.recipient_key, x.recipient_uei, x.recipient_duns, x.recipient_names, x.normalised_name,
               x.parent_uei, x.parent_duns, x.parent_name,
               {_RESOLVE_COMPANY}, {_RESOLVE_METHOD},
               x.transactions, x.obligated_amount, x.first_action_date, x.latest_action_date
        FROM x {_RESOLVE_JOINS}
        ORDER BY x.recipient_key
        """
    )
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE aw_changed AS
        WITH x AS (
            SELECT t.k, t.award_key, t.stored_company, t.stored_method,
                   coalesce(t.recipient_parent_uei, r.parent_uei) AS parent_uei,
                   coalesce(t.recipient_parent_duns, r.parent_duns) AS parent_duns,
                   coalesce(t.n_parent, r.n_parent) AS n_parent,
                   t.n_recipient
            FROM aw_tx t LEFT JOIN aw_recipients r USING (recipient_key)
        ),
        resolved AS (
            SELECT x.k, x.award_key, x.stored_company, x.stored_method,
                   {_RESOLVE_COMPANY} AS company, {_RESOLVE_METHOD} AS method
            FROM x {_RESOLVE_JOINS}
        )
        SELECT k, award_key, company, method FROM resolved
        WHERE stored_company IS DISTINCT FROM company OR stored_method IS DISTINCT FROM method
        """
    )
    con.execute(
        f"""
        UPDATE transactions SET parent_company = c.company, parent_company_method = c.method
        FROM aw_changed c WHERE transactions.{KEY} = c.k
        """
    )
    if award_keys_table:
        con.execute(
            f"""
            CREATE OR REPLACE TEMP TABLE aw_scope AS
            SELECT award_key FROM {award_keys_table}
            UNION SELECT award_key FROM aw_changed
            UNION SELECT {AWARD_KEY} FROM awards WHERE parent_company IS NULL
            """
        )
        award_scope = f"WHERE {AWARD_KEY} IN (SELECT award_key FROM aw_scope)"
    else:
        award_scope = ""
    con.execute(
        f"""
        UPDATE awards SET parent_company = l.parent_company, parent_company_method = l.parent_company_method
        FROM (
            SELECT {AWARD_KEY}, parent_company, parent_company_method FROM transactions {award_scope}
            QUALIFY row_number() OVER (
                PARTITION BY {AWARD_KEY}
                ORDER BY action_date DESC, last_modified_date DESC NULLS LAST, modification_number DESC, {KEY} DESC) = 1
        ) l
        WHERE awards.{AWARD_KEY} = l.{AWARD_KEY}
          AND (awards.parent_company IS DISTINCT FROM l.parent_company
               OR awards.parent_company_method IS DISTINCT FROM l.parent_company_method)
        """
    )
    _brand_mentions(con, "aw_scope" if award_keys_table else None)
    for table in ("aw_names", "aw_alias", "aw_tx", "aw_duns_uei", "aw_recipients", "aw_uei_company",
                  "aw_duns_company", "aw_changed", "aw_scope"):
        con.execute(f"DROP TABLE IF EXISTS {table}")


def _brand_mentions(con: duckdb.DuckDBPyConnection, award_keys_table: str | None) -> None:
    """Rebuilds ``brand_mentions`` (all, or for the awards in scope)."""
    rules = con.execute("SELECT brand, owner, pattern, line FROM brand_rules ORDER BY line").fetchall()
    if award_keys_table:
        con.execute(f"DELETE FROM brand_mentions WHERE {AWARD_KEY} IN (SELECT award_key FROM {award_keys_table})")
        source = f"(SELECT t.* FROM transactions t SEMI JOIN {award_keys_table} s ON s.award_key = t.{AWARD_KEY})"
    else:
        con.execute("DELETE FROM brand_mentions")
        source = "transactions"
    if not rules:
        return
    combined = _brand_regex("|".join(f"(?:{pattern})" for _, _, pattern, _ in rules))
    # one pass over the descriptions with every rule at once, then each rule on the few candidates
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE aw_brand_candidates AS
        SELECT {KEY}, {AWARD_KEY}, award_id_piid, action_date, fiscal_year,
               awarding_agency_code, awarding_agency_name, awarding_sub_agency_code, awarding_sub_agency_name,
               recipient_name, recipient_uei, parent_company, aw_normalise_name(parent_company) AS n_parent_company,
               federal_action_obligation, current_total_value_of_award, potential_total_value_of_award,
               transaction_description, coalesce(transaction_description, '') AS d1,
               coalesce(prime_award_base_transaction_description, '') AS d2
        FROM {source}
        WHERE regexp_matches(coalesce(transaction_description, ''), $re)
           OR regexp_matches(coalesce(prime_award_base_transaction_description, ''), $re)
        """,
        {"re": combined},
    )
    branches, params = [], {}
    for i, (brand, owner, pattern, line) in enumerate(rules):
        params |= {f"brand{i}": brand, f"owner{i}": owner, f"n_owner{i}": normalise(con, owner),
                   f"re{i}": _brand_regex(pattern), f"line{i}": line}
        branches.append(
            f"SELECT {KEY} AS k, $brand{i} AS brand, $owner{i} AS owner, $line{i} AS line, "
            f"regexp_extract(d1, $re{i}, 0) AS m1, regexp_extract(d2, $re{i}, 0) AS m2 "
            f"FROM aw_brand_candidates WHERE (regexp_matches(d1, $re{i}) OR regexp_matches(d2, $re{i})) "
            f"AND n_parent_company IS DISTINCT FROM $n_owner{i}"
        )
    con.execute(
        f"""
        INSERT INTO brand_mentions
        WITH hits AS ({" UNION ALL ".join(branches)}),
        best AS (
            SELECT k, brand, owner,
                   CASE WHEN m1 <> '' THEN m1 ELSE m2 END AS matched_text,
                   CASE WHEN m1 <> '' THEN 'transaction_description' ELSE 'prime_award_base_transaction_description' END AS matched_in
            FROM hits WHERE m1 <> '' OR m2 <> ''
            QUALIFY row_number() OVER (
                PARTITION BY k, owner ORDER BY length(CASE WHEN m1 <> '' THEN m1 ELSE m2 END) DESC, line) = 1
        )
        SELECT c.{KEY}, c.{AWARD_KEY}, c.award_id_piid, c.action_date, c.fiscal_year,
               c.awarding_agency_code, c.awarding_agency_name, c.awarding_sub_agency_code, c.awarding_sub_agency_name,
               c.recipient_name, c.recipient_uei, c.parent_company,
               b.brand, b.owner, b.matched_text, b.matched_in,
               c.federal_action_obligation, c.current_total_value_of_award, c.potential_total_value_of_award,
               c.transaction_description
        FROM best b JOIN aw_brand_candidates c ON c.{KEY} = b.k
        ORDER BY c.{AWARD_KEY}, c.action_date, c.{KEY}, b.owner
        """,
        params,
    )
    con.execute("DROP TABLE IF EXISTS aw_brand_candidates")


# ---------------------------------------------------------------------------------------------------------
# Marts and shares
# ---------------------------------------------------------------------------------------------------------

MART = "company_agency_fiscal_year"


def marts(con: duckdb.DuckDBPyConnection) -> None:
    """Rebuilds ``company_agency_fiscal_year`` from transactions: obligations, actions and awards per
    parent company x awarding agency (toptier and subtier) x fiscal year x technology flag.
    Agency names are the latest reported for the code."""
    install_macros(con)
    con.execute(f"DELETE FROM {MART}")
    con.execute(
        f"""
        INSERT INTO {MART}
        WITH base AS (
            SELECT coalesce(parent_company, '{UNRESOLVED}') AS parent_company,
                   awarding_agency_code, awarding_agency_name, awarding_sub_agency_code, awarding_sub_agency_name,
                   fiscal_year, aw_is_technology(product_or_service_code, naics_code) AS is_technology,
                   federal_action_obligation, {AWARD_KEY} AS award_key, action_date
            FROM transactions
        ),
        final AS (
            SELECT parent_company, awarding_agency_code,
                   arg_max(awarding_agency_name, action_date) AS awarding_agency_name,
                   awarding_sub_agency_code,
                   arg_max(awarding_sub_agency_name, action_date) AS awarding_sub_agency_name,
                   fiscal_year, is_technology,
                   coalesce(sum(federal_action_obligation), 0) AS obligated_amount,
                   count(*) AS transactions,
                   count(DISTINCT award_key) AS awards
            FROM base
            GROUP BY parent_company, awarding_agency_code, awarding_sub_agency_code, fiscal_year, is_technology
        )
        SELECT * FROM final ORDER BY fiscal_year, parent_company, awarding_agency_code, awarding_sub_agency_code, is_technology
        """
    )


def refresh(con: duckdb.DuckDBPyConnection, *, aliases: Path = ALIASES_CSV, brands: Path = BRANDS_CSV) -> dict[str, float]:
    """After a run: resolves everything again when needed (rows never resolved, e.g. a warehouse
    just upgraded to migration 003, or edited reference CSVs: brand rules apply to every row),
    rebuilds the mart, and returns the resolution shares. Runs in the caller's transaction if one is open."""
    pending = con.execute("SELECT count(*) FROM transactions WHERE parent_company IS NULL").fetchone()[0]
    if pending or reference_changed(con, aliases, brands):
        resolve(con, aliases=aliases, brands=brands)
    marts(con)
    return resolution_shares(con)


def resolution_shares(con: duckdb.DuckDBPyConnection) -> dict[str, float]:
    """Share of transactions per resolution method (rows not resolved yet count as ``pending``)."""
    rows = con.execute(
        "SELECT coalesce(parent_company_method, 'pending'), count(*) FROM transactions GROUP BY 1"
    ).fetchall()
    total = sum(n for _, n in rows)
    if not total:
        return {}
    order = {m: i for i, m in enumerate((*METHODS, "pending"))}
    return {m: n / total for m, n in sorted(rows, key=lambda r: order.get(r[0], 99))}


def format_shares(shares: dict[str, float]) -> str:
    """``uei 71.2%, duns 20.1%, ...`` for a run summary."""
    return ", ".join(f"{m} {s:.1%}" for m, s in shares.items()) or "no transactions"
