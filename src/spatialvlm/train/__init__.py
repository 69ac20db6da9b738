"""Training recipes for Hugging Face VLMs on spatial QA, the from-scratch ``cpu-tiny`` model, and inference.

* :mod:`spatialvlm.train.config` - ``TrainConfig``, presets (``presets.yaml``), ``resolve_config``
* :mod:`spatialvlm.train.trainer` - ``train(cfg) -> TrainResult`` (TRL SFTTrainer, LoRA or full, answer-only loss)
* :mod:`spatialvlm.train.data` - reading synth outputs, held-out split, label noise, general-data mixing
* :mod:`spatialvlm.train.tiny` - ``build_tiny_vlm`` (config-built model + locally trained tokenizer)
* :mod:`spatialvlm.train.infer` - ``load_vlm``, ``answer``, ``ask``, ``merge_adapter``
* :mod:`spatialvlm.train.scoring` - scoring generated answers for the held-out accuracy hook

Heavy libraries (torch, transformers, trl, peft) are imported inside functions only.
"""
