"""Spatial reasoning and robotics rewards (the paper's two applications).

* :mod:`spatialvlm.reason.agent`: ``reason(question, answerer, planner)``, an LLM (or rule) planner that splits a
  hard spatial question into direct ones (JSON tool calls), bounded, logged, robust to malformed replies;
* :mod:`spatialvlm.reason.answerers`: the scene-graph answerer (our Scene + the question-type registry) and the
  VLM answerer (evaluation adapters + answer parsing);
* :mod:`spatialvlm.reason.planners`: rule-based, OpenAI-compatible HTTP and local transformers planners;
* :mod:`spatialvlm.reason.showcase`: rendered showcase scenes with known answers;
* :mod:`spatialvlm.reason.reward`: per-frame distances over an episode -> dense reward curves.

See docs/reasoning.md.
"""
