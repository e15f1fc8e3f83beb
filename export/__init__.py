"""r1_distill.export: merge adapters, convert to GGUF with llama.cpp's converter, quantize, verify."""
