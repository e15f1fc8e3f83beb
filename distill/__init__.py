"""r1_distill.distill: SFT of students on kept traces, an optional GRPO stage, evaluation."""
