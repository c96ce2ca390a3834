"""Config loading and validation: every error at once, one line each, with key, line and hint."""
from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from maskpipe.cli import app
from maskpipe.config import load_config
from maskpipe.errors import ConfigError
from maskpipe.maskers import MASKERS

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "pipelines" / "demo.yaml"

# line numbers below are relative to this text: keep it in sync with the asserts
BASE = textwrap.dedent("""\
    name: t
    seed: 0
    input:
      path: data/in
      format: parquet
      key: id
    masks:
      - kind: mlm
        field: ids
        mask_id: 4
        vocab_size: 100
        ratio: 0.15
      - kind: features
        field: x
        ratio: 0.3
    output:
      path: out/t
    execution:
      batch_size: 100
    """)


def write(tmp_path: Path, text: str, name: str = "p.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def problems(path, overrides=()) -> list[str]:
    with pytest.raises(ConfigError) as ei:
        load_config(path, list(overrides))
    return ei.value.problems


# ------------------------------------------------------------------------- valid configs

def test_demo_yaml_validates():
    cfg = load_config(DEMO)
    assert cfg.name == "demo"
    assert [m.kind for m in cfg.masks] == ["mlm", "features"]
    assert cfg.masks[0].ratio == 0.15 and cfg.masks[0].max_length == 256
    assert cfg.masks[1].ratio == 0.3
    # relative paths resolve against the YAML's folder, not the CWD
    assert cfg.masks[0].tokenizer == str(ROOT / "pipelines" / "assets" / "tokenizer.json")
    assert cfg.input.path == str(ROOT / "data" / "demo")
    assert cfg.output.path == str(ROOT / "out" / "demo")


def test_base_config_values(tmp_path):
    cfg = load_config(write(tmp_path, BASE))
    assert cfg.seed == 0 and cfg.execution.batch_size == 100
    assert cfg.masks[0].mask_id == 4 and cfg.masks[0].vocab_size == 100
    assert cfg.masks[1].sampling == "exact" and cfg.masks[1].fill == 0.0


@pytest.mark.parametrize("section", ["privacy:\n", "privacy: {}\n", "privacy: null\n", ""])
def test_empty_or_absent_privacy_accepted(tmp_path, section):
    cfg = load_config(write(tmp_path, BASE + section))
    assert cfg.privacy is None


# ------------------------------------------------------------------------- typos and types

def test_typo_in_mask_key_is_one_line_with_line_and_hint(tmp_path):
    p = write(tmp_path, BASE.replace("    ratio: 0.15", "    ratoi: 0.15"))
    probs = problems(p)
    assert probs == [f"{p}:12: unknown key 'masks.0.ratoi'; did you mean 'ratio'?"]


def test_typo_in_top_level_required_key_is_one_line(tmp_path):
    p = write(tmp_path, BASE.replace("output:", "outptu:"))
    probs = problems(p)
    # the did-you-mean line already says 'output' is missing: no second "missing" line
    assert probs == [f"{p}:16: unknown key 'outptu'; did you mean 'output'?"]
    assert str(ConfigError(probs)) == probs[0]


def test_typo_in_nested_section(tmp_path):
    p = write(tmp_path, BASE.replace("  batch_size: 100", "  batchsize: 100"))
    assert problems(p) == [f"{p}:19: unknown key 'execution.batchsize'; did you mean 'batch_size'?"]


def test_key_of_other_mask_kind_lists_allowed_keys(tmp_path):
    p = write(tmp_path, BASE.replace("    ratio: 0.3", "    ratio: 0.3\n    mask_id: 3"))
    (msg,) = problems(p)
    assert msg.startswith(f"{p}:16: unknown key 'masks.1.mask_id'; allowed keys: ")
    assert "field, fill, gpu, keep_original, kind, ratio, sampling" in msg


def test_duplicate_keys_rejected_with_both_lines(tmp_path):
    p = write(tmp_path, BASE.replace("seed: 0\n", "seed: 0\nseed: 1\n"))
    (msg,) = problems(p)
    assert msg.startswith(f"{p}:3: duplicate key 'seed' (first at line 2)")


def test_duplicate_nested_keys_all_reported(tmp_path):
    text = BASE.replace("    field: ids\n", "    field: ids\n    field: other\n")
    text = text.replace("  batch_size: 100\n", "  batch_size: 100\n  batch_size: 5\n")
    p = write(tmp_path, text)
    probs = problems(p)
    assert len(probs) == 2
    assert any(m.startswith(f"{p}:10: duplicate key 'field' (first at line 9)") for m in probs)
    assert any(m.startswith(f"{p}:21: duplicate key 'batch_size' (first at line 20)") for m in probs)


def test_wrong_types_all_reported_at_once(tmp_path):
    text = BASE.replace("seed: 0", "seed: abc").replace("batch_size: 100", "batch_size: -1")
    text = text.replace("    ratio: 0.3", "    ratio: 2")
    p = write(tmp_path, text)
    probs = problems(p)
    assert len(probs) == 3
    assert any(m.startswith(f"{p}:2: seed: ") and "integer" in m for m in probs)
    assert any(m.startswith(f"{p}:15: masks.1.ratio: ") and "less than or equal to 1" in m for m in probs)
    assert any(m.startswith(f"{p}:19: execution.batch_size: ") and "greater than 0" in m for m in probs)
    # the error text never echoes the offending value
    assert not any("abc" in m for m in probs)
    assert str(ConfigError(probs)).startswith("3 problems in the pipeline config:\n  - ")


def test_duplicates_bad_overrides_and_schema_errors_reported_together(tmp_path):
    text = BASE.replace("seed: 0\n", "seed: 0\nseed: 1\n").replace("output:", "outptu:")
    p = write(tmp_path, text)
    probs = problems(p, ["masks.9.ratio=0.1", "execution.batch_size=0"])
    assert len(probs) == 4
    assert probs[0].startswith(f"{p}:3: duplicate key 'seed' (first at line 2)")
    assert probs[1] == ("--set masks.9: no list item 9 (masks has items 0 to 1); --set cannot add list items, "
                        "add them to the YAML")
    assert f"{p}:17: unknown key 'outptu'; did you mean 'output'?" in probs
    assert any(m.startswith("--set execution.batch_size: execution.batch_size: ") for m in probs)


def test_unknown_mask_kind(tmp_path):
    p = write(tmp_path, BASE.replace("kind: features", "kind: featurs"))
    kinds = ", ".join(sorted(MASKERS))
    assert "features" in kinds and "mlm" in kinds
    assert problems(p) == [f"{p}:13: masks.1: unknown mask kind; use one of: {kinds}"]


def test_missing_required_keys(tmp_path):
    p = write(tmp_path, "seed: 1\n")
    probs = problems(p)
    assert sorted(probs) == sorted(f"{p}:1: missing required key '{k}'; add it (see docs/pipeline.md)"
                                   for k in ("name", "input", "output"))


def test_python_object_tag_rejected(tmp_path):
    p = write(tmp_path, BASE + "extra: !!python/object/apply:os.system ['echo pwned']\n")
    (msg,) = problems(p)
    assert msg.startswith(f"{p}:20: ")
    assert "python/object" in msg


def test_top_level_must_be_mapping(tmp_path):
    assert problems(write(tmp_path, "- a\n- b\n")) == [
        f"{tmp_path / 'p.yaml'}: the top level must be a mapping of keys (name, seed, input, ...)"]


def test_missing_file():
    (msg,) = problems("/nonexistent/p.yaml")
    assert msg == "/nonexistent/p.yaml: file not found; pass the path to a pipeline YAML"


@pytest.mark.parametrize("text", ["progress: off", "progress: 'off'"])
def test_progress_off_accepted_bare_or_quoted(tmp_path, text):
    # PyYAML reads a bare `off` as False; the documented value must still work
    cfg = load_config(write(tmp_path, BASE + "  " + text + "\n"))
    assert cfg.execution.progress == "off"


def test_cross_check_webdataset_key(tmp_path):
    text = BASE.replace("format: parquet", "format: webdataset")
    (msg,) = problems(write(tmp_path, text))
    assert "input.key" in msg and "__key__" in msg


# ------------------------------------------------------------------------- --set overrides

def test_set_overrides_apply(tmp_path, monkeypatch):
    p = write(tmp_path, BASE)
    monkeypatch.chdir(tmp_path)
    cfg = load_config(p, ["seed=7", "output.path=out/x", "masks.0.ratio=0.2", "execution.on_error=skip"])
    assert cfg.seed == 7
    assert cfg.masks[0].ratio == 0.2
    assert cfg.masks[1].ratio == 0.3
    assert cfg.execution.on_error == "skip"
    assert cfg.output.path == str(tmp_path / "out" / "x")


def test_set_paths_resolve_against_cwd_yaml_paths_against_yaml_dir(tmp_path, monkeypatch):
    ydir = tmp_path / "pipelines"
    ydir.mkdir()
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    p = write(ydir, BASE)
    monkeypatch.chdir(cwd)
    cfg = load_config(p, ["output.path=out/x"])
    assert cfg.output.path == str(cwd / "out" / "x")
    assert cfg.input.path == str(ydir / "data" / "in")
    # a whole-section override is a CLI value too
    cfg = load_config(p, ["output={path: o2}"])
    assert cfg.output.path == str(cwd / "o2")
    # absolute and URL paths are kept as they are
    cfg = load_config(p, ["input.path=s3://bucket/x", f"output.path={tmp_path}/abs"])
    assert cfg.input.path == "s3://bucket/x"
    assert cfg.output.path == f"{tmp_path}/abs"


def test_relative_yaml_paths_do_not_depend_on_cwd(tmp_path, monkeypatch):
    p = write(tmp_path, BASE)
    monkeypatch.chdir(ROOT)
    a = load_config(p)
    monkeypatch.chdir(tmp_path)
    b = load_config(os.path.relpath(p, tmp_path))
    assert a.input.path == b.input.path == str(tmp_path / "data" / "in")


@pytest.mark.parametrize("override, expected", [
    ("seed", "--set 'seed': expected dotted.key=value, e.g. --set seed=7"),
    ("masks.5.ratio=0.2", "--set masks.5: no list item 5 (masks has items 0 to 1); --set cannot add list items, "
                          "add them to the YAML"),
    ("seed.x=1", "--set seed.x: parent is not a mapping"),
    ("masks..ratio=1", "--set masks..ratio: empty key part; use e.g. output.path=out/x"),
    ("masks.0.ratoi=0.2", "--set masks.0.ratoi: unknown key 'masks.0.ratoi'; did you mean 'ratio'?"),
])
def test_bad_set_override(tmp_path, override, expected):
    assert problems(write(tmp_path, BASE), [override]) == [expected]


def test_bad_set_value_names_the_override_not_a_yaml_line(tmp_path):
    (msg,) = problems(write(tmp_path, BASE), ["masks.0.ratio=1.5"])
    assert msg.startswith("--set masks.0.ratio: masks.0.ratio: ")
    assert "less than or equal to 1" in msg


# ------------------------------------------------------------------------- output_hash

def test_output_hash_ignores_execution_and_paths(tmp_path):
    p = write(tmp_path, BASE)
    h = load_config(p).output_hash()
    for ov in (["execution.parallelism=8"], ["execution.batch_size=7"], ["execution.address=auto"],
               ["output.path=/somewhere/else"], ["execution.progress=off"]):
        assert load_config(p, ov).output_hash() == h, ov


def test_output_hash_changes_with_output_affecting_keys(tmp_path):
    p = write(tmp_path, BASE)
    hashes = {load_config(p, ov).output_hash() for ov in
              ([], ["seed=1"], ["masks.0.ratio=0.2"], ["masks.1.fill=1.0"], ["output.shard_samples=5"],
               ["execution.on_error=skip"])}
    assert len(hashes) == 6


def test_output_hash_is_stable_across_processes_and_key_order(tmp_path):
    """The hash is sha256 hex of a canonical form: the same in another interpreter (another
    PYTHONHASHSEED, so no set/dict-order or id() leaks in) and whatever order the YAML lists
    mapping keys in (privacy rules, tabular fills are dicts)."""
    import re
    import subprocess
    import sys

    text = BASE + textwrap.dedent("""\
        privacy:
          fields: {a: drop, b: redact, c: keep}
        """)
    reordered = BASE.replace("  - kind: features\n    field: x\n    ratio: 0.3\n",
                             "  - ratio: 0.3\n    kind: features\n    field: x\n") + textwrap.dedent("""\
        privacy:
          fields: {c: keep, b: redact, a: drop}
        """)
    assert reordered != text
    p, q = write(tmp_path, text), write(tmp_path, reordered, "q.yaml")
    h = load_config(p).output_hash()
    assert re.fullmatch(r"[0-9a-f]{64}", h)
    assert load_config(q).output_hash() == h
    code = "import sys; from maskpipe.config import load_config; print(load_config(sys.argv[1]).output_hash())"
    for hashseed in ("1", "4242"):
        env = dict(os.environ, PYTHONHASHSEED=hashseed, PYTHONPATH=str(ROOT))
        out = subprocess.run([sys.executable, "-c", code, str(q)], env=env, capture_output=True, text=True, check=True)
        assert out.stdout.strip() == h


def test_output_hash_follows_tokenizer_content_not_path(tmp_path):
    tok = (ROOT / "pipelines" / "assets" / "tokenizer.json").read_bytes()
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "tok.json").write_bytes(tok)
    (tmp_path / "b" / "tok.json").write_bytes(tok)
    text = BASE.replace("    mask_id: 4\n    vocab_size: 100\n", "    tokenizer: a/tok.json\n")
    p = write(tmp_path, text)
    h = load_config(p).output_hash()
    assert load_config(p, [f"masks.0.tokenizer={tmp_path}/b/tok.json"]).output_hash() == h


# ------------------------------------------------------------------------- CLI

def _stderr(result) -> str:
    try:
        return result.stderr
    except ValueError:  # older click mixes stderr into output
        return result.output


def test_cli_validate_bad_yaml_single_error_line(tmp_path):
    p = write(tmp_path, BASE.replace("output:", "outptu:"), "bad.yaml")
    result = CliRunner().invoke(app, ["validate", str(p)])
    assert result.exit_code == 2
    err = _stderr(result)
    assert err.strip().splitlines() == [f"error: {p}:16: unknown key 'outptu'; did you mean 'output'?"]
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_cli_validate_several_problems_one_error_header(tmp_path):
    p = write(tmp_path, BASE.replace("seed: 0", "seed: x").replace("output:", "outptu:"), "bad.yaml")
    result = CliRunner().invoke(app, ["validate", str(p)])
    assert result.exit_code == 2
    lines = _stderr(result).strip().splitlines()
    assert [line for line in lines if line.startswith("error:")] == ["error: 2 problems in the pipeline config:"]
    assert len(lines) == 3 and all(line.startswith("  - ") for line in lines[1:])
    assert "Traceback" not in result.output


def test_cli_validate_ok(tmp_path):
    p = write(tmp_path, BASE)
    result = CliRunner().invoke(app, ["validate", str(p), "--set", "seed=3"])
    assert result.exit_code == 0
    assert result.stdout.startswith(f"ok: {p} (2 mask step(s), output ")
