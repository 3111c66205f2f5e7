"""Presets, prompt building and (batched) generation: what /api/generate and /api/loss compute."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from hookbench.hookapi.contract import FALLBACK_PRESET, LOSS_ANSWER_PREFIX, PRESET_FIELDS

if TYPE_CHECKING:
    from transformers import BatchEncoding, PreTrainedTokenizerBase

    from hookbench.server.models import LoadedModel

_PRESETS = {
    "balanced": {"description": "General use: moderate sampling", "do_sample": True, "temperature": 0.7,
                 "top_p": 0.9, "top_k": 50, "max_new_tokens": 4096, "repetition_penalty": 1.1},
    "benchmark": {"description": "Evaluation: low-temperature sampling", "do_sample": True, "temperature": 0.3,
                  "top_p": 0.9, "top_k": 30, "max_new_tokens": 512, "repetition_penalty": 1.0},
    "creative": {"description": "Diverse, high-temperature sampling", "do_sample": True, "temperature": 1.0,
                 "top_p": 0.95, "top_k": 100, "max_new_tokens": 1024, "repetition_penalty": 1.1},
    "precise": {"description": "Near-deterministic sampling", "do_sample": True, "temperature": 0.1,
                "top_p": 0.5, "top_k": 10, "max_new_tokens": 256, "repetition_penalty": 1.0},
    "greedy": {"description": "Deterministic greedy decoding", "do_sample": False, "temperature": 0.0,
               "top_p": 1.0, "top_k": 0, "max_new_tokens": 256, "repetition_penalty": 1.0},
}


def _contract_preset(name: str, p: dict) -> dict:
    """Exactly the contract's preset fields, in its order (a missing one fails at import)."""
    row = {"name": name, "thinking_budget": 0, **p}
    return {f: row[f] for f in PRESET_FIELDS}


PRESETS: dict[str, dict] = {name: _contract_preset(name, p) for name, p in _PRESETS.items()}
DEFAULT_PRESET = FALLBACK_PRESET


def preset(name: str) -> tuple[dict, bool]:
    """(preset, fell_back): unknown names are served with `balanced` (contract §5)."""
    if name in PRESETS:
        return PRESETS[name], False
    return PRESETS[DEFAULT_PRESET], True


def build_prompt(tokenizer: PreTrainedTokenizerBase, query: str, chat: bool) -> str:
    """Raw text, or the query as one user message in the model's chat template."""
    if not chat:
        return query
    text = tokenizer.apply_chat_template([{"role": "user", "content": query}], tokenize=False,
                                         add_generation_prompt=True)
    if not isinstance(text, str):  # tokenize=False: the rendered text
        raise TypeError(f"the chat template rendered {type(text).__name__}, not text")
    return text


def _encode(tokenizer: PreTrainedTokenizerBase, prompts: list[str], chat: bool) -> BatchEncoding:
    # a chat template already carries its special tokens; raw text gets the tokenizer's defaults
    return tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=not chat)


def generate(lm: LoadedModel, prompts: list[str], cfg: dict, chat: bool, seed: int | None = None,
             max_new_tokens: int | None = None) -> list[str]:
    """One left-padded batch through model.generate; new tokens only, special tokens skipped, stripped."""
    from transformers import GenerationMixin

    tok, model = lm.tokenizer, lm.model
    if not isinstance(model, GenerationMixin):
        raise TypeError(f"{lm.name} is not a generative model (no GenerationMixin)")
    enc = _encode(tok, [build_prompt(tok, p, chat) for p in prompts], chat).to(lm.input_device)
    kwargs = {"max_new_tokens": cfg["max_new_tokens"] if max_new_tokens is None else max_new_tokens,
              "repetition_penalty": cfg["repetition_penalty"], "pad_token_id": tok.pad_token_id}
    if cfg["do_sample"]:
        kwargs.update(do_sample=True, temperature=cfg["temperature"], top_p=cfg["top_p"],
                      top_k=cfg["top_k"] or None)
    else:
        kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
    if seed is not None:
        torch.manual_seed(seed)
    with torch.no_grad():
        out = model.generate(**enc, **kwargs)
    new = out[:, enc["input_ids"].shape[1]:]
    return [t.strip() for t in tok.batch_decode(new, skip_special_tokens=True)]


def context_ids(tok: PreTrainedTokenizerBase, text: str) -> list[int]:
    """The stock /api/loss context (hook-api.md rule 10): the text without special tokens, with the
    tokenizer's BOS prepended when it has one (and a chat template did not already put it there)."""
    ids = tok(text, add_special_tokens=False)["input_ids"]
    bos = tok.bos_token_id
    return ids if bos is None or ids[:1] == [bos] else [bos] + ids


def loss_rows(tok: PreTrainedTokenizerBase, items: list[tuple[str, str]], answer_prefix: str, chat: bool) -> list[tuple[list[int], list[int]]]:
    """(context ids, answer ids) per item: the two segments every engine scores (hook-api.md rule 10)."""
    return [(context_ids(tok, build_prompt(tok, prompt, chat) + answer_prefix),
             tok(answer, add_special_tokens=False)["input_ids"]) for prompt, answer in items]


def encode_answers(tok: PreTrainedTokenizerBase, items: list[tuple[str, str]], answer_prefix: str, chat: bool) -> dict:
    """Right-padded batch of context+answer ids, with labels set on the answer tokens only.

    Two segments, as the stock server tokenizes them: the context (BOS + prompt, optionally in the
    chat template, + answer_prefix) and the answer without special tokens, so the answer tokens are
    exactly those of `answer`.  Right padding keeps positions correct in a plain forward pass.
    """
    rows = loss_rows(tok, items, answer_prefix, chat)
    width = max(len(c) + len(a) for c, a in rows)
    ids = torch.full((len(rows), width), tok.pad_token_id, dtype=torch.long)
    attn = torch.zeros_like(ids)
    labels = torch.full_like(ids, -100)
    for i, (c, a) in enumerate(rows):
        n = len(c) + len(a)
        ids[i, :n] = torch.tensor(c + a, dtype=torch.long)
        attn[i, :n] = 1
        labels[i, len(c):n] = torch.tensor(a, dtype=torch.long)
    return {"input_ids": ids, "attention_mask": attn, "labels": labels,
            "counts": [(len(c), len(a)) for c, a in rows]}


def item_losses(lm_head: torch.nn.Module, hidden: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean NLL per row over labelled tokens; the LM head runs only where a label is predicted."""
    tgt = labels[:, 1:].to(hidden.device)
    sel = tgt != -100
    logits = lm_head(hidden[:, :-1][sel]).float()
    nll = torch.nn.functional.cross_entropy(logits, tgt[sel], reduction="none")
    rows = sel.nonzero()[:, 0]
    sums = torch.zeros(len(labels), device=hidden.device).index_add_(0, rows, nll)
    return sums / sel.sum(dim=1).clamp_min(1) + torch.where(sel.any(dim=1), 0.0, float("nan"))


def answer_losses(lm: LoadedModel, items: list[tuple[str, str]], answer_prefix: str = LOSS_ANSWER_PREFIX, chat: bool = False) -> list[dict]:
    """Teacher-forced mean NLL over the answer tokens only (not the prefix), one batched forward pass."""
    batch = encode_answers(lm.tokenizer, items, answer_prefix, chat)
    with torch.no_grad():
        hidden = lm.model.get_decoder()(input_ids=batch["input_ids"].to(lm.input_device),
                                attention_mask=batch["attention_mask"].to(lm.input_device)).last_hidden_state
        losses = item_losses(lm.model.get_output_embeddings(), hidden, batch["labels"]).tolist()
    return [{"loss": loss, "prompt_tokens": c, "answer_tokens": a, "total_tokens": c + a}
            for loss, (c, a) in zip(losses, batch["counts"])]
