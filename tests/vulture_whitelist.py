"""Names that vulture (test.sh) cannot see used, because something other than Python code in
src/, scripts/ or perf/ uses them. Only vulture reads this file; nothing imports it.

Keep it to names used dynamically, each with the reason. A name that is merely unused is dead
code: remove it instead of adding it here.
"""

# ruff: noqa: B018, F821

# --- the back-end registry: "module:function" strings in backends.BACKENDS, imported on demand
make_hf_backend  # BACKENDS["hf"]
make_openai_backend  # BACKENDS["openai"]
make_scripted_backend  # BACKENDS["scripted"]

# --- called from the workflow (Snakefile, rules/*.smk), which vulture cannot parse
validate_config  # rules/common.smk validates the config at parse time
check_api_keys  # Snakefile's onstart
repair_model  # rules/common.smk names each repair round's model
RATIONALE_SETS  # rules/common.smk: the rationale sets Stage I models learn from
FIGURES  # rules/common.smk and rules/report.smk: the report's figure files
AUDIT_FIGURES  # rules/common.smk: each audited model's figures
template_for  # rules/common.smk and rules/finetune.smk: a prompt set's template file
framing_for  # rules/finetune.smk: a prompt set's framing
check_prompt_files  # rules/common.smk reads every fine-tune prompt file at parse time
POLICY_MODELS  # rules/common.smk: the models that get an explanation-policy row
policy_model  # rules/common.smk names each policy row
CONTROL_FIGURE  # rules/common.smk and rules/control.smk: the control's figure file

# --- read by transformers, tokenizers or peft, never by our code
_.padding_side  # tokenizer setting the library reads when it pads a batch (lm.engine, perf)
_.pre_tokenizer  # tokenizers: how the tiny model's tokenizer splits words (lm.tiny)
_.hf_quantizer  # transformers: None stops it re-quantising a converted GGUF model (lm.convert)
_.support_avx512bf16_for_cpu  # bitsandbytes: False keeps 4-bit inference in the compute dtype (lm.engine)
_.use_cache  # model config: no KV cache while training (train.model)
_.cast_input_dtype_enabled  # peft LoRA layers: no input cast under bf16 (train.model)
_.is_initialized  # transformers cache-layer protocol (lm.kv's in-place layer)
_.get_seq_length  # transformers cache-layer protocol (lm.kv)
_.batch_repeat_interleave  # transformers cache-layer protocol (lm.kv)
_.crop  # transformers cache-layer protocol (lm.kv)
_.compute_loss  # Trainer hook, overridden by train.loss's WeightedLossTrainer
num_items_in_batch  # compute_loss's argument, part of the Trainer's signature
_.loss_is_scaled_for_ga  # Trainer reads it: our loss is already a per-micro-batch mean
_.model_accepts_loss_kwargs  # Trainer reads it: no token count for a loss we do not use
_.on_log  # TrainerCallback hook (train.loss)
_.on_step_end  # TrainerCallback hook (train.loss)
_.should_save  # TrainerControl flag the Trainer reads after each step (train.loss)

# --- dataclass fields read as a whole, by vars() or asdict(), not one by one
_.hidden_size  # lm.tiny.TinyShape -> LlamaConfig(**vars(shape))
_.intermediate_size  # lm.tiny.TinyShape
_.num_hidden_layers  # lm.tiny.TinyShape
_.num_attention_heads  # lm.tiny.TinyShape
_.num_key_value_heads  # lm.tiny.TinyShape

# --- monkeypatched by perf/gpu_check.py where matplotlib is missing
_.plot_loss  # harmdrift.train.run.plot_loss replaced by a no-op

# --- record vocabularies for readers of the outputs, pinned by tests, read by no module
BINARY_STATUSES  # core.parsing: every parse_status a binary answer record can hold
MC_STATUSES  # core.parsing: every parse_status a 3-way answer record can hold
_.cached  # backends.base.Completion: the response cache marks its hits for the caller
