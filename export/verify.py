"""Check a GGUF file against the HF model it came from, on a fixed prompt set.

* tokenization: llama.cpp's tokenizer gives the same ids as the HF tokenizer, special tokens included;
* logits: both models run the same ids; float files must match at the last token within a tolerance
  (relative to the logits' scale); every file records top-1 agreement over all positions and the
  mean KL divergence KL(HF || GGUF);
* greedy continuation: the share of N greedy tokens that match the HF model's, up to the first
  difference.
"""

from __future__ import annotations

import gc
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

PLAIN_PROMPTS = [
    "The quick brown fox jumps over the lazy dog. 1234567890",
    "Prüfung: naïve café, 数学题, 🙂 and \\frac{1}{2} + \\sqrt{x^2 + 1} = \\boxed{42}",
]
CHAT_PROMPTS = [
    "What is 17 * 23? Please reason step by step, and put your final answer within \\boxed{}.",
    "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. How many in all?",
]


@dataclass
class Reference:
    """What the HF model says on the prompt set (computed once, compared with every file)."""

    texts: list[str]
    token_ids: list[list[int]]
    logits: list[np.ndarray]  # [positions, vocab] per prompt, float32
    greedy: list[list[int]]


@dataclass
class FileCheck:
    tokenization_identical: bool
    token_mismatches: int
    max_abs_logit_diff: float
    logit_scale: float
    top1_agreement: float
    mean_kl: float
    greedy_match: float


def prompt_texts(tokenizer) -> list[str]:
    texts = list(PLAIN_PROMPTS)
    if tokenizer.chat_template:
        for question in CHAT_PROMPTS:
            texts.append(tokenizer.apply_chat_template([{"role": "user", "content": question}], tokenize=False,
                                                       add_generation_prompt=True))
    return texts


def compute_in_float32(model, chunk_rows: int = 8192) -> None:
    """Run a 16-bit model in float32 one module at a time, without a float32 copy of the whole model (about
    30 GB at 7B): each module's own weights are upcast just before it runs and its 16-bit tensors put back
    after (not re-made: a copy would sit beside the memory-mapped weights). The embeddings, the largest
    matrices, are never upcast whole: a lookup returns 16-bit rows, cast after; the output layer multiplies
    by `chunk_rows` rows at a time. Peak memory: the 16-bit model plus one decoder layer in float32."""
    import torch
    import torch.nn.functional as F

    saved: dict[int, list] = {}

    def upcast(module, _args):
        params = list(module.parameters(recurse=False))
        saved[id(module)] = [p.data for p in params]
        for p in params:
            p.data = p.data.float()

    def restore(module, _args, _output):
        for p, original in zip(module.parameters(recurse=False), saved.pop(id(module))):
            p.data = original

    def lookup_as_float(_module, _args, output):
        return output.float()

    output_layer = model.get_output_embeddings()
    embeddings = {id(model.get_input_embeddings()), id(output_layer)}

    def chunked_output(hidden):
        weight, bias, hidden = output_layer.weight, output_layer.bias, hidden.float()
        parts = [F.linear(hidden, weight[i:i + chunk_rows].float(),
                          None if bias is None else bias[i:i + chunk_rows].float())
                 for i in range(0, weight.shape[0], chunk_rows)]
        return torch.cat(parts, dim=-1)

    for module in model.modules():
        own = list(module.parameters(recurse=False))
        if not own or own[0].dtype == torch.float32:
            continue
        if module is output_layer:
            module.forward = chunked_output
        elif id(module) in embeddings:
            module.register_forward_hook(lookup_as_float)
        else:
            module.register_forward_pre_hook(upcast)
            module.register_forward_hook(restore)


def hf_reference(model_dir: Path, greedy_tokens: int) -> Reference:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype="auto")  # as saved: bf16 stays bf16
    compute_in_float32(model)
    model.eval()
    texts = prompt_texts(tokenizer)
    ids, logits, greedy = [], [], []
    with torch.no_grad():
        for text in texts:
            tokens = tokenizer.encode(text, add_special_tokens=False)
            ids.append(tokens)
            x = torch.tensor([tokens])
            logits.append(model(x).logits[0].float().numpy())
            out = model.generate(x, attention_mask=torch.ones_like(x), max_new_tokens=greedy_tokens, do_sample=False,
                                 min_new_tokens=greedy_tokens, eos_token_id=None, pad_token_id=tokenizer.pad_token_id)
            greedy.append(out[0, len(tokens):].tolist())
    del model
    gc.collect()  # the chunked output layer's forward refers back to its module: free the model now, before
    #               the GGUF files are loaded beside it
    return Reference(texts=texts, token_ids=ids, logits=logits, greedy=greedy)


def _log_softmax(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    x = x - x.max(axis=-1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


def check_file(gguf: Path, ref: Reference, *, greedy_tokens: int, threads: int | None = None) -> FileCheck:
    from llama_cpp import Llama

    longest = max(len(t) for t in ref.token_ids) + greedy_tokens + 8
    llm = Llama(model_path=str(gguf), n_ctx=max(256, longest), logits_all=True, verbose=False, seed=0,
                n_threads=threads, n_threads_batch=threads)
    try:
        mismatches, max_diff, scale, agree, kls, positions, matched = 0, 0.0, 0.0, 0, [], 0, []
        for text, tokens, hf_logits, hf_greedy in zip(ref.texts, ref.token_ids, ref.logits, ref.greedy):
            ours = llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)
            mismatches += int(list(ours) != tokens)
            llm.reset()
            llm.eval(tokens)
            gg_logits = np.array(llm.scores[: len(tokens)], dtype=np.float32)
            vocab = min(hf_logits.shape[-1], gg_logits.shape[-1])
            a, b = hf_logits[:, :vocab], gg_logits[:, :vocab]
            max_diff = max(max_diff, float(np.abs(a[-1] - b[-1]).max()))
            scale = max(scale, float(np.abs(a[-1]).max()))
            agree += int((a.argmax(-1) == b.argmax(-1)).sum())
            positions += len(tokens)
            p_log, q_log = _log_softmax(a), _log_softmax(b)
            kls.extend((np.exp(p_log) * (p_log - q_log)).sum(-1).tolist())
            produced = []
            for _ in range(greedy_tokens):
                nxt = int(np.argmax(llm.scores[llm.n_tokens - 1][:vocab]))
                produced.append(nxt)
                llm.eval([nxt])
            same = 0
            for x, y in zip(produced, hf_greedy):
                if x != y:
                    break
                same += 1
            matched.append(same / max(1, len(hf_greedy)))
        return FileCheck(
            tokenization_identical=mismatches == 0, token_mismatches=mismatches, max_abs_logit_diff=max_diff,
            logit_scale=scale, top1_agreement=agree / max(1, positions), mean_kl=float(np.mean(kls)),
            greedy_match=float(np.mean(matched)),
        )
    finally:
        llm.close()


def passes_parity(check: FileCheck, tolerance: float) -> bool:
    """Float files: same tokens, and last-token logits within `tolerance` x max(1, logit scale)."""
    return check.tokenization_identical and check.max_abs_logit_diff <= tolerance * max(1.0, check.logit_scale)


def as_dict(check: FileCheck) -> dict:
    return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in asdict(check).items()}
