#!/usr/bin/env python
"""Per-step perception timings (seconds per image) for every backend and for the whole stage.

Modes:
  --mode tiny       tiny random models from tests/perception_tiny.py (CPU plumbing cost; runs anywhere, offline)
  --mode real-arch  the real-size architectures (default transformers configs of the recommended checkpoints) with
                    random weights: the same compute as the real models, no download; meant for a GPU host
  --mode specs      the models named by a perception YAML (--config) or the defaults, with real weights

Examples:
  python scripts/bench_perception.py                                  # tiny, CPU
  python scripts/bench_perception.py --mode real-arch --device cuda --only depth-pro,owlv2,sam
  python scripts/bench_perception.py --mode specs --config my_perception.yaml --images photos/ -n 16
Writes a markdown table to stdout and JSON to --out (default bench_perception.json)."""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))

KIND = {"depth-pro": "depth", "depth-anything-v2-metric": "depth", "zoedepth": "depth", "owlv2": "detector",
        "grounding-dino": "detector", "sam": "segmenter", "sam2": "segmenter", "florence2": "captioner",
        "clip": "filter", "hf-mean-pool": "embedder"}


# ------------------------------------------------------------------------------------------------------------------
# real-size architectures, random weights
# ------------------------------------------------------------------------------------------------------------------
def build_real_arch(name: str, out: Path) -> Path:
    import transformers as T
    from perception_tiny import bart_tokenizer, bert_tokenizer, clip_tokenizer

    def clip_text(tok):
        return {"vocab_size": len(tok), "bos_token_id": tok.bos_token_id, "eos_token_id": tok.eos_token_id,
                "pad_token_id": tok.pad_token_id}

    out = Path(out)
    if name == "depth-pro":  # apple/DepthPro-hf: DINOv2-L encoders, 1536 px input, FoV head
        T.DepthProForDepthEstimation(T.DepthProConfig(use_fov_model=True)).save_pretrained(out)
        T.DepthProImageProcessor().save_pretrained(out)
    elif name == "depth-anything-v2-metric":  # Depth-Anything-V2-Metric-Indoor-Small-hf (ViT-S/14, 518 px)
        bb = {"model_type": "dinov2", "hidden_size": 384, "num_hidden_layers": 12, "num_attention_heads": 6,
              "intermediate_size": 1536, "patch_size": 14, "image_size": 518, "out_indices": [3, 6, 9, 12],
              "reshape_hidden_states": False}
        cfg = T.DepthAnythingConfig(backbone_config=bb, reassemble_hidden_size=384,
                                    neck_hidden_sizes=[48, 96, 192, 384], fusion_hidden_size=64, head_hidden_size=32,
                                    depth_estimation_type="metric", max_depth=20)
        T.DepthAnythingForDepthEstimation(cfg).save_pretrained(out)
        T.DPTImageProcessor(size={"height": 518, "width": 518}, keep_aspect_ratio=True, ensure_multiple_of=14,
                            do_pad=False, resample=3).save_pretrained(out)
    elif name == "zoedepth":  # Intel/zoedepth-nyu-kitti: BEiT-L 384
        T.ZoeDepthForDepthEstimation(T.ZoeDepthConfig()).save_pretrained(out)
        T.ZoeDepthImageProcessor().save_pretrained(out)
    elif name == "owlv2":  # google/owlv2-base-patch16-ensemble: ViT-B/16 at 960 px
        tok = clip_tokenizer()
        cfg = T.Owlv2Config(text_config=clip_text(tok), vision_config={"image_size": 960, "patch_size": 16})
        T.Owlv2ForObjectDetection(cfg).save_pretrained(out)
        T.Owlv2Processor(image_processor=T.Owlv2ImageProcessor(), tokenizer=tok).save_pretrained(out)
    elif name == "grounding-dino":  # IDEA-Research/grounding-dino-tiny: Swin-T + BERT-base
        tok = bert_tokenizer()
        cfg = T.GroundingDinoConfig(text_config={"model_type": "bert", "vocab_size": len(tok)})
        T.GroundingDinoForObjectDetection(cfg).save_pretrained(out)
        T.GroundingDinoProcessor(image_processor=T.GroundingDinoImageProcessor(), tokenizer=tok).save_pretrained(out)
    elif name == "sam":  # facebook/sam-vit-base
        T.SamModel(T.SamConfig()).save_pretrained(out)
        T.SamProcessor(image_processor=T.SamImageProcessor()).save_pretrained(out)
    elif name == "sam2":  # default Sam2Config (Hiera backbone), 1024 px
        T.Sam2Model(T.Sam2Config()).save_pretrained(out)
        T.Sam2Processor(image_processor=T.Sam2ImageProcessor()).save_pretrained(out)
    elif name == "florence2":  # microsoft/Florence-2-base: DaViT + BART-base, 768 px, 577 image tokens
        tok = bart_tokenizer()
        text = {"vocab_size": len(tok), "pad_token_id": 1, "bos_token_id": 0, "eos_token_id": 2,
                "decoder_start_token_id": 2}
        m = T.Florence2ForConditionalGeneration(T.Florence2Config(text_config=text, image_token_id=tok.image_token_id))
        m.save_pretrained(out)
        ip = T.CLIPImageProcessor(size={"height": 768, "width": 768}, crop_size={"height": 768, "width": 768},
                                  do_center_crop=False, image_seq_length=577)
        T.Florence2Processor(image_processor=ip, tokenizer=tok).save_pretrained(out)
    elif name == "clip":  # openai/clip-vit-base-patch32
        tok = clip_tokenizer()
        T.CLIPModel(T.CLIPConfig(text_config=clip_text(tok))).save_pretrained(out)
        T.CLIPProcessor(image_processor=T.CLIPImageProcessor(), tokenizer=tok).save_pretrained(out)
    elif name == "hf-mean-pool":  # sentence-transformers/all-MiniLM-L6-v2 size
        tok = bert_tokenizer()
        T.BertModel(T.BertConfig(vocab_size=len(tok), hidden_size=384, num_hidden_layers=6, num_attention_heads=12,
                                 intermediate_size=1536)).save_pretrained(out)
        tok.save_pretrained(out)
    else:
        raise ValueError(name)
    return out


# ------------------------------------------------------------------------------------------------------------------
def load_images(folder: str | None, n: int) -> list[np.ndarray]:
    from spatialvlm.io.photos import list_photos, load_image

    if folder:
        paths = list_photos(folder)
    else:
        data = ROOT / ".." / "shared" / "data" / "nyu_kitti_metric3d" / "data"
        paths = sorted((data / "nyu_demo" / "rgb").glob("*.jpg")) + sorted((data / "kitti_demo" / "rgb").glob("*.png"))
    imgs = [load_image(p)[0] for p in paths[:n]]
    rng = np.random.default_rng(0)
    while len(imgs) < n:  # no photos at hand: smooth random images of a phone-photo size
        imgs.append((rng.random((480, 640, 3)) * 255).astype(np.uint8))
    return imgs[:n]


def grid_boxes(img: np.ndarray, k: int) -> list[tuple[float, float, float, float]]:
    h, w = img.shape[:2]
    out = []
    for i in range(k):
        x0, y0 = (i % 4) * w / 4, (i // 4 % 3) * h / 3
        out.append((x0, y0, x0 + w / 4, y0 + h / 3))
    return out


def sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_backend(name: str, spec: str, images: list[np.ndarray], device: str, dtype: str, batch: int,
                 vocab: list[str], boxes_per_image: int) -> dict:
    import torch

    from spatialvlm.perception.registry import clear_cache, get_backend

    kind = KIND[name]
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    t = time.perf_counter()
    b = get_backend(kind, spec, device=device, dtype=dtype, batch_size=batch)
    load_s = time.perf_counter() - t

    def run(ims):
        if kind == "depth":
            return b.predict(ims, fallback_focal_px=[max(im.shape[:2]) for im in ims])
        if kind == "detector":
            return b.detect(ims, vocab, threshold=0.3)
        if kind == "segmenter":
            return b.segment(ims, [grid_boxes(im, boxes_per_image) for im in ims])
        if kind == "captioner":
            return b.caption(ims, [grid_boxes(im, 4) for im in ims])
        if kind == "filter":
            return b.decide(ims)
        return b.embed(vocab)

    run(images[:1])  # warm-up (kernels, caches)
    sync(device)
    t = time.perf_counter()
    run(images)
    sync(device)
    per = (time.perf_counter() - t) / len(images)
    row = {"backend": name, "kind": kind, "spec": spec, "device": b.device, "dtype": str(b.dtype).replace("torch.", ""),
           "load_s": round(load_s, 2), "s_per_image": round(per, 4)}
    if kind == "segmenter":
        row["note"] = f"{boxes_per_image} boxes per image"
    if kind == "captioner":
        row["note"] = "4 boxes per image"
    if kind == "embedder":
        row["note"] = f"{len(vocab)} names per call"
    if device.startswith("cuda"):
        row["peak_gpu_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    clear_cache()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    return row


def time_stage(cfg, images: list[np.ndarray]) -> dict:
    from spatialvlm.perception.registry import clear_cache
    from spatialvlm.perception.stage import PerceptionStage
    from spatialvlm.records import Frame

    stage = PerceptionStage(cfg)
    stage([Frame("warm", images[0])])
    stage.timings.clear()
    stage.counts.clear()
    t = time.perf_counter()
    out = stage([Frame(f"img{i}", im) for i, im in enumerate(images)])
    total = (time.perf_counter() - t) / len(images)
    steps = {k: round(v / max(1, len(images)), 4) for k, v in stage.timings.items()}
    clear_cache()
    return {"s_per_image": round(total, 4), "steps_s_per_image": steps,
            "frames_ok": sum(1 for o in out if not hasattr(o, "reason"))}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mode", choices=["tiny", "real-arch", "specs"], default="tiny")
    ap.add_argument("--device", default="cpu", help="cpu, cuda, mps or auto")
    ap.add_argument("--dtype", default="auto")
    ap.add_argument("-n", "--num-images", type=int, default=4)
    ap.add_argument("--images", default=None, help="folder of photos (default: ../shared/data demo frames)")
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--boxes", type=int, default=8, help="boxes per image for the segmenter")
    ap.add_argument("--only", default="", help="comma-separated backend names")
    ap.add_argument("--config", default=None, help="perception YAML (mode specs)")
    ap.add_argument("--no-stage", action="store_true", help="skip the whole-stage timing")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ap.add_argument("--out", default="bench_perception.json")
    args = ap.parse_args(argv)

    import torch
    import transformers

    from spatialvlm.perception.loading import quiet_transformers
    from spatialvlm.perception.registry import parse_spec
    from spatialvlm.perception.stage import PerceptionConfig

    quiet_transformers()
    if args.threads:
        torch.set_num_threads(args.threads)
    images = load_images(args.images, args.num_images)
    vocab = ["chair", "table", "sofa", "bed", "lamp", "cup", "bottle", "book", "person", "car", "plant", "television"]
    only = [s for s in args.only.split(",") if s]
    rows: list[dict] = []
    stage_row = None
    with tempfile.TemporaryDirectory() as tmp:
        specs: dict[str, str] = {}
        if args.mode == "specs":
            cfg = PerceptionConfig.from_yaml(args.config) if args.config else PerceptionConfig()
            for key in ("scene_filter", "depth", "detector", "segmenter", "captioner", "embedder"):
                s = getattr(cfg, key)
                if s:
                    specs[parse_spec(s)[0]] = s
        else:
            from perception_tiny import BUILDERS

            for name in only or list(KIND):
                t = time.perf_counter()
                folder = (BUILDERS[name](Path(tmp) / name) if args.mode == "tiny"
                          else build_real_arch(name, Path(tmp) / name))
                specs[name] = f"{name}:{folder}"
                print(f"built {name} ({args.mode}) in {time.perf_counter() - t:.1f} s", file=sys.stderr)
        for name, spec in specs.items():
            if only and name not in only:
                continue
            rows.append(time_backend(name, spec, images, args.device, args.dtype, args.batch_size, vocab, args.boxes))
            print(json.dumps(rows[-1]), file=sys.stderr)
        if not args.no_stage:
            def pick(*names: str) -> str | None:
                return next((specs[n] for n in names if n in specs), None)

            cfg = PerceptionConfig(depth=pick("depth-pro", "depth-anything-v2-metric", "zoedepth"),
                                   detector=pick("owlv2", "grounding-dino"), segmenter=pick("sam", "sam2"),
                                   captioner=pick("florence2") if "florence2" in (only or []) else None,
                                   scene_filter=pick("clip"), embedder=None, filter_threshold=0.0,
                                   detection_threshold=0.0 if args.mode != "specs" else None, vocabulary=vocab,
                                   device=args.device, dtype=args.dtype, batch_size=args.batch_size)
            if cfg.depth:
                stage_row = {"config": {k: getattr(cfg, k) for k in ("depth", "detector", "segmenter", "captioner",
                                                                      "scene_filter")}, **time_stage(cfg, images)}

    env = {"mode": args.mode, "device": args.device, "torch": torch.__version__, "transformers": transformers.__version__,
           "python": platform.python_version(), "cpu_threads": torch.get_num_threads(), "images": len(images),
           "image_sizes": sorted({f"{im.shape[1]}x{im.shape[0]}" for im in images}),
           "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}
    Path(args.out).write_text(json.dumps({"env": env, "backends": rows, "stage": stage_row}, indent=2))
    print(f"\nperception benchmark ({args.mode}, {args.device}, {len(images)} images {env['image_sizes']}, "
          f"torch {env['torch']}, {env['cpu_threads']} CPU threads{', ' + env['gpu'] if env['gpu'] else ''})\n")
    print("| backend | kind | device | dtype | load s | s / image | peak GPU GiB | note |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['backend']} | {r['kind']} | {r['device']} | {r['dtype']} | {r['load_s']} | {r['s_per_image']} | "
              f"{r.get('peak_gpu_gib', '-')} | {r.get('note', '')} |")
    if stage_row:
        steps = ", ".join(f"{k} {v}" for k, v in stage_row["steps_s_per_image"].items())
        print(f"\nwhole stage: {stage_row['s_per_image']} s / image ({steps})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
