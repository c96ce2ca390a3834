"""CSV input: ragged rows, invalid UTF-8, type drift and safe mode; never a value in a message."""
from __future__ import annotations

import pyarrow as pa
import pytest

from maskpipe.errors import InputError
from maskpipe.io.plan import plan_input
from tests.io.readall import CANARY, bad_of, no_canary, read_all


def test_csv_ragged_rows_are_numbered_after_good_rows_with_record_numbers(tmp_path):
    p = tmp_path / "a.csv"
    p.write_bytes(b"id,text,score\n"
                  b"r1,hello,1\n"
                  b"r2,too,many," + CANARY.encode() + b"\n"   # record 3: ragged
                  b'r3,"two\nlines",3\n'
                  b"r4," + CANARY.encode() + b"\n"            # record 5: ragged
                  b"r5,bye,5\n")
    plan, t = read_all(p, "csv", key="id")
    assert plan.n_rows == 5
    assert t.column("id").to_pylist() == ["r1", "r3", "r5", None, None]
    assert t.column("__pos").to_pylist() == [2, 4, 6, 3, 5]
    assert bad_of(t) == [(3, "ragged_row"), (5, "ragged_row")]
    no_canary(t)


def test_csv_invalid_utf8_is_a_bad_row_not_a_binary_column(tmp_path):
    p = tmp_path / "a.csv"
    p.write_bytes(b"id,text\nr1,ok\nr2,\xff\xfe" + CANARY.encode() + b"\nr3,fine\n")
    _, t = read_all(p, "csv", key="id")
    assert t.schema.field("text").type == pa.string()
    assert bad_of(t) == [(3, "invalid_utf8")]
    assert t.column("text").to_pylist() == ["ok", None, "fine"]
    no_canary(t)


def test_csv_schema_drift_across_files_becomes_text(tmp_path):
    (tmp_path / "a.csv").write_text("id,score\na,1\nb,2\n")
    (tmp_path / "b.csv").write_text("id,score,extra\nc,high,x\n")
    plan, t = read_all(tmp_path, "csv", key="id")
    assert plan.schema.field("score").type == pa.string()
    assert t.column("score").to_pylist() == ["1", "2", "high"]
    assert t.column("extra").to_pylist() == [None, None, "x"]


def test_csv_missing_key_lists_the_columns_but_never_a_headerless_first_row(tmp_path):
    (tmp_path / "a.csv").write_text("uid,text\na,b\n")
    with pytest.raises(InputError, match=r"no column 'id'; set input.key to one of: uid, text"):
        plan_input(str(tmp_path), "csv", 10, None, "fail", key="id")
    (tmp_path / "a.csv").write_text(f"{CANARY},555-0100\nx,y\n")  # no header: names are data
    with pytest.raises(InputError) as e:
        plan_input(str(tmp_path), "csv", 10, None, "fail", key="id")
    assert CANARY not in str(e.value) and "555-0100" not in str(e.value)


# pyarrow fails inside its bad-row callback on invalid UTF-8 and reports that as an "unraisable"
# exception (a traceback on stderr); pytest turns those into this warning, made an error here
@pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")
def test_csv_ragged_row_with_invalid_utf8_uses_safe_mode_and_keeps_exact_text(tmp_path, capfd):
    p = tmp_path / "a.csv"
    p.write_bytes("id,näme\nr1,Müller\n".encode() + b"r2,\xff," + CANARY.encode() + b"\nr3,\xfe\nr4,\xc3\xa9t\xc3\xa9,\n"
                  + "r5,ok\n".encode())
    plan, t = read_all(p, "csv", key="id")
    assert plan.file_plans[0].options == {"safe": True} and plan.schema.names == ["id", "näme"]
    assert t.column("id").to_pylist() == ["r1", None, "r5", None, None]
    assert t.column("näme").to_pylist() == ["Müller", None, "ok", None, None]
    assert bad_of(t) == [(4, "invalid_utf8"), (3, "ragged_row"), (5, "ragged_row")]
    assert "Traceback" not in capfd.readouterr().err
    no_canary(t)


def test_csv_rows_up_to_the_record_limit_are_kept_and_larger_ones_are_record_too_large(tmp_path):
    p = tmp_path / "a.csv"
    with open(p, "w") as f:   # 40 MiB: more than pyarrow's 16 MiB block, under the 64 MiB limit
        f.write("id,t\na,x\nb," + "y" * (40 << 20) + "\nc,z\n")
    plan, t = read_all(p, "csv", key="id")
    assert plan.file_plans[0].options == {"wide": True}
    assert t.column("id").to_pylist() == ["a", "b", "c"] and bad_of(t) == []
    assert len(t.column("t").to_pylist()[1]) == 40 << 20
    plan, t = read_all(p, "csv", key="id", max_record_bytes=1 << 20)     # the same file, a 1 MiB limit
    assert bad_of(t) == [(3, "record_too_large")] and t.column("id").to_pylist() == ["a", "c", None]
