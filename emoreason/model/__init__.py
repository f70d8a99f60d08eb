"""emoreason.model: the dual-encoder AudioLLM (paper sections 3.2-3.3).

- ``builder``: ``build_model(cfg.model)`` (fusion = which adapters), ``save_pretrained`` /
  ``load_pretrained(dir)``: owns the config and is the only code that reads checkpoints
- ``audiollm``: ``AudioLLM(encoders, adapters, llm, ...)`` (encode, adapt, splice into the LLM;
  forward / generate / score_candidates)
- ``encoders``: Whisper (fixed 30 s or dynamic length) and HF waveform encoders behind one interface
- ``emotion2vec``: native emotion2vec / emotion2vec+ (FunASR state-dict compatible)
- ``adapter``: MERaLiON-style frame adapters and the feature-fusion adapter
- ``processing``: audio special tokens, the ``builtin:tiny`` byte tokenizer, and ``AudioProcessor``
  (chat template, placeholder expansion, loss mask)
- ``lora``: peft LoRA on the LLM submodule only
- ``presets``: named sizes for ``path: preset:NAME`` with ``init: random``

Nothing heavy is imported here: ``import emoreason.model`` stays instant.
"""
