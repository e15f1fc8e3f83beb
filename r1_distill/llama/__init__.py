"""The llama.cpp runtime that `generate --backend llamacpp` (teacher/) and `r1-distill serve` (serve/) share:
continuous batching over llama.cpp (:mod:`.engine`), token choice (:mod:`.sampling`), prompts kept in RAM
(:mod:`.prompt_cache`), chat messages to a prompt with the GGUF's template (:mod:`.chat_template`), a
sequence's text stream (:mod:`.text_stream`) and the default thread count (:mod:`.threads`).

Nothing here knows HTTP: the server turns its errors into API errors."""
