"""Scorers: is a model's output the gold answer? Built from conf/scorer/*.yaml.

Every scorer first drops the model's thinking (`strip_think`), so only the final answer is graded.
A scorer returns `Score.error` only when grading itself failed (the judge): the run counts that as a
failure, never as a wrong answer.
"""

from __future__ import annotations

import logging
import os
import re
import string
import unicodedata
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

import requests

from hookbench.base.errors import ConfigError, DataError, ServerError
from hookbench.base.outcomes import FailureKind
from hookbench.evaluation.items import Item
from hookbench.hookapi import contract

__all__ = [
    "AutoScorer",
    "ExactScorer",
    "JudgeScorer",
    "NormalizedScorer",
    "NumericScorer",
    "Score",
    "Scorer",
    "extract_number",
    "strip_think",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Score:
    correct: bool | None  # None: could not be graded (see error)
    extracted: str | None  # what was read as the answer
    error: str | None = None  # FailureKind.JUDGE_ERROR when grading failed; a failure, not a wrong answer
    detail: str | None = None  # why grading failed, for the record
    kind: str | None = None  # how it was graded when a scorer mixes rules (auto: numeric | text)


_THINK_BLOCK = re.compile(r"<think>.*?</think>", re.S | re.I)
_THINK_CLOSE = re.compile(r"</think>", re.I)
_THINK_OPEN = re.compile(r"<think>", re.I)


def strip_think(text: str) -> str:
    """The answer part of an output: without <think>...</think> blocks.

    A lone `</think>` (the chat template opened the block in the prompt) drops everything before
    it. An unclosed `<think>` (thinking ran out of tokens) drops everything after it: there is no
    answer, so it scores as wrong rather than grading half-finished reasoning.
    """
    text = _THINK_BLOCK.sub("", text)
    closes = list(_THINK_CLOSE.finditer(text))
    if closes:
        text = text[closes[-1].end() :]
    m = _THINK_OPEN.search(text)
    if m:
        text = text[: m.start()]
    return text.strip()


class Scorer:
    """Grades one output against its gold answer; subclasses implement `_score` on the stripped output."""

    name: str = "scorer"

    def __init__(self, name: str | None = None):
        if name:
            self.name = name  # the config's display name, e.g. a judge with another prompt

    def bind_client(self, client) -> None:
        """Given the evaluated model's HookClient; a scorer that grades with a model may use it."""

    def context(self) -> dict:
        """What a reported number depends on in this scorer, for the run's context.json."""
        return {"name": self.name}

    def check_golds(self, items: list[Item]) -> None:
        """Raise DataError naming the items whose gold this scorer cannot grade against, before any
        generation is spent on them. Most scorers can grade any gold: nothing to check."""

    def score(self, output: str, gold: str, question: str | None = None) -> Score:
        return self._score(strip_think(output), gold, question)

    def _score(self, answer: str, gold: str, question: str | None) -> Score:
        raise NotImplementedError

    def score_many(self, pairs: list[tuple[str, ...]]) -> list[Score]:
        """Score (output, gold) or (output, gold, question) tuples, in order."""
        return [self.score(*pair) for pair in pairs]


class ExactScorer(Scorer):
    name = "exact"

    def _score(self, answer: str, gold: str, question: str | None) -> Score:
        return Score(correct=answer == gold.strip(), extracted=answer)


def normalize(text: str) -> str:
    """Casefolded, punctuation (incl. unicode, e.g. “ ” ‘ ’ — …) removed, whitespace collapsed."""
    text = unicodedata.normalize("NFKC", text).casefold()
    text = "".join(c for c in text if not unicodedata.category(c).startswith("P"))
    return " ".join(text.split())


class NormalizedScorer(Scorer):
    name = "normalized"

    def _score(self, answer: str, gold: str, question: str | None) -> Score:
        extracted = normalize(answer)
        return Score(correct=extracted == normalize(gold), extracted=extracted)


class ContainsScorer(Scorer):
    """The gold answer, normalized, appears as whole words in the normalized output: for a model that
    answers in a sentence ("The capital of France is Paris.") where the gold is a name."""

    name = "contains"

    def _score(self, answer: str, gold: str, question: str | None) -> Score:
        extracted = normalize(answer)
        return Score(correct=f" {normalize(gold)} " in f" {extracted} ", extracted=extracted)


# A number: optional sign (not a hyphen inside a word or range like "3-4"), optional $, digits
# with optional thousands commas, optional decimals; a trailing "." (end of sentence) is not taken.
_NUM = r"(?:(?<![\w.)])[-−])?\$?\s?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|(?:(?<![\w.)])[-−])?\$?\.\d+"
_NUM_RE = re.compile(_NUM)
_HASH_RE = re.compile(r"####\s*(" + _NUM + ")")
_BOXED_RE = re.compile(r"\\boxed\s*\{([^{}]*(?:\{[^{}]*\}[^{}]*)*)\}")
_ANSWER_RE = re.compile(
    r"answer\s*(?:is|:|=)\s*[:=]?\s*(?:\*\*|\$\$?|\\\(|\\\[)?\s*(" + _NUM + ")", re.I
)


def _to_decimal(text: str) -> Decimal | None:
    cleaned = re.sub(r"[\s$,]", "", text).replace("−", "-")
    try:
        return Decimal(cleaned)
    except InvalidOperation:
        return None


def _canonical(d: Decimal) -> str:
    """1234.00 -> "1234", 0.50 -> "0.5": one spelling per value, for the record."""
    return str(int(d)) if d == d.to_integral_value() else format(d.normalize(), "f")


def extract_number(text: str) -> Decimal | None:
    """The final answer's number: `#### N`, else the last `\\boxed{N}`, else the last "answer is N" /
    "Answer: N", else the last number in the text. `%`, `$`, commas and `.00` are tolerated."""
    for pattern in (_HASH_RE, _BOXED_RE, _ANSWER_RE):
        matches = pattern.findall(text)
        if pattern is _BOXED_RE:
            matches = [n for box in matches for n in _NUM_RE.findall(box)[-1:]]
        if matches:
            return _to_decimal(matches[-1])
    numbers = _NUM_RE.findall(text)
    return _to_decimal(numbers[-1]) if numbers else None


class NumericScorer(Scorer):
    """GSM8K-style: the final answer's number equals the gold number (never "any number matches")."""

    name = "numeric"
    tolerance = Decimal("1e-6")

    def check_golds(self, items: list[Item]) -> None:
        bad = [it for it in items if extract_number(it.gold) is None]
        if bad:
            shown = ", ".join(f"{it.id} (gold {it.gold!r})" for it in bad[:5])
            more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
            raise DataError(f"numeric scorer: {len(bad)} of {len(items)} gold answers have no number: "
                            f"{shown}{more}; use scorer=exact or scorer=normalized")

    def _score(self, answer: str, gold: str, question: str | None) -> Score:
        want = extract_number(gold)
        if want is None:
            raise DataError(f"numeric scorer: gold answer {gold!r} has no number (use scorer=exact or normalized)")
        got = extract_number(answer)
        if got is None:
            return Score(correct=False, extracted=None)
        return Score(correct=abs(got - want) <= self.tolerance, extracted=_canonical(got))


_NUMERIC_GOLD = re.compile(rf"\s*(?:{_NUM})\s*%?\s*")


class AutoScorer(Scorer):
    """Mixed data, per item: a gold that is a number (`147`, `$1,200`, `12.5%`) is graded as the
    numeric scorer grades it (the output's final answer number); any other gold by equality after
    normalization (as scorer=normalized; equality, not containment, so "not Paris" is not "Paris").
    The rule used is recorded per item (`Score.kind`: numeric | text)."""

    name = "auto"

    def __init__(self, name: str | None = None):
        super().__init__(name)
        self._numeric, self._text = NumericScorer(), NormalizedScorer()

    def _score(self, answer: str, gold: str, question: str | None) -> Score:
        numeric = _NUMERIC_GOLD.fullmatch(gold) is not None and extract_number(gold) is not None
        s = (self._numeric if numeric else self._text)._score(answer, gold, question)
        return Score(s.correct, s.extracted, s.error, s.detail, "numeric" if numeric else "text")


_VERDICT_RE = re.compile(r"\b(INCORRECT|CORRECT)\b", re.I)


class JudgeScorer(Scorer):
    """A second model grades the answer and replies CORRECT or INCORRECT.

    backend "hook": a tensor-hook server, spoken to through a `HookClient` (retries, batching, the
    contract's error texts): by default (base_url None) the evaluated model's own server through the
    job's own client (same token), which the job grades on after restoring it and before letting
    another job patch it; or another hook server at `base_url` (token from the env var `api_key_env`).
    The preset is `preset`, else the server's deterministic one (greedy), else its lowest temperature.
    backend "openai": any OpenAI-compatible chat-completions server (`model`, key from `api_key_env`).
    Any reply without a verdict, HTTP error or hook error text is a judge_error, never a wrong answer.
    """

    name = "judge"

    def __init__(
        self,
        prompt: str,
        backend: str = "hook",
        base_url: str | None = None,
        model: str | None = None,
        api_key_env: str | None = None,
        preset: str | None = None,
        timeout_s: float = 60.0,
        batch_size: int = 8,
        name: str | None = None,
    ):
        super().__init__(name)
        if backend not in ("openai", "hook"):
            raise ConfigError(f"scorer.backend must be 'openai' or 'hook', got {backend!r}")
        if backend == "openai" and not (model and base_url):
            raise ConfigError("scorer.model and scorer.base_url must be set for the openai judge backend")
        fields = {f for _, f, _, _ in string.Formatter().parse(prompt) if f is not None}
        if unknown := fields - {"question", "answer", "gold"}:
            raise ConfigError(
                f"scorer.prompt uses unknown placeholders {sorted(unknown)}; "
                "use {question}, {answer}, {gold} (write literal braces as {{ }})"
            )
        self.key = None
        if api_key_env:
            self.key = os.environ.get(api_key_env)
            if not self.key:
                raise ConfigError(f"scorer.api_key_env names {api_key_env}, which is not set in the environment")
        self.prompt, self.backend, self.model, self.preset = prompt, backend, model, preset
        self.base_url, self.timeout_s, self.batch_size = base_url.rstrip("/") if base_url else None, timeout_s, batch_size
        self.client = None
        if backend == "hook" and self.base_url:
            from hookbench.hookapi.client import HookClient

            self.client = HookClient(self.base_url, token=self.key, timeout_s=timeout_s, retries=2)

    def bind_client(self, client) -> None:
        if self.backend == "hook" and self.client is None:
            self.client, self.base_url = client, client.base_url

    def context(self) -> dict:
        return {**super().context(), "backend": self.backend, "base_url": self.base_url, "preset": self.preset,
                **({"model": self.model} if self.model else {})}

    def _hook_preset(self) -> str:
        """The configured preset, else the server's deterministic one, else its lowest temperature."""
        if self.preset is None:
            presets = self.client.configs()
            greedy = sorted(n for n, p in presets.items() if not contract.is_sampled(p))
            self.preset = ("greedy" if "greedy" in greedy else greedy[0]) if greedy else min(
                presets, key=lambda n: (float(presets[n].get("temperature") or 0), n))
            if not greedy:
                log.warning("judge: %s has no deterministic preset; grading with %r (sampled)", self.base_url,
                            self.preset)
        return self.preset

    def _ask_openai(self, prompt: str) -> str:
        """The judge model's raw reply; raises on transport, HTTP or API-level errors."""
        headers = {"Authorization": f"Bearer {self.key}"} if self.key else {}
        body = {"model": self.model, "messages": [{"role": "user", "content": prompt}], "temperature": 0}
        r = requests.post(f"{self.base_url}/chat/completions", json=body, headers=headers, timeout=self.timeout_s)
        r.raise_for_status()
        reply = r.json()["choices"][0]["message"]["content"]
        if not isinstance(reply, str):
            raise ValueError(f"reply is not text: {reply!r}")
        return reply

    def _verdict(self, reply: str) -> Score:
        m = _VERDICT_RE.search(strip_think(reply))
        if not m:
            detail = f"no CORRECT/INCORRECT in judge reply: {reply[:200]!r}"
            log.warning(detail)
            return Score(correct=None, extracted=None, error=FailureKind.JUDGE_ERROR, detail=detail)
        verdict = m.group(1).upper()
        return Score(correct=verdict == "CORRECT", extracted=verdict)

    def _prompt(self, answer: str, gold: str, question: str | None) -> str:
        return self.prompt.format(question=question or "", answer=answer, gold=gold)

    def _score(self, answer: str, gold: str, question: str | None) -> Score:
        return self._grade([self._prompt(answer, gold, question)])[0]

    def score_many(self, pairs: list[tuple[str, ...]]) -> list[Score]:
        prompts = [self._prompt(strip_think(p[0]), p[1], p[2] if len(p) > 2 else None) for p in pairs]
        return [s for i in range(0, len(prompts), self.batch_size) for s in self._grade(prompts[i:i + self.batch_size])]

    def _grade(self, prompts: list[str]) -> list[Score]:
        if self.backend == "openai":
            out = []
            for prompt in prompts:
                try:
                    out.append(self._verdict(self._ask_openai(prompt)))
                except (requests.RequestException, ValueError, KeyError, IndexError, TypeError) as e:
                    log.warning("judge failed: %s", e)
                    out.append(Score(correct=None, extracted=None, error=FailureKind.JUDGE_ERROR, detail=str(e)[:500]))
            return out
        if self.client is None:
            raise ConfigError("scorer=judge (hook backend) has no server: set scorer.base_url or run it in a job")
        try:
            gens = self.client.generate(prompts, self._hook_preset(), use_hooks=False, extras={})
        except ServerError as e:
            return [Score(correct=None, extracted=None, error=FailureKind.JUDGE_ERROR, detail=str(e)[:500]) for _ in prompts]
        return [self._verdict(g.text) if g.error is None else
                Score(correct=None, extracted=None, error=FailureKind.JUDGE_ERROR, detail=f"{g.error}: {g.error_detail}")
                for g in gens]
