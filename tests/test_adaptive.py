"""Adaptive negatives: answer normalization, the schedule, the oracles, and the loop that asks them."""

import random

import pytest
import torch
from PIL import Image

from conceptlab.engine.adaptive.answers import new_negative, normalize_answer
from conceptlab.engine.adaptive.oracle import OracleOptions, OracleWithWeights, Question, load_oracle, oracle_names
from conceptlab.engine.adaptive.vocabulary import CATEGORY_MEMBERS, vocabulary_for
from conceptlab.engine.errors import UsageError
from conceptlab.engine.training.config import create_config
from conceptlab.engine.training.loop import ask_steps, train_token
from conceptlab.engine.training.negatives import NegativeSchedule


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("A hamster.", "hamster"),
        ("the Hamsters", "hamster"),
        ("  an owl!! ", "owl"),
        ("guinea pigs", "guinea pig"),
        ("It is a puppy", "puppy"),
        ("bunnies", "bunny"),
        ("foxes", "fox"),
        ("cactus", "cactus"),
        ("dog's", "dog"),  # possessive 's dropped, not "dog s"
        ("The dog\u2019s.", "dog"),  # a typographic apostrophe
        ("a dog's bed", "dog bed"),
        ("the dogs'", "dog"),
        ("I don't know", "i dont know"),
    ],
)
def test_normalize_answer(answer, expected):
    assert normalize_answer(answer) == expected


@pytest.mark.parametrize(
    ("answer", "known", "expected"),
    [
        ("a hamster", ["cat"], "hamster"),
        ("Cats", ["cat"], None),  # plural of a known negative
        ("a pet", ["cat"], None),  # the category itself
        ("Pets!", [], None),
        ("", [], None),
        ("???", [], None),
        ("a very small furry brown creature", [], None),  # a sentence, not a name
    ],
)
def test_new_negative_skips_known_words_and_the_category(answer, known, expected):
    assert new_negative(answer, "pet", known) == expected


@pytest.mark.parametrize(
    "answer", ["none", "Unknown.", "nothing", "not sure", "I don't know", "I'm not sure", "no idea", "N/A", "no"]
)
def test_non_answers_name_no_negative(answer):
    assert new_negative(answer, "pet", []) is None


def test_possessive_answer_names_the_owner():
    assert new_negative("a hamster's", "pet", []) == "hamster"
    assert new_negative("cat's", "pet", ["cat"]) is None  # the known negative, not a new "cat s"


def test_gradual_schedule_adds_shuffled_negatives_one_per_interval():
    """As the official code: shuffled (here with the seed), one at step 0, one more after every interval."""
    words = ("cat", "dog", "owl", "frog", "crab")
    added = []
    schedule = NegativeSchedule(words, gradual=True, interval=30, seed=3, on_add=added.append)
    order = list(words)
    random.Random(3).shuffle(order)
    assert schedule.activate(0) == order[:1] and schedule.words == order[:1]
    assert schedule.activate(29) == []
    assert schedule.activate(30) == [order[1]]
    assert schedule.activate(89) == [order[2]]
    assert [(n.word, n.step, n.source) for n in added] == [
        (order[0], 0, "gradual"),
        (order[1], 30, "gradual"),
        (order[2], 60, "gradual"),
    ]
    orders = {tuple(NegativeSchedule(words, gradual=True, interval=1, seed=seed).activate(9)) for seed in range(6)}
    assert len(orders) > 1 and all(sorted(order) == sorted(words) for order in orders)  # the seed decides the order


def test_schedule_adds_only_new_words():
    schedule = NegativeSchedule(("cat",), gradual=False, interval=10)
    assert schedule.add(["cat", "owl", "owl"], 5) == ["owl"]
    assert schedule.records()[-1] == {"word": "owl", "step": 5, "source": "oracle"}


def test_ask_steps_follow_the_paper():
    no_negatives = create_config("pet", steps=100, checkpoint_every=25)
    assert no_negatives.adaptive and ask_steps(no_negatives) == [0, 25, 50, 75]
    given = create_config("pet", ("cat",), adaptive=True, steps=100, checkpoint_every=25, ask_every=40)
    assert ask_steps(given) == [40, 80]
    assert ask_steps(create_config("pet", ("cat",), steps=100)) == []


def test_config_refuses_meaningless_combinations():
    with pytest.raises(UsageError, match="--gradual"):
        create_config("pet", gradual=True)
    with pytest.raises(UsageError, match="--ask-every"):
        create_config("pet", ask_every=0)


@pytest.mark.parametrize(
    ("setting", "option"),
    [
        ({"oracle": "clip-zeroshot"}, "--oracle"),
        ({"oracle_model": "tiny"}, "--oracle-model"),
        ({"ask_every": 5}, "--ask-every"),
        ({"max_negatives": 10}, "--max-negatives"),
        ({"vocab_file": "pets.txt"}, "--vocab"),
    ],
)
def test_an_oracle_setting_with_given_negatives_asks_the_oracle(setting, option):
    assert create_config("pet", ("cat",), **setting).adaptive
    assert create_config("pet", ("cat",), adaptive=True, **setting).adaptive
    with pytest.raises(UsageError, match=f"^{option} .*--no-adaptive"):
        create_config("pet", ("cat",), adaptive=False, **setting)


def test_oracle_settings_left_as_none_change_nothing():
    unset = dict(oracle=None, oracle_model=None, ask_every=None, max_negatives=None, vocab_file=None)
    config = create_config("pet", ("cat",), **unset)
    assert not config.adaptive and config.max_negatives is None  # no cap, as the official code
    assert not create_config("pet", ("cat",), adaptive=False, **unset).adaptive


def test_vocabulary_from_file_and_built_in(tmp_path):
    words = tmp_path / "words.txt"
    words.write_text("# pets\nhamster\n\nferret\nhamster\n", encoding="utf-8")
    assert vocabulary_for("pet", vocab_file=words) == ("hamster", "ferret")
    assert vocabulary_for("Pet") == CATEGORY_MEMBERS["pet"]
    with pytest.raises(UsageError, match="--vocab"):
        vocabulary_for("spaceship")


def test_both_oracles_are_registered():
    assert {"blip2", "clip-zeroshot"} <= set(oracle_names())


def _images(count: int) -> list[Image.Image]:
    generator = torch.Generator().manual_seed(0)
    return [
        Image.fromarray((torch.rand(48, 48, 3, generator=generator) * 255).to(torch.uint8).numpy())
        for _ in range(count)
    ]


def test_clip_zeroshot_names_the_closest_unknown_word(tiny, tmp_path):
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("cat\ndog\nhamster\nrabbit\n", encoding="utf-8")
    oracle = load_oracle("clip-zeroshot", tiny, OracleOptions(vocab_file=vocab))
    images = _images(3)
    answers = oracle.ask(images, Question("pet"), known=[])
    assert len(answers) == 3 and set(answers) <= {"cat", "dog", "hamster", "rabbit"}
    assert oracle.ask(images, Question("pet"), known=[]) == answers  # deterministic
    excluded = oracle.ask(images, Question("pet"), known=answers)
    assert not set(excluded) & set(answers)


def test_clip_zeroshot_answer_is_the_argmax_of_clip_similarity(tiny, tmp_path):
    """Hand computation with the backend's CLIP: the answer is the word whose text embedding is closest."""
    import torch.nn.functional as F

    from conceptlab.engine.prior.tokens import encode_prompts

    stack = tiny.stack
    words = ["cat", "dog", "hamster", "rabbit"]
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(words), encoding="utf-8")
    image = _images(1)
    with torch.no_grad():
        pixels = stack.image_processor(images=image, return_tensors="pt").pixel_values
        image_embed = F.normalize(stack.image_encoder(pixels).image_embeds, dim=-1)
        text = encode_prompts(stack.tokenizer, stack.text_encoder, [f"a photo of a {w}" for w in words]).text_embeds
    expected = words[int((image_embed @ F.normalize(text, dim=-1).T).argmax())]
    oracle = load_oracle("clip-zeroshot", tiny, OracleOptions(vocab_file=vocab))
    assert oracle.ask(image, Question("pet"), known=[]) == [expected]


def test_blip2_oracle_loads_lazily_and_answers_each_image(tiny):
    oracle = load_oracle("blip2", tiny, OracleOptions(model="tiny"))
    assert oracle.model is None  # nothing loaded until the first question
    answers = oracle.ask(_images(2), Question("pet"), known=[])
    assert oracle.model is not None and len(answers) == 2 and all(isinstance(a, str) for a in answers)
    assert "question" not in " ".join(answers).lower()  # only the generated answer, not the prompt


def test_blip2_knows_its_size_before_it_loads(tiny):
    from conceptlab.engine.models.offload import module_bytes

    oracle = load_oracle("blip2", tiny, OracleOptions(model="tiny"))
    before = oracle.expected_bytes()
    oracle.ask(_images(1), Question("pet"), known=[])
    assert before == module_bytes(oracle.modules()) > 0


def test_blip2_size_from_a_sharded_folder_s_index_in_half_precision(tiny, tmp_path):
    """blip2-flan-t5-xl as downloaded: float32 shards whose index says 15.76 GB; in float16 it takes 7.88 GB."""
    import json

    (tmp_path / "config.json").write_text(json.dumps({"torch_dtype": "float32"}), encoding="utf-8")
    index = {"metadata": {"total_size": 15_760_000_000}, "weight_map": {}}
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index), encoding="utf-8")
    oracle = load_oracle("blip2", tiny, OracleOptions(model=str(tmp_path)))
    oracle.dtype = torch.float16  # as on a GPU
    assert oracle.expected_bytes() == 7_880_000_000


def test_blip2_size_of_a_model_not_on_disk_is_its_published_parameter_count(tiny):
    from conceptlab.plugins.oracles.blip2 import DEFAULT_MODEL, PUBLISHED_PARAMETERS

    oracle = load_oracle("blip2", tiny, OracleOptions())  # float32 on the CPU
    assert oracle.expected_bytes() == pytest.approx(PUBLISHED_PARAMETERS[DEFAULT_MODEL] * 4, rel=0.02)
    assert isinstance(oracle, OracleWithWeights)
    assert not isinstance(load_oracle("clip-zeroshot", tiny, OracleOptions()), OracleWithWeights)  # reuses CLIP


def test_blip2_missing_weights_is_one_line(tiny, tmp_path):
    from conceptlab.engine.errors import BackendError

    oracle = load_oracle("blip2", tiny, OracleOptions(model=str(tmp_path / "nowhere")))
    with pytest.raises(BackendError, match="clip-zeroshot") as error:
        oracle.ask(_images(1), Question("pet"), known=[])
    assert "\n" not in str(error.value)


def test_unknown_oracle_is_a_usage_error(tiny):
    with pytest.raises(UsageError, match="installed oracles"):
        load_oracle("gpt-vision", tiny, OracleOptions())


def test_training_loop_adds_oracle_answers_as_negatives_at_ask_steps(stack):
    """A scripted oracle: its answers apply from the step after they were given, and are constrained."""
    config = create_config("pet", steps=12, checkpoint_every=4, learning_rate=1e-3)
    answers = {0: ["hamster"], 4: ["hamster", "rabbit"], 8: ["cat"]}
    asked, records = [], []

    def ask(step, known):
        asked.append((step, list(known)))
        return [word for word in answers[step] if word not in known]

    schedule = NegativeSchedule((), gradual=False, interval=4)
    train_token(stack, config, on_step=records.append, ask=ask, negatives=schedule)
    assert asked == [(0, []), (4, ["hamster"]), (8, ["hamster", "rabbit"])]
    assert schedule.records() == [
        {"word": "hamster", "step": 0, "source": "oracle"},
        {"word": "rabbit", "step": 4, "source": "oracle"},
        {"word": "cat", "step": 8, "source": "oracle"},
    ]
    assert list(records[0].negative) == ["hamster"]
    assert list(records[4].negative) == ["hamster", "rabbit"]
    assert list(records[8].negative) == ["hamster", "rabbit", "cat"]


def test_max_negatives_stops_the_questions(stack):
    config = create_config("pet", steps=8, checkpoint_every=2, learning_rate=1e-3, max_negatives=2)
    asked = []

    def ask(step, known):
        asked.append(step)
        return [f"thing{step}a", f"thing{step}b", f"thing{step}c"]

    schedule = NegativeSchedule((), gradual=False, interval=2)
    train_token(stack, config, ask=ask, negatives=schedule)
    assert asked == [0] and schedule.words == ["thing0a", "thing0b"]
