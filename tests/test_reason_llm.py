"""The LLM planner paths: an OpenAI-compatible stub server on 127.0.0.1 replaying scripted replies (valid,
malformed, HTTP errors, tool_calls), and a tiny local causal LM built from a config (junk and forced output)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from scenes_synthetic import camera_pose, scene_from_boxes

from spatialvlm.reason.agent import reason
from spatialvlm.reason.answerers import SceneGraphAnswerer
from spatialvlm.reason.planners import OpenAIPlanner, load_planner


def _answerer():
    return SceneGraphAnswerer(scene_from_boxes({
        "sofa": ((-1.2, 4.0, 0.4), (2.0, 0.9, 0.8)),
        "table": ((1.2, 4.0, 0.375), (1.2, 0.8, 0.75)),
    }, camera_pose(1.5, -20.0)))


class Stub:
    """Replays ``script``: each entry is a reply text, ``("status", code)`` for an HTTP error, ``("raw", bytes)``
    for a raw body, or ``("tool_calls", name, arguments)``. Records every request."""

    def __init__(self, script):
        self.script = list(script)
        self.requests: list[dict] = []
        self.headers: list[dict] = []
        stub = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):  # quiet
                pass

            def do_POST(self):
                n = int(self.headers.get("Content-Length", 0))
                stub.requests.append(json.loads(self.rfile.read(n)))
                stub.headers.append(dict(self.headers))
                if self.path != "/v1/chat/completions":
                    return self._send(404, b'{"error": "not found"}')
                item = stub.script.pop(0) if stub.script else "no more replies"
                if isinstance(item, tuple) and item[0] == "status":
                    return self._send(item[1], b'{"error": {"message": "scripted failure"}}')
                if isinstance(item, tuple) and item[0] == "raw":
                    return self._send(200, item[1])
                if isinstance(item, tuple) and item[0] == "tool_calls":
                    msg = {"role": "assistant", "content": None, "tool_calls": [
                        {"id": "c1", "type": "function", "function": {"name": item[1], "arguments": item[2]}}]}
                else:
                    msg = {"role": "assistant", "content": item}
                self._send(200, json.dumps({"id": "x", "object": "chat.completion",
                                            "choices": [{"index": 0, "message": msg, "finish_reason": "stop"}]}
                                           ).encode())

            def _send(self, code, body):
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def test_openai_planner_replays_a_conversation_with_malformed_replies_and_a_server_error(monkeypatch):
    monkeypatch.setenv("STUB_KEY", "secret-for-test")
    script = [
        "Let me think about the sofa first.",  # prose: malformed
        '{"tool": "list_objects"}',
        '```json\n{"tool": "ask", "type": "gap", "a": "sofa", "b": "the table"}\n```',
        ("status", 503),  # retried by the client
        '{"tool": "ask", "type": "gap", "a": "sofa"',  # truncated JSON: malformed
        '{"tool": "calc", "expr": "0.8 >= 0.6"}',
        ('{"tool": "final", "answer": "Yes, the 0.8 m gap is wider than 0.6 m.", "value": true, '
         '"reasoning": "gap 0.8 >= 0.6"}'),
    ]
    with Stub(script) as s:
        planner = load_planner(f"openai:stub-model@{s.url}", api_key_env="STUB_KEY", backoff=0.01)
        r = reason("Can a 60 cm wide robot pass between the sofa and the table?", _answerer(), planner)
    assert r.ok and r.value is True and "0.8 m gap" in r.answer
    assert [t.kind for t in r.trace] == ["malformed", "tool", "tool", "malformed", "tool", "final"]
    q = r.direct_questions
    assert len(q) == 1 and q[0]["type"] == "gap" and q[0]["result"]["value"] == pytest.approx(0.8, abs=0.02)
    assert q[0]["result"]["b"] == "table"  # "the table" resolved to the scene's name
    assert len(s.requests) == 7  # 6 turns + 1 retry after the 503
    first = s.requests[0]
    assert first["model"] == "stub-model" and first["temperature"] == 0
    assert first["messages"][0]["role"] == "system" and "list_objects" in first["messages"][0]["content"]
    assert first["messages"][1]["content"].endswith("Can a 60 cm wide robot pass between the sofa and the table?")
    feedback = s.requests[1]["messages"][-1]
    assert feedback["role"] == "user" and feedback["content"].startswith("ERROR ")
    assert s.requests[2]["messages"][-1]["content"].startswith("RESULT ")
    assert s.headers[0].get("Authorization") == "Bearer secret-for-test"


def test_openai_planner_native_tool_calls():
    script = [("tool_calls", "ask", json.dumps({"type": "distance", "a": "sofa", "b": "table"})),
              ("tool_calls", "final", json.dumps({"answer": "2.4 m", "value": 2.4}))]
    with Stub(script) as s:
        r = reason("How far?", _answerer(), OpenAIPlanner("m", s.url))
    assert r.ok and r.value == 2.4
    assert r.direct_questions[0]["result"]["value"] == pytest.approx(2.4, abs=0.02)


def test_openai_planner_gives_up_on_endless_junk():
    with Stub(["I am not sure.", "Maybe yes?", "{'tool': 'final'}", "still junk"]) as s:
        r = reason("q?", _answerer(), OpenAIPlanner("m", s.url), max_retries=3)
    assert r.status == "malformed" and r.answer is None and len(s.requests) == 3
    assert all(t.kind == "malformed" and t.reply for t in r.trace)


def test_openai_planner_http_failures_are_reported_not_raised():
    with Stub([("status", 400)]) as s:
        r = reason("q?", _answerer(), OpenAIPlanner("m", s.url, backoff=0.01))
    assert r.status == "planner_error" and "HTTP 400" in r.reason and len(s.requests) == 1  # no retry on 4xx
    with Stub([("status", 500)] * 3) as s:
        r = reason("q?", _answerer(), OpenAIPlanner("m", s.url, retries=2, backoff=0.01))
    assert r.status == "planner_error" and "HTTP 500" in r.reason and len(s.requests) == 3
    with Stub([("raw", b"<html>not json</html>")]) as s:
        r = reason("q?", _answerer(), OpenAIPlanner("m", s.url))
    assert r.status == "planner_error" and "malformed response" in r.reason
    with Stub([]) as s:
        dead = s.url
    r = reason("q?", _answerer(), OpenAIPlanner("m", dead, retries=0))
    assert r.status == "planner_error" and "URLError" in r.reason


# ---- a tiny local causal LM ------------------------------------------------------------------------------------
FORCED = '{"tool":"final","answer":"tiny","value":true}'


def _tiny_lm(path, chat_template: str | None = None, forced: bool = False):
    """A 2-layer Qwen2 from a config with a word-level tokenizer trained on a few lines; token 0 is a whole tool
    call. With ``forced`` the final norm is zeroed, so every logit is 0 and greedy decoding emits token 0."""
    torch = pytest.importorskip("torch")
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    torch.set_num_threads(1)
    tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    corpus = ["You answer spatial questions about one image",
              "Question: Can a robot pass between the sofa and the table ?", 'Reply with exactly ONE JSON object { "tool" : "ask" , "type" : "distance" }',
              "RESULT ERROR list_objects final answer value reasoning calc gap height metres"]
    tok.train_from_iterator(corpus, trainers.WordLevelTrainer(special_tokens=["[UNK]", "[PAD]", "</s>"]))
    # put a whole tool call at id 0 as an ordinary (not special) token, shifting the trained vocabulary
    vocab = {FORCED: 0, **{w: i + 1 for w, i in tok.get_vocab().items()}}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", eos_token="</s>")
    if chat_template:
        fast.chat_template = chat_template
    cfg = Qwen2Config(vocab_size=tok.get_vocab_size(), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=4096,
                      eos_token_id=fast.eos_token_id, pad_token_id=fast.pad_token_id, tie_word_embeddings=True)
    model = Qwen2ForCausalLM(cfg)
    if forced:
        with torch.no_grad():
            model.model.norm.weight.zero_()
    model.save_pretrained(path)
    fast.save_pretrained(path)
    return str(path)


def test_tiny_local_lm_junk_is_handled(tmp_path):
    path = _tiny_lm(tmp_path / "junk")
    planner = load_planner(f"hf:{path}", max_new_tokens=12, device="cpu")
    r = reason("Can a 1 m wide robot pass between the sofa and the table?", _answerer(), planner, max_retries=2)
    # a random model writes junk: the run completes and reports it, it does not crash
    assert r.status == "malformed" and len(r.trace) == 2 and all(t.kind == "malformed" for t in r.trace)
    assert r.planner == f"hf:{path}"


def test_tiny_local_lm_forced_tool_call_goes_through(tmp_path):
    tmpl = ("{% for m in messages %}<{{ m['role'] }}> {{ m['content'] }}\n{% endfor %}"
            "{% if add_generation_prompt %}<assistant>{% endif %}")
    path = _tiny_lm(tmp_path / "forced", chat_template=tmpl, forced=True)
    planner = load_planner(f"hf:{path}", max_new_tokens=4, device="cpu")
    prompt = planner._prompt([{"role": "user", "content": "Question: hi"}])
    assert prompt.startswith("<user> Question: hi") and prompt.endswith("<assistant>")
    r = reason("Is it tiny?", _answerer(), planner)
    assert r.ok and r.answer == "tiny" and r.value is True
    assert r.trace[0].reply.startswith(FORCED)  # the model repeated token 0; one distinct call parsed


def test_hf_planner_names_the_missing_model(tmp_path):
    with pytest.raises(FileNotFoundError, match="planner model folder not found.*nope"):
        load_planner(f"hf:{tmp_path / 'nope'}")
    with pytest.raises(ValueError, match="unknown planner"):
        load_planner("gpt:x")
