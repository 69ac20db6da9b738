"""Model adapters: a tiny config-built Qwen2-VL through the HF adapter (plumbing, not skill), the
OpenAI-compatible HTTP adapter against a local server started here, the registry, and the baselines on
hand-made items."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from spatialvlm.eval.adapters import HFVLM, OpenAIVLM, load_model
from spatialvlm.eval.baselines import BlindBaseline
from spatialvlm.eval.items import BenchItem
from spatialvlm.records import ItemError

TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIAL = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
]


def _images(n: int, seed: int = 0) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    return [
        Image.fromarray(rng.integers(0, 255, (56 + 28 * (i % 2), 84, 3), dtype=np.uint8)) for i in range(n)
    ]


def _build_tiny_qwen2vl(out: Path, with_template: bool = True) -> Path:
    """A Qwen2-VL of a few hundred thousand parameters, BPE tokenizer trained here; nothing downloaded."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import (
        PreTrainedTokenizerFast,
        Qwen2VLConfig,
        Qwen2VLForConditionalGeneration,
        Qwen2VLImageProcessor,
        Qwen2VLProcessor,
        Qwen2VLVideoProcessor,
    )

    torch.manual_seed(0)
    bpe = Tokenizer(models.BPE(unk_token=None))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    corpus = [
        "How far is the chair from the table? About 1.5 meters.",
        "Is the lamp left of the sofa? Yes.",
        "Which is taller, the mug or the vase? The vase is taller.",
        "3 feet 2 inches, 40 cm, half a meter",
    ] * 5
    bpe.train_from_iterator(
        corpus,
        trainers.BpeTrainer(
            vocab_size=400,
            special_tokens=SPECIAL,
            show_progress=False,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        ),
    )
    tok = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        extra_special_tokens={"image_token": "<|image_pad|>", "video_token": "<|video_pad|>"},
    )
    ids = {t: tok.convert_tokens_to_ids(t) for t in SPECIAL}
    text = dict(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=1024,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3]},
        eos_token_id=ids["<|im_end|>"],
        pad_token_id=ids["<|endoftext|>"],
        tie_word_embeddings=False,
    )
    vision = dict(
        depth=1,
        embed_dim=16,
        hidden_size=32,
        num_heads=2,
        mlp_ratio=2,
        patch_size=14,
        spatial_merge_size=2,
        temporal_patch_size=2,
    )
    cfg = Qwen2VLConfig(
        text_config=text,
        vision_config=vision,
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=False,
    )
    model = Qwen2VLForConditionalGeneration(cfg)
    model.generation_config.eos_token_id = ids["<|im_end|>"]
    model.generation_config.pad_token_id = ids["<|endoftext|>"]
    size = {"shortest_edge": 56 * 56, "longest_edge": 112 * 112}
    kw = dict(size=size, patch_size=14, merge_size=2, temporal_patch_size=2)
    proc = Qwen2VLProcessor(
        image_processor=Qwen2VLImageProcessor(**kw),
        tokenizer=tok,
        video_processor=Qwen2VLVideoProcessor(**kw),
        chat_template=TEMPLATE if with_template else None,
    )
    model.save_pretrained(out)
    proc.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def tiny_vlm(tmp_path_factory) -> Path:
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    import torch

    torch.set_num_threads(1)
    return _build_tiny_qwen2vl(tmp_path_factory.mktemp("tiny_qwen2vl"))


def _items(n: int) -> list[BenchItem]:
    out = []
    imgs = _images(n)
    for i in range(n):
        if i % 3 == 0:
            out.append(
                BenchItem(
                    f"q{i}",
                    f"img{i}",
                    "distance",
                    "quantitative",
                    "How far is the chair from the table?",
                    truth=str(1.0 + i),
                    value_m=1.0 + i,
                    objects=["chair", "table"],
                    object_ids=[0, 1],
                    image=imgs[i],
                )
            )
        elif i % 3 == 1:
            out.append(
                BenchItem(
                    f"q{i}",
                    f"img{i}",
                    "left_predicate",
                    "predicate",
                    "Is the chair to the left of the table?",
                    truth="yes" if i % 2 else "no",
                    objects=["chair", "table"],
                    object_ids=[0, 1],
                    relation="left",
                    image=imgs[i],
                )
            )
        else:
            out.append(
                BenchItem(
                    f"q{i}",
                    f"img{i}",
                    "tall_choice",
                    "choice",
                    "Which is taller, the chair or the lamp?",
                    truth="lamp",
                    options=["chair", "lamp"],
                    objects=["chair", "lamp"],
                    relation="tall",
                    object_ids=[0, 1],
                    image=imgs[i],
                )
            )
    return out


def test_hf_adapter_runs_tiny_qwen2vl_end_to_end(tiny_vlm, tmp_path):
    from spatialvlm.eval.run import evaluate

    m = load_model(f"hf:{tiny_vlm}", max_new_tokens=5, batch_size=3)
    assert isinstance(m, HFVLM) and m.device == "cpu"
    imgs = _images(4)
    qs = ["How far is the chair?", "Is the lamp left of the sofa?", "Which is taller?", "How tall is it?"]
    a1 = m.answer(imgs, qs)
    a2 = m.answer(imgs, qs)
    assert len(a1) == 4 and all(isinstance(a, str) for a in a1)
    assert a1 == a2  # greedy: deterministic
    # batching (left padding) must not change answers
    assert [m.answer([im], [q])[0] for im, q in zip(imgs, qs)] == a1
    res = evaluate(m, _items(6), tmp_path / "ev", baselines=("blind",), n_boot=50)
    assert set(res["models"]) == {f"hf:{tiny_vlm}", "blind"}
    preds = json.loads((tmp_path / "ev" / "predictions.json").read_text())
    assert len(preds) == 6 and all("prediction" in p and "parsed" in p for p in preds)
    assert (tmp_path / "ev" / "report.md").read_text().count("|") > 20
    assert (tmp_path / "ev" / "plots" / "per_type_accuracy.html").exists()


def test_spatialvlm_spec_supplies_chat_template(tmp_path):
    pytest.importorskip("transformers")
    import torch

    torch.set_num_threads(1)
    folder = _build_tiny_qwen2vl(tmp_path / "no_template", with_template=False)
    with pytest.raises(ValueError, match="chat template"):
        load_model(f"hf:{folder}")
    m = load_model(f"spatialvlm:{folder}", max_new_tokens=3)
    assert len(m.answer(_images(1), ["How far?"])) == 1


def test_missing_model_names_model_and_place(tmp_path):
    pytest.importorskip("transformers")
    missing = tmp_path / "no_such_model"
    with pytest.raises((FileNotFoundError, OSError)) as ei:
        HFVLM(str(missing))
    assert "no_such_model" in str(ei.value) and "looked" in str(ei.value)
    with pytest.raises(FileNotFoundError, match="spatialvlm train"):
        load_model(f"spatialvlm:{missing}")


def test_unknown_spec():
    with pytest.raises(ValueError, match="unknown model spec"):
        load_model("nonsense:foo")
    with pytest.raises(ValueError):
        load_model("hf:")


# ------------------------------------------------------------------------------------------------------------
# OpenAI-compatible HTTP
# ------------------------------------------------------------------------------------------------------------
class _Handler(BaseHTTPRequestHandler):
    calls: list = []
    flaky_left = {"n": 1}

    def log_message(self, *a):  # keep test output quiet
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).calls.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
        parts = body["messages"][-1]["content"]
        text = next(p["text"] for p in parts if p["type"] == "text")
        img = next(p["image_url"]["url"] for p in parts if p["type"] == "image_url")
        if "bad request" in text:
            self._send(400, {"error": {"message": "unsupported"}})
            return
        if "flaky" in text and type(self).flaky_left["n"] > 0:
            type(self).flaky_left["n"] -= 1
            self._send(503, {"error": {"message": "busy"}})
            return
        ok = img.startswith("data:image/png;base64,")
        self._send(
            200,
            {
                "choices": [
                    {"message": {"role": "assistant", "content": f"About 2 meters. [{len(text)}] {ok}"}}
                ]
            },
        )

    def _send(self, code, obj):
        data = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture()
def server():
    _Handler.calls = []
    _Handler.flaky_left = {"n": 1}
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/v1"
    srv.shutdown()
    srv.server_close()


def test_openai_adapter_against_local_server(server, monkeypatch):
    monkeypatch.setenv("SPATIALVLM_TEST_KEY", "sk-test-123")
    m = load_model(
        f"openai:tiny-model@{server}",
        api_key_env="SPATIALVLM_TEST_KEY",
        retries=2,
        timeout=10,
        max_new_tokens=16,
    )
    assert isinstance(m, OpenAIVLM) and m.model == "tiny-model"
    m.backoff = 0.01
    imgs = _images(4)
    out = m.answer(imgs, ["How far?", "a flaky one", "a bad request", "How tall?"])
    assert out[0] == "About 2 meters. [8] True"
    assert out[1].startswith("About 2 meters.")  # 503 once, then retried
    assert isinstance(out[2], ItemError) and "HTTP 400" in out[2].reason  # client errors are not retried
    assert out[3].startswith("About 2 meters.")
    calls = _Handler.calls
    assert all(c["path"] == "/v1/chat/completions" for c in calls)
    assert all(c["auth"] == "Bearer sk-test-123" for c in calls)
    assert calls[0]["body"]["model"] == "tiny-model" and calls[0]["body"]["temperature"] == 0
    assert calls[0]["body"]["max_tokens"] == 16
    assert len(calls) == 5  # 4 items + 1 retry; the 400 was not retried


def test_openai_adapter_unreachable_server_records_error(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    m = OpenAIVLM("x", "http://127.0.0.1:9/v1", retries=1, backoff=0.01, timeout=2)
    out = m.answer(_images(1), ["How far?"])
    assert isinstance(out[0], ItemError) and out[0].stage == "model"


# ------------------------------------------------------------------------------------------------------------
# Baselines
# ------------------------------------------------------------------------------------------------------------
def test_blind_baseline_majority_and_mean():
    fit = (
        [{"qa_type": "left_predicate", "family": "predicate", "truth": "true"}] * 3
        + [{"qa_type": "left_predicate", "family": "predicate", "truth": "false"}]
        + [
            {"qa_type": "distance", "family": "quantitative", "truth": "2.0", "value_m": 2.0},
            {"qa_type": "distance", "family": "quantitative", "truth": "4.0", "value_m": 4.0},
        ]
        + [{"qa_type": "tall_choice", "family": "choice", "truth": "b", "objects": ["a", "b"]}] * 2
    )
    b = BlindBaseline(fit)
    items = _items(3)
    out = b.answer_items(items)
    assert out[0] == "3.00 meters"
    assert out[1] == "Yes."
    assert out[2] == "lamp"  # second-named object is the majority position


def test_blind_default_is_exactly_chance_on_balanced_types():
    items = [
        BenchItem(
            f"q{i}",
            f"im{i}",
            "left_predicate",
            "predicate",
            "Is A left of B?",
            truth="yes" if i % 2 else "no",
        )
        for i in range(40)
    ]
    out = BlindBaseline(None).answer_items(items)
    assert len(set(out)) == 1  # one constant answer per type
    assert sum((o == "Yes.") == (it.truth == "yes") for o, it in zip(out, items)) == 20


def _names_items(flip_by_fold: bool) -> list[BenchItem]:
    from spatialvlm.eval.baselines import _fold

    items = []
    for i in range(60):
        img = f"im{i}"
        a, b = ("bed", "mug") if i % 2 else ("mug", "bed on the left")
        truth = a == "bed"  # beds are bigger than mugs
        if flip_by_fold and _fold(img, 0) == 1:
            truth = not truth
        items.append(
            BenchItem(
                f"q{i}",
                img,
                "big_predicate",
                "predicate",
                f"Is the {a} bigger than the {b}?",
                truth="yes" if truth else "no",
                objects=[a, b],
                relation="big",
            )
        )
    return items


def test_blind_names_learns_category_priors_cross_fitted():
    items = _names_items(flip_by_fold=False)
    names = load_model("blind-names")
    out = names.answer_items(items)
    assert all((o == "Yes.") == (it.truth == "yes") for o, it in zip(out, items))  # categories decide
    plain = BlindBaseline(None).answer_items(items)
    assert (
        sum((o == "Yes.") == (it.truth == "yes") for o, it in zip(plain, items)) == 30
    )  # type prior: chance
    # each half is answered from the other half only: flip the answers in one half and all become wrong
    flipped = _names_items(flip_by_fold=True)
    out = names.answer_items(flipped)
    assert not any((o == "Yes.") == (it.truth == "yes") for o, it in zip(out, flipped))
