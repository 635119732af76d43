"""medrlvr's GRPOTrainer: TRL's, with the completion log-probabilities computed where TRL's are slow.

TRL scores completions through a fused LM head that, on devices without Triton (CPUs), computes the head for
*every* position of prompt + completion and masks the prompt away afterwards ("so that Neuron does not recompile";
``trl.trainer.utils.add_fused_lm_head``). With R1-Zero prompts of ~250 tokens and 96-token completions that is 3.6x
the head's work and, measured on the CPU demo (SmolLM2-135M, 16 rollouts), 9.5 GB of memory and 22 s of forward and
backward per step. Here the head runs on the completion positions only: the same log-probabilities and entropies
(``tests/test_grpo.py`` compares them with TRL's own, gradients included), on a CPU a fraction of the time and memory.

Rollouts sharing a prompt (GRPO's group) also share its forward pass: the prompt runs once per distinct prompt,
its keys and values are handed to each rollout of the group (autograd adds their gradients), and only the
completions run per rollout. With groups of G rollouts that removes (G-1)/G of the prompt's forward and backward
work; a head every prompt of the batch starts with (the R1-Zero system prompt, 112 of a demo prompt's ~170
tokens) runs once before them. It needs a model whose layers all attend fully and no activation checkpointing
(transformers drops the cache under it); otherwise every row runs whole, as in TRL.

Anything this does not cover (images, MoE auxiliary losses) goes to TRL's own method. This module imports torch and
TRL at the top: :mod:`medrlvr.train.grpo` imports it only when it builds a trainer.

The sampler's log-probabilities against the trainer's. TRL measures the gap between the log-probabilities the
sampler reported and the trainer's own on the sampled tokens, and corrects for it with truncated or masked
importance sampling (token or sequence level: Yao et al., "Your efficient RL framework secretly brings you
off-policy RL training", 2025; TRL's ``vllm_importance_sampling_*``), but only for vLLM (``self.use_vllm``).
medrlvr's rollouts report log-probabilities too (bf16 sampling, fp32 or bf16 training), so
:class:`MedrlvrGRPOTrainer` runs TRL's own code for them: ``use_vllm`` reads True while TRL scores a batch
(outside generation) and while it computes the loss only when a correction is asked for
(``rollout_importance_sampling``): TRL then computes the trainer's log-probabilities in an extra no-grad pass, the
ratio and the ``sampling/*`` metrics, and weights the loss exactly as it weights vLLM's. Without a correction the
same metrics come from the loss's own forward pass at no extra cost (one iteration per batch: its log-probabilities
are those TRL's extra pass would compute; measured on the CPU demo, the extra pass cost about 2-3 s per step).
TRL's own generate reports no log-probabilities: nothing is logged.

TRL's surface. This module is the only place medrlvr overrides TRL's private methods, and it refuses (one line, at
import) a TRL whose minor version it was not tested with (:data:`TESTED_TRL`; pyproject pins ``trl>=1.16,<1.17``).
To move to a new TRL: install it, set ``TESTED_TRL``, run ``tests/test_grpo.py``, ``tests/test_rollout*.py`` and
``tests/test_variants.py`` (they compare against TRL's own computations), then widen the pin. What uses TRL's
public hooks: the rollouts (``rollout_func``), every reward and log (reward functions), metrics and checkpoints
(transformers callbacks). What still needs a private override, and why:

- ``_get_per_token_logps_and_entropies``: the head on the completion positions only and a group's prompt run once
  (TRL has no hook for how log-probabilities are computed);
- ``_generate_and_score_completions``, ``_generate``, ``_compute_loss``: scope TRL's ``use_vllm`` flag so that its
  importance-sampling code (gated on vLLM) runs for medrlvr's rollouts, which report log-probabilities too, and
  read the sampler/trainer gap off the loss's forward pass (TRL computes it only in an extra pass, for vLLM);
- ``_calculate_rewards``: dynamic sampling's and skip_zero_variance's replacement groups (and permuted options) carry
  their own prompts, which TRL's batch-local ``prompts`` list does not know (``rollout_func`` can return extra columns
  but not new prompts); and each question's rewards of the step are written to ``question_rewards.jsonl`` (TRL logs
  batch means only).
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path

import torch
import trl
from trl import GRPOTrainer

from ...engines.cache import cache_argument, shared_prefix, supports_growing_cache
from ...errors import UserError
from ...store import write_json

TESTED_TRL = "1.16"  # the TRL minor whose private methods are overridden below


def check_trl_version(version: str = trl.__version__) -> None:
    """One line, naming the tested version, when ``version`` is another TRL minor than :data:`TESTED_TRL`."""
    if ".".join(version.split(".")[:2]) != TESTED_TRL:
        raise UserError(
            f"medrlvr's GRPO trainer overrides private methods of TRL {TESTED_TRL}.x, and TRL {version} is "
            f"installed: pip install 'trl>={TESTED_TRL},<1.{int(TESTED_TRL.split('.')[1]) + 1}'"
        )


check_trl_version()


class MedrlvrGRPOTrainer(GRPOTrainer):
    """TRL's GRPOTrainer with :func:`completion_logits` and :class:`SelectedLogProb` scoring the completions on
    devices where TRL's fused head covers the whole sequence."""

    share_prompts = True  # a group's shared prompt runs once (tests switch it off to compare both paths)
    sampler_logprobs = False  # the rollouts hand TRL their log-probs (medrlvr's, vLLM's): log the gap to ours
    correct_sampling = False  # and weight the loss by TRL's importance-sampling ratio (rollout_importance_sampling)
    _phase: str | None = None

    @property
    def use_vllm(self) -> bool:
        """TRL's flag, as TRL's importance-sampling code reads it: see the module docstring."""
        if self._phase in ("score", "loss"):
            return self.correct_sampling
        return self.__dict__.get("_use_vllm", False)

    @use_vllm.setter
    def use_vllm(self, value: bool) -> None:
        self.__dict__["_use_vllm"] = value

    @contextmanager
    def _in_phase(self, phase: str | None):
        before, self._phase = self._phase, phase
        try:
            yield
        finally:
            self._phase = before

    def _generate_and_score_completions(self, inputs):
        with self._in_phase("score"):
            output = super()._generate_and_score_completions(inputs)
        return self.after_scoring(output)

    # --- medrlvr's own hooks (not TRL's): what another algorithm on this trainer overrides (medrlvr.train.ppo) ----

    def after_scoring(self, output: dict) -> dict:
        """The generated, scored batch as TRL returns it (advantages per sequence); GRPO keeps it as it is."""
        return output

    def rl_loss(self, model, inputs):
        """The loss of one micro-batch of the buffered batch: TRL's GRPO loss here."""
        return super()._compute_loss(model, inputs)

    def sequence_scores(self) -> torch.Tensor:
        """This process's rows' weighted reward sums of the batch just scored (what TRL normalises per group)."""
        rewards_per_func, weights = self._scored
        scores = (rewards_per_func * weights.to(rewards_per_func.device)).nansum(dim=1)
        rows = len(scores) // self.accelerator.num_processes
        start = self.accelerator.process_index * rows
        return scores[start : start + rows]

    def completion_logps(self, model, inputs: dict, entropy: bool = False):
        """Per-token log-probabilities (and entropies) of ``inputs``' completions under ``model``, through this
        trainer's completion-only head (the fast path below)."""
        ids = torch.cat([inputs["prompt_ids"], inputs["completion_ids"]], dim=1)
        mask = torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], dim=1)
        logps, entropies, _ = self._completion_logps(
            model, ids, mask, inputs["completion_ids"].size(1), None, entropy, False
        )
        if self._phase == "loss" and getattr(self, "_sampling", None) is not None:
            self._log_sampling_gap(logps)  # the rollout gap, as for GRPO's own loss
        return logps, entropies

    # --- checkpoints: what the rollouts keep beyond transformers' state (skip_zero_variance's recent ties) ---------

    def _rollout_state_file(self, folder) -> Path:
        return Path(folder) / f"rollout_state-rank{self.accelerator.process_index}.json"

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False):
        super().save_model(output_dir, _internal_call)
        state = getattr(self.rollout_func, "state_dict", None)
        if _internal_call and state is not None and getattr(self.rollout_func, "skip_after", 0):
            # a checkpoint (transformers' _save_checkpoint): written before its completion marker (a callback's)
            write_json(self._rollout_state_file(output_dir or self.args.output_dir), state())

    def restore(self, checkpoint) -> None:
        """The rollouts' state of ``checkpoint``, so that a resumed run skips what an uninterrupted one would."""
        path = self._rollout_state_file(checkpoint)
        if getattr(self.rollout_func, "skip_after", 0) and path.is_file():
            self.rollout_func.load_state_dict(json.loads(path.read_text()))

    def _generate(self, prompts):
        with self._in_phase(None):  # generation itself sees TRL's real flag (vLLM's weight sync, its sampling)
            return super()._generate(prompts)

    def _compute_loss(self, model, inputs):
        # Without a correction the sampler/trainer gap is read off the loss's own forward pass (one iteration per
        # batch: the trainer's log-probs there are the ones TRL would compute in an extra no-grad pass first)
        self._sampling = None
        if self.sampler_logprobs and not self.correct_sampling and inputs.get("sampling_per_token_logps") is not None:
            self._sampling = (inputs["sampling_per_token_logps"], inputs["completion_mask"])
        with self._in_phase("loss"):
            return self.rl_loss(model, inputs)

    def _log_sampling_gap(self, logps) -> None:
        """TRL's ``sampling/*`` metrics, as it logs them for vLLM, from the trainer's log-probs of the loss."""
        sampling, mask = self._sampling
        self._sampling = None
        if sampling.shape != logps.shape:
            return
        mask = mask.bool()
        diff = (logps.detach().float() - sampling.float())[mask]
        if not diff.numel():
            return
        ratio = diff.exp()
        mode = "train" if self.model.training else "eval"
        for key, value in (("sampling/sampling_logp_difference/mean", diff.abs().mean()),
                           ("sampling/sampling_logp_difference/max", diff.abs().max()),
                           ("sampling/importance_sampling_ratio/min", ratio.min()),
                           ("sampling/importance_sampling_ratio/mean", ratio.mean()),
                           ("sampling/importance_sampling_ratio/max", ratio.max())):  # fmt: skip
            self._metrics[mode][key].append(self.accelerator.gather(value).mean().item())

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        # Dynamic sampling's (and skip_zero_variance's) replacing groups carry their own prompt in their rows (rollout_func's extra fields,
        # merged into ``inputs``); TRL hands the rewards, and logs, the ``prompts`` list of the batch it drew.
        # That list is TRL's own local: set it in place, so rewards and the completion log see each row's prompt.
        own = [x.get("prompt") for x in inputs]
        if getattr(self.rollout_func, "own_prompts", False) and len(own) == len(prompts):
            prompts[:] = own
        rewards_per_func = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        self._scored = (rewards_per_func, self.reward_weights)  # for sequence_scores()
        self._log_question_rewards(inputs)
        return rewards_per_func

    def _log_question_rewards(self, inputs) -> None:
        """Append this process's questions of the batch just scored to ``question_rewards.jsonl``: per question, the
        step, its rollouts, their mean weighted reward (what was trained on) and mean accuracy (the accuracy reward,
        logged whatever its weight). A pilot run's selection rules read a question's accuracy step by step from it
        (:mod:`medrlvr.select.pilot`); a resumed run appends the steps after its checkpoint again."""
        if not inputs or "id" not in inputs[0]:
            return
        local = question_rewards(self.sequence_scores(), self._scored[0], self.reward_func_names,
                                 self.accelerator.process_index, [x["id"] for x in inputs])  # fmt: skip
        step = self.state.global_step + 1  # the optimizer step these rollouts train, as completions.jsonl numbers it
        text = "".join(json.dumps({"step": step, **row}) + "\n" for row in local)
        with open(Path(self.args.output_dir) / "question_rewards.jsonl", "a", encoding="utf-8") as f:
            f.write(text)  # one write per call: processes appending at once do not interleave rows

    def _get_per_token_logps_and_entropies(
        self,
        model,
        input_ids,
        attention_mask,
        logits_to_keep,
        batch_size=None,
        compute_entropy=False,
        compute_aux_loss=False,
        **multimodal,
    ):
        logps, entropies, aux = self._completion_logps(model, input_ids, attention_mask, logits_to_keep, batch_size,
                                                       compute_entropy, compute_aux_loss, **multimodal)  # fmt: skip
        if self._phase == "loss" and getattr(self, "_sampling", None) is not None:
            self._log_sampling_gap(logps)
        return logps, entropies, aux

    def _completion_logps(self, model, input_ids, attention_mask, logits_to_keep, batch_size, compute_entropy,
                          compute_aux_loss, **multimodal):  # fmt: skip
        # TRL's fused head is compact (completion positions only) where Triton runs; elsewhere ours is
        if (
            self.accelerator.device.type in ("cuda", "xpu")
            or compute_aux_loss
            or any(v is not None for v in multimodal.values())
        ):
            return super()._get_per_token_logps_and_entropies(
                model, input_ids, attention_mask, logits_to_keep, batch_size, compute_entropy,
                compute_aux_loss, **multimodal,
            )  # fmt: skip
        batch_size = batch_size or input_ids.size(0)
        share = self.share_prompts and not self.args.gradient_checkpointing
        share = share and supports_growing_cache(self.accelerator.unwrap_model(model))
        logps, entropies = [], []
        for start in range(0, input_ids.size(0), batch_size):
            ids = input_ids[start : start + batch_size]
            mask = attention_mask[start : start + batch_size]
            with self.accelerator.autocast():
                logits = completion_logits(model, ids, mask, logits_to_keep, share)
            lp, ent = selected_logprobs(logits, ids[:, -logits_to_keep:], self.temperature, compute_entropy)
            logps.append(lp)
            if compute_entropy:
                entropies.append(ent)
        return torch.cat(logps), (torch.cat(entropies) if compute_entropy else None), None


# --- the forward pass: logits at the completion positions only ----------------------------------------------


def question_rewards(scores: torch.Tensor, rewards_per_func: torch.Tensor, names: list[str], rank: int,
                     ids: list) -> list[dict]:  # fmt: skip
    """Per question id of this process's rows (``scores``: their weighted totals; ``rewards_per_func``: every
    process's rows, gathered), in first-seen order: rollouts, mean reward and mean accuracy (None without an
    accuracy reward). NaN rewards (a reward that could not score a row) are left out of the means."""
    start = rank * len(ids)
    accuracy = names.index("accuracy_reward") if "accuracy_reward" in names else None
    groups: dict = {}
    for i, qid in enumerate(ids):
        groups.setdefault(qid, []).append(i)
    rows = []
    for qid, members in groups.items():
        total = scores[members].float()
        row = {"id": qid, "rollouts": len(members), "reward": _mean(total)}
        row["accuracy"] = (
            _mean(rewards_per_func[[start + i for i in members], accuracy].float()) if accuracy is not None else None
        )
        rows.append(row)
    return rows


def _mean(values: torch.Tensor) -> float | None:
    kept = values[~torch.isnan(values)]
    return round(kept.mean().item(), 6) if kept.numel() else None


def completion_logits(model, ids, mask, keep: int, share: bool):
    """Logits at the positions that predict the last ``keep`` tokens (the completion), through the model's own
    forward (its own head, scaling and soft-capping); with ``share``, a prompt several rows hold runs once."""
    prompt_width = ids.size(1) - keep
    if share:
        prompts = [tuple(row[:prompt_width][m[:prompt_width].bool()].tolist()) for row, m in zip(ids, mask)]
        distinct = list(dict.fromkeys(prompts))
        if len(distinct) < len(prompts) and min(map(len, distinct)) >= 2:
            return shared_prefix_logits(model, ids, mask, prompt_width, keep, prompts, distinct)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    predicting = torch.arange(ids.size(1) - keep - 1, ids.size(1) - 1, device=ids.device)
    out = model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=False,
                logits_to_keep=predicting)  # fmt: skip
    return out.logits


def shared_prefix_logits(model, ids, mask, prompt_width: int, keep: int, prompts: list, distinct: list):
    """Rows are [left-padded prompt | right-padded completion]. A prefix pass fills a cache for each distinct
    prompt (all but its last token); each row then runs [its prompt's last token | its completion] over its
    prompt's cache, expanded to the group with ``index_select`` (autograd sums the rows' gradients). A head all
    distinct prompts share (the R1-Zero system prompt) runs once before them, expanded the same way."""
    from transformers import DynamicCache

    device = ids.device
    where = {p: k for k, p in enumerate(distinct)}
    index = torch.tensor([where[p] for p in prompts], device=device)
    head = shared_prefix(distinct, keep=2)  # each keeps a token of its own before its last one
    cache = DynamicCache()
    key = cache_argument(model)
    if head:
        head_ids = torch.tensor([distinct[0][:head]], dtype=ids.dtype, device=device)
        model(input_ids=head_ids, attention_mask=torch.ones_like(head_ids, dtype=mask.dtype),
              position_ids=torch.arange(head, device=device)[None], use_cache=True, logits_to_keep=1,
              **{key: cache})  # fmt: skip
        for layer in cache.layers:
            layer.keys = layer.keys.expand(len(distinct), -1, -1, -1)
            layer.values = layer.values.expand(len(distinct), -1, -1, -1)
    prefix, prefix_mask = _left_padded([p[head:] for p in distinct], ids.dtype, mask.dtype, device)
    positions = head + (prefix_mask.cumsum(-1) - 1).clamp(min=0)
    if head:
        prefix_mask = torch.cat([torch.ones(len(distinct), head, dtype=mask.dtype, device=device), prefix_mask], 1)
    model(input_ids=prefix, attention_mask=prefix_mask, position_ids=positions, use_cache=True, logits_to_keep=1,
          **{key: cache})  # fmt: skip
    for layer in cache.layers:
        layer.keys = layer.keys.index_select(0, index)
        layer.values = layer.values.index_select(0, index)
    last = torch.tensor([p[-1] for p in prompts], dtype=ids.dtype, device=device)[:, None]
    suffix = torch.cat([last, ids[:, prompt_width:]], dim=1)
    suffix_mask = torch.cat([torch.ones_like(last, dtype=mask.dtype), mask[:, prompt_width:]], dim=1)
    lengths = torch.tensor([len(p) for p in prompts], device=device)
    positions = lengths[:, None] - 1 + torch.arange(suffix.size(1), device=device)[None]
    full_mask = torch.cat([prefix_mask.index_select(0, index), suffix_mask], dim=1)
    predicting = torch.arange(0, keep, device=device)  # the last suffix position predicts nothing we score
    out = model(input_ids=suffix, attention_mask=full_mask, position_ids=positions, use_cache=True,
                logits_to_keep=predicting, **{key: cache})  # fmt: skip
    return out.logits


def _left_padded(prompts: list[tuple[int, ...]], dtype, mask_dtype, device):
    """Each prompt but its last token, left-padded to a common width, and its mask (padding is masked out)."""
    width = max(map(len, prompts)) - 1
    prefix = torch.zeros((len(prompts), width), dtype=dtype, device=device)
    prefix_mask = torch.zeros((len(prompts), width), dtype=mask_dtype, device=device)
    for k, p in enumerate(prompts):
        prefix[k, width - len(p) + 1 :] = torch.tensor(p[:-1], dtype=dtype, device=device)
        prefix_mask[k, width - len(p) + 1 :] = 1
    return prefix, prefix_mask


# --- the log-probabilities of the chosen tokens --------------------------------------------------------------


def _rows_per_chunk(logits) -> int:
    """Rows of vocabulary-wide logits handled at once: about 4M values (16 MB in fp32) per chunk."""
    return max(1, (1 << 22) // max(1, logits.size(-1)))


class SelectedLogProb(torch.autograd.Function):
    """log_softmax(logits / T) at the target tokens, with entropies, a few rows at a time in fp32; the backward
    writes the one dense gradient (softmax - one-hot) / T straight into the logits' dtype. Through autograd's
    own ops the same takes six vocabulary-wide fp32 tensors (the slice, cast, division, log_softmax and gather
    each keep or zero-fill one): 1.8 GB and half a second per step on the CPU demo."""

    @staticmethod
    def forward(ctx, logits, targets, temperature, compute_entropy):
        rows = _rows_per_chunk(logits)
        flat, flat_targets = logits.reshape(-1, logits.size(-1)), targets.reshape(-1)
        logps = torch.empty(flat.size(0), dtype=torch.float32, device=logits.device)
        lse = torch.empty_like(logps)
        entropy = torch.empty_like(logps) if compute_entropy else None
        for start in range(0, flat.size(0), rows):
            scaled = flat[start : start + rows].float() / temperature
            norm = torch.logsumexp(scaled, dim=-1)
            lse[start : start + rows] = norm
            logps[start : start + rows] = scaled.gather(-1, flat_targets[start : start + rows, None])[:, 0] - norm
            if compute_entropy:
                probs = torch.exp(scaled - norm[:, None])
                entropy[start : start + rows] = norm - (probs * scaled).sum(-1)
        ctx.save_for_backward(logits, targets, lse, *([entropy] if compute_entropy else []))
        ctx.temperature = temperature
        shape = logits.shape[:-1]
        return logps.view(shape), (entropy.view(shape) if compute_entropy else None)

    @staticmethod
    def backward(ctx, grad_logps, grad_entropy):
        # d logp_t / dz = onehot_t - p;  d H / dz = -p (log p + H)  (z = logits / T, H = entropy)
        logits, targets, lse, *entropy = ctx.saved_tensors
        rows = _rows_per_chunk(logits)
        flat, flat_targets = logits.reshape(-1, logits.size(-1)), targets.reshape(-1)
        grad = torch.empty_like(flat)
        g = grad_logps.reshape(-1).float() if grad_logps is not None else torch.zeros_like(lse)
        h = grad_entropy.reshape(-1).float() if grad_entropy is not None and entropy else None
        for start in range(0, flat.size(0), rows):
            chunk = slice(start, start + rows)
            logp = flat[chunk].float() / ctx.temperature - lse[chunk, None]
            probs = torch.exp(logp)
            part = probs * -g[chunk, None]
            part.scatter_add_(-1, flat_targets[chunk, None], g[chunk, None])
            if h is not None:
                part -= probs * (logp + entropy[0].reshape(-1)[chunk, None]) * h[chunk, None]
            grad[chunk] = part.div_(ctx.temperature)
        return grad.view_as(logits), None, None, None


def selected_logprobs(logits, targets, temperature: float, compute_entropy: bool):
    """Per-token log-probabilities of ``targets`` under ``logits / temperature`` and, on request, the entropies,
    both with gradients (TRL 1.16's entropy bonus, ``entropy_coef``, differentiates the entropies; its
    ``top_entropy_quantile`` mask reads them as values)."""
    return SelectedLogProb.apply(logits, targets, temperature, compute_entropy)
