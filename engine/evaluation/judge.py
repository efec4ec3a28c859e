"""Validity and VQA-novelty, judged by a vision-language model: any `conceptlab.oracles` entry (`--judge`).

The follow-up to ConceptLab asks GPT whether each image still shows a member of the category and whether it is a
new kind of it; here a local oracle answers two fixed questions, so any oracle plugin (a GPT-style one too) can
judge through the same entry point. The answers pass through the adaptive loop's answer normaliser.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from conceptlab.engine.adaptive.answers import checked_answers, normalize_answer
from conceptlab.engine.adaptive.oracle import Oracle, OracleOptions, Question, check_oracle_inputs, load_oracle
from conceptlab.engine.evaluation.metrics import EvaluationTarget, Summary
from conceptlab.engine.models.loading import LoadedPrior

VALIDITY_QUESTION = "Is this a {}?"
"""validity: the fraction of images answered "yes"."""
KIND_QUESTION = "What kind of {} is this?"
"""vqa-novelty: the fraction whose answer is not a known member of the category."""


def judge_questions(category: str) -> tuple[Question, Question]:
    validity = Question(category, wording=VALIDITY_QUESTION.format(category), yes_no=True)
    return validity, Question(category, wording=KIND_QUESTION.format(category))


def check_judge(name: str, categories: Sequence[str], vocab: Path | None) -> None:
    """Refuse an unknown judge, or a category it cannot judge, before any model loads."""
    for category in dict.fromkeys(categories):
        for question in judge_questions(category):
            check_oracle_inputs(name, question, OracleOptions(vocab_file=vocab))


def said_yes(answer: str) -> bool:
    return normalize_answer(answer).split()[:1] == ["yes"]


def is_new_kind(answer: str, members: Sequence[str]) -> bool:
    """An answer that names no known member ("a dog" is not new for a pet; "a fluffy blob" is)."""
    return normalize_answer(answer) not in {normalize_answer(member) for member in members}


@dataclass
class Judge:
    """An oracle asked the two questions about every image of a row."""

    name: str
    oracle: Oracle

    def judge(self, images: Sequence[Any], target: EvaluationTarget) -> dict[str, Summary]:
        validity, kind = judge_questions(target.category)
        answers = checked_answers(self.oracle.ask(list(images), validity, []), self.oracle)
        metrics = {"validity": self._fraction(said_yes(a) for a in answers)}
        if target.vocabulary:
            answers = checked_answers(self.oracle.ask(list(images), kind, []), self.oracle)
            metrics["vqa-novelty"] = self._fraction(is_new_kind(a, target.vocabulary) for a in answers)
        return metrics

    @staticmethod
    def _fraction(verdicts) -> Summary:
        return Summary.of(torch.tensor([float(v) for v in verdicts]))

    def record(self) -> dict[str, Any]:
        """What the output records: the judge and its questions ("{}" is the category)."""
        return {"name": self.name, "questions": {"validity": VALIDITY_QUESTION, "vqa-novelty": KIND_QUESTION}}


def load_judge(name: str, loaded: LoadedPrior, vocab: Path | None) -> Judge:
    return Judge(name, load_oracle(name, loaded, OracleOptions(vocab_file=vocab)))
