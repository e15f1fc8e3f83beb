"""r1_distill.serve: an OpenAI-compatible local server with the thinking returned apart."""
