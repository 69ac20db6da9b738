"""Tiny, randomly initialised perception models built offline from transformers configs.

Each ``build_*`` function writes a folder (config, weights, processor / tokenizer) with ``save_pretrained`` and
returns its path, so tests load it back through the same ``from_pretrained`` path users take with real ids.
Reusable by other test files: ``from perception_tiny import build_all`` (tests/ is on sys.path under pytest).

The outputs are meaningless; shapes, units, resizing and plumbing are what these models check."""

from __future__ import annotations

import string
from pathlib import Path

import numpy as np

WORDS = ["a", "an", "the", "of", "photo", "phone", "indoor", "outdoor", "scene", "chair", "table", "top", "floor",
         "cup", "person", "car", "bottle", "lamp", "sofa", "bed", "book", "plant", "tv", "monitor", "door"]


def _seed(seed: int = 0) -> None:
    import torch
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # no load reports / progress bars in test output
    hf_logging.disable_progress_bar()

    torch.manual_seed(seed)
    np.random.seed(seed)


def _bytes_to_unicode() -> dict[int, str]:
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


def clip_tokenizer():
    """A character-level CLIP tokenizer (every byte is a token, with and without the end-of-word suffix).
    The special tokens come last, as in the real vocabulary: OWL treats a query starting with id 0 as padding."""
    from transformers import CLIPTokenizer

    vocab: dict[str, int] = {}
    for ch in _bytes_to_unicode().values():
        vocab.setdefault(ch, len(vocab))
        vocab.setdefault(ch + "</w>", len(vocab))
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=[])


def _clip_text_config(tok, max_positions: int) -> dict:
    return {"vocab_size": len(tok), "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1,
            "num_attention_heads": 2, "max_position_embeddings": max_positions, "bos_token_id": tok.bos_token_id,
            "eos_token_id": tok.eos_token_id, "pad_token_id": tok.pad_token_id}


def bert_tokenizer():
    from transformers import BertTokenizer

    vocab = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", ",", "-"])}
    for w in WORDS + list(string.ascii_lowercase) + list(string.digits):
        vocab.setdefault(w, len(vocab))
    for c in string.ascii_lowercase + string.digits:
        vocab.setdefault("##" + c, len(vocab))
    return BertTokenizer(vocab=vocab)


def bart_tokenizer():
    """A byte-level BART tokenizer with Florence-2's extra tokens (image token, <loc_0>..<loc_999>)."""
    from transformers import BartTokenizer

    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
    for ch in _bytes_to_unicode().values():
        vocab.setdefault(ch, len(vocab))
    vocab["<mask>"] = len(vocab)
    tok = BartTokenizer(vocab=vocab, merges=[], extra_special_tokens={"image_token": "<image>"})
    tok.add_tokens([f"<loc_{i}>" for i in range(1000)] + ["<od>", "</od>", "<ocr>", "</ocr>", "<cap>", "</cap>",
                                                          "<ncap>", "</ncap>", "<dcap>", "</dcap>", "<grounding>",
                                                          "</grounding>", "<seg>", "</seg>", "<sep>",
                                                          "<region_cap>", "</region_cap>", "<region_to_desciption>",
                                                          "</region_to_desciption>", "<proposal>", "</proposal>",
                                                          "<poly>", "</poly>", "<and>"], special_tokens=False)
    return tok


def _dinov2(image_size: int, patch: int = 4, **kw) -> dict:
    d = {"model_type": "dinov2", "hidden_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2,
         "intermediate_size": 32, "patch_size": patch, "image_size": image_size}
    d.update(kw)
    return d


# ----------------------------------------------------------------------------------------------------------------
# depth
# ----------------------------------------------------------------------------------------------------------------


def build_depth_pro(out: Path, fov_deg: float = 60.0) -> Path:
    """DepthPro with the field-of-view head; the head's last bias is set so the tiny model predicts about
    ``fov_deg`` (a random head would predict nonsense angles and the fallback, not the model path, would run)."""
    import torch
    from transformers import DepthProConfig, DepthProForDepthEstimation, DepthProImageProcessor

    _seed()
    cfg = DepthProConfig(patch_size=16, fusion_hidden_size=16, intermediate_hook_ids=[1, 0],
                         intermediate_feature_dims=[8, 8], scaled_images_ratios=[0.25, 0.5, 1.0],
                         scaled_images_overlap_ratios=[0.0, 0.5, 0.25], scaled_images_feature_dims=[8, 8, 8],
                         use_fov_model=True, image_model_config=_dinov2(16), patch_model_config=_dinov2(16),
                         fov_model_config=_dinov2(16))
    model = DepthProForDepthEstimation(cfg).eval()
    with torch.no_grad():
        last = [m for m in model.fov_model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))][-1]
        last.weight.mul_(1e-3)
        last.bias.fill_(fov_deg)
    out = Path(out)
    model.save_pretrained(out)
    DepthProImageProcessor(size={"height": 64, "width": 64}).save_pretrained(out)
    return out


def build_depth_anything(out: Path, max_depth: int = 20) -> Path:
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, DPTImageProcessor

    _seed()
    cfg = DepthAnythingConfig(
        backbone_config=_dinov2(28, patch=14, out_indices=[1, 2], reshape_hidden_states=False),
        reassemble_hidden_size=16, reassemble_factors=[2, 1], neck_hidden_sizes=[8, 16], fusion_hidden_size=16,
        head_hidden_size=8, depth_estimation_type="metric", max_depth=int(max_depth))
    out = Path(out)
    DepthAnythingForDepthEstimation(cfg).eval().save_pretrained(out)
    DPTImageProcessor(size={"height": 56, "width": 56}, keep_aspect_ratio=True, ensure_multiple_of=14,
                      do_pad=False).save_pretrained(out)
    return out


def build_zoedepth(out: Path) -> Path:
    from transformers import ZoeDepthConfig, ZoeDepthForDepthEstimation, ZoeDepthImageProcessor

    _seed()
    backbone = {"model_type": "beit", "image_size": 32, "patch_size": 8, "num_hidden_layers": 4, "hidden_size": 16,
                "intermediate_size": 32, "num_attention_heads": 2, "use_relative_position_bias": True,
                "reshape_hidden_states": False, "out_features": ["stage1", "stage2", "stage3", "stage4"]}
    cfg = ZoeDepthConfig(backbone_config=backbone, neck_hidden_sizes=[8, 8, 16, 16], fusion_hidden_size=16,
                         bottleneck_features=16, num_relative_features=8, bin_embedding_dim=8,
                         num_attractors=[4, 2, 2, 1], num_patch_transformer_layers=1,
                         patch_transformer_hidden_size=16, patch_transformer_intermediate_size=32,
                         patch_transformer_num_attention_heads=2,
                         bin_configurations=[{"n_bins": 8, "min_depth": 0.001, "max_depth": 10.0}])
    out = Path(out)
    ZoeDepthForDepthEstimation(cfg).eval().save_pretrained(out)
    ZoeDepthImageProcessor(size={"height": 32, "width": 32}, keep_aspect_ratio=True,
                           ensure_multiple_of=8).save_pretrained(out)
    return out


# ----------------------------------------------------------------------------------------------------------------
# detection
# ----------------------------------------------------------------------------------------------------------------


def build_owlv2(out: Path) -> Path:
    from transformers import Owlv2Config, Owlv2ForObjectDetection, Owlv2ImageProcessor, Owlv2Processor

    _seed()
    tok = clip_tokenizer()
    text = _clip_text_config(tok, 16)
    vision = {"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
              "image_size": 32, "patch_size": 8}
    cfg = Owlv2Config(text_config=text, vision_config=vision, projection_dim=16)
    out = Path(out)
    Owlv2ForObjectDetection(cfg).eval().save_pretrained(out)
    Owlv2Processor(image_processor=Owlv2ImageProcessor(size={"height": 32, "width": 32}),
                   tokenizer=tok).save_pretrained(out)
    return out


def build_grounding_dino(out: Path) -> Path:
    from transformers import (
        GroundingDinoConfig,
        GroundingDinoForObjectDetection,
        GroundingDinoImageProcessor,
        GroundingDinoProcessor,
    )

    _seed()
    tok = bert_tokenizer()
    backbone = {"model_type": "swin", "image_size": 32, "patch_size": 4, "embed_dim": 8, "depths": [1, 1, 1, 1],
                "num_heads": [1, 1, 2, 2], "window_size": 2, "out_indices": [2, 3, 4]}
    text = {"model_type": "bert", "vocab_size": len(tok), "hidden_size": 16, "num_hidden_layers": 1,
            "num_attention_heads": 2, "intermediate_size": 32, "max_position_embeddings": 256}
    cfg = GroundingDinoConfig(backbone_config=backbone, text_config=text, d_model=32, encoder_layers=1,
                              decoder_layers=2, encoder_ffn_dim=32, decoder_ffn_dim=32, encoder_attention_heads=2,
                              decoder_attention_heads=2, num_queries=20, num_feature_levels=3,
                              encoder_n_points=2, decoder_n_points=2, max_text_len=256)
    out = Path(out)
    GroundingDinoForObjectDetection(cfg).eval().save_pretrained(out)
    GroundingDinoProcessor(image_processor=GroundingDinoImageProcessor(size={"shortest_edge": 32,
                                                                            "longest_edge": 64}),
                           tokenizer=tok).save_pretrained(out)
    return out


# ----------------------------------------------------------------------------------------------------------------
# segmentation
# ----------------------------------------------------------------------------------------------------------------


def build_sam(out: Path) -> Path:
    from transformers import SamConfig, SamImageProcessor, SamModel, SamProcessor

    _seed()
    vision = {"hidden_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2, "mlp_dim": 32, "image_size": 64,
              "patch_size": 8, "output_channels": 16, "global_attn_indexes": [1], "window_size": 4,
              "num_pos_feats": 8}
    prompt = {"hidden_size": 16, "image_size": 64, "patch_size": 8, "mask_input_channels": 4}
    mask = {"hidden_size": 16, "mlp_dim": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
            "iou_head_hidden_dim": 16}
    cfg = SamConfig(vision_config=vision, prompt_encoder_config=prompt, mask_decoder_config=mask)
    out = Path(out)
    SamModel(cfg).eval().save_pretrained(out)
    SamProcessor(image_processor=SamImageProcessor(size={"longest_edge": 64}, pad_size={"height": 64, "width": 64},
                                                   mask_size={"longest_edge": 16},
                                                   mask_pad_size={"height": 16, "width": 16})).save_pretrained(out)
    return out


def build_sam2(out: Path) -> Path:
    from transformers import Sam2Config, Sam2ImageProcessor, Sam2Model, Sam2Processor

    _seed()
    backbone = {"model_type": "sam2_hiera_det_model", "hidden_size": 8, "num_attention_heads": 1,
                "blocks_per_stage": [1, 1, 2, 1], "embed_dim_per_stage": [8, 16, 32, 64],
                "num_attention_heads_per_stage": [1, 1, 1, 1], "window_size_per_stage": [2, 2, 2, 2],
                "global_attention_blocks": [3], "window_positional_embedding_background_size": [2, 2],
                "image_size": [64, 64], "patch_kernel_size": [7, 7], "patch_stride": [4, 4],
                "patch_padding": [3, 3]}
    vision = {"backbone_config": backbone, "backbone_channel_list": [64, 32, 16, 8], "fpn_hidden_size": 16,
              "backbone_feature_sizes": [[16, 16], [8, 8], [4, 4]]}
    prompt = {"hidden_size": 16, "image_size": 64, "patch_size": 16, "mask_input_channels": 4}
    mask = {"hidden_size": 16, "mlp_dim": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
            "iou_head_hidden_dim": 16}
    cfg = Sam2Config(vision_config=vision, prompt_encoder_config=prompt, mask_decoder_config=mask)
    out = Path(out)
    Sam2Model(cfg).eval().save_pretrained(out)
    Sam2Processor(image_processor=Sam2ImageProcessor(size={"height": 64, "width": 64},
                                                     mask_size={"height": 16, "width": 16})).save_pretrained(out)
    return out


# ----------------------------------------------------------------------------------------------------------------
# captions, filter, text embedding
# ----------------------------------------------------------------------------------------------------------------


def build_florence2(out: Path) -> Path:
    from transformers import (
        CLIPImageProcessor,
        Florence2Config,
        Florence2ForConditionalGeneration,
        Florence2Processor,
    )

    _seed()
    tok = bart_tokenizer()
    n_tokens = len(tok)
    image_tokens = 17  # (32 / 4 / 2)^2 spatial tokens + 1 pooled token from the vision tower
    text = {"vocab_size": n_tokens, "d_model": 16, "encoder_layers": 1, "decoder_layers": 1,
            "encoder_attention_heads": 2, "decoder_attention_heads": 2, "encoder_ffn_dim": 32,
            "decoder_ffn_dim": 32, "max_position_embeddings": 128, "pad_token_id": 1, "bos_token_id": 0,
            "eos_token_id": 2, "decoder_start_token_id": 2, "forced_bos_token_id": 0}
    vision = {"in_channels": 3, "depths": [1, 1], "patch_size": [7, 3], "patch_stride": [4, 2],
              "patch_padding": [3, 1], "patch_prenorm": [False, True], "embed_dim": [8, 16], "num_heads": [1, 2],
              "num_groups": [1, 2], "window_size": 2, "projection_dim": 16, "max_temporal_embeddings": 1,
              "max_position_embeddings": 8}
    cfg = Florence2Config(text_config=text, vision_config=vision, image_token_id=tok.image_token_id)
    out = Path(out)
    model = Florence2ForConditionalGeneration(cfg).eval()
    model.generation_config.max_new_tokens = 8
    model.save_pretrained(out)
    ip = CLIPImageProcessor(size={"height": 32, "width": 32}, crop_size={"height": 32, "width": 32},
                            do_center_crop=False, image_seq_length=image_tokens)
    Florence2Processor(image_processor=ip, tokenizer=tok).save_pretrained(out)
    return out


def build_clip(out: Path) -> Path:
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    _seed()
    tok = clip_tokenizer()
    text = _clip_text_config(tok, 77)
    vision = {"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
              "image_size": 32, "patch_size": 8}
    cfg = CLIPConfig(text_config=text, vision_config=vision, projection_dim=16)
    out = Path(out)
    CLIPModel(cfg).eval().save_pretrained(out)
    ip = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    CLIPProcessor(image_processor=ip, tokenizer=tok).save_pretrained(out)
    return out


def build_text_encoder(out: Path) -> Path:
    """A tiny BERT encoder + tokenizer for the ``hf-mean-pool`` embedder."""
    from transformers import BertConfig, BertModel

    _seed()
    tok = bert_tokenizer()
    cfg = BertConfig(vocab_size=len(tok), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=32, max_position_embeddings=64)
    out = Path(out)
    BertModel(cfg).eval().save_pretrained(out)
    tok.save_pretrained(out)
    return out


BUILDERS = {
    "depth-pro": build_depth_pro,
    "depth-anything-v2-metric": build_depth_anything,
    "zoedepth": build_zoedepth,
    "owlv2": build_owlv2,
    "grounding-dino": build_grounding_dino,
    "sam": build_sam,
    "sam2": build_sam2,
    "florence2": build_florence2,
    "clip": build_clip,
    "hf-mean-pool": build_text_encoder,
}


def build_all(root: Path, names: list[str] | None = None) -> dict[str, Path]:
    """Build the named tiny models (all by default) under ``root``; returns backend name -> folder."""
    root = Path(root)
    out = {}
    for name in names or list(BUILDERS):
        out[name] = BUILDERS[name](root / name)
    return out


def spec(name: str, folder: Path) -> str:
    return f"{name}:{folder}"
