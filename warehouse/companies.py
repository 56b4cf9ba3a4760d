"""Who is paid: recipients, parent companies, brands behind resellers, and the company x agency mart.

Everything here is set-based SQL inside the warehouse (no per-row Python). ``refresh`` runs once
per job over what its loads touched; ``resolve`` and ``marts`` rebuild everything.

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
from pathlib import Path

import duckdb

from awardwatch.schemas.errors import AwardwatchError
from awardwatch.schemas.names import AWARD_KEY, KEY
from awardwatch.warehouse import touched

REFERENCE = Path(__file__).with_name("reference")
ALIASES_CSV = REFERENCE / "company_aliases.csv"
BRANDS_CSV = REFERENCE / "brand_rules.csv"
METHODS = ("uei", "duns", "alias", "name", "unresolved")
UNRESOLVED = "(unresolved)"

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
#
# ``resolve`` rebuilds everything from every row. ``refresh`` (once per job) resolves only what the loads
# since the last refresh reach: ``load_file`` lists the awards it touched (``pending_awards``) and keeps the
# version the last refresh resolved of each row it replaced or deleted (``pending_rows``). The resolver's
# lookups and counts persist between refreshes (``resolution_*`` tables, migration 006), so a refresh reads:
#
# - the rows written (inserted, or replaced) and the versions replaced: their names, their DUNS-UEI pairs
#   and parent names (counts updated by difference: no scan of the rows naming a DUNS or a parent);
# - every row of each recipient those rows belong to, before or after (its aggregates, e.g. the latest
#   parent), including recipients a DUNS moved to or from when its most-reported UEI changed; of those
#   rows, resolved again only the rows written, the rows a DUNS moved, and every row of a recipient whose
#   parent fields changed (a load can teach a recipient its parent: its older rows follow);
# - the companies of the parent UEIs/DUNS named by the rows written or replaced, or owned by a recipient
#   renamed; where one changed, the rows naming it and every row of their recipients;
# - awards and brand mentions of the touched awards and of awards with a row whose company changed;
# - the mart groups (company, agency, sub-agency, fiscal year) those rows were in before or are in now,
#   each recomputed from all its rows.

# Columns of a transaction the resolver reads (``_rows_sql`` takes any relation with them).
_ROW_COLUMNS = ", ".join((KEY, AWARD_KEY, "recipient_uei", "recipient_duns", "recipient_name", "recipient_parent_uei",
                          "recipient_parent_duns", "recipient_parent_name", "action_date", "last_modified_date",
                          "federal_action_obligation", "awarding_agency_code", "awarding_sub_agency_code", "fiscal_year",
                          "parent_company", "parent_company_method"))
# The recipient a row ``t`` belongs to: by UEI, else the UEI its DUNS is most reported with (``du``), else
# DUNS, else normalised name (``nr``).
_RECIPIENT_KEY = ("coalesce('UEI:' || t.recipient_uei, 'UEI:' || du.uei, 'DUNS:' || t.recipient_duns, "
                  "'NAME:' || nr.normalised, 'NONE:')")


def _rows_sql(source: str) -> str:
    """The rows of ``source`` as resolution reads them: normalised names, recipient key and UEI."""
    return f"""
    SELECT t.{KEY} AS k, t.{AWARD_KEY} AS award_key, t.recipient_uei, t.recipient_duns, t.recipient_name,
           t.recipient_parent_uei, t.recipient_parent_duns, t.recipient_parent_name,
           nr.normalised AS n_recipient, np.normalised AS n_parent,
           t.action_date, t.last_modified_date, t.federal_action_obligation,
           t.awarding_agency_code, t.awarding_sub_agency_code, t.fiscal_year,
           t.parent_company AS stored_company, t.parent_company_method AS stored_method,
           {_RECIPIENT_KEY} AS recipient_key, coalesce(t.recipient_uei, du.uei) AS uei
    FROM {source} t
    LEFT JOIN resolution_names nr ON nr.name = t.recipient_name
    LEFT JOIN resolution_names np ON np.name = t.recipient_parent_name
    LEFT JOIN resolution_duns du ON du.duns = t.recipient_duns
    """


def _rows_of(keys: str) -> str:
    """The rows (``_rows_sql``) of the recipients listed in ``keys`` (column recipient_key), found by
    their identifiers rather than by computing every row's key."""
    source = f"""(
        SELECT {_ROW_COLUMNS} FROM transactions t
        WHERE t.recipient_uei IN (SELECT substr(recipient_key, 5) FROM {keys} WHERE starts_with(recipient_key, 'UEI:'))
           OR (t.recipient_uei IS NULL AND t.recipient_duns IN (
                   SELECT substr(recipient_key, 6) FROM {keys} WHERE starts_with(recipient_key, 'DUNS:')
                   UNION SELECT d.duns FROM resolution_duns d JOIN {keys} k ON k.recipient_key = 'UEI:' || d.uei))
           OR (t.recipient_uei IS NULL AND t.recipient_duns IS NULL AND (
                   t.recipient_name IN (SELECT n.name FROM resolution_names n JOIN {keys} k ON k.recipient_key = 'NAME:' || n.normalised)
                   OR ((t.recipient_name IS NULL OR t.recipient_name IN (SELECT name FROM resolution_names WHERE normalised IS NULL))
                       AND EXISTS (SELECT 1 FROM {keys} WHERE recipient_key = 'NONE:'))))
    )"""
    return f"SELECT * FROM ({_rows_sql(source)}) WHERE recipient_key IN (SELECT recipient_key FROM {keys})"


def _names_sql(*sources: str) -> str:
    """Every distinct recipient and parent name of ``sources``, normalised, not yet in resolution_names."""
    names = " UNION ".join(f"SELECT recipient_name AS name FROM {s} UNION SELECT recipient_parent_name FROM {s}" for s in sources)
    return (f"SELECT n.name, aw_normalise_name(n.name) AS normalised FROM ({names}) n "
            "ANTI JOIN resolution_names r ON r.name = n.name WHERE n.name IS NOT NULL")


# normalised names (relation with column ``normalised``) -> alias company: exact first, then the longest
# prefix, then the earlier CSV line
_ALIASES_SQL = """
    WITH candidates AS (
        SELECT n.normalised, a.company, a.match = 'exact' AS exact, length(a.normalised_name) AS len, a.line
        FROM ({names}) n JOIN company_aliases a
          ON n.normalised = a.normalised_name
          OR (a.match = 'prefix' AND starts_with(n.normalised, a.normalised_name || ' '))
    )
    SELECT normalised, company FROM candidates
    QUALIFY row_number() OVER (PARTITION BY normalised ORDER BY exact DESC, len DESC, line) = 1
"""
# rows per DUNS and UEI reported together, of the rows ``{rows}``
_DUNS_COUNTS_SQL = """
    SELECT recipient_duns AS duns, recipient_uei AS uei, count(*) AS n FROM {rows}
    WHERE recipient_duns IS NOT NULL AND recipient_uei IS NOT NULL GROUP BY recipient_duns, recipient_uei
"""
# a DUNS -> the UEI most reported with it (links DUNS-only older rows to today's recipient), from counts
_DUNS_SQL = """
    SELECT duns, uei FROM {counts} WHERE n > 0 {scope}
    QUALIFY row_number() OVER (PARTITION BY duns ORDER BY n DESC, uei) = 1
"""
# rows per parent identifier and normalised parent name, of the rows ``{rows}`` (each counted with ``{n}``)
_PARENT_NAMES_SQL = """
    SELECT 'uei' AS kind, recipient_parent_uei AS id, n_parent AS name, {n} AS n FROM {rows} WHERE recipient_parent_uei IS NOT NULL
    UNION ALL SELECT 'duns', recipient_parent_duns, n_parent, {n} FROM {rows} WHERE recipient_parent_duns IS NOT NULL
"""
# the recipients dimension of the rows ``{rows}`` (whole recipients: every row of each), without its company;
# "latest" is by action date, then last modified, then key
_RECIPIENTS_SQL = """
    WITH named AS (
        SELECT recipient_key, n_recipient, count(*) AS n FROM {rows} WHERE n_recipient IS NOT NULL GROUP BY recipient_key, n_recipient
        QUALIFY row_number() OVER (PARTITION BY recipient_key ORDER BY n DESC, n_recipient) = 1
    ),
    duns AS (
        SELECT recipient_key, recipient_duns, count(*) AS n FROM {rows} WHERE recipient_duns IS NOT NULL GROUP BY recipient_key, recipient_duns
        QUALIFY row_number() OVER (PARTITION BY recipient_key ORDER BY n DESC, recipient_duns) = 1
    ),
    final AS (
        SELECT t.recipient_key,
               any_value(t.uei) AS recipient_uei,
               list_sort(list_distinct(list(t.recipient_name))) AS recipient_names,
               arg_max(t.recipient_parent_uei, (t.action_date, t.last_modified_date, t.k)) FILTER (WHERE t.recipient_parent_uei IS NOT NULL) AS parent_uei,
               arg_max(t.recipient_parent_duns, (t.action_date, t.last_modified_date, t.k)) FILTER (WHERE t.recipient_parent_duns IS NOT NULL) AS parent_duns,
               arg_max(t.recipient_parent_name, (t.action_date, t.last_modified_date, t.k)) FILTER (WHERE t.recipient_parent_name IS NOT NULL) AS parent_name,
               arg_max(t.n_parent, (t.action_date, t.last_modified_date, t.k)) FILTER (WHERE t.n_parent IS NOT NULL) AS n_parent,
               count(*) AS transactions,
               sum(t.federal_action_obligation) AS obligated_amount,
               min(t.action_date) AS first_action_date,
               max(t.action_date) AS latest_action_date
        FROM {rows} t GROUP BY t.recipient_key
    )
    SELECT f.*, d.recipient_duns, n.n_recipient AS normalised_name
    FROM final f LEFT JOIN duns d USING (recipient_key) LEFT JOIN named n USING (recipient_key)
"""
# a parent identifier of kind ``{kind}`` (named by rows: resolution_parent_names) -> company: the name most
# reported with it, else the name of its own recipient (``{own}``); then aliased
_PARENTS_SQL = """
    WITH counted AS (SELECT id, name, n FROM resolution_parent_names WHERE kind = '{kind}' AND n > 0 {scope}),
    reported AS (
        SELECT id, name FROM counted WHERE name IS NOT NULL
        QUALIFY row_number() OVER (PARTITION BY id ORDER BY n DESC, name) = 1
    ),
    ids AS (SELECT DISTINCT id FROM counted),
    named AS (
        SELECT i.id, coalesce(r.name, own.normalised_name) AS name
        FROM ids i LEFT JOIN reported r USING (id) LEFT JOIN ({own}) own USING (id)
    )
    SELECT '{kind}' AS kind, n.id, coalesce(a.company, n.name) AS company
    FROM named n LEFT JOIN resolution_aliases a ON a.normalised = n.name
    WHERE n.name IS NOT NULL
"""
# the own recipient of a parent UEI is the recipient with that UEI; of a parent DUNS, the recipient most
# reported with it as its DUNS that has the most transactions
_OWN_SQL = {
    "uei": "SELECT substr(recipient_key, 5) AS id, normalised_name FROM {recipients} WHERE starts_with(recipient_key, 'UEI:') {scope}",
    "duns": """SELECT recipient_duns AS id, normalised_name FROM {recipients} WHERE recipient_duns IS NOT NULL {scope}
               QUALIFY row_number() OVER (PARTITION BY recipient_duns ORDER BY transactions DESC, recipient_key) = 1""",
}

# The company of one relation ``x`` with columns parent_uei, parent_duns, n_parent, n_recipient:
# used for transactions (row values, else the recipient's) and for the recipients dimension alike.
_RESOLVE_JOINS = """
    LEFT JOIN resolution_parents u ON u.kind = 'uei' AND u.id = x.parent_uei
    LEFT JOIN resolution_parents d ON d.kind = 'duns' AND d.id = x.parent_duns
    LEFT JOIN resolution_aliases ap ON ap.normalised = x.n_parent
    LEFT JOIN resolution_aliases ar ON ar.normalised = x.n_recipient
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
_TEMPS = ("aw_touched", "aw_touched_rows", "aw_replaced_rows", "aw_new_names", "aw_duns_delta", "aw_duns_counts",
          "aw_duns", "aw_duns_moved", "aw_keys", "aw_keys2", "aw_rows", "aw_rows2", "aw_recipients",
          "aw_names_delta", "aw_parent_names", "aw_ids", "aw_parents", "aw_parents_changed", "aw_resolved",
          "aw_changed", "aw_scope", "aw_groups", "aw_more", "aw_redo", "aw_redo_rows", "aw_renamed")


def resolve(con: duckdb.DuckDBPyConnection, *, aliases: Path = ALIASES_CSV, brands: Path = BRANDS_CSV) -> None:
    """Rebuilds, from every row, ``recipients``, ``parent_company``/``parent_company_method`` of transactions
    and awards, ``brand_mentions`` and the resolver's lookups; the reference CSVs are reloaded first. What
    loads left pending is covered, so the pending tables are emptied: rebuild the mart (``marts``) after it,
    in the same transaction. Runs in the caller's transaction if one is open."""
    load_reference(con, aliases, brands)
    con.execute("DELETE FROM resolution_names")
    con.execute(f"INSERT INTO resolution_names {_names_sql('transactions')}")
    con.execute("DELETE FROM resolution_aliases")
    con.execute("INSERT INTO resolution_aliases " + _ALIASES_SQL.format(
        names="SELECT DISTINCT normalised FROM resolution_names WHERE normalised IS NOT NULL "
              "UNION SELECT normalised_name FROM company_aliases"))
    con.execute("DELETE FROM resolution_duns_counts")
    con.execute("INSERT INTO resolution_duns_counts " + _DUNS_COUNTS_SQL.format(rows="transactions"))
    con.execute("DELETE FROM resolution_duns")
    con.execute("INSERT INTO resolution_duns " + _DUNS_SQL.format(counts="resolution_duns_counts", scope=""))
    con.execute(f"CREATE OR REPLACE TEMP TABLE aw_rows AS {_rows_sql('transactions')}")
    con.execute(f"CREATE OR REPLACE TEMP TABLE aw_recipients AS {_RECIPIENTS_SQL.format(rows='aw_rows')}")
    con.execute("DELETE FROM resolution_parent_names")
    con.execute("INSERT INTO resolution_parent_names SELECT kind, id, name, sum(n) FROM ("
                + _PARENT_NAMES_SQL.format(rows="aw_rows", n=1) + ") GROUP BY kind, id, name")
    con.execute("DELETE FROM resolution_parents")
    for kind in ("uei", "duns"):
        con.execute("INSERT INTO resolution_parents " + _parents_sql(kind, "aw_recipients"))
    con.execute("DELETE FROM recipients")
    _write_recipients(con)
    _write_rows(con)
    _write_awards(con, None)
    _brand_mentions(con, None)
    con.execute("DELETE FROM resolution_methods")
    con.execute(
        "INSERT INTO resolution_methods SELECT m.method, coalesce(c.n, 0) FROM (SELECT unnest(?::VARCHAR[]) AS method) m "
        "LEFT JOIN (SELECT parent_company_method AS method, count(*) AS n FROM transactions GROUP BY 1) c USING (method)",
        [list(METHODS)],
    )
    _done(con)


def _parents_sql(kind: str, recipients: str, ids: str | None = None) -> str:
    """Parent identifier -> company for ``kind`` (uei, duns); only the ``ids`` (a relation with kind, id) when given."""
    scope = own_scope = ""
    if ids:
        scope = f"AND id IN (SELECT id FROM {ids} WHERE kind = '{kind}')"
        own_scope = (f"AND recipient_key IN (SELECT 'UEI:' || id FROM {ids} WHERE kind = 'uei')" if kind == "uei" else
                     f"AND recipient_duns IN (SELECT id FROM {ids} WHERE kind = 'duns')")
    own = _OWN_SQL[kind].format(recipients=recipients, scope=own_scope)
    return f"SELECT * FROM ({_PARENTS_SQL.format(scope=scope, own=own, kind=kind)})"


def _write_recipients(con: duckdb.DuckDBPyConnection) -> None:
    """Inserts ``aw_recipients`` into ``recipients`` with their companies."""
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


def _write_rows(con: duckdb.DuckDBPyConnection, rows: str = "aw_rows") -> None:
    """Resolves ``rows`` (with their recipients ``aw_recipients``) into ``aw_resolved``; writes the rows
    whose company or method changed (``aw_changed``, with the stored ones) to transactions."""
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE aw_resolved AS
        WITH x AS (
            SELECT t.k, t.award_key, t.stored_company, t.stored_method,
                   t.awarding_agency_code, t.awarding_sub_agency_code, t.fiscal_year,
                   coalesce(t.recipient_parent_uei, r.parent_uei) AS parent_uei,
                   coalesce(t.recipient_parent_duns, r.parent_duns) AS parent_duns,
                   coalesce(t.n_parent, r.n_parent) AS n_parent,
                   t.n_recipient
            FROM {rows} t LEFT JOIN aw_recipients r USING (recipient_key)
        )
        SELECT x.k, x.award_key, x.stored_company, x.stored_method,
               x.awarding_agency_code, x.awarding_sub_agency_code, x.fiscal_year,
               {_RESOLVE_COMPANY} AS company, {_RESOLVE_METHOD} AS method
        FROM x {_RESOLVE_JOINS}
        """
    )
    con.execute(
        "CREATE OR REPLACE TEMP TABLE aw_changed AS SELECT * FROM aw_resolved "
        "WHERE stored_company IS DISTINCT FROM company OR stored_method IS DISTINCT FROM method"
    )
    con.execute(
        f"""
        UPDATE transactions SET parent_company = c.company, parent_company_method = c.method
        FROM aw_changed c WHERE transactions.{KEY} = c.k
        """
    )
    touched.record_companies(con, "aw_changed")  # their fiscal years, for the next publish


def _write_awards(con: duckdb.DuckDBPyConnection, award_keys_table: str | None) -> None:
    """Awards take the company of their latest transaction (all awards, or those in ``award_keys_table``)."""
    scope = f"WHERE {AWARD_KEY} IN (SELECT award_key FROM {award_keys_table})" if award_keys_table else ""
    con.execute(
        f"""
        UPDATE awards SET parent_company = l.parent_company, parent_company_method = l.parent_company_method
        FROM (
            SELECT {AWARD_KEY}, parent_company, parent_company_method FROM transactions {scope}
            QUALIFY row_number() OVER (
                PARTITION BY {AWARD_KEY}
                ORDER BY action_date DESC, last_modified_date DESC NULLS LAST, modification_number DESC, {KEY} DESC) = 1
        ) l
        WHERE awards.{AWARD_KEY} = l.{AWARD_KEY}
          AND (awards.parent_company IS DISTINCT FROM l.parent_company
               OR awards.parent_company_method IS DISTINCT FROM l.parent_company_method)
        """
    )


def _done(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("DELETE FROM pending_awards")
    con.execute("DELETE FROM pending_rows")
    for table in _TEMPS:
        con.execute(f"DROP TABLE IF EXISTS {table}")
    con.execute("DROP VIEW IF EXISTS aw_all_recipients")


def _resolve_pending(con: duckdb.DuckDBPyConnection) -> None:
    """Brings everything ``resolve`` and ``marts`` compute up to date with the pending loads, reading only
    what they reach (see the section's comment), then empties the pending tables."""
    install_macros(con)
    # the rows loads wrote (inserted: no company yet; or replaced), and the names they and the versions
    # they replaced report; the touched awards' other rows are as the last refresh left them
    con.execute(f"CREATE OR REPLACE TEMP TABLE aw_touched AS SELECT {_ROW_COLUMNS} FROM transactions "
                f"WHERE {AWARD_KEY} IN (SELECT award_key FROM pending_awards) "
                f"AND (parent_company IS NULL OR {KEY} IN (SELECT {KEY} FROM pending_rows))")
    con.execute(f"CREATE OR REPLACE TEMP TABLE aw_new_names AS {_names_sql('aw_touched', 'pending_rows')}")
    con.execute("INSERT INTO resolution_names SELECT * FROM aw_new_names")
    con.execute("INSERT INTO resolution_aliases " + _ALIASES_SQL.format(
        names="SELECT DISTINCT n.normalised FROM aw_new_names n ANTI JOIN resolution_aliases a ON a.normalised = n.normalised "
              "WHERE n.normalised IS NOT NULL"))
    # the versions replaced, with the keys they were resolved with
    con.execute(f"CREATE OR REPLACE TEMP TABLE aw_replaced_rows AS {_rows_sql('pending_rows')}")
    # the DUNS-UEI counts: + rows written, - versions replaced; a DUNS whose UEI changed moves its
    # DUNS-only rows from one recipient to another
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE aw_duns_delta AS
        SELECT duns, uei, sum(n) AS n FROM (
            {_DUNS_COUNTS_SQL.format(rows='aw_touched')}
            UNION ALL SELECT duns, uei, -n FROM ({_DUNS_COUNTS_SQL.format(rows='pending_rows')}))
        GROUP BY duns, uei
        """
    )
    con.execute("CREATE OR REPLACE TEMP TABLE aw_duns_counts AS SELECT duns, uei, sum(n) AS n FROM ("
                "SELECT * FROM resolution_duns_counts WHERE duns IN (SELECT duns FROM aw_duns_delta) "
                "UNION ALL SELECT * FROM aw_duns_delta) GROUP BY duns, uei HAVING sum(n) > 0")
    con.execute("CREATE OR REPLACE TEMP TABLE aw_duns AS " + _DUNS_SQL.format(counts="aw_duns_counts", scope=""))
    con.execute("CREATE OR REPLACE TEMP TABLE aw_duns_moved AS SELECT s.duns, o.uei AS old_uei, n.uei AS new_uei "
                "FROM (SELECT DISTINCT duns FROM aw_duns_delta) s LEFT JOIN resolution_duns o USING (duns) "
                "LEFT JOIN aw_duns n USING (duns) WHERE o.uei IS DISTINCT FROM n.uei")
    for table, new in (("resolution_duns_counts", "aw_duns_counts"), ("resolution_duns", "aw_duns")):
        con.execute(f"DELETE FROM {table} WHERE duns IN (SELECT duns FROM aw_duns_delta)")
        con.execute(f"INSERT INTO {table} SELECT * FROM {new}")
    # the recipients: of the versions replaced (keys as last resolved), of the moved DUNS before and
    # after, and of the rows written (keys with the links as they are now)
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE aw_keys AS
        SELECT recipient_key FROM aw_replaced_rows
        UNION SELECT coalesce('UEI:' || old_uei, 'DUNS:' || duns) FROM aw_duns_moved
        UNION SELECT coalesce('UEI:' || new_uei, 'DUNS:' || duns) FROM aw_duns_moved
        """
    )
    con.execute(f"CREATE OR REPLACE TEMP TABLE aw_touched_rows AS {_rows_sql('aw_touched')}")
    con.execute("INSERT INTO aw_keys SELECT recipient_key FROM aw_touched_rows "
                "EXCEPT SELECT recipient_key FROM aw_keys")
    # every row of those recipients (their aggregates), and the recipients again
    con.execute(f"CREATE OR REPLACE TEMP TABLE aw_rows AS {_rows_of('aw_keys')}")
    con.execute(f"CREATE OR REPLACE TEMP TABLE aw_recipients AS {_RECIPIENTS_SQL.format(rows='aw_rows')}")
    _refresh_parents(con)
    # recipients with a row naming a parent whose company changed (a recipient's own parent fields are
    # those of one of its rows, so this includes every recipient resolved through it)
    con.execute("CREATE OR REPLACE TEMP TABLE aw_keys2 (recipient_key VARCHAR)")
    if con.execute("SELECT count(*) FROM aw_parents_changed").fetchone()[0]:
        naming = ("(SELECT recipient_uei, recipient_duns, recipient_name FROM transactions "
                  "WHERE recipient_parent_uei IN (SELECT id FROM aw_parents_changed WHERE kind = 'uei') "
                  "OR recipient_parent_duns IN (SELECT id FROM aw_parents_changed WHERE kind = 'duns'))")
        con.execute(f"INSERT INTO aw_keys2 SELECT DISTINCT {_RECIPIENT_KEY} FROM {naming} t "
                    "LEFT JOIN resolution_names nr ON nr.name = t.recipient_name LEFT JOIN resolution_duns du ON du.duns = t.recipient_duns")
    con.execute("CREATE OR REPLACE TEMP TABLE aw_more AS SELECT recipient_key FROM aw_keys2 "
                "EXCEPT SELECT recipient_key FROM aw_keys")
    if con.execute("SELECT count(*) FROM aw_more").fetchone()[0]:
        con.execute(f"CREATE OR REPLACE TEMP TABLE aw_rows2 AS {_rows_of('aw_more')}")
        con.execute("INSERT INTO aw_rows SELECT * FROM aw_rows2")
        con.execute(f"INSERT INTO aw_recipients {_RECIPIENTS_SQL.format(rows='aw_rows2')}")
        con.execute("INSERT INTO aw_keys SELECT recipient_key FROM aw_more")
    # rows to resolve again: those written, those moved by a DUNS, and every row of a recipient whose
    # parent fields changed (or that is new) or that names a parent whose company changed
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE aw_redo AS
        SELECT n.recipient_key FROM aw_recipients n LEFT JOIN recipients o USING (recipient_key)
        LEFT JOIN resolution_names pn ON pn.name = n.parent_name
        WHERE o.recipient_key IS NULL OR o.parent_uei IS DISTINCT FROM n.parent_uei OR o.parent_duns IS DISTINCT FROM n.parent_duns
           OR o.parent_name IS DISTINCT FROM n.parent_name
           OR (n.parent_name IS NOT NULL AND pn.normalised IS NULL)  -- its normalised parent name may come from an older row
        UNION SELECT recipient_key FROM aw_keys2
        """
    )
    con.execute(
        "CREATE OR REPLACE TEMP TABLE aw_redo_rows AS SELECT * FROM aw_rows "
        "WHERE recipient_key IN (SELECT recipient_key FROM aw_redo) OR k IN (SELECT k FROM aw_touched_rows) "
        "OR (recipient_uei IS NULL AND recipient_duns IN (SELECT duns FROM aw_duns_moved))"
    )
    con.execute("DELETE FROM recipients WHERE recipient_key IN (SELECT recipient_key FROM aw_keys)")
    _write_recipients(con)
    _write_rows(con, "aw_redo_rows")
    con.execute("CREATE OR REPLACE TEMP TABLE aw_scope AS "
                "SELECT award_key FROM pending_awards UNION SELECT award_key FROM aw_changed")
    _write_awards(con, "aw_scope")
    _brand_mentions(con, "aw_scope")
    _mart_groups(con)
    # method counts: rows resolved now, less what they counted as before, less versions replaced by
    # nothing resolved before (the row deleted, or deleted and loaded again)
    con.execute(
        f"""
        UPDATE resolution_methods SET transactions = resolution_methods.transactions + d.n
        FROM (
            SELECT method, sum(n) AS n FROM (
                SELECT method, count(*) AS n FROM aw_changed GROUP BY 1
                UNION ALL SELECT stored_method, -count(*) FROM aw_changed WHERE stored_method IS NOT NULL GROUP BY 1
                UNION ALL SELECT p.parent_company_method, -count(*) FROM pending_rows p
                          ANTI JOIN aw_touched t ON t.{KEY} = p.{KEY} AND t.parent_company_method IS NOT NULL GROUP BY 1)
            GROUP BY method
        ) d
        WHERE resolution_methods.method = d.method
        """
    )
    _done(con)


def _refresh_parents(con: duckdb.DuckDBPyConnection) -> None:
    """Updates the parent-name counts with the rows written (+) and the versions they replaced (-), and
    recomputes the companies of those parent identifiers and of the UEIs and DUNS of the recipients in
    ``aw_keys`` whose own name may have changed; ``aw_parents_changed`` lists those whose company changed."""
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE aw_names_delta AS
        SELECT kind, id, name, sum(n) AS n FROM (
            {_PARENT_NAMES_SQL.format(rows='aw_touched_rows', n=1)}
            UNION ALL {_PARENT_NAMES_SQL.format(rows='aw_replaced_rows', n=-1)})
        GROUP BY kind, id, name
        """
    )
    # recipients whose own name could name a parent: another name, DUNS or number of transactions
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE aw_renamed AS
        SELECT k.recipient_key, n.recipient_duns AS new_duns, o.recipient_duns AS old_duns
        FROM aw_keys k LEFT JOIN aw_recipients n USING (recipient_key) LEFT JOIN recipients o USING (recipient_key)
        WHERE n.recipient_key IS NULL OR o.recipient_key IS NULL OR n.normalised_name IS DISTINCT FROM o.normalised_name
           OR n.recipient_duns IS DISTINCT FROM o.recipient_duns OR n.transactions <> o.transactions
        """
    )
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE aw_ids AS
        SELECT kind, id FROM aw_names_delta
        UNION SELECT 'uei', substr(recipient_key, 5) FROM aw_renamed WHERE starts_with(recipient_key, 'UEI:')
        UNION SELECT 'duns', new_duns FROM aw_renamed WHERE new_duns IS NOT NULL
        UNION SELECT 'duns', old_duns FROM aw_renamed WHERE old_duns IS NOT NULL
        """
    )
    con.execute(
        "CREATE OR REPLACE TEMP TABLE aw_parent_names AS SELECT kind, id, name, sum(n) AS n FROM ("
        "SELECT p.* FROM resolution_parent_names p SEMI JOIN aw_names_delta d ON d.kind = p.kind AND d.id = p.id "
        "UNION ALL SELECT * FROM aw_names_delta) GROUP BY kind, id, name HAVING sum(n) > 0"
    )
    con.execute("DELETE FROM resolution_parent_names p USING aw_names_delta d WHERE p.kind = d.kind AND p.id = d.id")
    con.execute("INSERT INTO resolution_parent_names SELECT * FROM aw_parent_names")
    con.execute(
        "CREATE OR REPLACE TEMP VIEW aw_all_recipients AS "
        "SELECT recipient_key, normalised_name, recipient_duns, transactions FROM aw_recipients "
        "UNION ALL SELECT r.recipient_key, r.normalised_name, r.recipient_duns, r.transactions FROM recipients r "
        "ANTI JOIN aw_keys k ON k.recipient_key = r.recipient_key"
    )
    con.execute("CREATE OR REPLACE TEMP TABLE aw_parents AS "
                + " UNION ALL ".join(_parents_sql(kind, "aw_all_recipients", "aw_ids") for kind in ("uei", "duns")))
    con.execute("CREATE OR REPLACE TEMP TABLE aw_parents_changed AS SELECT i.kind, i.id FROM aw_ids i "
                "LEFT JOIN resolution_parents o USING (kind, id) LEFT JOIN aw_parents n USING (kind, id) "
                "WHERE o.company IS DISTINCT FROM n.company")
    con.execute("DELETE FROM resolution_parents p USING aw_ids i WHERE p.kind = i.kind AND p.id = i.id")
    con.execute("INSERT INTO resolution_parents SELECT kind, id, company FROM aw_parents")


def _brand_mentions(con: duckdb.DuckDBPyConnection, award_keys_table: str | None) -> None:
    """Rebuilds ``brand_mentions`` (all, or for the awards in scope)."""
    install_macros(con)
    rules = con.execute(
        "SELECT brand, owner, pattern, line, aw_normalise_name(owner) FROM brand_rules ORDER BY line").fetchall()
    if award_keys_table:
        con.execute(f"DELETE FROM brand_mentions WHERE {AWARD_KEY} IN (SELECT award_key FROM {award_keys_table})")
        source = f"(SELECT t.* FROM transactions t SEMI JOIN {award_keys_table} s ON s.award_key = t.{AWARD_KEY})"
    else:
        con.execute("DELETE FROM brand_mentions")
        source = "transactions"
    if not rules:
        return
    combined = _brand_regex("|".join(f"(?:{pattern})" for _, _, pattern, _, _ in rules))
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
    for i, (brand, owner, pattern, line, n_owner) in enumerate(rules):
        params |= {f"brand{i}": brand, f"owner{i}": owner, f"n_owner{i}": n_owner,
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
# The mart's rows from the transactions ``t`` of ``{source}``; agency names are the latest reported for the code
_MART_SQL = f"""
    INSERT INTO {MART}
    WITH base AS (
        SELECT coalesce(t.parent_company, '{UNRESOLVED}') AS parent_company,
               t.awarding_agency_code, t.awarding_agency_name, t.awarding_sub_agency_code, t.awarding_sub_agency_name,
               t.fiscal_year, aw_is_technology(t.product_or_service_code, t.naics_code) AS is_technology,
               t.federal_action_obligation, t.{AWARD_KEY} AS award_key, (t.action_date, t.{KEY}) AS latest
        FROM {{source}}
    ),
    final AS (
        SELECT parent_company, awarding_agency_code,
               arg_max(awarding_agency_name, latest) AS awarding_agency_name,
               awarding_sub_agency_code,
               arg_max(awarding_sub_agency_name, latest) AS awarding_sub_agency_name,
               fiscal_year, is_technology,
               coalesce(sum(federal_action_obligation), 0) AS obligated_amount,
               count(*) AS transactions,
               count(DISTINCT award_key) AS awards
        FROM base
        GROUP BY parent_company, awarding_agency_code, awarding_sub_agency_code, fiscal_year, is_technology
    )
    SELECT * FROM final ORDER BY fiscal_year, parent_company, awarding_agency_code, awarding_sub_agency_code, is_technology
"""
# rows ``m`` (company ``{company}``) in a mart group ``g``: company, agency, sub-agency, fiscal year (both technology flags)
_IN_GROUP = ("{company} = g.parent_company AND m.awarding_agency_code IS NOT DISTINCT FROM g.awarding_agency_code "
             "AND m.awarding_sub_agency_code IS NOT DISTINCT FROM g.awarding_sub_agency_code "
             "AND m.fiscal_year IS NOT DISTINCT FROM g.fiscal_year")


def marts(con: duckdb.DuckDBPyConnection) -> None:
    """Rebuilds ``company_agency_fiscal_year`` from transactions: obligations, actions and awards per
    parent company x awarding agency (toptier and subtier) x fiscal year x technology flag.
    Agency names are the latest reported for the code (then the greatest transaction key)."""
    install_macros(con)
    con.execute(f"DELETE FROM {MART}")
    con.execute(_MART_SQL.format(source="transactions t"))


def _mart_groups(con: duckdb.DuckDBPyConnection) -> None:
    """Rebuilds the mart groups the rows written or resolved again were in before (``pending_rows``, the
    stored company of a row whose company changed) or are in now."""
    unresolved = f"'{UNRESOLVED}'"
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE aw_groups AS
        SELECT coalesce(parent_company, {unresolved}) AS parent_company, awarding_agency_code, awarding_sub_agency_code, fiscal_year
        FROM pending_rows
        UNION SELECT coalesce(stored_company, {unresolved}), awarding_agency_code, awarding_sub_agency_code, fiscal_year FROM aw_changed
        UNION SELECT company, awarding_agency_code, awarding_sub_agency_code, fiscal_year FROM aw_changed
        UNION SELECT company, awarding_agency_code, awarding_sub_agency_code, fiscal_year FROM aw_resolved
              WHERE k IN (SELECT k FROM aw_touched_rows)
        """
    )
    con.execute(f"DELETE FROM {MART} m USING aw_groups g WHERE {_IN_GROUP.format(company='m.parent_company')}")
    in_group = _IN_GROUP.format(company=f"coalesce(m.parent_company, {unresolved})")
    con.execute(_MART_SQL.format(source=f"(SELECT m.* FROM transactions m SEMI JOIN aw_groups g ON {in_group}) t"))


def _resolved_once(con: duckdb.DuckDBPyConnection) -> bool:
    """True once a full ``resolve`` has filled the resolver's lookups (not yet on a warehouse from before 006)."""
    return con.execute("SELECT count(*) > 0 FROM resolution_methods").fetchone()[0]


def _pending(con: duckdb.DuckDBPyConnection) -> bool:
    return con.execute("SELECT count(*) > 0 FROM pending_awards").fetchone()[0]


def refresh(con: duckdb.DuckDBPyConnection, *, aliases: Path = ALIASES_CSV, brands: Path = BRANDS_CSV) -> dict[str, float]:
    """Once per job, after its loads: resolves what they touched (``pending_awards``, ``pending_rows``) and
    what that reaches, updates the mart groups concerned and empties the pending tables. Resolves everything
    and rebuilds the mart instead when the reference CSVs changed (brand rules and aliases apply to every row)
    or no full resolve has run yet (a warehouse from before migration 006). Returns the resolution shares.
    Runs in the caller's transaction if one is open."""
    if not _resolved_once(con) or reference_changed(con, aliases, brands):
        resolve(con, aliases=aliases, brands=brands)
        marts(con)
    elif _pending(con):
        _resolve_pending(con)
    return resolution_shares(con)


def resolution_shares(con: duckdb.DuckDBPyConnection) -> dict[str, float]:
    """Share of transactions per resolution method: from the counts refresh keeps (``resolution_methods``);
    while loads are pending, counted over transactions (rows not resolved yet count as ``pending``)."""
    if _resolved_once(con) and not _pending(con):
        rows = con.execute("SELECT method, transactions FROM resolution_methods WHERE transactions > 0").fetchall()
    else:
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
