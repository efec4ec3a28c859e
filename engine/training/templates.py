"""Prompt templates sampled during training; `{}` is where the concept's token (or a constraint word) goes.

The official lists are copied verbatim from the official ConceptLab code (`training/templates.py` of
kfirgoldberg/ConceptLab). There each step draws a template, then fills `{a}` with one of `PREFIXES`; here every
(template, prefix) pair is one entry, so one uniform draw has the same distribution. The standard prompts are
repeated 3 times before the 9 edit prompts, as there (`object_templates`).
"""

from __future__ import annotations

from conceptlab.engine.errors import UsageError

PREFIXES: tuple[str, ...] = ("a", "the", "my")

OFFICIAL_STANDARD: tuple[str, ...] = (
    "Professional high-quality photo of {a} {token}. photorealistic, 4k, HQ",
    "A photo of {a} {token}",
    "A photo of {a} {token}. photorealistic, 4k, HQ",
)

OFFICIAL_EDITS: tuple[str, ...] = (
    "Professional high-quality art of {a} {token}. photorealistic",
    "A painting of {a} {token}",
    "A watercolor painting of {a} {token}",
    "A painting of {a} {token} in the style of monet",
    "Colorful graffiti of {a} {token}. photorealistic, 4k, HQ",
    "A line drawing of {a} {token}",
    "Oil painting of {a} {token}",
    "Professional high-quality art of {a} {token} in the style of a cartoon",
    "A close-up photo of {a} {token}",
)

OFFICIAL_STYLE: tuple[str, ...] = (
    "a painting in the style of {token}",
    "a painting of a dog in the style of {token}",
    "a painting of a cat in the style of {token}",
    "a painting portrait in the style of {token}",
    "a painting of a vase with flowers in the style of {token}",
    "a painting of a valley in the style of {token}",
    "a painting of a fruit bowl in the style of {token}",
    "A painting of a bicycle in the style of {token}",
    "A painting of a pair of shoes  in the style of {token}",
    "A painting portrait of a musician playing a musical instrument in the style of {token}",
    "A painting of a cup of coffee with steam in the style of {token}",
    "A painting close-up painting of a seashell with delicate textures in the style of {token}",
    "A painting of a vintage camera in the style of {token}",
    "A painting of a bouquet of wildflowers in the style of {token}",
    "A painting table set with fine china and silverware in the style of {token}",
    "A painting of a bookshelf filled with books in the style of {token}",
    "A painting close-up painting of a glass jar filled with marbles in the style of {token}",
    "A painting portrait of a dancer captured in mid-motion in the style of {token}",
    "A painting of a collection of antique keys with intricate designs in the style of {token}",
    "A painting of a pair of sunglasses reflecting a scenic landscape in the style of {token}",
)


def _ours(template: str, prefix: str = "a") -> str:
    """An official template with `{a}` filled and `{token}` as `{}`."""
    return template.replace("{a}", prefix).replace("{token}", "{}")


OBJECT_TEMPLATES: tuple[str, ...] = tuple(
    _ours(template, prefix) for template in OFFICIAL_STANDARD * 3 + OFFICIAL_EDITS for prefix in PREFIXES
)
"""The official object templates (18, each with a / the / my: 54 equally likely entries)."""

EDIT_TEMPLATES: tuple[str, ...] = tuple(_ours(template) for template in OFFICIAL_EDITS)
"""The edit templates with `{a}` = "a": the third checkpoint render draws one of them (official `save_images`)."""

STYLE_TEMPLATES: tuple[str, ...] = tuple(_ours(template) for template in OFFICIAL_STYLE)

STYLE_PHRASE = "in the style of "


def style_content(template: str) -> str:
    """What a style template shows without the style: the official style-mode positive constraint,
    `template.format(token='').replace('in the style of ', '')` (official `training/coach.py`)."""
    return template.format("").replace(STYLE_PHRASE, "")


TEXTUAL_INVERSION_OBJECT_TEMPLATES: tuple[str, ...] = (
    "a photo of a {}",
    "a rendering of a {}",
    "a cropped photo of the {}",
    "the photo of a {}",
    "a photo of a clean {}",
    "a photo of my {}",
    "a close-up photo of a {}",
    "a bright photo of the {}",
    "a good photo of a {}",
    "a photo of one {}",
    "a photo of a nice {}",
    "a photo of a small {}",
)
"""Textual-inversion style templates (conceptlab's defaults before it followed the official lists)."""

TEXTUAL_INVERSION_STYLE_TEMPLATES: tuple[str, ...] = (
    "a painting in the style of {}",
    "a rendering in the style of {}",
    "a cropped painting in the style of {}",
    "the painting in the style of {}",
    "a clean painting in the style of {}",
    "a picture in the style of {}",
    "a close-up painting in the style of {}",
    "a bright painting in the style of {}",
    "a good painting in the style of {}",
    "a nice painting in the style of {}",
    "a small painting in the style of {}",
    "a large painting in the style of {}",
)

TEMPLATE_SETS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "official": (OBJECT_TEMPLATES, STYLE_TEMPLATES),
    "textual-inversion": (TEXTUAL_INVERSION_OBJECT_TEMPLATES, TEXTUAL_INVERSION_STYLE_TEMPLATES),
}
"""`--templates` name -> (object templates, style templates)."""


def templates_for(name: str, style: bool) -> tuple[str, ...]:
    """The templates of the set `name` (object or style)."""
    if name not in TEMPLATE_SETS:
        raise UsageError(f"--templates {name!r} is unknown; choose {' or '.join(TEMPLATE_SETS)}.")
    return TEMPLATE_SETS[name][1 if style else 0]
