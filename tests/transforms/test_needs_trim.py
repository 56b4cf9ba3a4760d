"""``needs_trim`` flags exactly the columns the regex ``^\\s|\\s$|^$`` flags (blank, or edged with Unicode white space)."""

from __future__ import annotations

import polars as pl
import pytest

from awardwatch.schemas.layouts import current_columns
from awardwatch.transforms.transactions import needs_trim

VALUES = ["a", " a", "a ", "", "a b", None, "\ta", "a\n", "\u00a0a", "a\u3000", "\u2028", "\u200ba", "a\u0085", "\u1680a", "  "]


@pytest.mark.parametrize("value", VALUES)
def test_needs_trim_is_the_regex(value):
    columns = list(current_columns())
    df = pl.DataFrame({c: [value, "x"] for c in columns}, schema=dict.fromkeys(columns, pl.String))
    assert df.select(needs_trim()).row(0) == df.select(pl.col(c).str.contains(r"^\s|\s$|^$").any() for c in columns).row(0)
