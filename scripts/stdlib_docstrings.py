"""Write the docstrings of Python's standard library, one per line: English text this project
did not write, for measuring a tokenizer's ``[UNK]`` share (docs/training.md).

    python scripts/stdlib_docstrings.py --out /tmp/doc-train.txt --part train   # every other docstring
    python scripts/stdlib_docstrings.py --out /tmp/doc-test.txt --part test     # the rest (held out)

The docstrings come from ``inspect.getdoc`` over the public modules of ``sys.stdlib_module_names``
and their public classes, functions and methods, in sorted order (the set depends on the Python version).
"""
from __future__ import annotations

import argparse
import importlib
import inspect
import sys
import warnings

SKIP = {"antigravity", "this", "idlelib", "tkinter", "turtle", "turtledemo", "lib2to3", "ensurepip", "venv"}


def docstrings() -> list[str]:
    docs, seen = [], set()
    for name in sorted(sys.stdlib_module_names):
        if name.startswith("_") or name in SKIP:
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                module = importlib.import_module(name)
        except Exception:  # modules this platform lacks (winreg, ...) or cannot import
            continue
        objects = [module] + [v for k, v in sorted(vars(module).items())
                              if not k.startswith("_") and (inspect.isclass(v) or inspect.isfunction(v))]
        for cls in [v for v in objects if inspect.isclass(v)]:
            objects += [v for k, v in sorted(vars(cls).items()) if not k.startswith("_") and inspect.isfunction(v)]
        for obj in objects:
            doc = inspect.getdoc(obj)
            if doc and doc not in seen:
                seen.add(doc)
                docs.append(" ".join(doc.split()))
    return docs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--part", choices=["train", "test", "all"], default="all")
    a = ap.parse_args()
    docs = docstrings()
    if a.part != "all":
        docs = docs[a.part == "test"::2]
    with open(a.out, "w", encoding="utf-8") as f:
        f.writelines(d + "\n" for d in docs)
    print(f"wrote {a.out}: {len(docs)} docstrings")


if __name__ == "__main__":
    main()
