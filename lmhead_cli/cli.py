"""The ``lmhead`` command: parse options, call the library, render. No logic here."""

from __future__ import annotations

import functools
import math
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from . import __version__
from .analyses.census import census
from .checkpoint.checkpoint import Checkpoint
from .checkpoint.open import open_checkpoint
from .core.errors import CheckpointError, LmheadError
from .model.anatomy import HeadAnatomy, locate_head
from .model.conventions import NormKind
from .model.head_settings import Overrides

if TYPE_CHECKING:
    from .inputs.tokens import Vocabulary
    from .logits.request import Positions, TargetIds

# Modules only some commands use (tokenizers, hidden-state files, tying, prediction) are imported inside them.

EXIT_PROBLEMS = 1  # the input was read, and problems were found in it
EXIT_INPUT = 2  # bad input: a file or option lmhead cannot use (also click's usage errors)
EXIT_INTERNAL = 3  # lmhead itself failed: out of memory, or a bug
EXIT_INTERRUPTED = 130  # Ctrl-C: 128 + SIGINT, as shells report it; nothing partial is printed


def handle_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """``LmheadError`` -> one line on stderr and exit 2; anything else exit 3; a traceback only with --debug."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        ctx = click.get_current_context()
        debug = ctx.find_root().params.get("debug", False) or ctx.meta.get("lmhead.debug", False)
        from . import render

        try:
            return command(*args, **kwargs)
        except LmheadError as exc:
            if debug:
                raise
            render.error(exc)
            sys.exit(EXIT_INPUT)
        except (click.exceptions.Exit, click.ClickException, SystemExit, KeyboardInterrupt):
            raise
        except MemoryError:
            if debug:
                raise
            render.error(LmheadError(None, "out of memory", hint="lower --chunk-rows or select fewer --positions"))
            sys.exit(EXIT_INTERNAL)
        except Exception as exc:
            if debug:
                raise
            render.internal_error(exc)
            sys.exit(EXIT_INTERNAL)

    return wrapper


# readable=False: lmhead checks each path itself and says why it cannot read it, in its own format.
PATH = click.Path(path_type=Path, readable=False)
ckpt_argument = click.argument("ckpt", metavar="CKPT", type=click.Path(path_type=str, readable=False))  # str: hf://org/name as written


class _Parsed(click.ParamType):
    """A user string parsed where it enters, by ``logits.request``'s class of the same name (imported only
    when the option is given); its ``LmheadError`` becomes click's usage error for the option."""

    kind = ""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if not isinstance(value, str):
            return value
        from .logits import request

        try:
            return getattr(request, self.kind).parse(value)
        except LmheadError as exc:
            self.fail(exc.reason, param, ctx)


class PositionsParam(_Parsed):
    name = kind = "Positions"


class TargetsParam(_Parsed):
    name = kind = "TargetIds"


fetch_values_option = click.option(
    "--fetch-values",
    is_flag=True,
    help="With hf://: also read the embedding and head values to compare them (says how many bytes first).",
)


OVERRIDE_OPTIONS = (
    (
        "--norm",
        click.Choice(["layernorm", "rmsnorm", "rmsnorm-1p", "layernorm-1p", "none"]),
        "Final norm kind, in place of the architecture table's (rmsnorm-1p: x·(1+w)).",
    ),
    ("--eps", float, "Final norm epsilon, in place of the config's."),
    ("--logit-scale", float, "Multiply the logits by this, in place of the table's scale or divisor."),
    ("--softcap", float, "Soft-cap the logits at this (c·tanh(x/c)); 0 turns the table's softcap off."),
)


def _remember_override(ctx: click.Context, param: click.Parameter, value: Any) -> None:
    if isinstance(value, float) and not (math.isfinite(value) and (value > 0 if param.name == "logit_scale" else value >= 0)):
        raise click.BadParameter(f"{value} is not usable: it must be finite and {'> 0' if param.name == 'logit_scale' else '≥ 0'}")
    if value is not None:
        ctx.meta.setdefault("lmhead.overrides", {})[param.name] = value


def _overrides() -> Overrides:
    given = dict(click.get_current_context().meta.get("lmhead.overrides", {}))
    if "norm" in given:
        given["norm"] = NormKind(given["norm"])
    return Overrides(**given)


def _remember_debug(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value:
        ctx.meta["lmhead.debug"] = True


# ``lmhead --debug count ...`` and ``lmhead count ... --debug`` alike
debug_option = click.option(
    "--debug", is_flag=True, expose_value=False, callback=_remember_debug, help="Show Python tracebacks for errors."
)


def math_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """--norm, --eps, --logit-scale, --softcap: only on the commands whose answer they change (topk's
    logits; doctor's head settings and verdict), never where they would be accepted and ignored."""
    for flag, kind, helptext in OVERRIDE_OPTIONS:
        command = click.option(flag, type=kind, expose_value=False, callback=_remember_override, help=helptext)(command)
    return command


def anatomy_options(command: Callable[..., Any]) -> Callable[..., Any]:
    command = debug_option(command)
    command = click.option("--explain", is_flag=True, help="Show which rule identified each role and where each setting came from.")(
        command
    )
    command = fetch_values_option(command)
    command = click.option(
        "--remote", is_flag=True, help="CKPT is a repo id to read from the Hugging Face Hub over the network (same as hf://CKPT)."
    )(command)
    command = click.option(
        "--revision", metavar="REV", help="With a Hugging Face repo id as CKPT: branch, tag or commit (in the local cache, or on the hub)."
    )(command)
    command = click.option("--embedding", "embedding", metavar="NAME", help="Tensor to treat as the token embedding.")(command)
    command = click.option("--head", "head", metavar="NAME", help="Tensor to treat as the LM head weight.")(command)
    return command


json_option = click.option("--json", "json_", is_flag=True, help="One JSON object on stdout, for scripts.")


def _open(
    ckpt_path: str,
    head: str | None,
    embedding: str | None,
    revision: str | None,
    remote: bool,
    fetch_values: bool,
    full: bool = False,
    strict: bool = True,
) -> tuple[Checkpoint, HeadAnatomy, bool]:
    """The checkpoint, its anatomy, and whether embedding and head values may be read: always for
    local files; over hf:// only with --fetch-values, after saying how many bytes that reads."""
    from . import render

    ckpt = open_checkpoint(ckpt_path, revision=revision, strict=strict, remote=remote)
    click.get_current_context().call_on_close(ckpt.close)  # readers hold descriptors; in-process callers run many commands
    values = ckpt.remote is None or fetch_values
    if not values and full:
        raise CheckpointError(ckpt.path, "--full compares every value, and hf:// reads values only when asked", hint="add --fetch-values")
    overrides = _overrides()
    if ckpt.remote is not None and fetch_values:
        from .analyses.tying import value_bytes  # only here: count on a local checkpoint never loads tying

        names = locate_head(ckpt, head=head, embedding=embedding, strict=strict, values=False, overrides=overrides)
        render.note(f"--fetch-values: reading up to {value_bytes(ckpt, names):,} bytes of embedding and head values from the hub")
    anatomy = locate_head(ckpt, head=head, embedding=embedding, strict=strict, values=values, overrides=overrides)
    for warning in _warnings(ckpt, anatomy, values):
        render.warn(warning)
    return ckpt, anatomy, values


def _warnings(ckpt: Checkpoint, anatomy: HeadAnatomy, values: bool) -> list[str]:
    """What makes the answer a guess: over hf:// without values, a tie only the values decide."""
    if values:
        return []
    from .analyses.tying import unread_warnings

    return unread_warnings(ckpt, anatomy, values)


def _vocabulary(ckpt: Checkpoint, tokenizer: Path | None) -> Vocabulary | None:
    from .inputs.vocabulary import vocabulary_of

    return vocabulary_of(ckpt, tokenizer)


def _vocabulary_size(ckpt: Checkpoint, tokenizer: Path | None) -> int | None:
    from .inputs.vocabulary import vocabulary_size_of

    return vocabulary_size_of(ckpt, tokenizer)


class LmheadGroup(click.Group):
    """click's usage errors (a missing argument, a bad option value) as ``error: <param>: <reason>``, exit 2."""

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            result = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.exceptions.NoArgsIsHelpError as exc:  # plain `lmhead`: the help, as click shows it
            exc.show()
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            from . import render

            render.error(usage_error(exc))
            sys.exit(EXIT_INPUT)
        except click.exceptions.Abort as exc:
            click.echo("Aborted!", err=True)
            sys.exit(EXIT_INTERRUPTED if isinstance(exc.__cause__, KeyboardInterrupt) else 1)
        sys.exit(result if isinstance(result, int) else 0)


def usage_error(exc: click.ClickException) -> LmheadError:
    """The parameter a click error is about in the path slot, its reason after it, how to get help as the hint."""
    ctx = exc.ctx if isinstance(exc, click.UsageError) else None
    hint = f"see '{ctx.command_path} --help'" if ctx is not None else "see 'lmhead --help'"
    param = exc.param if isinstance(exc, click.BadParameter) else None
    reason = exc.format_message()
    name = None
    if param is not None:
        name = param.human_readable_name if param.param_type_name == "argument" else "/".join(param.opts)
    if isinstance(exc, click.exceptions.NoSuchOption):
        name = exc.option_name
        reason = "no such option" + (f" (did you mean {', '.join(exc.possibilities)}?)" if exc.possibilities else "")
    elif isinstance(exc, click.exceptions.MissingParameter):
        reason = "missing argument" if param is not None and param.param_type_name == "argument" else "missing value"
    elif isinstance(exc, click.BadParameter) and reason.startswith("Invalid value") and ": " in reason:
        reason = reason.split(": ", 1)[1]
    if len(reason) > 1 and reason[0].isupper() and reason[1].islower():
        reason = reason[0].lower() + reason[1:]
    return LmheadError(name or (ctx.command_path if ctx is not None else "lmhead"), reason.rstrip("."), hint=hint)


@click.group(cls=LmheadGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="lmhead")
@click.option("--debug", is_flag=True, help="Show Python tracebacks for errors.")
def cli(debug: bool) -> None:
    """Inspect the output layer (LM head) of a language-model checkpoint.

    \b
    CKPT is a Hugging Face model folder (safetensors or PyTorch, single or
    sharded), a .safetensors / .gguf / .bin / .pt file, an *.index.json, a
    repo id (org/name) already in the local Hugging Face cache, or
    hf://org/name[@revision] to read a safetensors or GGUF repo from the hub
    without downloading its weights (hf://org/name/file.gguf: one GGUF file;
    the only way lmhead touches the network).

    \b
    Examples:
      lmhead count sample_weights/gpt2-tied
      lmhead check-tying sample_weights/llama-bf16 --expect untied
      lmhead topk sample_weights/gpt2-tied sample_weights/gpt2-tied/hidden.npy -k 5
      lmhead doctor sample_weights/qwen2-sharded
    """


@cli.command()
@ckpt_argument
@anatomy_options
@click.option("--tokenizer", type=PATH, help="tokenizer.json to size the vocabulary (default: beside CKPT).")
@json_option
@handle_errors
def count(
    ckpt: str,
    head: str | None,
    embedding: str | None,
    revision: str | None,
    remote: bool,
    fetch_values: bool,
    explain: bool,
    tokenizer: Path | None,
    json_: bool,
) -> None:
    """Count parameters: LM head vs token embedding vs the rest.

    Reads headers only, so a 100 GB checkpoint counts as fast as a 1 MB one
    (unless a stored head may be a copy of the embedding: then it compares them).

    \b
    Example:
      lmhead count sample_weights/llama-bf16
      lmhead count path/to/model.safetensors.index.json --json | jq .head_share
    """
    from . import render
    from .render import emit, emit_json
    from .render.census import census_json, census_view

    checkpoint, anatomy, values = _open(ckpt, head, embedding, revision, remote, fetch_values)
    result = census(checkpoint, anatomy, tokenizer_vocab=_vocabulary_size(checkpoint, tokenizer))
    for warning in result.warnings:
        render.warn(warning)
    if json_:
        emit_json(_with_warnings(_with_explain(census_json(checkpoint, anatomy, result), anatomy, explain), checkpoint, anatomy, values))
    else:
        emit(census_view(checkpoint, anatomy, result))
        _emit_explain(anatomy, explain)


@cli.command("check-tying")
@ckpt_argument
@anatomy_options
@click.option("--full", is_flag=True, help="Compare every row and report difference statistics.")
@click.option("--expect", type=click.Choice(["tied", "untied"]), help="Exit 1 when the verdict differs (for release pipelines).")
@json_option
@handle_errors
def check_tying(
    ckpt: str,
    head: str | None,
    embedding: str | None,
    revision: str | None,
    remote: bool,
    explain: bool,
    full: bool,
    expect: str | None,
    fetch_values: bool,
    json_: bool,
) -> None:
    """Are the token embedding and the LM head tied, and does the checkpoint agree with itself?

    Exit status: 0 consistent, 1 problems found (or --expect not met), 2 bad input, 3 internal error.

    \b
    Example:
      lmhead check-tying sample_weights/gpt2-tied
      lmhead check-tying my-finetune/ --expect untied --json
    """
    from . import render
    from .analyses.tying import diagnose_tying
    from .render import emit, emit_json
    from .render.tying import tying_json, tying_view

    checkpoint, anatomy, values = _open(ckpt, head, embedding, revision, remote, fetch_values, full=full)
    fetched = checkpoint.remote.fetched if checkpoint.remote is not None else None  # bytes read over the network so far
    wanted = values and render.progress_wanted(anatomy.vocab_size * anatomy.hidden_size)  # as topk shows its bar
    with render.progress_bar("comparing", enabled=not json_ and wanted, fetched=fetched) as progress:
        report = diagnose_tying(checkpoint, anatomy, full=full, values=values, progress=progress)
    if json_:
        emit_json(_with_warnings(_with_explain(tying_json(checkpoint, report, expect), anatomy, explain), checkpoint, anatomy, values))
    else:
        emit(tying_view(checkpoint, report, expect))
        _emit_explain(anatomy, explain)
    if report.problems or (expect is not None and report.tied != (expect == "tied")):
        sys.exit(EXIT_PROBLEMS)


@cli.command()
@ckpt_argument
@click.argument("hidden", metavar="HIDDEN", type=PATH)
@click.option("-k", "k", default=10, show_default=True, type=click.IntRange(min=1), help="How many predictions per position.")
@click.option("--key", metavar="NAME", help="Array to use in an .npz / .safetensors with several.")
@click.option("--no-norm", is_flag=True, help="States are already normalised (transformers' last hidden_states entry).")
@click.option("--layers", is_flag=True, help="HIDDEN is a stack of every layer's states (L, T, d): show a logit-lens grid.")
@click.option(
    "--last-normed", is_flag=True, help="With --layers: the last entry is already normalised (transformers' output_hidden_states)."
)
@click.option("--include-padded", is_flag=True, help="Keep head rows beyond the tokenizer's vocabulary (masked by default).")
@click.option("--positions", metavar="LIST", type=PositionsParam(), help="Positions to show, e.g. 0,5,-1 or 2:8.")
@click.option(
    "--targets",
    metavar="IDS|FILE.npy",
    type=TargetsParam(),
    help="Next-token ids (comma-separated or a .npy): one per position of the file, or one per --positions entry.",
)
@click.option("--text", metavar="TEXT", help="The input text: position i's target is its token i+1.")
@click.option("--tokenizer", type=PATH, help="tokenizer.json (default: beside CKPT).")
@click.option(
    "--chunk-rows",
    type=click.IntRange(min=1),
    help="Head rows per streamed chunk [default: ~4 MiB of float32 for up to 64 states, ~16 MiB for more or over hf://].",
)
@anatomy_options
@math_options
@json_option
@handle_errors
def topk(
    ckpt: str,
    hidden: Path,
    k: int,
    key: str | None,
    no_norm: bool,
    layers: bool,
    last_normed: bool,
    include_padded: bool,
    positions: Positions | None,
    targets: TargetIds | None,
    text: str | None,
    tokenizer: Path | None,
    chunk_rows: int | None,
    head: str | None,
    embedding: str | None,
    revision: str | None,
    remote: bool,
    fetch_values: bool,
    explain: bool,
    json_: bool,
) -> None:
    """Top-k next-token predictions from hidden states: FinalNorm(h) · Wᵀ (+ b).

    HIDDEN is .npy, .npz or .safetensors of shape (d,), (T, d) or (B, T, d);
    with --layers, (L, T, d). Position i predicts token i+1.

    \b
    Example:
      lmhead topk sample_weights/gpt2-tied sample_weights/gpt2-tied/hidden.npy -k 5 \\
          --text "$(cat sample_weights/gpt2-tied/text.txt)"
      lmhead topk sample_weights/gpt2-tied sample_weights/gpt2-tied/hidden_layers.npy --layers
    """
    from . import render
    from .inputs.hidden import load_hidden
    from .logits import request
    from .render.topk import k_warnings, lens_view, topk_header, topk_json, topk_view

    if targets and text:
        raise LmheadError("--targets", "give --targets or --text, not both")
    if last_normed and not layers:
        raise LmheadError("--last-normed", "goes with --layers")
    asked = request.TopkRequest(k, positions, targets, text, not no_norm, last_normed, include_padded, chunk_rows)
    checkpoint, anatomy, values = _open(ckpt, head, embedding, revision, remote, fetch_values)
    for note in checkpoint.notes:
        render.note(note)
    states = load_hidden(hidden, anatomy.hidden_size, key=key, layers=layers)
    vocab = _vocabulary(checkpoint, tokenizer)
    plan = request.plan(checkpoint, anatomy, states, vocab, asked)
    fetched = checkpoint.remote.fetched if checkpoint.remote is not None else None  # bytes read over the network so far
    wanted = fetched is not None or render.progress_wanted(anatomy.vocab_size * anatomy.hidden_size)
    with render.progress_bar("projecting", enabled=not json_ and wanted, fetched=fetched) as progress:
        result = request.run(checkpoint, anatomy, states, plan, progress)
    used = result.topk.ids.shape[1]  # k, or every row the softmax ranges over when k is more
    guessed, warnings = request.settled_warnings(checkpoint, anatomy, plan)
    found = [*result.warnings, *k_warnings(k, used, result.topk.masked_rows)]
    guessed, warnings = [*guessed, *found], [*guessed, *found, *warnings[len(guessed) :]]
    for line in guessed:
        render.warn(line)
    meta: dict[str, Any] = {"checkpoint": checkpoint.shown, "hidden": str(hidden), "head": anatomy.head_matrix, "k": used}
    if used < k:
        meta["k_requested"] = k
    meta["warnings"] = [*warnings, *_warnings(checkpoint, anatomy, values)]
    meta["overrides"] = anatomy.overrides
    if plan.text_ids is not None and plan.text_note is not None:
        meta["text_token_ids"], meta["text_tokenization"] = plan.text_ids, plan.text_note
    if json_:
        render.emit_json(_with_explain(topk_json(result, vocab, meta), anatomy, explain))
        return
    header = topk_header(anatomy, vocab, no_norm, result.topk.masked_rows, plan.text_note, list(plan.notices))
    text_ids = plan.text_ids
    view = lens_view(result, vocab, header, text_ids, width=render.output_width()) if layers else topk_view(result, vocab, header)
    render.emit(view)
    _emit_explain(anatomy, explain)


@cli.command("tokens")
@ckpt_argument
@anatomy_options
@click.option("--tokenizer", type=PATH, help="tokenizer.json to categorise the tokens with (default: beside CKPT).")
@click.option("--top", default=20, show_default=True, type=click.IntRange(min=0), help="How many suspects to list.")
@click.option("--all", "every", is_flag=True, help="With --json: every token's indicators, category and evidence.")
@click.option(
    "--indicator",
    type=click.Choice(["cosine", "cosine-no-pc", "embedding-norm"]),
    help="What to rank by [default: embedding-norm when untied, else cosine]. cosine-no-pc reads the head twice.",
)
@click.option("--reference-tokens", metavar="IDS", help="Known-unused tokens to compare with, e.g. 7-105 or 177,178,180.")
@click.option("--chunk-rows", type=click.IntRange(min=1), help="Rows per streamed chunk [default: ~4 MiB of float32].")
@json_option
@handle_errors
def tokens(
    ckpt: str,
    head: str | None,
    embedding: str | None,
    revision: str | None,
    remote: bool,
    fetch_values: bool,
    explain: bool,
    tokenizer: Path | None,
    top: int,
    every: bool,
    indicator: str | None,
    reference_tokens: str | None,
    chunk_rows: int | None,
    json_: bool,
) -> None:
    """Under-trained and unreachable tokens, from the weights alone.

    Ranks every token by how close its head row is to those of known-unused tokens
    (Land & Bartolo 2024, "Fishing for Magikarp"), or by its input embedding's norm
    when untied; lists bit-identical, zero and mean rows first (near-certain), and
    each token's tokenizer category. A ranking of suspects: only prompting confirms one.

    \b
    Example:
      lmhead tokens model.gguf --top 30
      lmhead tokens my-finetune/ --json --all | jq '.candidates[].token'
    """
    from . import render
    from .analyses.undertrained import Indicator, find_undertrained, parse_ids
    from .render.undertrained import tokens_json, tokens_view

    checkpoint, anatomy, values = _open(ckpt, head, embedding, revision, remote, fetch_values)
    if not values:
        raise CheckpointError(
            checkpoint.path, "tokens reads every head row, and hf:// reads values only when asked", hint="add --fetch-values"
        )
    vocab = _vocabulary(checkpoint, tokenizer)
    reference = parse_ids(reference_tokens, anatomy.vocab_size) if reference_tokens is not None else None
    wanted = not json_ and render.progress_wanted(anatomy.vocab_size * anatomy.hidden_size)
    with render.progress_bar("reading rows", enabled=wanted) as progress:
        report = find_undertrained(
            checkpoint,
            anatomy,
            vocab,
            reference=reference,
            indicator=Indicator(indicator) if indicator else None,
            chunk_rows=chunk_rows,
            progress=progress,
        )
    if json_:
        render.emit_json(_with_explain(tokens_json(checkpoint, report, vocab, top, every), anatomy, explain))
    else:
        render.emit(tokens_view(checkpoint, report, vocab, top))
        _emit_explain(anatomy, explain)


@cli.command()
@ckpt_argument
@anatomy_options
@math_options
@click.option("--tokenizer", type=PATH, help="tokenizer.json to audit the vocabulary against (default: beside CKPT).")
@click.option("--full", is_flag=True, help="Compare embedding and head values in full (difference statistics).")
@json_option
@handle_errors
def doctor(
    ckpt: str,
    head: str | None,
    embedding: str | None,
    revision: str | None,
    remote: bool,
    explain: bool,
    tokenizer: Path | None,
    full: bool,
    fetch_values: bool,
    json_: bool,
) -> None:
    """Every check before you ship or load a checkpoint: counts, tying, vocabulary, head.

    Exit status: 0 healthy, 1 problems found, 2 bad input, 3 internal error.

    \b
    Example:
      lmhead doctor sample_weights/llama-bf16
      lmhead doctor my-finetune/ --json | jq .problems
    """
    from .analyses.doctor import doctor as run_doctor
    from .render import emit, emit_json
    from .render.doctor import doctor_json, doctor_view

    checkpoint, anatomy, values = _open(ckpt, head, embedding, revision, remote, fetch_values, full=full, strict=False)
    report = run_doctor(checkpoint, anatomy, _vocabulary(checkpoint, tokenizer), full=full, values=values)
    if json_:
        emit_json(_with_warnings(doctor_json(checkpoint, report), checkpoint, anatomy, values))
    else:
        emit(doctor_view(checkpoint, report))
        _emit_explain(anatomy, explain)
    if not report.healthy:
        sys.exit(EXIT_PROBLEMS)


@cli.command()
@click.argument("base", metavar="BASE", type=click.Path(path_type=str, readable=False))
@click.argument("other", metavar="OTHER", type=click.Path(path_type=str, readable=False))
@click.option("--revision", metavar="REV", help="With Hugging Face repo ids: branch, tag or commit, for both.")
@click.option("--fetch-values", is_flag=True, help="With hf://: read the head and embedding values (needed for a diff).")
@click.option("--base-tokenizer", type=PATH, help="tokenizer.json of BASE (default: beside it).")
@click.option("--tokenizer", type=PATH, help="tokenizer.json of OTHER (default: beside it).")
@json_option
@handle_errors
def diff(
    base: str,
    other: str,
    revision: str | None,
    fetch_values: bool,
    base_tokenizer: Path | None,
    tokenizer: Path | None,
    json_: bool,
) -> None:
    """What changed in the head and the vocabulary from BASE to OTHER.

    Structure (sizes, tying, norm, dtypes), the values of the head, embedding
    and final norm (streamed in chunks), how added rows were initialised and
    whether they trained, and the tokenizers' differences.

    Exit status: 0 no problem, 1 problems found (untrained new rows, a head
    re-tied), 2 bad input, 3 internal error.

    \b
    Example:
      lmhead diff base-model/ finetuned/
      lmhead diff model/ model-Q8_0.gguf --json | jq .head.relative_change
    """
    from .analyses.diff import diff_checkpoints
    from .render import emit, emit_json
    from .render.diff import diff_json, diff_view

    opened = []
    for path, tok in ((base, base_tokenizer), (other, tokenizer)):
        ckpt, anatomy, values = _open(path, None, None, revision, False, fetch_values)
        if not values:
            raise CheckpointError(ckpt.path, "a diff compares values, and hf:// reads values only when asked", hint="add --fetch-values")
        opened.append((ckpt, anatomy, _vocabulary(ckpt, tok)))
    (a, anat_a, vocab_a), (b, anat_b, vocab_b) = opened
    report = diff_checkpoints(a, anat_a, vocab_a, b, anat_b, vocab_b)
    if json_:
        emit_json(diff_json(report))
    else:
        emit(diff_view(report))
    if report.problems:
        sys.exit(EXIT_PROBLEMS)


def _with_warnings(data: dict[str, Any], ckpt: Checkpoint, anatomy: HeadAnatomy, values: bool) -> dict[str, Any]:
    warnings = [w for w in _warnings(ckpt, anatomy, values) if w not in data.get("warnings", [])]  # doctor has them already
    if warnings:
        data["warnings"] = data.get("warnings", []) + warnings
    return data


def _with_explain(data: dict[str, Any], anatomy: HeadAnatomy, explain: bool) -> dict[str, Any]:
    if explain:
        from .render.explain import explain_json

        data["explain"] = explain_json(anatomy)
    return data


def _emit_explain(anatomy: HeadAnatomy, explain: bool) -> None:
    if explain:
        from .render import emit
        from .render.explain import explain_view

        emit(explain_view(anatomy))


def main() -> None:
    cli(prog_name="lmhead")


def run() -> None:
    """The ``lmhead`` program (console script and ``python -m lmhead_cli``): ``main``, then the end of
    the process without Python's interpreter teardown, once stdout and stderr are flushed.

    Tearing down numpy, rich and the rest took 20-30 ms of every run, a fifth of ``count``'s.
    lmhead keeps no file open for writing and registers no exit handler, so skipping it loses
    nothing; the exit status is the one ``main`` gives. Anything but a ``SystemExit`` (an interrupt)
    and a failed flush (a closed pipe) take Python's usual way out.
    """
    try:
        main()
        status: object = 0
    except SystemExit as exc:
        status = exc.code
    if status is not None and not isinstance(status, int):
        print(status, file=sys.stderr)  # what sys.exit does with a message
        status = 1
    code = status if isinstance(status, int) else 0
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except OSError:  # e.g. the reader of a pipe went away: let Python report it as it always has
        sys.exit(code)
    os._exit(code)
