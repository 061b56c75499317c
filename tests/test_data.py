"""read_table(), validate(), detect_kind() and the bundled data sets.

Every bad-input test checks that the message names the file, the spreadsheet row
(header = row 1) and the column as it is spelled in the file.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bayesmeta.data import KINDS, detect_kind, make_labels, read_table, validate
from bayesmeta.datasets import card_path, dataset_path, list_datasets, load_dataset
from bayesmeta.errors import DataWarning, InputError

PINS = json.loads((Path(__file__).parent / "reference" / "escalc.json").read_text(encoding="utf-8"))

BINARY_CSV = """study,events_t,n_t,events_c,n_c,dose,region
Alpha 2001,4,50,9,48,low,EU
Beta 2003,10,100,12,101,high,US
Beta 2003,7,60,5,59,low,US
Gamma 2010,0,30,3,31,high,EU
"""


def write(tmp_path: Path, text: str, name: str = "data.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


MAPPING = {"ai": "events_t", "n1i": "n_t", "ci": "events_c", "n2i": "n_c"}


def assert_names(err: pytest.ExceptionInfo[InputError], path: Path, row: int | None, column: str | None) -> None:
    """The error carries and prints file, row and column."""
    text = str(err.value)
    assert err.value.file == str(path) and str(path) in text
    assert err.value.row == row
    assert err.value.column == column
    if row is not None:
        assert f"row {row}" in text
    if column is not None:
        assert f"column '{column}'" in text


# --------------------------------------------------------------- reading


def test_read_csv_with_mapping_labels_and_moderators(tmp_path: Path) -> None:
    path = write(tmp_path, BINARY_CSV)
    df = read_table(path, columns=MAPPING)
    assert list(df.index) == [2, 3, 4, 5]  # spreadsheet rows
    assert df.attrs["source"] == str(path)
    assert df.attrs["kind"] == "binary"
    assert df.attrs["columns"]["ai"] == "events_t"
    assert list(df["label"]) == ["Alpha 2001", "Beta 2003", "Beta 2003 [2]", "Gamma 2010"]
    assert list(df["dose"]) == ["low", "high", "low", "high"] and "region" in df.columns
    assert df["ai"].tolist() == [4.0, 10.0, 7.0, 0.0]
    json.dumps(df.attrs)


def test_read_filter_keeps_rows_and_row_numbers(tmp_path: Path) -> None:
    path = write(tmp_path, BINARY_CSV)
    df = read_table(path, columns=MAPPING, filter={"dose": ["high"]})
    assert list(df.index) == [3, 5]
    assert df.attrs["filter"] == {"dose": ["high"]}
    by_number = read_table(path, columns=MAPPING, filter={"n_t": [50, "60"]})  # file name of a mapped column
    assert list(by_number.index) == [2, 4]


def test_blank_lines_keep_spreadsheet_numbering(tmp_path: Path) -> None:
    text = BINARY_CSV.replace("Beta 2003,10", "\nBeta 2003,10")  # blank line 3
    df = read_table(write(tmp_path, text), columns=MAPPING)
    assert list(df.index) == [2, 4, 5, 6]


def test_study_column_option_and_default_labels(tmp_path: Path) -> None:
    text = BINARY_CSV.replace("study,", "trial,")
    df = read_table(write(tmp_path, text), columns=MAPPING, study="trial")
    assert df["study"].iloc[0] == "Alpha 2001"
    no_study = "ai,n1i,ci,n2i\n1,10,2,10\n3,10,4,10\n"
    df2 = read_table(write(tmp_path, no_study, "nostudy.csv"))
    assert list(df2["label"]) == ["Row 2", "Row 3"]


def test_excel_and_parquet_give_the_same_frame(tmp_path: Path) -> None:
    csv = read_table(write(tmp_path, BINARY_CSV), columns=MAPPING)
    raw = pd.read_csv(tmp_path / "data.csv")
    raw.to_excel(tmp_path / "data.xlsx", sheet_name="trials", index=False)
    raw.to_parquet(tmp_path / "data.parquet")
    xlsx = read_table(tmp_path / "data.xlsx", columns=MAPPING, sheet="trials")
    parquet = read_table(tmp_path / "data.parquet", columns=MAPPING)
    for other in (xlsx, parquet):
        assert list(other.index) == list(csv.index)
        pd.testing.assert_frame_equal(other[["study", "label", "ai", "n1i", "ci", "n2i"]],
                                      csv[["study", "label", "ai", "n1i", "ci", "n2i"]], check_dtype=False)
    assert xlsx.attrs["source"] == str(tmp_path / "data.xlsx")
    with pytest.raises(InputError, match="sheet 'nope' not found") as err:
        read_table(tmp_path / "data.xlsx", columns=MAPPING, sheet="nope")
    assert_names(err, tmp_path / "data.xlsx", None, None)


def test_bundled_bcg_equals_metadat(tmp_path: Path) -> None:
    """bcg.csv is dat.bcg (metadat), compared cell by cell with the pinned copy."""
    pinned = next(c for c in PINS["cases"] if c["id"] == "bcg_RR")["data"]
    df = load_dataset("bcg")
    assert len(df) == 13
    assert list(df["study"]) == pinned["study"]
    for col in ("ai", "bi", "ci", "di"):
        assert df[col].tolist() == [float(v) for v in pinned[col]]
    assert set(df["alloc"]) == {"random", "alternate", "systematic"}
    assert df["ablat"].tolist()[:3] == [44, 55, 42] and df["year"].tolist()[0] == 1948


def test_dataset_loader_is_generic() -> None:
    assert "bcg" in list_datasets()
    assert dataset_path("bcg").name == "bcg.csv"
    assert "Colditz" in card_path("bcg").read_text(encoding="utf-8")
    for name in list_datasets():  # every offered CSV has a card
        assert dataset_path(name).with_suffix(".md").is_file()
    with pytest.raises(InputError, match="unknown bundled dataset 'nope'; available: .*bcg"):
        dataset_path("nope")


def test_detect_kind() -> None:
    assert detect_kind(pd.DataFrame(columns=["ai", "bi", "ci", "di", "yi"])) == "binary"
    assert detect_kind(pd.DataFrame(columns=["m1i", "sd1i", "n1i", "m2i", "sd2i", "n2i"])) == "continuous"
    assert detect_kind(pd.DataFrame(columns=["med1i", "m2i", "n1i", "n2i"])) == "median"
    assert detect_kind(pd.DataFrame(columns=["yi", "sei"])) == "generic"
    with pytest.raises(InputError, match="no outcome columns found"):
        detect_kind(pd.DataFrame(columns=["study", "x"]), file="f.csv")
    assert set(KINDS) == {"binary", "median", "continuous", "generic"}


def test_make_labels_unique() -> None:
    labels = make_labels(pd.Series(["A", "B", "A", "A [2]", "A"]))
    assert list(labels) == ["A", "B", "A [2]", "A [2] [2]", "A [3]"]  # a literal "A [2]" cannot collide


# --------------------------------------------------------------- missing values


def test_all_missing_row_is_left_out_with_warning(tmp_path: Path) -> None:
    text = BINARY_CSV + "Delta 2012,,40,,41,low,EU\n"  # n given, outcome not reported
    path = write(tmp_path, text)
    with pytest.warns(DataWarning, match=r"left out 1 row\(s\) whose outcome values are all missing: row 6 \(Delta 2012\)"):
        df = read_table(path, columns=MAPPING)
    assert list(df.index) == [2, 3, 4, 5]
    assert df.attrs["missing_rows"] == [6]
    with pytest.raises(InputError, match="all outcome values .* are missing") as err:
        read_table(path, columns=MAPPING, strict=True)
    assert_names(err, path, 6, None)


def test_some_missing_is_an_error_naming_the_cell(tmp_path: Path) -> None:
    path = write(tmp_path, BINARY_CSV.replace("Beta 2003,7,60,5,59", "Beta 2003,7,60,,59"))
    with pytest.raises(InputError, match="value missing") as err:
        read_table(path, columns=MAPPING)
    assert_names(err, path, 4, "events_c")


def test_missing_study_label(tmp_path: Path) -> None:
    path = write(tmp_path, BINARY_CSV.replace("Gamma 2010", ""))
    with pytest.raises(InputError, match="study label is missing") as err:
        read_table(path, columns=MAPPING)
    assert_names(err, path, 5, "study")


# --------------------------------------------------------------- bad values


@pytest.mark.parametrize(
    ("old", "new", "row", "column", "message"),
    [
        ("Alpha 2001,4,50", "Alpha 2001,-1,50", 2, "events_t", "counts must be non-negative integers, found -1"),
        ("Alpha 2001,4,50", "Alpha 2001,2.5,50", 2, "events_t", "counts must be non-negative integers, found 2.5"),
        ("Beta 2003,10,100,12,101", "Beta 2003,10,100,12,10.5", 3, "n_c", "group size must be an integer"),
        ("Beta 2003,10,100,12,101", "Beta 2003,10,100,12,0", 3, "n_c", "group size must be an integer of at least 1"),
        ("Gamma 2010,0,30,3,31", "Gamma 2010,0,30,33,31", 5, "events_c", "events ci = 33 exceed the group total n2i = 31"),
        ("Gamma 2010,0,30", "Gamma 2010,31,30", 5, "events_t", "events ai = 31 exceed the group total n1i = 30"),
        ("Beta 2003,7,60", "Beta 2003,7a,60", 4, "events_t", "expected a number, found '7a'"),
        ("Beta 2003,7,60", "Beta 2003,\"7,5\",60", 4, "events_t", "expected a number, found '7,5'"),
    ],
)
def test_bad_binary_cells(tmp_path: Path, old: str, new: str, row: int, column: str, message: str) -> None:
    path = write(tmp_path, BINARY_CSV.replace(old, new))
    with pytest.raises(InputError, match=message) as err:
        read_table(path, columns=MAPPING)
    assert_names(err, path, row, column)


def test_cells_inconsistent_with_totals(tmp_path: Path) -> None:
    path = write(tmp_path, "study,ai,bi,ci,di,n1i,n2i\nA,1,9,2,8,10,10\nB,1,9,2,8,11,10\n")
    with pytest.raises(InputError, match="ai \\+ bi = 10 differs from n1i = 11") as err:
        read_table(path)
    assert_names(err, path, 3, "n1i")


CONT_CSV = """study,m1i,sd1i,n1i,m2i,sd2i,n2i
A,5.1,1.2,20,4.0,1.1,21
B,6.0,2.0,15,5.5,1.8,14
C,4.4,0.9,30,4.1,1.0,30
"""


@pytest.mark.parametrize(
    ("old", "new", "row", "column", "message"),
    [
        ("B,6.0,2.0,15", "B,6.0,0,15", 3, "sd1i", "must be > 0, found 0"),
        ("B,6.0,2.0,15", "B,6.0,-2,15", 3, "sd1i", "must be > 0, found -2"),
        ("C,4.4,0.9,30,4.1,1.0,30", "C,4.4,0.9,30,4.1,1.0,1", 4, "n2i", "group size must be an integer of at least 2, found 1"),
        ("A,5.1", "A,n/a5", 2, "m1i", "expected a number, found 'n/a5'"),
        ("C,4.4,0.9,30,4.1,1.0,30", "C,4.4,0.9,30,,1.0,30", 4, "m2i", "value missing"),
    ],
)
def test_bad_continuous_cells(tmp_path: Path, old: str, new: str, row: int, column: str, message: str) -> None:
    path = write(tmp_path, CONT_CSV.replace(old, new))
    with pytest.raises(InputError, match=message) as err:
        read_table(path)
    assert_names(err, path, row, column)


def test_bad_median_order_and_generic_variance(tmp_path: Path) -> None:
    med = "study,med1i,q1_1i,q3_1i,n1i,m2i,sd2i,n2i\nA,5,4,7,20,5,1,20\nB,5,6,7,20,5,1,20\n"
    path = write(tmp_path, med, "med.csv")
    with pytest.raises(InputError, match="q1_1i = 6 is above med1i = 5") as err:
        read_table(path)
    assert_names(err, path, 3, "med1i")
    gen = write(tmp_path, "study,yi,sei\nA,0.1,0.2\nB,0.3,0\n", "gen.csv")
    with pytest.raises(InputError, match="must be > 0") as err:
        read_table(gen)
    assert_names(err, gen, 3, "sei")


def test_fewer_than_two_usable_rows(tmp_path: Path) -> None:
    path = write(tmp_path, "study,yi,vi\nA,0.1,0.04\nB,,\n")
    with pytest.warns(DataWarning):
        with pytest.raises(InputError, match="at least 2 usable rows of generic data, found 1") as err:
            read_table(path)
    assert_names(err, path, None, None)


# --------------------------------------------------------------- bad mappings and files


def test_mapping_to_unknown_file_column(tmp_path: Path) -> None:
    path = write(tmp_path, BINARY_CSV)
    with pytest.raises(InputError, match="column 'events_tx' \\(mapped to 'ai'\\) not found") as err:
        read_table(path, columns={**MAPPING, "ai": "events_tx"})
    assert_names(err, path, None, "events_tx")


def test_mapping_with_unknown_canonical_name(tmp_path: Path) -> None:
    path = write(tmp_path, BINARY_CSV)
    with pytest.raises(InputError, match="unknown name 'events' in the column mapping") as err:
        read_table(path, columns={**MAPPING, "events": "dose"})
    assert_names(err, path, None, "dose")


def test_mapping_onto_an_existing_column(tmp_path: Path) -> None:
    path = write(tmp_path, "study,ai,x,n1i,ci,n2i\nA,1,2,10,3,10\nB,2,2,10,3,10\n")
    with pytest.raises(InputError, match="already has a column 'ai'") as err:
        read_table(path, columns={"ai": "x"})
    assert_names(err, path, None, "ai")


def test_filter_errors(tmp_path: Path) -> None:
    path = write(tmp_path, BINARY_CSV)
    with pytest.raises(InputError, match="filter column 'cancer' not found") as err:
        read_table(path, columns=MAPPING, filter={"cancer": ["x"]})
    assert_names(err, path, None, "cancer")
    with pytest.raises(InputError, match="kept no rows"):
        read_table(path, columns=MAPPING, filter={"dose": ["medium"]})


def test_file_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="file not found") as err:
        read_table(tmp_path / "missing.csv")
    assert_names(err, tmp_path / "missing.csv", None, None)
    with pytest.raises(InputError, match="unsupported file type '.txt'"):
        read_table(write(tmp_path, BINARY_CSV, "data.txt"))
    with pytest.raises(InputError, match="no outcome columns found"):
        read_table(write(tmp_path, "study,x\nA,1\nB,2\n", "x.csv"))


# --------------------------------------------------------------- in-memory frames


def test_validate_in_memory_frame_uses_index_and_given_file() -> None:
    df = pd.DataFrame({"study": ["A", "B"], "yi": [0.1, "abc"], "vi": [0.1, 0.2]}, index=[10, 11])
    with pytest.raises(InputError, match="expected a number, found 'abc'") as err:
        validate(df, "generic", file="mem.csv")
    assert (err.value.file, err.value.row, err.value.column) == ("mem.csv", 11, "yi")
    with pytest.raises(InputError, match="must be unique"):
        validate(pd.DataFrame({"yi": [0.1, 0.2], "vi": [0.1, 0.2]}, index=[2, 2]), "generic")
    ok = validate(pd.DataFrame({"yi": ["0.1", " 0.3 "], "vi": [0.1, 0.2]}), "generic")
    assert ok["yi"].tolist() == [0.1, 0.3] and ok["yi"].dtype == np.float64


def test_excel_blank_row_keeps_numbering(tmp_path: Path) -> None:
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    for row in (["study", "yi", "vi"], ["A", 0.1, 0.01], [], ["B", 0.2, 0.02], ["C", 0.3, "x"]):
        sheet.append(row)
    path = tmp_path / "effects.xlsx"
    book.save(path)
    with pytest.raises(InputError, match="expected a number, found 'x'") as err:
        read_table(path)
    assert_names(err, path, 5, "vi")  # header 1, A 2, blank 3, B 4, C 5
