"""Language-model runtime, framework-free.

- `model_source`: what a model spec names (HF id, local dir, GGUF, packaged default).
- `generation`: sampling parameters, completions, cancellation, the LanguageModel interface.
- `transformers_backend`: the Hugging Face implementation (CPU/CUDA, streaming, batched samples,
  a shared few-shot prefix prefilled once).
- `llama_cpp_backend`: GGUF models through llama.cpp (fast CPU single-stream); `loading` picks one.
- `code_extraction`: code out of replies; `tiny`: a random tiny model for tests.
"""
