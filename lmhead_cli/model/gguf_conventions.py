"""llama.cpp's conventions for GGUF files: per architecture, which matrix is the head, which final
norm, which logit transforms, and under which metadata keys.

A GGUF names tensors the same way for every architecture (``token_embd.weight``, ``output.weight``,
``output_norm.weight``) and keeps settings under ``<general.architecture>.<key>``. What llama.cpp does
with them is written in each architecture's loader and graph, ``src/models/<arch>.cpp``; the rules
below cite those files as vendored in llama-cpp-python 0.3.36 (``vendor/llama.cpp``), and
``conversion/<family>.py`` of the same tree for what ``convert_hf_to_gguf.py`` stores.

Head rules (``HeadRule``):

* ``OPTIONAL``: ``output = create_tensor(OUTPUT, TENSOR_NOT_REQUIRED)``, and when absent
  ``output = token_embd`` (``TENSOR_DUPLICATED``): a stored head is used, else the model is tied.
* ``ALWAYS_TIED``: ``output = create_tensor(TOKEN_EMBD, TENSOR_DUPLICATED)`` unconditionally: the
  graph multiplies by the embedding; a stored ``output.weight`` is never read, and llama.cpp's loader
  refuses such a file ("wrong number of tensors", ``llama-model-loader.cpp`` ``done_getting_tensors``).
  The converter drops ``lm_head.weight`` for these (``conversion/gemma.py``: "lm_head is not used in
  llama.cpp").
* ``REQUIRED``: ``output = create_tensor(OUTPUT, 0)``: a file without ``output.weight`` does not load.

Norms: the final ``build_norm(..., LLM_NORM_RMS | LLM_NORM)`` of each graph; llama.cpp reads the RMS
epsilon key (``attention.layer_norm_rms_epsilon``) for RMSNorm models and the plain one for LayerNorm
models. Gemma's ``x · (1 + w)`` and Nemotron's LayerNorm1P are no exception: the converter stores
``1 + w`` (``conversion/gemma.py``: ``data_torch + 1`` for every ``norm.weight`` of Gemma and Gemma 2,
``norm_shift`` 1.0 for Gemma 3; ``conversion/nemotron.py`` likewise), so the stored weight multiplies
a plain norm and must not get another 1.

Transforms: ``final_logit_softcapping`` (c·tanh(x/c)) where the graph applies it; ``logit_scale``,
which command-r and cohere2 multiply the logits by and the granite family divides them by.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum
from typing import Any

from ..core.problems import Problem, ProblemKind
from .conventions import LAYERNORM, RMSNORM, Convention, NormKind, Transform, TransformKind

__all__ = ["GGUF", "GGUF_ARCHS", "GGUFArch", "HeadRule", "gguf_convention"]

LLAMA_CPP = "llama.cpp src/models"  # as vendored in llama-cpp-python 0.3.36


class HeadRule(str, Enum):
    OPTIONAL = "optional"  # output.weight when stored, else token_embd.weight
    ALWAYS_TIED = "always tied"  # token_embd.weight, whatever is stored
    REQUIRED = "required"  # output.weight must be stored


@dataclass(frozen=True)
class GGUFArch:
    """What llama.cpp's graph for one ``general.architecture`` does at the head."""

    file: str  # src/models/<file>
    head: HeadRule
    head_line: int  # where ``output`` is created
    norm: NormKind  # conventions.RMSNORM / LAYERNORM
    norm_line: int  # the final build_norm (the file named in ``norm_file`` when the graph is shared)
    norm_file: str | None = None
    transforms: tuple[Transform, ...] = ()  # keys relative to "<arch>."
    transform_lines: str = ""
    stored_plus_one: str | None = None  # the converter stores 1 + w for this family's norms (where)
    parameterless_norm: bool = False  # the graph normalises with no weight or bias (OLMo: build_norm(cur, NULL, NULL, ...))

    def cite(self, what: str) -> str:
        if what == "head":
            return f"{LLAMA_CPP}/{self.file}:{self.head_line}"
        if what == "norm":
            return f"{LLAMA_CPP}/{self.norm_file or self.file}:{self.norm_line}"
        return f"{LLAMA_CPP}/{self.file}:{self.transform_lines}"


OPT, TIED, REQ = HeadRule.OPTIONAL, HeadRule.ALWAYS_TIED, HeadRule.REQUIRED
SOFTCAP = "final_logit_softcapping"
GEMMA_PLUS_ONE = "conversion/gemma.py: norm.weight + 1"

# The families transformers also implements, by GGUF architecture name (llama-arch.cpp).
GGUF_ARCHS: dict[str, GGUFArch] = {
    "llama": GGUFArch("llama.cpp", OPT, 41, RMSNORM, 232),  # Llama, Mistral, Mixtral
    "qwen2": GGUFArch("qwen2.cpp", OPT, 26, RMSNORM, 138),
    "qwen2moe": GGUFArch("qwen2moe.cpp", REQ, 23, RMSNORM, 181),
    "qwen3": GGUFArch("qwen3.cpp", OPT, 22, RMSNORM, 146),
    "qwen3moe": GGUFArch("qwen3moe.cpp", OPT, 21, RMSNORM, 166),
    "qwen3next": GGUFArch("qwen3next.cpp", OPT, 46, RMSNORM, 204),
    "gemma": GGUFArch("gemma.cpp", TIED, 20, RMSNORM, 126, stored_plus_one=GEMMA_PLUS_ONE),
    # gemma2 soft-caps always; 30 when the key is absent (llama-hparams.h:136)
    "gemma2": GGUFArch(
        "gemma2.cpp",
        TIED,
        37,
        RMSNORM,
        157,
        transforms=(Transform(TransformKind.SOFTCAP, SOFTCAP, 30.0),),
        transform_lines="15,167",
        stored_plus_one=GEMMA_PLUS_ONE,
    ),
    "gemma3": GGUFArch(
        "gemma3.cpp",
        OPT,
        41,
        RMSNORM,
        201,
        transforms=(Transform(TransformKind.SOFTCAP, SOFTCAP, None),),
        transform_lines="14-15,210",
        stored_plus_one="conversion/gemma.py: norm_shift 1.0",
    ),
    "command-r": GGUFArch(
        "command-r.cpp",
        TIED,
        21,
        LAYERNORM,
        129,
        transforms=(Transform(TransformKind.MULTIPLY, "logit_scale", None),),
        transform_lines="4,137",
    ),
    "cohere2": GGUFArch(
        "cohere2.cpp",
        TIED,
        29,
        LAYERNORM,
        143,
        transforms=(Transform(TransformKind.MULTIPLY, "logit_scale", None),),
        transform_lines="12,151",
    ),
    "granite": GGUFArch(
        "granite.cpp", OPT, 66, RMSNORM, 188, transforms=(Transform(TransformKind.DIVIDE, "logit_scale", None),), transform_lines="7,198"
    ),
    "granitemoe": GGUFArch(
        "granite-moe.cpp",
        OPT,
        28,
        RMSNORM,
        188,
        norm_file="granite.cpp",
        transforms=(Transform(TransformKind.DIVIDE, "logit_scale", None),),
        transform_lines="5 (granite.cpp:198)",
    ),
    "granitehybrid": GGUFArch(
        "granite-hybrid.cpp",
        OPT,
        62,
        RMSNORM,
        184,
        transforms=(Transform(TransformKind.DIVIDE, "logit_scale", None),),
        transform_lines="5,193",
    ),
    "phi2": GGUFArch("phi2.cpp", REQ, 21, LAYERNORM, 126),
    "phi3": GGUFArch("phi3.cpp", OPT, 34, RMSNORM, 175),
    "olmo": GGUFArch("olmo.cpp", OPT, 21, LAYERNORM, 128, parameterless_norm=True),  # a LayerNorm without weight or bias
    "olmo2": GGUFArch("olmo2.cpp", REQ, 36, RMSNORM, 191),
    "olmoe": GGUFArch("olmoe.cpp", REQ, 19, RMSNORM, 160),
    "stablelm": GGUFArch("stablelm.cpp", REQ, 22, LAYERNORM, 158),
    "starcoder2": GGUFArch("starcoder2.cpp", OPT, 25, LAYERNORM, 145),
    "starcoder": GGUFArch("starcoder.cpp", OPT, 25, LAYERNORM, 132),  # GPTBigCode
    "gpt2": GGUFArch("gpt2.cpp", OPT, 24, LAYERNORM, 135),
    "bloom": GGUFArch("bloom.cpp", OPT, 31, LAYERNORM, 138),
    "falcon": GGUFArch("falcon.cpp", OPT, 23, LAYERNORM, 148),
    "mpt": GGUFArch("mpt.cpp", OPT, 25, LAYERNORM, 159),
    "gptneox": GGUFArch("gptneox.cpp", REQ, 58, LAYERNORM, 206),
    "mamba": GGUFArch("mamba.cpp", OPT, 52, RMSNORM, 125),
    "mamba2": GGUFArch("mamba2.cpp", OPT, 54, RMSNORM, 125, norm_file="mamba.cpp"),
    "jamba": GGUFArch("jamba.cpp", OPT, 40, RMSNORM, 186),
    "deepseek2": GGUFArch("deepseek2.cpp", OPT, 89, RMSNORM, 388),  # DeepSeek V2 and V3
    "nemotron": GGUFArch("nemotron.cpp", REQ, 20, LAYERNORM, 137, stored_plus_one="conversion/nemotron.py: norm.weight + 1 (LayerNorm1P)"),
    "exaone": GGUFArch("exaone.cpp", OPT, 19, RMSNORM, 124),
    "exaone4": GGUFArch("exaone4.cpp", OPT, 31, RMSNORM, 174),
    "smollm3": GGUFArch("smollm3.cpp", OPT, 20, RMSNORM, 139),
    "arcee": GGUFArch("arcee.cpp", OPT, 20, RMSNORM, 144),
    "ernie4_5": GGUFArch("ernie4-5.cpp", OPT, 30, RMSNORM, 152),
    "seed_oss": GGUFArch("seed-oss.cpp", OPT, 23, RMSNORM, 138),
    "lfm2": GGUFArch("lfm2.cpp", OPT, 40, RMSNORM, 283),
    "dbrx": GGUFArch("dbrx.cpp", REQ, 24, LAYERNORM, 141),
    "glm4": GGUFArch("glm4.cpp", OPT, 22, RMSNORM, 174),
    "apertus": GGUFArch("apertus.cpp", REQ, 24, RMSNORM, 158),
    "llama4": GGUFArch("llama4.cpp", OPT, 54, RMSNORM, 255),
    "falcon-h1": GGUFArch("falcon-h1.cpp", OPT, 60, RMSNORM, 197),
    "gpt-oss": GGUFArch("openai-moe.cpp", REQ, 31, RMSNORM, 162),
    "minimax-m2": GGUFArch("minimax-m2.cpp", REQ, 21, RMSNORM, 155),
}

# GGUF (llama.cpp, Ollama, LM Studio): one set of tensor names for every architecture.
GGUF = Convention(
    family="gguf",
    embedding=("token_embd.weight",),
    head=("output.weight",),  # absent: llama.cpp's loaders fall back to token_embd.weight (tied)
    final_norm=("output_norm",),
    eps_default=1e-5,
    tie_default=True,
)
EPS_SUFFIX = {RMSNORM: "attention.layer_norm_rms_epsilon", LAYERNORM: "attention.layer_norm_epsilon"}


def gguf_convention(arch: str | None, metadata: dict[str, Any] | None) -> Convention:
    """The convention for one GGUF: llama.cpp's rules for a known architecture, else the metadata's cues.

    Unknown architectures: the eps key present names the norm, and a ``final_logit_softcapping`` key
    is applied (llama.cpp treats 0 as off); a ``logit_scale`` is not, since its meaning varies by graph.
    """
    if arch is None:
        return GGUF
    metadata = metadata or {}
    rules = GGUF_ARCHS.get(arch)
    if rules is not None:
        transforms = tuple(replace(t, key=f"{arch}.{t.key}") for t in rules.transforms)
        key = f"{arch}.{EPS_SUFFIX[rules.norm]}"
        return replace(GGUF, norm=rules.norm, eps_keys=(key,), transforms=transforms, parameterless_norm=rules.parameterless_norm)
    rms_key, layer_key = (f"{arch}.{EPS_SUFFIX[kind]}" for kind in (RMSNORM, LAYERNORM))
    norm = LAYERNORM if rms_key not in metadata and layer_key in metadata else RMSNORM
    return replace(
        GGUF, norm=norm, eps_keys=(rms_key, layer_key), transforms=(Transform(TransformKind.SOFTCAP, f"{arch}.{SOFTCAP}", None),)
    )


@dataclass(frozen=True)
class GGUFTying:
    config_tied: bool | None  # what the file directs: False when a head that llama.cpp reads is stored
    source: str
    forced: bool  # llama.cpp multiplies by token_embd.weight whatever is stored
    problems: tuple[Problem, ...]  # the file will not load in llama.cpp


def gguf_tying(arch: str | None, head: str | None, emb: str | None) -> GGUFTying:
    """Which matrix llama.cpp's loader makes the head, by the architecture's rule (OPTIONAL when unknown)."""
    rules = GGUF_ARCHS.get(arch or "")
    embedding = emb or "token_embd.weight"
    if rules is None:
        if head is None:
            return GGUFTying(None, f"GGUF stores no output.weight: llama.cpp reuses {embedding} as the head", False, ())
        return GGUFTying(False, f"GGUF stores {head}: llama.cpp uses it as the head", False, ())
    cite = rules.cite("head")
    if rules.head is HeadRule.ALWAYS_TIED:
        if head is None:
            return GGUFTying(
                None, f"GGUF stores no output.weight: llama.cpp's {arch} graph always uses {embedding} as the head ({cite})", True, ()
            )
        problem = Problem(
            ProblemKind.GGUF_HEAD_NEVER_READ,
            f"{head} is stored, but llama.cpp's {arch} graph never reads it and always uses {embedding} as the head ({cite}); "
            "llama.cpp refuses to load a file with tensors it does not use (wrong number of tensors)",
        )
        return GGUFTying(
            None, f"GGUF stores {head}, but llama.cpp's {arch} graph always uses {embedding} as the head ({cite})", True, (problem,)
        )
    if head is None:
        if rules.head is HeadRule.REQUIRED:
            problem = Problem(
                ProblemKind.GGUF_HEAD_MISSING,
                f"llama.cpp's {arch} graph requires output.weight ({cite}), which this file does not store: "
                f"it will not load in llama.cpp (shown with {embedding} as the head)",
            )
            return GGUFTying(None, f"GGUF stores no output.weight, which llama.cpp's {arch} requires ({cite})", False, (problem,))
        return GGUFTying(None, f"GGUF stores no output.weight: llama.cpp's {arch} graph reuses {embedding} as the head ({cite})", False, ())
    return GGUFTying(False, f"GGUF stores {head}: llama.cpp's {arch} graph uses it as the head ({cite})", False, ())


def gguf_explain(arch: str | None, metadata: dict[str, Any] | None, norm_kind: str | None) -> dict[str, str]:
    """Why the norm has its kind, and which metadata lmhead saw but llama.cpp's graph does not apply."""
    explain: dict[str, str] = {}
    metadata = metadata or {}
    if arch is None:
        return explain
    rules = GGUF_ARCHS.get(arch)
    if norm_kind is not None:
        if rules is not None:
            why = f"llama.cpp's {arch} graph ({rules.cite('norm')})"
            if rules.stored_plus_one:
                why += f"; the converter stored 1 + w ({rules.stored_plus_one}), so the weight multiplies as is"
        else:
            present = [f"{arch}.{EPS_SUFFIX[k]}" for k in (RMSNORM, LAYERNORM) if f"{arch}.{EPS_SUFFIX[k]}" in metadata]
            why = f"{present[0]} present" if present else "no eps key in the metadata; llama.cpp's usual RMSNorm assumed"
        explain["norm_kind"] = f"{norm_kind}: {why}"
    applied = {t.key for t in rules.transforms} if rules else {SOFTCAP}
    for key in (SOFTCAP, "logit_scale"):
        full = f"{arch}.{key}"
        if full in metadata and key not in applied:
            reason = (
                f"llama.cpp's {arch} graph does not apply it" if rules else f"lmhead does not know how llama.cpp's {arch} graph uses it"
            )
            explain[f"transform:{key}"] = f"{full}={metadata[full]} not applied: {reason}"
    return explain


def gguf_metadata_problems(arch: str | None, metadata: dict[str, Any] | None) -> tuple[Problem, ...]:
    """Keys llama.cpp requires for this architecture's final norm that the file lacks."""
    rules = GGUF_ARCHS.get(arch or "")
    if rules is None or metadata is None:
        return ()
    key = f"{arch}.{EPS_SUFFIX[rules.norm]}"
    if key in metadata:
        return ()
    other = f"{arch}.{EPS_SUFFIX[LAYERNORM if rules.norm == RMSNORM else RMSNORM]}"
    found = f"; it has {other}, the other norm's key" if other in metadata else ""
    message = f"GGUF metadata lacks {key}, which llama.cpp's {arch} graph reads for its {rules.norm} ({rules.cite('norm')}){found}"
    return (Problem(ProblemKind.GGUF_KEY_MISSING, message),)
