"""``files.read_batches``: a CSV read in batches of whole rows gives exactly what one scan of the file gives;
``validate.field_counts(nul_free=True)`` counts as the NUL-aware reading does."""

from __future__ import annotations

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from awardwatch.flows.sources.files import SourceFile, read_batches, scan
from awardwatch.schemas.validate import field_counts

HEADER = ["a", "b", "c"]
FILES = {
    "plain": b"a,b,c\n1,2,3\n4,5,6\n7,8,9\n10,11,12\n",
    "no final line break": b"a,b,c\n1,2,3\n4,5,6\n7,8,9",
    "crlf": b"a,b,c\r\n1,2,3\r\n4,5,6\r\n7,8,9\r\n",
    "quoted line breaks": b'a,b,c\n1,"x\ny\nz",3\n4,"say ""hi""\n, twice",6\n7,8,"\n"\n10,11,12\n',
    "ragged": b"a,b,c\n1,2\n3,4,5,6\n7,8,9,\n,,\n\n11,12,13\n",
    "quoted header": b'a,"b\nb",c\n1,2,3\n4,5,6\n',
    "header only": b"a,b,c\n",
}


@pytest.mark.parametrize("name", FILES)
@pytest.mark.parametrize("batch_rows", [1, 2, 3, 100])
def test_batches_are_the_scan_of_the_whole_file(name, batch_rows, tmp_path):
    path = tmp_path / "f.csv"
    path.write_bytes(FILES[name])
    f = SourceFile("f.csv", path)
    _, rows = field_counts(path, len(HEADER))
    batches = list(read_batches(f, HEADER, batch_rows, rows))
    assert all(b.height for b in batches)
    whole = scan(f, HEADER).collect()
    got = pl.concat(batches) if batches else whole.clear()
    assert_frame_equal(got, whole)
    assert got.height == rows


@pytest.mark.parametrize("name", FILES)
def test_field_counts_of_a_file_without_nul_bytes_read_whole_lines(name, tmp_path):
    path = tmp_path / "f.csv"
    path.write_bytes(FILES[name])
    widths, rows = field_counts(path, len(HEADER))
    whole_lines = field_counts(path, len(HEADER), nul_free=True)
    assert_frame_equal(whole_lines[0], widths)
    assert whole_lines[1] == rows
