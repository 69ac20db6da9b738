"""The from-scratch trainer (``trainer: scratch``, the cpu-tiny recipe): packed rows compute exactly what the model
computes for one question alone, names are found in the questions, targets come from the synth output's maps, the
lookup objective moves attention onto the named object, and a run saves a model that loads, answers and resumes."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

sys.path.insert(0, str(Path(__file__).parent))
from test_train_fixtures import COLOURS, make_dataset

from spatialvlm.train import scratch as S
from spatialvlm.train.config import resolve_config
from spatialvlm.train.tiny import TinyVLMSpec, build_tiny_vlm

torch.set_num_threads(1)

TINY = dict(family="idefics3", vocab_size=400, hidden_size=64, intermediate_size=128, num_layers=3, num_heads=2,
            num_kv_heads=1, vision_dim=32, vision_depth=2, vision_heads=2, patch_size=8, image_size=32)


def _cfg(data_dir: Path, out: Path, **over):
    values = {"model": "scratch:idefics3", "trainer": "scratch", "lora": False, "freeze_vision": False,
              "data": [str(data_dir)], "out": str(out), "answer_form": "short", "torch_threads": 1,
              "learning_rate": 3e-3, "logging_steps": 1, "save_steps": 0, "eval_steps": 0, "eval_images": 2,
              "eval_samples": 4, "tiny": TINY,
              "scratch": {"images_per_step": 4, "questions_per_row": 2, "workers": 1, "lookup_layer": 1,
                          "object_layer": 1, "pair_layer": 2, "decision_weight": 1.0,
                          "decision_layer": 2}}
    values.update(over)
    return resolve_config(None, values)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("qa") / "out", n_images=12)


@pytest.fixture(scope="module")
def prepared(data_dir, tmp_path_factory):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    cfg = _cfg(data_dir, tmp_path_factory.mktemp("unused"))
    tables = S.read_tables(cfg.data)
    base = build_tiny_vlm(tmp_path_factory.mktemp("base") / "m", S.training_texts(tables[0], "short"),
                          TinyVLMSpec(**TINY))
    model = AutoModelForImageTextToText.from_pretrained(base, dtype=torch.float32).eval()
    proc = AutoProcessor.from_pretrained(base)
    spec = S.ScratchSpec.from_dict(cfg.scratch)
    data = S.prepare(cfg, spec, proc, tables, set(), base, progress=False)
    return cfg, spec, model, proc, data, tables, base


def test_name_spans_longest_first_whole_words():
    q = "Is the table lamp above the table, or is the tablet higher?"
    assert S.name_spans(q, ["table", "table lamp"]) == [(28, 33), (7, 17)]
    assert S.name_spans(q, ["lamp", "sofa"]) == [(13, 17), None]
    assert S.name_spans("Which is wider, the chair on the left or the chair?", ["chair", "chair on the left"]) == \
        [(45, 50), (20, 37)]


def test_targets_come_from_the_maps(prepared, data_dir):
    from PIL import Image

    _, _, _, proc, data, tables, _ = prepared
    qa, objs, _ = tables
    assert data.grid == (2, 2) and len(data.prefix) > 4
    assert data.info["names_missing"] == 0 and data.info["names_found"] == 2 * len(qa)
    assert len(data.objects) == len(objs)
    for ob in data.objects:
        # the squares are 10 x 10 px of a 64 x 48 picture (the second drawn over the first where they overlap): an
        # object's cells on the 2 x 2 grid (32 x 24 px each) are those its pixels fill by at least 5 %
        img = data.image_ids[ob["image"]]
        inst = np.asarray(Image.open(data_dir / "masks" / f"{img}.png"))
        mine = inst == ob["object_id"] + 1
        cover = np.array([[mine[24 * i:24 * (i + 1), 32 * j:32 * (j + 1)].mean() for j in range(2)]
                          for i in range(2)])
        want = cover >= 0.05 if (cover >= 0.05).any() else cover == cover.max()
        assert ob["cells"].reshape(2, 2).tolist() == want.tolist()
        row = objs[(objs["image_id"] == img) & (objs["object_id"] == ob["object_id"])].iloc[0]
        attrs = ob["attrs"] * data.attr_std + data.attr_mean
        x0, y0, x1, y1 = row["box2d"]
        assert attrs[:2] == pytest.approx([(x0 + x1) / 128, (y0 + y1) / 96], abs=1e-4)
        assert attrs[2] == pytest.approx(np.log(1.0 + ob["object_id"]), abs=1e-4)  # made-up depth 1 m / 2 m
        assert ob["valid"][:S.N_IMAGE_ATTRS].all()
        assert not ob["valid"][S.N_IMAGE_ATTRS:].any()  # the fixture has no canonical frame
    assert data.labels == sorted(COLOURS)
    # label presence per cell: a label is present where its square fills at least 5 % of the cell (an object
    # hidden almost entirely still gets its most-filled cell as its lookup target, but no presence)
    for i, img in enumerate(data.image_ids):
        inst = np.asarray(Image.open(data_dir / "masks" / f"{img}.png"))
        for ob in (o for o in data.objects if o["image"] == i):
            mine = inst == ob["object_id"] + 1
            cover = np.array([mine[24 * (c // 2):24 * (c // 2 + 1), 32 * (c % 2):32 * (c % 2 + 1)].mean()
                              for c in range(4)])
            name = objs[(objs["image_id"] == img) & (objs["object_id"] == ob["object_id"])]["label"].iloc[0]
            assert data.presence[i, :, data.labels.index(name)].astype(bool).tolist() == (cover >= 0.05).tolist()


def test_packed_rows_compute_what_one_question_computes(prepared):
    _, spec, model, proc, data, _, _ = prepared
    from PIL import Image

    inner, text = S._text_model(model)
    segs = data.by_image[0][:3]
    b = S.make_batch(data, [0], [[segs]], proc.tokenizer.pad_token_id)
    assert b.input_ids.shape[0] == 1
    with torch.no_grad():
        feats = torch.stack(list(inner.get_image_features(pixel_values=data.pixels[[0]].float().unsqueeze(1),
                                                          return_dict=True).pooler_output))
        emb = text.get_input_embeddings()(b.input_ids)
        m = b.input_ids == data.image_token_id
        emb = emb.masked_scatter(m.unsqueeze(-1).expand_as(emb), feats[b.row_image])
        pe = text.rotary_emb(emb, b.position_ids)
        h = emb
        for layer in text.layers:
            h = layer(h, attention_mask=b.mask, position_ids=b.position_ids, position_embeddings=pe)
        packed = model.lm_head(text.norm(h))[0]
    P, t = len(data.prefix), len(data.prefix)
    pix = data.pixels[[0]].float().unsqueeze(1)
    for s in segs:
        ids = torch.tensor([data.prefix + data.segments[s].ids])
        with torch.no_grad():
            alone = model(input_ids=ids, attention_mask=torch.ones_like(ids), pixel_values=pix).logits[0]
        n = len(data.segments[s].ids)
        assert torch.allclose(alone[P:P + n], packed[t:t + n], atol=1e-4)
        t += n
    # the prompt part is what the processor writes for the question at inference
    from spatialvlm.train.infer import build_prompt

    sg = data.segments[segs[0]]
    q = proc.tokenizer.decode(sg.ids[:sg.answer_start]).split("<end_of_utterance>")[0].strip()
    enc = proc(images=[[Image.new("RGB", (64, 48))]], text=[build_prompt(proc, q)], return_tensors="pt",
               add_special_tokens=False)
    assert enc["input_ids"][0].tolist() == data.prefix + sg.ids[:sg.answer_start]


def test_answer_loss_covers_answers_only(prepared):
    _, _, _, proc, data, _, _ = prepared
    segs = data.by_image[1][:2]
    b = S.make_batch(data, [1], [[segs]], proc.tokenizer.pad_token_id)
    got = proc.tokenizer.decode(b.label_ids)
    want = "".join(proc.tokenizer.decode(data.segments[s].ids[data.segments[s].answer_start:]) for s in segs)
    assert got == want and "?" not in got and "<end_of_utterance>" in got
    # every label is predicted from the token just before it
    for (r, p), tid in zip(b.label_pos.tolist(), b.label_ids.tolist()):
        assert b.input_ids[r, p + 1] == tid


def test_copy_target_is_the_chosen_name_in_the_question(prepared):
    _, _, _, proc, data, tables, _ = prepared
    qa = tables[0]
    choices = [sg for sg in data.segments if sg.copy is not None]
    assert len(choices) == int((qa["family"] == "choice").sum()) > 0 and data.info["copy_unaligned"] == 0
    for sg in choices:
        query, key = sg.copy
        assert key < sg.answer_start <= query + 1
        # the token the answer writes after "The" is the first token of the chosen name where the question has it
        assert sg.ids[query + 1] == sg.ids[key]
        answer = proc.tokenizer.decode(sg.ids[sg.answer_start:])
        assert answer.strip().startswith("The " + proc.tokenizer.decode([sg.ids[key]]).strip())


def test_copy_key_last_points_at_the_chosen_names_last_token(prepared):
    import dataclasses

    cfg, spec, _, proc, data, tables, base = prepared
    last = S.prepare(cfg, dataclasses.replace(spec, copy_key="last"), proc, tables, set(), base, progress=False)
    qa = tables[0]
    n = longer = 0
    for sg, sl, r in zip(data.segments, last.segments, qa.to_dict("records")):
        if sg.copy is None:
            assert sl.copy is None
            continue
        n += 1
        chosen = sl.pair_names[list(r["objects"]).index(r["truth"])]  # the chosen name's last token (record order)
        assert sl.copy == (sg.copy[0], chosen) and chosen >= sg.copy[1]
        longer += chosen > sg.copy[1]
    assert n > 0 and longer > 0  # the fixture's names ("the red box") span several tokens
    with pytest.raises(ValueError, match="copy_key"):
        S.ScratchSpec.from_dict({"copy_key": "middle"})


def test_attr_weights_weigh_each_attribute_in_the_object_and_pair_losses(prepared):
    import dataclasses

    _, spec, model, proc, data, _, _ = prepared
    aux = S.AuxHeads(model.config.text_config.hidden_size, len(data.labels))
    segs = data.by_image[0]
    b = S.make_batch(data, [0], [[segs]], proc.tokenizer.pad_token_id)
    weights = {"object": 1.0, "pair": 1.0}
    heavy = dataclasses.replace(spec, attr_weights={"x_image": 5.0, "log_depth": 0.0})
    with torch.no_grad():
        plain = S.forward(model, aux, data, spec, b, weights)
        weighted = S.forward(model, aux, data, heavy, b, weights)
    w = torch.ones(len(S.ATTRIBUTES))
    w[S.ATTRIBUTES.index("x_image")], w[S.ATTRIBUTES.index("log_depth")] = 5.0, 0.0
    for key in ("object", "pair"):
        pred, tgt, ok = plain["_" + key]
        err = (pred - tgt) ** 2 * ok
        assert float(plain[key]) == pytest.approx(float(err.sum() / ok.sum()), rel=1e-5)
        assert float(weighted[key]) == pytest.approx(float((err * w).sum() / ok.sum()), rel=1e-5)
        assert float(weighted[key]) != pytest.approx(float(plain[key]), rel=1e-3)
    with pytest.raises(ValueError, match="unknown attribute"):
        S.ScratchSpec.from_dict({"attr_weights": {"x_pixel": 2.0}})
    with pytest.raises(ValueError, match=">= 0"):
        S.ScratchSpec.from_dict({"attr_weights": {"x_image": -1.0}})


def test_type_weights_oversample_question_types_in_the_draw(prepared):
    import collections
    import dataclasses

    _, spec, _, _, data, _, _ = prepared

    def drawn(sp, epochs=30):
        rng, seen = np.random.default_rng(0), collections.Counter()
        for _ in range(epochs):
            for imgs, chunks in S.epoch_batches(data, sp, rng):
                segs = [s for per_image in chunks for row in per_image for s in row]
                assert len(segs) == len(set(segs)) == len(imgs) * sp.max_questions_per_image  # no repeats
                seen.update(data.segments[s].qa_type for s in segs)
        return seen

    capped = dataclasses.replace(spec, max_questions_per_image=1)  # the fixture has 3 questions per image
    plain = drawn(capped)
    heavy = drawn(dataclasses.replace(capped, type_weights={"distance": 8.0}))
    share = {name: c["distance"] / sum(c.values()) for name, c in (("plain", plain), ("heavy", heavy))}
    assert 0.2 < share["plain"] < 0.45  # one type of three
    assert share["heavy"] > 0.7  # 8 / (8 + 1 + 1)
    with pytest.raises(ValueError, match="max_questions_per_image"):
        S.ScratchSpec.from_dict({"type_weights": {"left_choice": 2.0}})
    with pytest.raises(ValueError, match="> 0"):
        S.ScratchSpec.from_dict({"type_weights": {"left_choice": 0.0}, "max_questions_per_image": 4})


def test_lookup_objective_moves_attention_onto_the_named_object(prepared):
    _, spec, _, proc, data, _, base = prepared
    from transformers import AutoModelForImageTextToText

    torch.manual_seed(0)
    model = AutoModelForImageTextToText.from_pretrained(base, dtype=torch.float32)
    aux = S.AuxHeads(model.config.text_config.hidden_size, len(data.labels))
    params = list(model.parameters()) + list(aux.modules.parameters())
    opt = torch.optim.AdamW(params, lr=1e-2)
    rng = np.random.default_rng(0)
    first, last = [], []
    for step in range(40):
        for imgs, chunks in S.epoch_batches(data, spec, rng):
            b = S.make_batch(data, imgs, chunks, proc.tokenizer.pad_token_id)
            out = S.forward(model, aux, data, spec, b, {"lookup": 1.0, "vision": 1.0})
            opt.zero_grad()
            out["total"].backward()
            opt.step()
            (first if step == 0 else last).append((out["lookup_mass"], out["lookup_chance"]))
    mass0, chance = np.mean([m for m, _ in first]), np.mean([c for _, c in first])
    mass1 = np.mean([m for m, _ in last[-3:]])
    assert mass0 < 2 * chance  # random attention: about the object's share of the context
    assert mass1 > 0.5 and mass1 > 3 * chance


def test_gather_targets_are_the_two_names_in_record_order(prepared):
    _, _, _, proc, data, tables, _ = prepared
    qa = tables[0]
    two = [sg for sg in data.segments if sg.pair_names is not None]
    assert len(two) == len(qa) > 0  # every fixture question names two objects
    for sg, r in zip(data.segments, qa.to_dict("records")):
        a, b = sg.pair_names
        assert a < sg.answer_start and b < sg.answer_start and a != b
        # the name tokens end names A and B of the record (not the first and second in the sentence)
        where = {ob: tp for tp, ob in sg.names}
        assert (where[sg.pair[0]], where[sg.pair[1]]) == (a, b)
        prompt = proc.tokenizer.decode(sg.ids[: sg.answer_start])
        for pos, name in ((a, r["objects"][0]), (b, r["objects"][1])):
            upto = proc.tokenizer.decode(sg.ids[: pos + 1])
            assert upto.endswith(name) and name in prompt
    segs = data.by_image[0]
    b = S.make_batch(data, [0], [[segs]], proc.tokenizer.pad_token_id)
    # one query at the last prompt token of each question, and one more before the written name of a choice answer
    n_choice = sum(data.segments[s].copy is not None for s in segs)
    assert len(b.gather_pos) == len(segs) + n_choice
    for row, q, ka, kb in b.gather_pos.tolist():
        assert ka < q and kb < q and b.input_ids[row, ka] != data.image_token_id
    last = {int(p) for _, p in b.pair_pos.tolist()}
    assert {q for _, q, _, _ in b.gather_pos.tolist()} >= last


def test_decision_target_is_which_way_the_two_way_answer_goes():
    objs = ["mug", "desk"]
    assert S.decision_target("predicate", "left_predicate", "true", objs) == 1
    assert S.decision_target("predicate", "right_predicate", "False", objs) == 0
    assert S.decision_target("choice", "left_choice", "mug", objs) == 1
    assert S.decision_target("choice", "left_choice", "desk", objs) == 0
    assert S.decision_target("choice", "left_choice", "bowl", objs) is None  # neither option
    assert S.decision_target("classify", "left_right_classify", "left", objs) == 1
    assert S.decision_target("classify", "left_right_classify", "right", objs) == 0
    assert S.decision_target("classify", "tall_short_classify", "short", objs) == 0
    assert S.decision_target("quantitative", "distance", "1.2", objs) is None
    assert S.decision_target("direction", "clock_direction", "3", objs) is None


def test_decision_targets_follow_the_truth_at_the_gather_queries(prepared):
    _, _, _, proc, data, tables, _ = prepared
    qa = tables[0]
    for sg, r in zip(data.segments, qa.to_dict("records")):
        if r["family"] == "predicate":
            assert sg.decision == (1 if r["truth"] == "true" else 0)
        elif r["family"] == "choice":
            assert sg.decision == (1 if r["truth"] == r["objects"][0] else 0)
        else:
            assert sg.decision is None
    assert {sg.decision for sg in data.segments} >= {0, 1}
    segs = data.by_image[0]
    b = S.make_batch(data, [0], [[segs]], proc.tokenizer.pad_token_id)
    gathered = {(r, q) for r, q, _, _ in b.gather_pos.tolist()}
    two_way = [s for s in segs if data.segments[s].decision is not None]
    assert len(b.decision_pos) == sum(1 + (data.segments[s].copy is not None) for s in two_way)
    assert {tuple(x) for x in b.decision_pos.tolist()} <= gathered
    assert b.decision_seg and set(b.decision_seg) == set(two_way)
    for s, t in zip(b.decision_seg, b.decision_tgt.tolist()):
        assert t == data.segments[s].decision


def test_decision_objective_learns_the_two_way_answer_one_layer_early(prepared):
    # the fixture's answers follow the picture (A left of B or not): the head must read it off the hidden state
    got = _train_objective(prepared, {"decision": 1.0}, 40, "decision", "decision_acc", lr=3e-3)
    seen, acc = got["decision"], got["decision_acc"]
    assert seen[0] > 0.5  # an untrained head: about log 2
    assert np.mean(seen[-3:]) < 0.2 * seen[0]
    assert np.mean(acc[-3:]) > 0.9


def _train_objective(prepared, weights: dict, steps: int, *keys: str, lr: float = 1e-2) -> dict[str, list[float]]:
    _, spec, _, proc, data, _, base = prepared
    from transformers import AutoModelForImageTextToText

    torch.manual_seed(0)
    model = AutoModelForImageTextToText.from_pretrained(base, dtype=torch.float32)
    aux = S.AuxHeads(model.config.text_config.hidden_size, len(data.labels))
    opt = torch.optim.AdamW(list(model.parameters()) + list(aux.modules.parameters()), lr=lr)
    rng = np.random.default_rng(0)
    seen: dict[str, list[float]] = {key: [] for key in keys}
    for _ in range(steps):
        for imgs, chunks in S.epoch_batches(data, spec, rng):
            b = S.make_batch(data, imgs, chunks, proc.tokenizer.pad_token_id)
            out = S.forward(model, aux, data, spec, b, weights)
            opt.zero_grad()
            out["total"].backward()
            opt.step()
            for key in keys:
                seen[key].append(float(out[key].detach()) if torch.is_tensor(out[key]) else float(out[key]))
    return seen


def test_gather_objective_points_the_last_prompt_token_at_both_names(prepared):
    seen = _train_objective(prepared, {"gather": 1.0}, 30, "gather_mass")["gather_mass"]
    assert seen[0] < 0.3  # random attention over a few dozen tokens
    assert np.mean(seen[-3:]) > 0.6


def test_position_objective_teaches_image_tokens_their_cell(prepared):
    seen = _train_objective(prepared, {"position": 1.0}, 30, "position")["position"]
    assert seen[0] > 0.5  # standardised targets: an untrained head is off by about their variance
    assert np.mean(seen[-3:]) < 0.1 * seen[0]


def test_train_saves_a_model_that_answers_and_resumes(data_dir, tmp_path):
    from spatialvlm.train.infer import answer, load_vlm
    from spatialvlm.train.trainer import train

    out = tmp_path / "run"
    r = train(_cfg(data_dir, out, max_steps=4, save_steps=2, save_total_limit=1))
    assert r.steps == 4 and (out / "model.safetensors").exists() and (out / "tokenizer.json").exists()
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["info"]["trainer"] == "scratch" and len(summary["losses"]) == 4
    assert all(k in summary["log"][0] for k in ("answer", "vision", "lookup", "object", "pair", "copy", "decision"))
    assert [p.name for p in out.glob("checkpoint-*")] == ["checkpoint-4"]
    assert (out / "eval_history.jsonl").exists()
    vlm = load_vlm(str(out), device="cpu")
    got = answer(vlm, [_picture()], ["Is the red box to the left of the blue box?"], max_new_tokens=4)
    assert len(got) == 1 and isinstance(got[0], str)
    with pytest.raises(FileExistsError):
        train(_cfg(data_dir, out, max_steps=4))
    r2 = train(_cfg(data_dir, out, max_steps=6, resume=True))
    assert r2.steps == 6
    assert len(json.loads((out / "train_summary.json").read_text())["losses"]) == 6
    live = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in live] == [1, 2, 3, 4, 5, 6]  # progress written as it goes, resumed run appended

    # the finished run keeps its auxiliary heads for probes; the probe reads them (negating the pair head flips
    # every sign it reports, so the numbers come from the saved heads)
    probe = S.lookup_probe(out, [str(data_dir)])
    assert probe["names"] > 0 and 0.0 <= probe["mass"] <= 1.0
    assert "x_image" in probe["object_r"] and -1.0 <= probe["object_r"]["x_image"] <= 1.0
    assert probe["pairs"] > 0 and all(0.0 <= v <= 1.0 for v in probe["pair_sign"].values())
    heads = torch.load(out / S.HEADS_FILE, weights_only=False)
    assert set(probe["decision_by_type"]) == {"left_predicate", "left_choice"}  # the two-way types
    assert probe["decision_by_type"]["left_choice"][1] == 2 * probe["decision_by_type"]["left_predicate"][1]
    heads["aux"] = {k: (-v if k.startswith(("pair.", "decision.")) else v) for k, v in heads["aux"].items()}
    torch.save(heads, out / S.HEADS_FILE)
    flipped = S.lookup_probe(out, [str(data_dir)])
    for k, v in probe["pair_sign"].items():
        assert flipped["pair_sign"][k] == pytest.approx(1.0 - v)
    assert flipped["decision_acc"] == pytest.approx(1.0 - probe["decision_acc"])
    assert flipped["object_r"] == pytest.approx(probe["object_r"])


def test_blind_training_sees_one_grey_picture(data_dir, tmp_path):
    from spatialvlm.train.trainer import train

    r = train(_cfg(data_dir, tmp_path / "blind", max_steps=1, blind=True))
    assert r.steps == 1


def test_set_reads_exponent_floats():
    from spatialvlm.train.config import parse_set

    assert parse_set(["learning_rate=2e-3", "tiny.tie_embeddings=true", "x=1.5E-4", "name=e3"]) == \
        {"learning_rate": 0.002, "tiny": {"tie_embeddings": True}, "x": 0.00015, "name": "e3"}


def test_config_rejects_what_the_scratch_trainer_cannot_do(data_dir, tmp_path):
    with pytest.raises(ValueError, match="grounding_rows"):
        _cfg(data_dir, tmp_path, grounding_rows=2)
    with pytest.raises(ValueError, match="freeze_vision"):
        _cfg(data_dir, tmp_path, freeze_vision=True)
    with pytest.raises(ValueError, match="unknown scratch option"):
        _cfg(data_dir, tmp_path, scratch={"lookup_layers": 2})
    with pytest.raises(ValueError, match="trainer 'scratch'"):
        _cfg(data_dir, tmp_path, trainer="sft")  # scratch options left behind would be ignored silently


def test_earlier_cpu_tiny_recipe_resolves(tmp_path):
    from spatialvlm.train.config import resolve_config

    cfg = resolve_config("cpu-tiny-sft", {"data": ["d"], "out": str(tmp_path / "m")})
    assert cfg.trainer == "sft" and not cfg.scratch and cfg.vision_warmup_minutes == 10 and cfg.grounding_rows == 3


def _picture():
    from PIL import Image

    return Image.new("RGB", (64, 48), (128, 128, 128))


def test_train_command_shows_training_progress():
    import logging

    from spatialvlm.train.commands import _show_progress

    logger = logging.getLogger("spatialvlm.train")
    before = logger.level
    try:
        logger.setLevel(logging.WARNING)
        _show_progress()
        # the from-scratch trainer's per-step lines and the data preparation reach the terminal
        assert logging.getLogger("spatialvlm.train.scratch").isEnabledFor(logging.INFO)
        assert logging.getLogger().handlers
    finally:
        logger.setLevel(before)
