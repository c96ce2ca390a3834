"""Generate a small synthetic supervised fine-tuning dataset for pipelines/sft.yaml and chat.yaml.

Without ``--chat``: ``prompt`` / ``response`` text columns (single-turn instruction pairs). With
``--chat``: a ``messages`` column, a list of ``{role, content}`` objects (an optional system turn,
then 1-4 user/assistant exchanges). A few samples are long, so ``max_length`` truncation shows in
the stats. Deterministic (seeded), JSONL, no downloads, well under a second.

    python scripts/gen_sft.py --out data/sft --rows 400 --files 2
    python scripts/gen_sft.py --out data/chat --chat --rows 300 --files 2
"""
from __future__ import annotations

import argparse
import json
import os
import random

THINGS = ["invoice", "password", "router", "printer", "refund", "order", "account", "laptop", "subscription",
          "shipment", "license", "backup", "calendar", "report", "database", "badge", "monitor", "ticket"]
VERBS = ["reset", "cancel", "update", "track", "renew", "restore", "export", "configure", "replace", "check"]
SYSTEMS = ["You are a support assistant. Answer briefly.", "You help customers with their accounts.",
           "Be polite and precise."]


def question(r: random.Random) -> str:
    thing, verb = r.choice(THINGS), r.choice(VERBS)
    return r.choice([f"How do I {verb} my {thing}?", f"Can you help me {verb} the {thing}?",
                     f"My {thing} needs attention. What should I do to {verb} it?",
                     f"Why can't I {verb} my {thing} today?"])


def answer(r: random.Random, long: bool) -> str:
    thing, verb = r.choice(THINGS), r.choice(VERBS)
    steps = [f"Open the {thing} page.", f"Choose {verb} from the menu.", "Confirm with the code we sent you.",
             f"Wait until the {thing} shows as done.", "Contact us again if it fails."]
    n = len(steps) * (6 if long else 1)
    body = " ".join(steps[i % len(steps)] for i in range(r.randrange(2, n + 1)))
    return f"Sure. To {verb} your {thing}: {body}"


def pair(r: random.Random) -> dict:
    long = r.random() < 0.05
    prompt = question(r)
    if long:
        prompt = "Some context first. " + " ".join(question(r) for _ in range(30)) + " " + prompt
    return {"prompt": prompt, "response": answer(r, r.random() < 0.05)}


def chat(r: random.Random) -> dict:
    msgs = [{"role": "system", "content": r.choice(SYSTEMS)}] if r.random() < 0.5 else []
    for _ in range(r.randrange(1, 5)):
        msgs.append({"role": "user", "content": question(r)})
        msgs.append({"role": "assistant", "content": answer(r, r.random() < 0.05)})
    return {"messages": msgs}


def generate(out: str, rows: int, files: int, seed: int = 0, chat_mode: bool = False) -> list[str]:
    os.makedirs(out, exist_ok=True)
    r = random.Random(seed)
    per = -(-rows // files)
    paths = []
    for f in range(files):
        path = os.path.join(out, f"{'chat' if chat_mode else 'sft'}-{f:05d}.jsonl")
        with open(path, "w", encoding="utf-8") as fh:
            for i in range(f * per, min(rows, (f + 1) * per)):
                rec = {"id": f"{'c' if chat_mode else 's'}{i:06d}", **(chat(r) if chat_mode else pair(r))}
                fh.write(json.dumps(rec, sort_keys=True) + "\n")
        paths.append(path)
    return paths


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="data/sft")
    ap.add_argument("--rows", type=int, default=400)
    ap.add_argument("--files", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--chat", action="store_true", help="write a messages column instead of prompt/response")
    a = ap.parse_args()
    paths = generate(a.out, a.rows, a.files, a.seed, a.chat)
    print(f"wrote {a.rows} samples in {len(paths)} files to {a.out}")


if __name__ == "__main__":
    main()
