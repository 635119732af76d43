"""PPO's critic: a scalar value head on a causal LM's hidden states, the value of each prefix of a sequence.

Two forms, with the same interface (``values``, ``parameters``, ``state_dict``, ``save``, ``load``):

- :class:`SeparateCritic`: its own copy of the base model's decoder (no LM head), with a LoRA adapter of its own, or
  fully trained without one. verl's and OpenRLHF's critic: a second model, initialised from the policy's checkpoint
  (verl's ``critic.model.path``; OpenRLHF's ``--critic_pretrain`` defaults to the policy's ``--pretrain`` when the
  reward is remote).
- :class:`SharedCritic`: a second LoRA adapter, named ``critic``, on the policy's own PEFT model (PEFT's
  multi-adapter ``add_adapter``/``set_adapter``), so that the base weights are held once. Each ``values`` call
  switches to the critic's adapter and back; the critic's loss reaches only its adapter and the policy's only the
  policy's, because only the active adapter is in the graph. Both adapters require gradients throughout, so the
  policy's optimizer takes ``SharedCritic.policy_parameters()``; and saving the policy with PEFT's
  ``save_pretrained`` writes every adapter unless given ``selected_adapters=["default"]``.

Which to use: the shared form wherever the policy is LoRA-trained. Measured on SmolLM2-135M in float32 (2 CPU cores,
AVX512; LoRA r 16 on all linear layers, a batch of 4 x 128 tokens), a critic step (forward and backward) takes the
same time in both forms, about 2 s, while the policy and critic hold 550 MiB of parameters with the shared form and
1064 MiB with the separate one. A fully fine-tuned policy (the Med-RLVR recipe's arm) needs the separate form.

The head is ``nn.Linear(hidden, 1)`` kept in float32 whatever the backbone's dtype (a value is a regression target;
bf16's 8 bits of mantissa would round returns of 0.1 apart together). It starts at zero by default, so the first
values are 0 and the first advantages are the returns themselves (verl's critic is a token-classification head with
the model's init, std 0.02; OpenRLHF's value head ``std = 1 / (hidden + 1)``, available here as ``init="small"``).

``values(input_ids, attention_mask)[:, t]`` is the value of the sequence up to and including token t. For a row
``[prompt | response]`` the value of the state in which response token i is chosen is at position
``prompt_len + i - 1``: slice ``values[:, -response_len - 1 : -1]``, as verl's critic does.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn

STATE_FILE = "critic.safetensors"
META_FILE = "critic.json"


def value_head(hidden_size: int, init: str = "zero") -> nn.Linear:
    head = nn.Linear(hidden_size, 1, dtype=torch.float32)
    if init == "zero":
        nn.init.zeros_(head.weight)
    elif init == "small":
        nn.init.normal_(head.weight, std=1 / (hidden_size + 1))
    else:
        raise ValueError(f"value head init must be 'zero' or 'small', got {init!r}")
    nn.init.zeros_(head.bias)
    return head


def positions(attention_mask: torch.Tensor) -> torch.Tensor:
    # left-padded prompts: each row's first real token is position 0, as medrlvr's GRPO loss and engines count
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


class _Critic:
    """What both forms share: the head, the values, and saving what the critic trains (never the base weights)."""

    form: str
    head: nn.Linear

    def hidden_states(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def adapter_state(self) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def load_adapter_state(self, state: dict[str, torch.Tensor]) -> None:
        raise NotImplementedError

    def values(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """(batch, tokens) float32 values, 0 on padding."""
        hidden = self.hidden_states(input_ids, attention_mask)
        return self.head(hidden.float()).squeeze(-1) * attention_mask

    def parameters(self) -> list[nn.Parameter]:
        """The critic's trainable parameters (its LoRA weights, or its whole copy without LoRA; and the head)."""
        raise NotImplementedError

    def state_dict(self) -> dict[str, torch.Tensor]:
        state = {f"adapter.{k}": v for k, v in self.adapter_state().items()}
        state.update({f"value_head.{k}": v for k, v in self.head.state_dict().items()})
        return {k: v.detach().contiguous() for k, v in state.items()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        adapter = {k.removeprefix("adapter."): v for k, v in state.items() if k.startswith("adapter.")}
        head = {k.removeprefix("value_head."): v for k, v in state.items() if k.startswith("value_head.")}
        self.load_adapter_state(adapter)
        self.head.load_state_dict(head)

    def save(self, directory: str | Path) -> Path:
        """The trained weights in ``critic.safetensors`` (safetensors: loading runs no code) and the form in
        ``critic.json``; returns the directory."""
        from safetensors.torch import save_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        save_file(self.state_dict(), str(directory / STATE_FILE))
        (directory / META_FILE).write_text(json.dumps({"form": self.form, "hidden_size": self.head.in_features}))
        return directory

    def load(self, directory: str | Path) -> None:
        """Weights written by :meth:`save` from a critic of the same form on the same base model."""
        from safetensors.torch import load_file

        directory = Path(directory)
        if not (directory / STATE_FILE).exists():
            raise FileNotFoundError(f"{directory}: no {STATE_FILE}; a critic directory is written by Critic.save()")
        meta = json.loads((directory / META_FILE).read_text())
        if meta["form"] != self.form:
            raise ValueError(f"{directory}: a {meta['form']} critic, cannot load into a {self.form} one")
        self.load_state_dict(load_file(str(directory / STATE_FILE)))


class SeparateCritic(_Critic):
    """A critic with its own copy of the base model's decoder (``AutoModel``: no LM head to hold), LoRA-adapted
    when ``lora`` is given, else fully trainable."""

    form = "separate"

    def __init__(self, backbone: nn.Module, lora=None, init: str = "zero"):
        if lora is not None:
            from peft import get_peft_model

            backbone = get_peft_model(backbone, lora)
        self.backbone = backbone
        self.lora = lora is not None
        self.head = value_head(backbone.config.hidden_size, init).to(backbone.device)

    @classmethod
    def from_pretrained(cls, path: str | Path, lora=None, init: str = "zero", **kwargs) -> SeparateCritic:
        from transformers import AutoModel

        return cls(AutoModel.from_pretrained(str(path), **kwargs), lora, init)

    def share_frozen(self, policy) -> int:
        """Point every frozen weight of this critic's base at the equal frozen weight of ``policy`` (a LoRA policy on
        the same base model): both are the base checkpoint and neither ever changes, so the critic stays a separate
        model with its own adapter and head while the base weights are held once. Returns how many bytes are now
        shared. Nothing is shared with a fully trained policy (its weights move) or across dtypes."""
        decoder = policy.get_base_model().get_decoder() if hasattr(policy, "get_base_model") else policy.get_decoder()
        plain = lambda name: name.replace(".base_layer.", ".")  # noqa: E731 (PEFT's wrapper, on either side or none)
        theirs = {plain(name): p for name, p in decoder.named_parameters()}
        base = self.backbone.get_base_model() if self.lora else self.backbone
        shared = 0
        for name, mine in base.named_parameters():
            other = theirs.get(plain(name))
            if (mine.requires_grad or other is None or other.requires_grad or other.shape != mine.shape
                    or other.dtype != mine.dtype or other.device != mine.device):  # fmt: skip
                continue
            if mine.data_ptr() != other.data_ptr():
                if not torch.equal(mine, other):
                    raise ValueError(f"critic weight {name!r} differs from the policy's: not the same base model")
                mine.data = other.data
                shared += mine.numel() * mine.element_size()
        return shared

    def hidden_states(self, input_ids, attention_mask):
        out = self.backbone(input_ids=input_ids, attention_mask=attention_mask, position_ids=positions(attention_mask),
                            use_cache=False)  # fmt: skip
        return out.last_hidden_state

    def parameters(self):
        return [p for p in self.backbone.parameters() if p.requires_grad] + list(self.head.parameters())

    def adapter_state(self):
        if not self.lora:
            return self.backbone.state_dict()
        from peft import get_peft_model_state_dict

        return get_peft_model_state_dict(self.backbone)

    def load_adapter_state(self, state):
        if not self.lora:
            self.backbone.load_state_dict(state)
            return
        from peft import set_peft_model_state_dict

        result = set_peft_model_state_dict(self.backbone, state)
        if result.unexpected_keys:
            raise ValueError(f"critic weights for another model: unexpected {result.unexpected_keys[:3]}")


class SharedCritic(_Critic):
    """A critic that is a second LoRA adapter on the policy's PEFT model: the base weights are held once."""

    form = "shared"

    def __init__(self, policy, lora, init: str = "zero", adapter: str = "critic"):
        from peft import PeftModel

        if not isinstance(policy, PeftModel):
            raise TypeError("SharedCritic needs the policy as a PEFT model (get_peft_model); use SeparateCritic")
        if adapter in policy.peft_config:
            raise ValueError(f"the policy already has an adapter named {adapter!r}")
        self.policy = policy
        self.adapter = adapter
        active = list(policy.active_adapters)
        policy.add_adapter(adapter, lora)
        policy.base_model.set_adapter(active)  # add_adapter leaves the policy's adapter active; say so explicitly
        # Trainable from now on, though inactive: autograd drops the gradient of a weight that no longer requires
        # one when backward reaches it, and backward runs after values() has switched the policy's adapter back.
        # Hence the policy's optimizer must take policy_parameters(), not every parameter that requires a gradient.
        self._own = [p for name, p in policy.named_parameters() if f".{adapter}." in name]
        for p in self._own:
            p.requires_grad_(True)
        # the decoder under the LM head: the critic needs hidden states, not the vocabulary's logits
        self.decoder = policy.get_base_model().get_decoder()
        self.head = value_head(policy.config.hidden_size, init).to(policy.device)

    @contextmanager
    def active(self):
        """The critic's adapter active (and trainable) inside, the policy's adapter(s) back afterwards."""
        previous = list(self.policy.active_adapters)
        # set_adapter also freezes every adapter but the active one: put each weight's flag back afterwards
        flags = [(p, p.requires_grad) for p in self.policy.parameters()]
        self.policy.base_model.set_adapter(self.adapter)
        try:
            yield
        finally:
            self.policy.base_model.set_adapter(previous)
            for p, flag in flags:
                p.requires_grad_(flag)

    def hidden_states(self, input_ids, attention_mask):
        # only the active adapter is in the graph: the critic's loss reaches its own LoRA weights and the head,
        # never the policy's adapter, and the policy's loss never reaches the critic's
        with self.active():
            out = self.decoder(input_ids=input_ids, attention_mask=attention_mask,
                               position_ids=positions(attention_mask), use_cache=False)  # fmt: skip
        return out.last_hidden_state

    def parameters(self):
        return self._own + list(self.head.parameters())

    def policy_parameters(self) -> list[nn.Parameter]:
        """The policy's trainable parameters without the critic's adapter: what the policy's optimizer takes."""
        own = {id(p) for p in self._own}
        return [p for p in self.policy.parameters() if p.requires_grad and id(p) not in own]

    def adapter_state(self):
        from peft import get_peft_model_state_dict

        return get_peft_model_state_dict(self.policy, adapter_name=self.adapter)

    def load_adapter_state(self, state):
        from peft import set_peft_model_state_dict

        result = set_peft_model_state_dict(self.policy, state, adapter_name=self.adapter)
        if result.unexpected_keys:
            raise ValueError(f"critic weights for another model: unexpected {result.unexpected_keys[:3]}")
