"""Training: tiny config-built VLMs (Qwen2-VL, Idefics3) fine-tuned on CPU with LoRA and in full, answer-only
loss, adapters saved / reloaded / merged, resume, data transforms and the `ask` / `train` commands."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("trl")
pytest.importorskip("peft")

sys.path.insert(0, str(Path(__file__).parent))
import numpy as np
from test_train_fixtures import COLOURS, SMALL, make_dataset

from spatialvlm.train.config import TrainConfig, parse_set, preset_names, resolve_config
from spatialvlm.train.tiny import TinyVLMSpec, build_tiny_vlm

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("qa") / "out", n_images=10)


@pytest.fixture(scope="module")
def base_models(tmp_path_factory, data_dir) -> dict[str, Path]:
    from spatialvlm.train.data import answer_text, load_rows, question_text

    ds = load_rows([str(data_dir)]).select_columns(["prompt", "completion"])
    texts = [question_text(r) for r in ds] + [answer_text(r) for r in ds]
    root = tmp_path_factory.mktemp("base")
    return {fam: build_tiny_vlm(root / fam, texts, TinyVLMSpec(family=fam, **SMALL))
            for fam in ("qwen2_vl", "idefics3")}


def _losses(out: Path) -> list[float]:
    return json.loads((out / "train_summary.json").read_text())["losses"]


# ------------------------------------------------------------------------------------------------------------
# config
# ------------------------------------------------------------------------------------------------------------
def test_presets_resolve_and_overrides():
    for name in preset_names():
        cfg = resolve_config(name, {"data": ["d"], "out": "o"})
        assert cfg.model and cfg.preset == name
    cfg = resolve_config("cpu-tiny", {"data": "d", "out": "o", **parse_set(["tiny.hidden_size=96", "seed=3"])})
    assert cfg.tiny["hidden_size"] == 96 and cfg.tiny["num_layers"] == 4 and cfg.seed == 3 and cfg.data == ["d"]
    cfg = resolve_config("cpu-tiny", {"data": "d", "out": "o", **parse_set(
        ["scratch.type_weights={}", "scratch.max_questions_per_image=0", "scratch.attr_weights.x_image=2"])})
    assert cfg.scratch["type_weights"] == {} and cfg.scratch["attr_weights"] == {"x_image": 2}  # {} clears
    assert cfg.scratch["images_per_step"] == 6  # the rest of the preset's block stays
    with pytest.raises(ValueError, match="unknown training option"):
        resolve_config("cpu-tiny", {"data": ["d"], "out": "o", "learning_rat": 1.0})
    with pytest.raises(ValueError, match="unknown preset"):
        resolve_config("nope", {"data": ["d"], "out": "o"})
    with pytest.raises(ValueError, match="from scratch"):
        resolve_config("cpu-tiny", {"data": ["d"], "out": "o", "lora": True})
    with pytest.raises(ValueError, match="key=value"):
        parse_set(["novalue"])


def test_config_round_trip(tmp_path):
    cfg = resolve_config("qwen2-vl-2b", {"data": ["x"], "out": "y", "label_noise_std": 0.2})
    back = TrainConfig.load(cfg.save(tmp_path / "c.yaml"))
    assert back == cfg


# ------------------------------------------------------------------------------------------------------------
# data
# ------------------------------------------------------------------------------------------------------------
def test_data_rows_split_noise_mix(data_dir):
    from spatialvlm.train import data as D

    ds = D.load_rows([str(data_dir)])
    assert "messages" not in ds.column_names  # otherwise TRL would train on the whole chat
    assert set(ds.column_names) >= {"images", "prompt", "completion", "qa_type", "value_m"}
    assert ds[0]["images"][0].size == (64, 48)

    train, held = D.split_heldout(ds, 2, seed=0)
    assert len(train) + len(held) == len(ds)
    assert not set(train["image_id"]) & set(held["image_id"])

    noisy, rep = D.add_label_noise(train, 0.3, seed=0)
    assert rep.rows_quantitative == sum(v is not None for v in train["value_m"]) > 0
    assert rep.rows_noised == rep.rows_quantitative
    changed = sum(D.answer_text(a) != D.answer_text(b) for a, b in zip(train, noisy) if a["value_m"] is not None)
    assert changed >= rep.rows_noised // 2  # some survive rounding to the spoken precision
    unchanged = [D.answer_text(a) == D.answer_text(b) for a, b in zip(train, noisy) if a["value_m"] is None]
    assert all(unchanged)

    mixed, info = D.mix_general(train.select(range(5)), train.select(range(5, len(train))), 0.25, seed=0)
    assert info["spatial_rows"] == 5 and info["general_rows"] == 15 and len(mixed) == 20
    mixed, info = D.mix_general(train, train.select(range(3)), 0.5, seed=0)  # too few general rows
    assert info["spatial_rows"] == 3 and info["general_rows"] == 3


def test_grounding_rows(data_dir, tmp_path):
    import pandas as pd

    from spatialvlm.train import data as D

    ds = D.load_rows([str(data_dir)])
    train, _ = D.split_heldout(ds, 2, seed=0)
    out, n = D.add_grounding_rows(train, [str(data_dir)], copies=2)
    n_images = len(set(train["image_id"]))
    assert n == 2 * 2 * n_images and len(out) == len(train) + n  # two named squares per image, two copies
    objs = pd.read_parquet(data_dir / "objects.parquet")
    extra = out.select(range(len(train), len(out)))
    assert set(extra["qa_type"]) == {"grounding"} and all(v is None for v in extra["value_m"])
    for row in extra:
        q, a = D.question_text(row), D.answer_text(row)
        name = q.removeprefix("Where is the ").removesuffix(" in the image?")
        o = objs[(objs.image_id == row["image_id"]) & (objs.name == name)].iloc[0]
        x = round(100 * (o.box2d[0] + 5) / 64)
        y = round(100 * (o.box2d[1] + 5) / 48)
        assert a == f"x {x}, y {y}, depth {o.aabb_cam_center[2]:.1f} meters."
        # the row carries its own image: the named square's colour is at the stated position (the second square is
        # drawn over the first where they overlap)
        cx, cy = int(o.box2d[0]) + 5, int(o.box2d[1]) + 5
        other = objs[(objs.image_id == row["image_id"]) & (objs.name != name)].iloc[0]
        covered = o.object_id == 0 and other.box2d[0] <= cx < other.box2d[2] and other.box2d[1] <= cy < other.box2d[3]
        px = tuple(int(v) for v in np.asarray(row["images"][0])[cy, cx])
        assert px == (COLOURS[other["name"]] if covered else COLOURS[name])
    assert D.add_grounding_rows(train, [str(data_dir)], copies=0) == (train, 0)
    (tmp_path / "hf").symlink_to(data_dir / "hf")
    with pytest.raises(FileNotFoundError, match="objects.parquet"):
        D.add_grounding_rows(train, [str(tmp_path)], copies=1)


def test_short_answers(data_dir, tmp_path):
    import pandas as pd

    from spatialvlm.train import data as D
    from spatialvlm.train.scoring import score

    ds = D.load_rows([str(data_dir)])
    out, n = D.shorten_answers(ds, [str(data_dir)])
    qa = pd.read_parquet(data_dir / "qa.parquet")
    assert n == int((qa.family != "quantitative").sum()) and len(out) == len(ds)
    truth = {(r.image_id, r.question): r for r in qa.itertuples()}
    for before, after in zip(ds, out):
        r = truth[(before["image_id"], D.question_text(before))]
        a = D.answer_text(after)
        if r.family == "quantitative":
            assert a == D.answer_text(before)  # numbers keep their natural answer
            continue
        assert a == {"predicate": "Yes." if r.truth == "true" else "No.", "choice": f"The {r.truth}."}[r.family]
        item = {"qa_type": r.qa_type, "family": r.family, "truth": r.truth, "question": r.question,
                "answer": r.answer, "objects": list(r.objects), "value_m": r.value_m}
        assert score(item, a)["correct"]  # the evaluation reads the short form as the same answer
    assert D.short_answer("classify", "left") == "Left."
    assert D.short_answer("direction", "3") == "At 3 o'clock."
    assert D.short_answer("quantitative", "1.2") is None
    assert D.short_answer("quantitative", "1.2", "It is 1.2 m away.") is None  # numbers only when asked for
    with pytest.raises(FileNotFoundError, match="qa.parquet"):
        D.shorten_answers(ds, [str(tmp_path)])
    with pytest.raises(ValueError, match="answer_form"):
        resolve_config("cpu-tiny", {"data": ["d"], "out": "o", "answer_form": "long"})


def test_terse_answers(data_dir):
    import pandas as pd

    from spatialvlm.eval.parse import parse_distance
    from spatialvlm.train import data as D
    from spatialvlm.train.scoring import score

    assert D.terse_length("They are 6 feet 4 inches apart.") == "1.9 meters."
    assert D.terse_length("The lamp is 73 centimeters above the floor.") == "73 centimeters."
    assert D.terse_length("They are a meter apart vertically.") == "1 meter."
    assert D.terse_length("It is 2.04 meters tall.") == "2 meters."
    assert D.terse_length("4 mm") == "1 centimeter."  # a positive length is never written as zero
    assert D.terse_length("no number here") is None
    # the from-scratch trainer's answers: terse numbers take the label noise too; "short" keeps the sentence
    from spatialvlm.train.scratch import _answer

    row = {"answer": "The lamp is 73 centimeters above the floor.", "family": "quantitative", "truth": "0.73",
           "value_m": 0.73}
    assert _answer(row, "terse", None) == "73 centimeters." and _answer(row, "terse", 1.1) == "80 centimeters."
    assert _answer(row, "short", None) == row["answer"] and _answer(row, "natural", None) == row["answer"]
    ds = D.load_rows([str(data_dir)])
    out, n = D.shorten_answers(ds, [str(data_dir)], numbers=True)
    qa = pd.read_parquet(data_dir / "qa.parquet")
    assert n == len(qa) and len(out) == len(ds)
    truth = {(r.image_id, r.question): r for r in qa.itertuples()}
    seen = 0
    for before, after in zip(ds, out):
        r = truth[(before["image_id"], D.question_text(before))]
        if r.family != "quantitative":
            continue
        seen += 1
        a = D.answer_text(after)
        assert a.endswith((" centimeters.", " centimeter.", " meters.", " meter.")) and len(a.split()) == 2
        item = {"qa_type": r.qa_type, "family": r.family, "truth": r.truth, "question": r.question,
                "answer": r.answer, "objects": list(r.objects), "value_m": r.value_m}
        # the same length as the natural answer, to the rounding of the unit scheme (1 cm below a metre, 10 cm above)
        assert abs(parse_distance(a) - parse_distance(D.answer_text(before))) <= 0.0501
        assert score(item, a)["has_number"]
    assert seen > 0


def test_scale_numbers():
    from spatialvlm.train.data import scale_numbers

    assert scale_numbers("About 1.50 meters.", 2.0) == ("About 3.00 meters.", 1)
    assert scale_numbers("3 feet 2 inches", 1.5) == ("4 feet 3 inches", 2)
    assert scale_numbers("It is 90 cm", 0.001)[0] == "It is 1 cm"
    assert scale_numbers("one meter", 2.0) == ("one meter", 0)


def test_missing_data_folder_is_explained(tmp_path):
    from spatialvlm.train.data import hf_data_dir

    with pytest.raises(FileNotFoundError, match="spatialvlm synth"):
        hf_data_dir(tmp_path)


# ------------------------------------------------------------------------------------------------------------
# answer-only loss
# ------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("family", ["qwen2_vl", "idefics3"])
def test_prompt_tokens_are_masked(family, base_models, data_dir):
    from transformers import AutoProcessor

    from spatialvlm.train.data import answer_text, load_rows
    from spatialvlm.train.trainer import AnswerOnlyCollator

    proc = AutoProcessor.from_pretrained(base_models[family])
    ds = load_rows([str(data_dir)])
    rows = [ds[i] for i in range(4)]
    batch = AnswerOnlyCollator(proc)(rows)
    ids, labels, att = batch["input_ids"], batch["labels"], batch["attention_mask"]
    image_id = proc.image_token_id if hasattr(proc, "image_token_id") else proc.tokenizer.convert_tokens_to_ids(
        "<image>")
    tok = proc.tokenizer
    for i, row in enumerate(rows):
        keep = labels[i] != -100
        assert keep.any()
        # every image token and every prompt token is masked; what is trained is exactly the answer + end token
        assert not (keep & (ids[i] == image_id)).any()
        assert (ids[i] == image_id).sum() > 0
        assert torch.equal(labels[i][keep], ids[i][keep])
        assert not (keep & (att[i] == 0)).any()
        trained = tok.decode(ids[i][keep], skip_special_tokens=False).lstrip()  # Idefics3 puts a space first
        assert trained.startswith(answer_text(row)), (trained, answer_text(row))
        rest = trained[len(answer_text(row)):]
        assert tok.eos_token in rest
        q = row["prompt"][0]["content"][1]["text"]
        first_kept = int(keep.nonzero()[0])
        assert q in tok.decode(ids[i][:first_kept], skip_special_tokens=False)


def test_blind_collator_blanks_images(base_models, data_dir):
    from transformers import AutoProcessor

    from spatialvlm.train.data import load_rows
    from spatialvlm.train.trainer import AnswerOnlyCollator

    proc = AutoProcessor.from_pretrained(base_models["qwen2_vl"])
    rows = [load_rows([str(data_dir)])[i] for i in range(2)]
    seen = AnswerOnlyCollator(proc)(rows)["pixel_values"]
    blind = AnswerOnlyCollator(proc, blind=True)(rows)["pixel_values"]
    assert seen.shape == blind.shape
    assert float((blind - blind[0]).abs().max()) < 1e-5  # every patch the same: nothing to see
    assert float((seen - seen[0]).abs().max()) > 0.1


# ------------------------------------------------------------------------------------------------------------
# LoRA: train, save, reload, merge, ask
# ------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("family", ["qwen2_vl", "idefics3"])
def test_lora_trains_saves_reloads_merges(family, base_models, data_dir, tmp_path):
    from transformers import AutoModelForImageTextToText

    from spatialvlm.train.infer import answer, load_vlm, merge_adapter
    from spatialvlm.train.trainer import train

    out = tmp_path / "lora"
    cfg = resolve_config(None, {
        "model": str(base_models[family]), "data": [str(data_dir)], "out": str(out), "lora": True, "lora_r": 8,
        "lora_alpha": 16, "learning_rate": 1e-2, "per_device_train_batch_size": 4, "gradient_accumulation_steps": 1,
        "max_steps": 14, "logging_steps": 1, "eval_images": 2, "eval_samples": 4, "eval_steps": 0,
        "lr_scheduler_type": "constant", "warmup_ratio": 0.0, "save_steps": 1000,
    })
    res = train(cfg)
    assert res.steps == 14
    losses = _losses(out)
    assert sum(losses[-3:]) / 3 < losses[0] - 0.3, losses
    assert (out / "adapter_config.json").exists() and (out / "adapter_model.safetensors").exists()
    assert (out / "train_config.yaml").exists() and TrainConfig.load(out / "train_config.yaml").lora
    assert res.eval is not None and res.eval["n"] == 4  # held-out accuracy hook ran
    assert (out / "eval_history.jsonl").read_text().strip()

    vlm = load_vlm(str(out), device="cpu")
    assert type(vlm.model).__name__.startswith("PeftModel")
    from spatialvlm.train.data import load_rows

    row = load_rows([str(data_dir)])[0]
    q = row["prompt"][0]["content"][1]["text"]
    img = row["images"][0]
    a1 = answer(vlm, [img], [q], max_new_tokens=6)

    # `spatialvlm ask` on the adapter folder gives the same greedy answer
    from typer.testing import CliRunner

    from spatialvlm.cli import app

    img_path = tmp_path / "q.png"
    img.save(img_path)
    r = CliRunner().invoke(app, ["ask", "--model", str(out), "--image", str(img_path), "--max-new-tokens", "6", q])
    assert r.exit_code == 0, repr(r.exception)
    assert r.output.strip().endswith(a1[0])  # (progress bars may precede it on the same stream)

    merged = merge_adapter(out, tmp_path / "merged")
    m = AutoModelForImageTextToText.from_pretrained(merged)
    assert not any("lora" in n for n, _ in m.named_parameters())
    vlm2 = load_vlm(str(merged), device="cpu")
    assert answer(vlm2, [img], [q], max_new_tokens=6) == a1
    # the adapter changed the model: merged weights differ from the base
    base = AutoModelForImageTextToText.from_pretrained(base_models[family])
    diff = [n for (n, p), (_, p0) in zip(m.named_parameters(), base.named_parameters()) if not torch.equal(p, p0)]
    assert diff and all(("language_model" in n or "text_model" in n) for n in diff)


def test_lora_unfrozen_vision_is_trained_and_saved(base_models, data_dir, tmp_path):
    from spatialvlm.train.trainer import train

    out = tmp_path / "lora_vis"
    cfg = resolve_config(None, {
        "model": str(base_models["qwen2_vl"]), "data": [str(data_dir)], "out": str(out), "lora": True,
        "freeze_vision": False, "max_steps": 2, "per_device_train_batch_size": 2, "gradient_accumulation_steps": 1,
        "eval_images": 0, "save_steps": 1000, "learning_rate": 1e-2,
    })
    train(cfg)
    acfg = json.loads((out / "adapter_config.json").read_text())
    assert "visual" in (acfg.get("modules_to_save") or [])
    from safetensors import safe_open

    with safe_open(str(out / "adapter_model.safetensors"), "pt") as f:
        keys = list(f.keys())
    assert any("visual" in k for k in keys) and any("lora_A" in k for k in keys)


# ------------------------------------------------------------------------------------------------------------
# full fine-tuning from scratch (cpu-tiny path), resume, CLI
# ------------------------------------------------------------------------------------------------------------
def test_scratch_full_training_resume_and_cli(data_dir, tmp_path):
    from typer.testing import CliRunner

    from spatialvlm.cli import app
    from spatialvlm.train.trainer import train

    out = tmp_path / "tiny"
    base = {"data": [str(data_dir)], "out": str(out), "eval_images": 2, "save_steps": 3, "max_steps": 3,
            "freeze_vision": True, "tiny": dict(SMALL)}
    res = train(resolve_config("test-tiny", base))
    assert res.steps == 3 and (out / "checkpoint-3" / "train_config.yaml").exists()
    assert (out / "base" / "tokenizer.json").exists() and (out / "model.safetensors").exists()
    with pytest.raises(FileExistsError, match="--resume"):
        train(resolve_config("test-tiny", base))
    res = train(resolve_config("test-tiny", {**base, "max_steps": 5, "resume": True}))
    assert res.steps == 5
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        train(resolve_config("test-tiny", {**base, "out": str(tmp_path / "none"), "resume": True}))

    # frozen vision tower: unchanged by training
    from transformers import AutoModelForImageTextToText

    trained = AutoModelForImageTextToText.from_pretrained(out)
    init = AutoModelForImageTextToText.from_pretrained(out / "base")
    vis = dict(init.model.visual.named_parameters())
    assert all(torch.equal(p, vis[n]) for n, p in trained.model.visual.named_parameters())
    assert not torch.equal(trained.lm_head.weight, init.lm_head.weight)

    img = tmp_path / "img.png"
    from PIL import Image

    Image.new("RGB", (64, 48), (10, 200, 30)).save(img)
    r = CliRunner().invoke(app, ["ask", "--model", str(out), "--image", str(img), "--max-new-tokens", "5",
                                 "Is the red box left of the blue box?"])
    assert r.exit_code == 0, r.output
    assert r.output.strip() != "" or r.exit_code == 0
    r = CliRunner().invoke(app, ["ask", "--model", str(tmp_path / "missing"), "--image", str(img), "q"])
    assert r.exit_code != 0 and "could not load model" in str(r.exception)


def test_train_cli(data_dir, tmp_path):
    from typer.testing import CliRunner

    from spatialvlm.cli import app

    out = tmp_path / "cli"
    r = CliRunner().invoke(app, ["train", "--data", str(data_dir), "--out", str(out), "--preset", "test-tiny",
                                 "--max-steps", "2", "--set", "eval_images=0", "--set", "tiny.vision_depth=1"])
    assert r.exit_code == 0, r.output + repr(r.exception)
    assert json.loads(r.output[r.output.index('{\n  "out"'):])["steps"] == 2
    assert TrainConfig.load(out / "train_config.yaml").tiny["vision_depth"] == 1
    r = CliRunner().invoke(app, ["train-presets"])
    assert r.exit_code == 0 and "cpu-tiny" in r.output and "memory" in r.output


def test_scoring_headline_metrics():
    from spatialvlm.train.scoring import aggregate, score

    q = {"qa_type": "distance", "family": "quantitative", "value_m": 2.0, "truth": "2.0", "question": "How far?",
         "answer": "2 meters.", "objects": ["a", "b"]}
    p = {"qa_type": "left_predicate", "family": "predicate", "truth": "true", "question": "Is a left of b?",
         "answer": "Yes.", "objects": ["a", "b"]}
    rows = [score(q, "About 2.4 meters."), score(q, "3.5 m"), score(q, "no idea"), score(p, "Yes, it is."),
            score(p, "No.")]
    agg = aggregate(rows)
    assert agg["qualitative_accuracy"] == 0.5 and agg["n_qualitative"] == 2 and agg["n_quantitative"] == 3
    assert agg["quantitative_has_number"] == pytest.approx(2 / 3)
    assert agg["quantitative_within_50_200"] == pytest.approx(2 / 3)  # 1.2x and 1.75x are inside [0.5, 2]
    assert agg["quantitative_success_25"] == pytest.approx(1 / 3)  # only 2.4 m is within 25 %
    assert 0 < agg["quantitative_mra"] < agg["quantitative_success_25"]
    assert agg["by_type"]["distance"]["success_25"] == pytest.approx(1 / 3)
