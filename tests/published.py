"""A small published output with every kind of content the observability commands show:
privacy (pseudonym scan, pseudonymised and dropped fields), mlm, features, tabular, a bad
record in quarantine. Used by tests/test_preview.py, tests/test_audit.py, tests/report and
tests/cli."""
from __future__ import annotations

import json
import os

import yaml

KEY_ENV = "MASKPIPE_VIEW_TEST_KEY"
# set at import (collection), before any test module starts Ray: workers inherit it
os.environ.setdefault(KEY_ENV, "view-tests-key-not-secret-0123456789")
ROWS, SHARD, BAD_ROW = 60, 20, 7
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOKENIZER = os.path.join(ROOT, "pipelines", "assets", "tokenizer.json")


def email(i: int) -> str:
    return f"ann.lee{i}@example.com"


def phone(i: int) -> str:
    return f"(415) 555-{1000 + i}"


def write_input(folder) -> str:
    """JSONL input: ROWS lines, the one at BAD_ROW malformed (a bad record)."""
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "tickets.jsonl")
    with open(path, "w") as f:
        for i in range(ROWS):
            if i == BAD_ROW:
                f.write('{"id": "broken", "body": \n')
                continue
            rec = {"id": f"k{i:04d}", "subject": f"Router issue #{i}",
                   "body": f"Hello, my router stopped working. Write to {email(i)} or call {phone(i)} today. "
                           f"Ticket {i} is open since monday.",
                   "customer_email": f"cust{i}@example.org", "ssn": "078-05-1120",
                   "features": [round(((i * 7 + j * 3) % 11) / 10 - 0.5, 3) for j in range(16)],
                   "age": 20 + i, "city": ["Oslo", "Lyon", "Kyoto"][i % 3]}
            f.write(json.dumps(rec) + "\n")
    return path


def pipeline(base, out: str = "out", **over) -> dict:
    cfg = {
        "name": "tickets", "seed": 5,
        "input": {"path": str(base / "data"), "format": "jsonl", "key": "id"},
        "privacy": {"key_env": KEY_ENV, "fields": {"customer_email": "pseudonymize", "ssn": "drop"},
                    "scan": {"fields": ["body", "subject"], "action": "pseudonym"}},
        "masks": [
            {"kind": "mlm", "field": "body", "tokenizer": TOKENIZER, "ratio": 0.2, "max_length": 64},
            {"kind": "features", "field": "features", "ratio": 0.3, "fill": 0.0},
            {"kind": "tabular", "fields": ["age", "city"], "ratio": 0.5, "fill": {"age": -1}, "name": "meta",
             "keep_original": True},
        ],
        "output": {"path": str(base / out), "shard_samples": SHARD},
        "execution": {"batch_size": 16, "on_error": "quarantine"},
    }
    cfg.update(over)
    return cfg


def write_pipeline(base, **over) -> str:
    write_input(base / "data")
    path = base / "pipeline.yaml"
    with open(path, "w") as f:
        yaml.safe_dump(pipeline(base, **over), f, sort_keys=False)
    return str(path)


def make_output(base) -> str:
    """Run the pipeline (on whatever Ray this process has: the caller's ray_local); returns
    the output folder."""
    import maskpipe

    res = maskpipe.run(write_pipeline(base))
    assert res.samples_out == ROWS - 1 and res.bad == 1
    return res.output
