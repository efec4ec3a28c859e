"""`imagine --preset paper`: the official code's settings where they differ from ours.

Read in Shelley-Golan/VLM-Guided-creative-diffusion (one commit, 63749db): `custom_model/custom_sd35.py` (the
pipeline: `clean_vqa_answer`, the window, `freq`, x̂0, the decode, the negatives) and `gen_utils/generate_sd35_image.py`
(the script: its defaults and the Qwen oracle's prompt). docs/imagine.md has the table of every difference.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from conceptlab.engine.imagine.negatives import NegativeEntries

PAPER = "paper"
PRESETS = (PAPER,)
PAPER_ASK_FROM = 0.0
"""`--vqa_start_step` default 0 (generate_sd35_image.py)."""
PAPER_ASK_UNTIL = 1.0
"""`--vqa_stop_step` default 28 of `--steps` 28 (generate_sd35_image.py): every step is asked."""
PAPER_FREQ = 1
"""`--freq` default 1 (generate_sd35_image.py)."""
PAPER_TOP_K = 1
"""`--topk` default 1 (generate_sd35_image.py)."""
QWEN_PROMPT = "Answer with a single word. \n{question}"
"""`QwenOracle.__call__`'s text (generate_sd35_image.py)."""

PUNCTUATION = ",-.:;!?()[]{}\"' "
PREFIXES = (
    "the ",
    "a ",
    "an ",
    "it is ",
    "this is ",
    "that is ",
    "it's ",
    "there is ",
    "there are ",
    "i see ",
    "i can see ",
    "it appears to be ",
    "it looks like ",
    "seems to be ",
    "appears to be ",
    "looks like ",
    "yes, ",
    "no, ",
)
"""`prefixes_to_remove`, in its order: the first that starts the answer is removed, and only that one."""
SEPARATORS = (",", ";", " and ", " or ", " & ")
ARTICLES = frozenset({"a", "an", "the"})
SKIP_WORDS = frozenset(
    {
        "i",
        "a",
        "an",
        "the",
        "is",
        "are",
        "am",
        "be",
        "it",
        "to",
        "of",
        "in",
        "on",
        "at",
        "by",
        "for",
        "with",
        "no",
        "yes",
        "0",
        "1",
        "2",
        "neither",
        "no dog",
        "no cat",
        "none",
        "no animal",
    }
)
"""`skip_words`: whole cleaned answers that are dropped."""


def clean_vqa_answer(answer: str) -> str:
    """The official `clean_vqa_answer`, step for step: lower case, outer punctuation stripped, one leading filler
    phrase removed, split on `, ; and or &`, articles and one-character parts dropped, the parts re-joined with ", "
    into ONE entry, the skip-list rejected ("" for nothing)."""
    cleaned = answer.strip().lower()
    while cleaned and cleaned[0] in PUNCTUATION:
        cleaned = cleaned[1:].strip()
    while cleaned and cleaned[-1] in PUNCTUATION:
        cleaned = cleaned[:-1].strip()
    for prefix in PREFIXES:
        if cleaned.startswith(prefix):
            cleaned = cleaned[len(prefix) :].strip()
            break
    parts = [cleaned]
    for separator in SEPARATORS:
        parts = [piece for part in parts for piece in part.split(separator)]
    kept = []
    for part in parts:
        words = [word.strip(PUNCTUATION) for word in part.strip().split()]
        joined = " ".join(word for word in words if word and word not in ARTICLES)
        if len(joined) > 1:
            kept.append(joined)
    cleaned = ", ".join(kept)
    return "" if cleaned in SKIP_WORDS else cleaned


@dataclass
class OfficialNegatives(NegativeEntries):
    """The official `detected_objects`: the static negative prompt as one entry, then each cleaned answer (with the
    main object appended) that is not already there, only at steps that `freq` divides.

    One quirk is not copied: the official code appends the main object before checking for an empty answer, so an
    answer it cleaned away becomes the main object alone (" pet") as a negative; here it adds nothing."""

    given: tuple[str, ...] = ()
    main_object: str | None = None
    freq: int = PAPER_FREQ
    entries: list[dict[str, object]] = field(default_factory=list)

    def _detected(self) -> list[str]:
        given = [", ".join(self.given)] if self.given else []
        return given + [str(entry["word"]) for entry in self.entries if entry["source"] != "given"]

    def add_answers(self, answers: list[str], step: int) -> list[str]:
        """Add each answer that cleans to something new, acting from `step`, if `freq` divides the step index it
        was asked at (`step - 1`)."""
        added = []
        for answer in answers:
            word = clean_vqa_answer(answer)
            if not word:
                continue
            if self.main_object:
                word = f"{word} {self.main_object}"
            if word not in self._detected() and (step - 1) % self.freq == 0:
                self.entries.append({"word": word, "step": step, "source": "oracle"})
                added.append(word)
        return added

    def clear(self, step: int) -> None:
        """`clear_negatives_at_stop`: the negative prompt becomes "" from `step` on, the static one included."""
        for entry in self.entries:
            entry.setdefault("until", step)
