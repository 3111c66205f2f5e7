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

from hookbench.errors import ConfigError, DataError

__all__ = [
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
    error: str | None = None  # "judge_error" when grading failed; a failure, not a wrong answer
    detail: str | None = None  # why grading failed, for the record


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

    def bind_server(self, url: str) -> None:
        """Told the evaluated model's server URL; a scorer that grades with a model may use it."""

    def context(self) -> dict:
        """What a reported number depends on in this scorer, for the run's context.json."""
        return {"scorer": self.name}

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

    def _score(self, answer: str, gold: str, question: str | None) -> Score:
        want = extract_number(gold)
        if want is None:
            raise DataError(f"numeric scorer: gold answer {gold!r} has no number (use scorer=exact or normalized)")
        got = extract_number(answer)
        if got is None:
            return Score(correct=False, extracted=None)
        return Score(correct=abs(got - want) <= self.tolerance, extracted=_canonical(got))


_VERDICT_RE = re.compile(r"\b(INCORRECT|CORRECT)\b", re.I)
# what the hook API returns with HTTP 200 when generation failed (hook-api.md, quirk 3)
_HOOK_ERRORS = ("Generation error:", "Model not loaded")


class JudgeScorer(Scorer):
    """A second model grades the answer and replies CORRECT or INCORRECT.

    backend "openai": any OpenAI-compatible chat-completions server (`model`, key from the env var
    named by `api_key_env`). backend "hook": a tensor-hook server's /api/generate with `preset`,
    by default (base_url None) the evaluated model's own server, which the job grades on after
    restoring it and before letting another job patch it. Any reply without a verdict, HTTP error
    or hook error text is a judge_error, never a wrong answer.
    """

    name = "judge"

    def __init__(
        self,
        prompt: str,
        backend: str = "hook",
        base_url: str | None = None,
        model: str | None = None,
        api_key_env: str | None = None,
        preset: str = "benchmark",
        timeout_s: float = 60.0,
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
        self.headers = {}
        if api_key_env:
            key = os.environ.get(api_key_env)
            if not key:
                raise ConfigError(f"scorer.api_key_env names {api_key_env}, which is not set in the environment")
            self.headers["Authorization"] = f"Bearer {key}"
        self.prompt, self.backend, self.model, self.preset = prompt, backend, model, preset
        self.base_url, self.timeout_s = base_url.rstrip("/") if base_url else None, timeout_s
        self.session = requests.Session()

    def bind_server(self, url: str) -> None:
        if self.base_url is None:
            self.base_url = url.rstrip("/")

    def context(self) -> dict:
        return {**super().context(), "scorer.backend": self.backend, "scorer.base_url": self.base_url,
                **({"scorer.model": self.model} if self.model else {})}

    def _ask(self, prompt: str) -> str:
        """The judge model's raw reply; raises on transport, HTTP or API-level errors."""
        if self.backend == "openai":
            url, body = f"{self.base_url}/chat/completions", {
                "model": self.model,
                "messages": [{"role": "user", "content": prompt}],
                "temperature": 0,
            }
        else:
            url, body = f"{self.base_url}/api/generate", {"query": prompt, "config": self.preset, "use_hooks": False}
        r = self.session.post(url, json=body, headers=self.headers, timeout=self.timeout_s)
        r.raise_for_status()
        data = r.json()
        reply = data["choices"][0]["message"]["content"] if self.backend == "openai" else data["original"]
        if not isinstance(reply, str):
            raise ValueError(f"reply is not text: {reply!r}")
        if self.backend == "hook" and reply.strip().startswith(_HOOK_ERRORS):
            raise ValueError(f"hook server error: {reply.strip()[:200]}")
        return reply

    def _score(self, answer: str, gold: str, question: str | None) -> Score:
        prompt = self.prompt.format(question=question or "", answer=answer, gold=gold)
        try:
            reply = self._ask(prompt)
        except (requests.RequestException, ValueError, KeyError, IndexError, TypeError) as e:
            log.warning("judge failed: %s", e)
            return Score(correct=None, extracted=None, error="judge_error", detail=str(e)[:500])
        m = _VERDICT_RE.search(strip_think(reply))
        if not m:
            detail = f"no CORRECT/INCORRECT in judge reply: {reply[:200]!r}"
            log.warning(detail)
            return Score(correct=None, extracted=None, error="judge_error", detail=detail)
        verdict = m.group(1).upper()
        return Score(correct=verdict == "CORRECT", extracted=verdict)
