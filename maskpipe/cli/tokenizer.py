"""``maskpipe tokenizer train`` / ``check``: a tokenizer for your text, learnt after privacy
masking, and the ``[UNK]`` share of any tokenizer on an input (docs/training.md)."""
from __future__ import annotations

from typing import List, Optional

import typer

from maskpipe.cli.common import app, fail
from maskpipe.errors import MaskpipeError

tokenizer_app = typer.Typer(no_args_is_help=True, help="Train or check a tokenizer.json for an input.")
app.add_typer(tokenizer_app, name="tokenizer")

INPUT_HELP = ("A pipeline YAML (its input, after its privacy rules), a maskpipe output folder (its .txt "
              "members) or a text file (one document per line).")
FIELD_HELP = "Text column (pipeline) or member (output, e.g. body.txt); repeatable. Default: the tokenised ones."


@tokenizer_app.command("train")
def train(
    input_: str = typer.Option(..., "--input", help=INPUT_HELP),
    vocab_size: int = typer.Option(..., "--vocab-size", min=100, help="Vocabulary size, special tokens included."),
    out: str = typer.Option("tokenizer.json", "--out", help="Where to write the tokenizer.json."),
    model: str = typer.Option("wordpiece", "--model", help="wordpiece (BERT style) or bpe (byte-level, no [UNK])."),
    field: Optional[List[str]] = typer.Option(None, "--field", help=FIELD_HELP),
    lowercase: bool = typer.Option(False, "--lowercase", help="Lowercase and strip accents (WordPiece)."),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="Use at most this many documents."),
    debug: bool = typer.Option(False, "--debug"),
) -> None:
    """Learn a tokenizer on the input after privacy masking, placeholders (<EMAIL>, <EMAIL_...) kept whole."""
    import os

    from maskpipe.tokenizer import input_texts, train as train_tokenizer, unk_id

    try:
        tok = train_tokenizer(input_texts(input_, field or (), limit), vocab_size, model, lowercase)
        os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
        tok.save(out)
    except MaskpipeError as e:
        fail(e, debug)
        return
    unk = unk_id(tok)
    typer.echo(f"wrote {out} ({model}, {tok.get_vocab_size(with_added_tokens=True)} tokens, "
               f"unk id {unk if unk is not None else 'none'})")


@tokenizer_app.command("check")
def check(
    tokenizer: str = typer.Option(..., "--tokenizer", help="A local tokenizer.json."),
    input_: str = typer.Option(..., "--input", help=INPUT_HELP),
    field: Optional[List[str]] = typer.Option(None, "--field", help=FIELD_HELP),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="Use at most this many documents."),
    debug: bool = typer.Option(False, "--debug"),
) -> None:
    """Print the share of tokens the tokenizer maps to [UNK] on the input (as stats.json counts it)."""
    from tokenizers import Tokenizer

    from maskpipe.tokenizer import input_texts, unk_share

    try:
        unk, total = unk_share(Tokenizer.from_file(tokenizer), input_texts(input_, field or (), limit))
    except MaskpipeError as e:
        fail(e, debug)
        return
    share = f"{100 * unk / total:.2f}%" if total else "n/a"
    typer.echo(f"{tokenizer}: {unk} [UNK] of {total} tokens ({share})")
