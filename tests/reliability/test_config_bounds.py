"""Hostile pipeline YAML (issue 16): parsing is bounded in size, alias expansion and depth, and
every refusal is one line that names the file (and line) and says what to do, never a value."""
from __future__ import annotations

import pytest
import yaml

from maskpipe.config import load_config
from maskpipe.configyaml import MAX_CONFIG_BYTES, MAX_YAML_DEPTH
from maskpipe.errors import ConfigError
from tests.reliability.conftest import CANARY, run_cli

OK = "name: x\ninput: {path: ., format: jsonl}\noutput: {path: o}\n"


def bomb(levels: int) -> str:
    """A "billion laughs": each level is a list of nine aliases of the one before."""
    out = [OK.rstrip("\n"), f'a0: &a0 ["{CANARY}"' + f', "{CANARY}"' * 8 + "]"]
    out += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, levels + 1)]
    return "\n".join(out) + "\n"


def refused(tmp_path, text: str, overrides=()) -> list[str]:
    p = tmp_path / "p.yaml"
    p.write_text(text)
    with pytest.raises(ConfigError) as e:
        load_config(p, list(overrides))
    for problem in e.value.problems:
        assert "\n" not in problem and CANARY not in problem
    return e.value.problems


@pytest.mark.slow
def test_an_alias_bomb_is_refused_at_once_by_validate(tmp_path):
    y = tmp_path / "bomb.yaml"
    y.write_text(bomb(9))   # 9^10 values once expanded (a5, line 9, passes the bound): validate never ended
    res = run_cli(["validate", str(y)], timeout=60)
    assert res.returncode == 2
    assert res.stderr == (f"error: {y}:9: this value expands to more than 100,000 values (YAML aliases of aliases); "
                          "write the config out, or use fewer aliases\n")
    assert CANARY not in res.stdout + res.stderr


def test_a_small_alias_bomb_names_its_line(tmp_path):
    assert refused(tmp_path, bomb(6)) == [f"{tmp_path / 'p.yaml'}:9: this value expands to more than 100,000 values "
                                          "(YAML aliases of aliases); write the config out, or use fewer aliases"]


def test_a_few_aliases_are_fine(tmp_path):
    text = OK + "masks:\n  - &m {kind: features, field: f, ratio: 0.5}\n  - *m\n"
    assert len(load_config(tmp_path / "p.yaml", text=text).masks) == 2


def test_a_recursive_alias_is_refused(tmp_path):
    assert refused(tmp_path, OK + "a: &a [1, *a]\n") == [
        f"{tmp_path / 'p.yaml'}:4: a YAML alias refers to the value that contains it; remove the recursive alias"]


def test_deep_nesting_is_refused(tmp_path):
    p = str(tmp_path / "p.yaml")
    deep = OK + "x: " + "[" * (MAX_YAML_DEPTH + 1) + "]" * (MAX_YAML_DEPTH + 1) + "\n"
    assert refused(tmp_path, deep) == [f"{p}:4: values nested more than 64 levels deep; a pipeline config needs a few "
                                       "levels, flatten it"]
    deeper = OK + "x: " + "[" * 5000 + "]" * 5000 + "\n"     # deeper than PyYAML's own recursion
    assert refused(tmp_path, deeper) == [f"{p}: values nested more than 64 levels deep; a pipeline config needs a "
                                         "few levels, flatten it"]


def test_a_config_over_the_size_limit_is_refused_unread(tmp_path):
    p = tmp_path / "p.yaml"
    with open(p, "w") as f:
        f.write(OK + "masks:\n")
        while f.tell() <= MAX_CONFIG_BYTES:
            f.write(f"  - {{kind: features, field: f, ratio: 0.5, note: {CANARY}}}\n")
    size = p.stat().st_size
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert str(e.value) == (f"{p}: {size:,} bytes, over the 1,048,576-byte limit for a pipeline YAML; is this the "
                            "right file? (a pipeline config is a few KiB)")


def test_set_beyond_a_list_blames_that_set(tmp_path):
    with_masks = OK + "masks:\n  - {kind: features, field: f, ratio: 0.5}\n"
    assert refused(tmp_path, with_masks, ["masks.5.ratio=0.3"]) == [
        "--set masks.5: no list item 5 (masks has items 0 to 0); --set cannot add list items, add them to the YAML"]
    assert refused(tmp_path, OK, ["masks.5.ratio=0.3"]) == [
        "--set masks.5: 'masks' is not a list in the config; add the list to the YAML (--set cannot create list items)"]
    assert refused(tmp_path, OK, ["masks.x.ratio=1"]) == ["--set masks.x.ratio: masks: Input should be a valid list"]


def test_an_unknown_key_with_control_characters_stays_one_line(tmp_path):
    text = yaml.safe_dump({"name": "x", "input": {"path": "."}, "output": {"path": "o", "a\nb\x1b[31m": CANARY}})
    problems = refused(tmp_path, text)
    assert any("unknown key 'output.a\\nb\\x1b[31m'" in p for p in problems), problems


def test_validate_never_prints_a_traceback_for_hostile_yaml(tmp_path):
    y = tmp_path / "deep.yaml"
    y.write_text("name: " + "[" * 5000 + "]" * 5000 + "\n")
    res = run_cli(["validate", str(y)], timeout=120)
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and "Traceback" not in res.stderr
