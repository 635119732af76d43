"""Model internals that the engines and training share: the prompt text a model continues, the dtype to run in
(bf16 where the CPU has it natively), and loading a model to train. The decode cache is
:mod:`medrlvr.engines.cache`."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .prompts import Prompt


def render_prompt(tokenizer, prompt: Prompt) -> str:
    """The text a model continues: a plain prompt as is; chat messages through the tokenizer's chat template, with
    the generation prompt, or continuing a last assistant message (a prefill, see ``prompts.with_prefill``).

    Training (TRL tokenizes prompt text with the tokenizer's special tokens) and the engine read the same text. A
    template that writes the BOS token itself loses it here when the tokenizer adds one anyway, so that
    ``tokenizer(text)`` holds it once."""
    if isinstance(prompt, str):
        return prompt
    open_turn = bool(prompt) and prompt[-1].get("role") == "assistant"
    text = tokenizer.apply_chat_template(
        prompt, tokenize=False, add_generation_prompt=not open_turn, continue_final_message=open_turn
    )
    bos = tokenizer.bos_token
    if bos and text.startswith(bos) and _adds_bos(tokenizer):
        text = text[len(bos) :]
    return text


def _adds_bos(tokenizer) -> bool:
    ids = tokenizer("x")["input_ids"]
    return bool(ids) and tokenizer.bos_token_id is not None and ids[0] == tokenizer.bos_token_id


# --- dtypes -------------------------------------------------------------------------------------------------


def cpu_supports_bf16() -> bool:
    """Whether this CPU has native bf16 (AVX512-BF16 or AMX), where bf16 matmuls run about twice as fast as fp32."""
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def pick_dtype(dtype: str, device: str):
    """A torch dtype from its name; ``auto``: bf16 where the hardware has it, else fp16 on a GPU, fp32 on a CPU."""
    import torch

    if dtype == "auto":
        if device.startswith("cuda"):
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.bfloat16 if cpu_supports_bf16() else torch.float32
    try:
        return {
            "fp32": torch.float32,
            "float32": torch.float32,
            "bf16": torch.bfloat16,
            "bfloat16": torch.bfloat16,
            "fp16": torch.float16,
            "float16": torch.float16,
        }[dtype]
    except KeyError:
        raise ValueError(f"unknown dtype {dtype!r}; use auto, fp32, bf16 or fp16") from None


# --- memory ----------------------------------------------------------------------------------------------------

MMAP_THRESHOLD = 128 * 1024  # bytes: glibc's own starting threshold, held fixed


def return_freed_memory() -> bool:
    """Have glibc give freed tensors back to the system at once: allocations of at least 128 KiB are mapped and
    unmapped on their own (``mallopt(M_MMAP_THRESHOLD)``, which also stops glibc raising the threshold as it does by
    default after the first large frees). Without it a CPU training step's activations and logits stay in the
    process's heap after they are freed, and the next phase (generation, the next loss) takes fresh pages beside
    them: measured on a PPO step of Gemma-3-270M (1 question x 8 rollouts x 16 tokens, bf16), the resident set after
    a step was 6.3 GB of which 1.6 GB was live, and the peak fell from 6.6 to 5.0 GB. Linux with glibc only (a
    no-op elsewhere); returns whether it applied."""
    import ctypes
    import ctypes.util
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(-3, MMAP_THRESHOLD))  # -3: M_MMAP_THRESHOLD
    except (OSError, AttributeError):  # musl and other C libraries have no mallopt
        return False


def unfreeze_for_inference(model):
    """``model`` with every weight's ``requires_grad`` on, for a model that only ever runs under inference_mode (an
    engine's, the rollout copy). On a bf16 CPU, running with frozen weights peaked higher, measured twice (cause not
    pinned down): Gemma-3-270M merged with a LoRA adapter scoring 32 MedQA options, 3.6 GB peak frozen against 2.2 GB;
    the rollout copy's first generation in a PPO step, 2.6 GB above the resident set frozen, none unfrozen. Under
    inference_mode the flag builds no graph, so it changes nothing else. Returns ``model``."""
    return model.requires_grad_(True)


# --- loading a model to train -------------------------------------------------------------------------------


def load_for_training(path: str, *, on_gpu: bool, bf16: bool, frozen: bool, qlora: bool, trust_remote_code: bool):
    """The policy to train and its tokenizer from a checkpoint directory (4-bit NF4 weights for QLoRA).

    bf16 weights when they are ``frozen`` (LoRA) on a GPU, or on a CPU with bf16 mixed precision: the matmuls run
    in bf16 either way, and the frozen copy in bf16 halves the model's memory and most of the activations'. Trained
    weights (full fine-tuning, GPU or CPU) stay fp32 master weights for the optimizer: an AdamW update at lr 2e-5
    is mostly under half a bf16 step and would round away."""
    if qlora:
        from .errors import require

        require("bitsandbytes", "qlora: true (a 4-bit base)", "bitsandbytes")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    kwargs: dict = {
        "dtype": torch.bfloat16 if frozen and (on_gpu or bf16) else torch.float32,
        "trust_remote_code": trust_remote_code,
    }
    if qlora:
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.bfloat16
        )
    return AutoModelForCausalLM.from_pretrained(path, **kwargs), tokenizer
