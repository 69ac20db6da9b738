"""Small vision-language models built from scratch, offline.

``build_tiny_vlm`` takes a real transformers architecture (Qwen2-VL, Qwen2.5-VL or Idefics3), shrinks its
dimensions, trains a byte-level BPE tokenizer on text we give it (our QA sentences) with ``tokenizers``, attaches
the architecture's own image processor and a chat template, and saves everything with ``save_pretrained``, so the
folder loads back with ``AutoProcessor.from_pretrained`` / ``AutoModelForImageTextToText.from_pretrained`` exactly
like a downloaded checkpoint. Nothing is fetched from a hub.

It serves two purposes: the ``cpu-tiny`` preset (a model small enough to learn on two CPU cores) and test
fixtures (an even smaller one that trains a few steps in seconds).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

FAMILIES = ("qwen2_vl", "qwen2_5_vl", "idefics3")

# Chat template shared by the Qwen-style tiny models. Text parts and image placeholders in order; the assistant
# turn ends with <|im_end|>, which is the generation stop token.
QWEN_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

IDEFICS_CHAT_TEMPLATE = (
    "<|begin_of_text|>"
    "{% for message in messages %}"
    "{{ message['role'] | capitalize }}:"
    "{% if message['content'] is string %} {{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}<image>"
    "{% elif part['type'] == 'text' %} {{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<end_of_utterance>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}Assistant:{% endif %}"
)

QWEN_SPECIAL = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
]
IDEFICS_SPECIAL = [
    "<|endoftext|>",
    "<|begin_of_text|>",
    "<end_of_utterance>",
    "<fake_token_around_image>",
    "<image>",
    "<global-img>",
] + [f"<row_{i + 1}_col_{j + 1}>" for i in range(6) for j in range(6)]


CHAT_WORDS = ("User:", "\nAssistant:", " user\n", " assistant\n")


@dataclass
class TinyVLMSpec:
    """Dimensions of a from-scratch model. Defaults are the ``cpu-tiny`` model (about 3 M parameters)."""

    family: str = "qwen2_vl"
    vocab_size: int = 1024  # target size of the trained BPE vocabulary (special tokens included)
    hidden_size: int = 192
    intermediate_size: int = 512
    num_layers: int = 4
    num_heads: int = 4
    num_kv_heads: int = 2
    vision_dim: int = 128
    vision_depth: int = 4
    vision_heads: int = 4
    patch_size: int = 14
    # Qwen: images are resized so that width*height <= max_pixels (multiples of patch*merge = 28)
    max_pixels: int = 224 * 168
    min_pixels: int = 56 * 56
    # Idefics3: square side the image is resized to
    image_size: int = 224
    # Idefics3: share the token embedding with the output layer (copying a name from the question into the
    # answer is then the identity map, which a model trained from nothing finds sooner)
    tie_embeddings: bool = False
    seed: int = 0
    extra: dict = field(default_factory=dict)


def train_tokenizer(texts: Iterable[str], vocab_size: int, special_tokens: list[str]):
    """A byte-level BPE tokenizer trained on ``texts``; digits are always single tokens so numbers compose."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=special_tokens,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        min_frequency=2,
        show_progress=False,
    )
    texts = [t for t in texts if t]
    if not texts:
        raise ValueError("need at least one text to train a tokenizer on")
    tok.train_from_iterator(texts, trainer=trainer)
    return tok


def _wrap_tokenizer(tok, family: str):
    from transformers import PreTrainedTokenizerFast

    if family == "idefics3":
        return PreTrainedTokenizerFast(
            tokenizer_object=tok,
            bos_token="<|begin_of_text|>",
            eos_token="<end_of_utterance>",
            pad_token="<|endoftext|>",
            unk_token=None,
        )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
        extra_special_tokens={"image_token": "<|image_pad|>", "video_token": "<|video_pad|>"},
    )


def default_texts() -> list[str]:
    """A few generic sentences so a tokenizer can be trained when no QA text is at hand (tests)."""
    words = ["left", "right", "above", "below", "behind", "front", "taller", "shorter", "wider", "thinner", "bigger", "smaller"]
    objs = ["chair", "table", "lamp", "mug", "bottle", "sofa", "bed", "book", "plant", "vase", "bowl", "box"]
    out = []
    for i, w in enumerate(words):
        a, b = objs[i % len(objs)], objs[(i + 5) % len(objs)]
        out.append(f"Is the {a} {w} than the {b}? Yes, the {a} is {w}.")
        out.append(f"How far is the {a} from the {b}? About {i + 1}.{i % 10} meters, {i * 7 + 3} cm or {i + 2} feet.")
    return out * 3


def build_tiny_vlm(out_dir: Path, texts: Iterable[str] | None = None, spec: TinyVLMSpec | None = None) -> Path:
    """Build, randomly initialise and save a small VLM plus its processor under ``out_dir``. Returns ``out_dir``."""
    import torch

    spec = spec or TinyVLMSpec()
    if spec.family not in FAMILIES:
        raise ValueError(f"unknown tiny model family {spec.family!r}; choose one of {FAMILIES}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    texts = list(texts) if texts is not None else default_texts()
    # the chat template's own words, as often as the QA text's common words, so "Assistant:" is one or two tokens
    # rather than six in every training row
    texts += list(CHAT_WORDS) * max(10, len(texts) // 10)
    torch.manual_seed(spec.seed)
    if spec.family == "idefics3":
        model, processor = _build_idefics3(texts, spec)
    else:
        model, processor = _build_qwen(texts, spec)
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    (out_dir / "tiny_spec.json").write_text(json.dumps(asdict(spec), indent=2))
    return out_dir


def _language_dims(spec: TinyVLMSpec, vocab_size: int) -> dict:
    """Sizes of the language model, the same keys in every family's text config."""
    return dict(
        vocab_size=vocab_size,
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_layers,
        num_attention_heads=spec.num_heads,
        num_key_value_heads=spec.num_kv_heads,
        max_position_embeddings=4096,
    )


def _build_qwen(texts: list[str], spec: TinyVLMSpec):
    tok = _wrap_tokenizer(train_tokenizer(texts, spec.vocab_size, QWEN_SPECIAL), spec.family)
    ids = {t: tok.convert_tokens_to_ids(t) for t in QWEN_SPECIAL}
    head_dim = spec.hidden_size // spec.num_heads
    # multimodal RoPE splits head_dim/2 frequencies into (time, height, width) sections
    half = head_dim // 2
    hw = half * 3 // 8
    mrope = [half - 2 * hw, hw, hw]
    text = dict(
        **_language_dims(spec, len(tok)),
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": mrope},
        bos_token_id=None,
        eos_token_id=ids["<|im_end|>"],
        pad_token_id=ids["<|endoftext|>"],
        tie_word_embeddings=False,
    )
    common = dict(
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=False,
    )
    if spec.family == "qwen2_vl":
        from transformers import (
            Qwen2VLConfig,
            Qwen2VLForConditionalGeneration,
            Qwen2VLImageProcessor,
            Qwen2VLProcessor,
            Qwen2VLVideoProcessor,
        )

        vision = dict(
            depth=spec.vision_depth,
            embed_dim=spec.vision_dim,
            hidden_size=spec.hidden_size,
            num_heads=spec.vision_heads,
            mlp_ratio=2,
            patch_size=spec.patch_size,
            spatial_merge_size=2,
            temporal_patch_size=2,
        )
        config = Qwen2VLConfig(text_config=text, vision_config=vision, **common)
        model = Qwen2VLForConditionalGeneration(config)
        proc_cls, ip_cls, vp_cls = Qwen2VLProcessor, Qwen2VLImageProcessor, Qwen2VLVideoProcessor
    else:
        from transformers import (
            Qwen2_5_VLConfig,
            Qwen2_5_VLForConditionalGeneration,
            Qwen2_5_VLProcessor,
            Qwen2VLImageProcessor,
            Qwen2VLVideoProcessor,
        )

        vision = dict(
            depth=spec.vision_depth,
            hidden_size=spec.vision_dim,
            intermediate_size=spec.vision_dim * 2,
            out_hidden_size=spec.hidden_size,
            num_heads=spec.vision_heads,
            patch_size=spec.patch_size,
            spatial_merge_size=2,
            temporal_patch_size=2,
            window_size=spec.patch_size * 2 * 4,
            fullatt_block_indexes=[spec.vision_depth - 1],
        )
        config = Qwen2_5_VLConfig(text_config=text, vision_config=vision, **common)
        model = Qwen2_5_VLForConditionalGeneration(config)
        proc_cls, ip_cls, vp_cls = Qwen2_5_VLProcessor, Qwen2VLImageProcessor, Qwen2VLVideoProcessor
    size = {"shortest_edge": spec.min_pixels, "longest_edge": spec.max_pixels}
    image_processor = ip_cls(size=size, patch_size=spec.patch_size, merge_size=2, temporal_patch_size=2)
    video_processor = vp_cls(size=size, patch_size=spec.patch_size, merge_size=2, temporal_patch_size=2)
    processor = proc_cls(
        image_processor=image_processor,
        tokenizer=tok,
        video_processor=video_processor,
        chat_template=QWEN_CHAT_TEMPLATE,
    )
    model.generation_config.eos_token_id = ids["<|im_end|>"]
    model.generation_config.pad_token_id = ids["<|endoftext|>"]
    return model, processor


def _build_idefics3(texts: list[str], spec: TinyVLMSpec):
    from transformers import (
        Idefics3Config,
        Idefics3ForConditionalGeneration,
        Idefics3ImageProcessor,
        Idefics3Processor,
    )

    tok = _wrap_tokenizer(train_tokenizer(texts, spec.vocab_size, IDEFICS_SPECIAL), "idefics3")
    ids = {t: tok.convert_tokens_to_ids(t) for t in IDEFICS_SPECIAL}
    scale = 2
    image_seq_len = (spec.image_size // spec.patch_size) ** 2 // (scale * scale)
    text = dict(
        **_language_dims(spec, len(tok)),
        bos_token_id=ids["<|begin_of_text|>"],
        eos_token_id=ids["<end_of_utterance>"],
        pad_token_id=ids["<|endoftext|>"],
    )
    vision = dict(
        hidden_size=spec.vision_dim,
        intermediate_size=spec.vision_dim * 2,
        num_hidden_layers=spec.vision_depth,
        num_attention_heads=spec.vision_heads,
        image_size=spec.image_size,
        patch_size=spec.patch_size,
    )
    config = Idefics3Config(
        text_config=text, vision_config=vision, image_token_id=ids["<image>"], scale_factor=scale,
        tie_word_embeddings=spec.tie_embeddings, pad_token_id=ids["<|endoftext|>"],
    )
    model = Idefics3ForConditionalGeneration(config)
    image_processor = Idefics3ImageProcessor(
        do_image_splitting=False,
        size={"longest_edge": spec.image_size},
        max_image_size={"longest_edge": spec.image_size},
    )
    processor = Idefics3Processor(
        image_processor=image_processor, tokenizer=tok, image_seq_len=image_seq_len,
        chat_template=IDEFICS_CHAT_TEMPLATE,
    )
    model.generation_config.eos_token_id = ids["<end_of_utterance>"]
    model.generation_config.pad_token_id = ids["<|endoftext|>"]
    model.generation_config.bos_token_id = ids["<|begin_of_text|>"]
    return model, processor
