"""MiniGPT-4: frozen EVA-ViT-G -> frozen Q-Former -> trainable ``llama_proj`` -> frozen Vicuna/LLaMA; or,
in the Llama-2 variant (``has_qformer: false``), groups of 4 ViT patches -> ``llama_proj`` -> Llama-2."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import Blip2QFormerModel, GenerationConfig
from transformers.modeling_layers import GradientCheckpointingLayer

from minigpt4.config.schema import ModelConfigurable
from minigpt4.errors import WeightsError
from minigpt4.registry import MODELS
from minigpt4.utils.dtypes import DTYPES
from minigpt4.utils.prompt import DEFAULT_TEMPLATE, PromptTemplate, load_instructions

from . import lora as lora_adapters
from . import model_types
from .llm import enable_checkpointing, is_quantized, llm_dtype, load_llm, load_tokenizer
from .padding import pad_rows
from .schema import DEFAULT_MODEL_TYPE, MODEL_SCHEMA
from .stack import build_vision_stack
from .variants import ARCH_ALIASES, MODEL_TYPE_ALIASES, projection_mismatch_hint
from .vision import half_linear_weights, keep_key_bias_zero
from .weights import load_parameters, read_projection_checkpoint

log = logging.getLogger(__name__)

PATCHES_PER_TOKEN = 4  # the Llama-2 variant: 4 consecutive ViT patches (of a row, raster order) per LLM token


@MODELS.register("minigpt4", aliases=tuple(ARCH_ALIASES))
class MiniGPT4(nn.Module, ModelConfigurable):
    """The MiniGPT-4 (v1) captioning model; build it with ``minigpt4.build_model(cfg.model)``.

    Its config side is a ``ModelConfigurable``; for the runner it is a ``TrainableModel`` (``place``,
    ``trainable_state_dict``: ``models.protocol``)."""

    SCHEMA = MODEL_SCHEMA
    MODEL_TYPES = model_types.MODEL_TYPES  # model_type -> its defaults file (minigpt4.models.model_types)
    MODEL_TYPE_ALIASES = MODEL_TYPE_ALIASES  # the official names
    DEFAULT_MODEL_TYPE = DEFAULT_MODEL_TYPE
    config_problems = staticmethod(lora_adapters.config_problems)  # checks across model keys, at config load
    register_model_type = staticmethod(model_types.register_model_type)

    def __init__(
        self,
        visual_encoder: nn.Module,
        qformer: Blip2QFormerModel | None,
        query_tokens: nn.Parameter | None,
        llama_model: nn.Module,
        llama_tokenizer: Any,
        instructions: list[str],
        prompt_template: str = DEFAULT_TEMPLATE,
        max_txt_len: int = 160,
        end_sym: str = "###",
        vit_precision: str = "fp16",
        freeze_vit: bool = True,
        freeze_qformer: bool = True,
        freeze_llm: bool = True,
        lora: dict[str, Any] | None = None,
    ) -> None:
        """``qformer`` and ``query_tokens`` None: the Llama-2 variant (4 patches per LLM token). ``lora``:
        ``model.lora``'s settings, adapters added to the frozen LLM (None: projection only)."""
        super().__init__()
        self.visual_encoder = visual_encoder
        self.qformer = qformer
        self.query_tokens = query_tokens
        self.llama_model = llama_model
        self.llama_tokenizer = llama_tokenizer
        if qformer is None:
            grid = visual_encoder.config.image_size // visual_encoder.config.patch_size
            if grid * grid % PATCHES_PER_TOKEN:
                raise ValueError(f"without a Q-Former the {grid}x{grid} ViT patches must group by {PATCHES_PER_TOKEN}")
            width = PATCHES_PER_TOKEN * visual_encoder.config.hidden_size
        else:
            width = qformer.config.hidden_size
        self.llama_proj = nn.Linear(width, llama_model.config.hidden_size)
        self.reset_projection()
        self.instructions = instructions
        self.template = PromptTemplate(prompt_template)
        self.max_txt_len = max_txt_len
        self.end_sym = end_sym
        self.vit_precision = vit_precision
        self.frozen = {"visual_encoder": freeze_vit, "qformer": freeze_qformer, "llama_model": freeze_llm}
        if qformer is None:
            del self.frozen["qformer"]
        for name, frozen in self.frozen.items():
            for p in getattr(self, name).parameters():
                p.requires_grad_(not frozen)
        if self.query_tokens is not None:
            self.query_tokens.requires_grad_(not freeze_qformer)
        if not freeze_vit:
            keep_key_bias_zero(self.visual_encoder)
        self.lora = dict(lora) if lora else None
        if self.lora is not None:
            if not freeze_llm:
                raise ValueError("lora needs freeze_llm=True: LoRA adapts a frozen LLM")
            self.llama_model = lora_adapters.add_adapters(llama_model, self.lora)
            self.frozen["llama_model"] = False  # its adapters train: it follows train() and eval()
        self.llm_checkpointing = False
        self.end_ids = self._end_sym_ids()
        if max_txt_len <= len(self.end_ids):
            raise ValueError(f"max_txt_len {max_txt_len} leaves no room for the answer before end_sym {end_sym!r}")
        self.train(False)

    # ---- construction -------------------------------------------------------------------
    @classmethod
    def from_config(cls, cfg: Any, device: str | torch.device | None = None) -> MiniGPT4:
        """Build from a validated ``model`` config section, loading every weight file it names."""
        dev = torch.device(device) if device is not None else torch.device("cpu")
        vit, qformer, query_tokens = build_vision_stack(cfg)
        tokenizer = load_tokenizer(cfg.llama_model)
        low_resource = cfg.low_resource
        if low_resource and dev.type != "cuda":
            log.warning(
                "model.low_resource: true loads the LLM in 8-bit on a GPU, but this process runs on %s: loading it in %s instead",
                dev.type,
                llm_dtype(cfg.llm_dtype, dev),
            )
            low_resource = False
        llm = load_llm(cfg.llama_model, llm_dtype(cfg.llm_dtype, dev), dev, low_resource, cfg.get("device_8bit"))
        model = cls(
            vit,
            qformer,
            query_tokens,
            llm,
            tokenizer,
            load_instructions(cfg.prompt_path),
            prompt_template=cfg.prompt_template,
            max_txt_len=cfg.max_txt_len,
            end_sym=cfg.end_sym,
            vit_precision=cfg.vit_precision,
            freeze_vit=cfg.freeze_vit,
            freeze_qformer=cfg.freeze_qformer,
            freeze_llm=cfg.freeze_llm,
            lora=cfg.get("lora"),
        )
        if cfg.use_grad_checkpoint:
            enable_checkpointing(vit)
        if cfg.get("llm_grad_checkpoint"):
            model.checkpoint_llm()
        if cfg.get("ckpt"):
            model.load_checkpoint(cfg.ckpt)
        model.place(dev)
        if dev.type == "cuda" and cfg.vit_precision != "fp32" and cfg.freeze_vit:
            half_linear_weights(vit, DTYPES[cfg.vit_precision])
        log.info("trainable parameters: %s", model.describe_trainable())
        return model

    def describe_trainable(self) -> str:
        """``"3,149,824 (llama_proj 3,149,824 + LoRA adapters ...)"``: the trainable parameter counts."""
        counts = lora_adapters.adapter_parameters({n: p for n, p in self.named_parameters() if p.requires_grad})
        parts = [f"llama_proj {counts['llama_proj']:,}"]
        if counts["adapters"]:
            parts.append(f"LoRA adapters {counts['adapters']:,} (r {self.lora['r']} on {', '.join(self.lora['target_modules'])})")
        if counts["other"]:
            parts.append(f"other {counts['other']:,}")
        return f"{sum(counts.values()):,} ({' + '.join(parts)})"

    def checkpoint_llm(self) -> None:
        """Gradient checkpointing in the LLM's decoder layers (``model.llm_grad_checkpoint``)."""
        enable_checkpointing(self.llama_model.get_base_model() if self.lora else self.llama_model)
        self.llm_checkpointing = True

    read_checkpoint = staticmethod(read_projection_checkpoint)  # evaluation reads checkpoints through the model class

    def load_checkpoint(self, path: str | Path, check_only: bool = False) -> None:
        """Load ``llama_proj`` (and any other parameter present) from a checkpoint, strictly.
        ``check_only``: raise ``WeightsError`` where loading would fail, load nothing."""
        state = self.read_checkpoint(path)
        if self.lora is None and any(lora_adapters.ADAPTER_MARK in k for k in state):
            raise WeightsError(
                f"{path}: the checkpoint holds {lora_adapters.describe_adapters(state)} but this model "
                "has none: set model.lora as in its training run (evaluating a run folder takes it "
                "from RUN_DIR/config.yaml; with --save-path pass --train-config RUN_DIR/config.yaml), "
                "or export it with minigpt4-export and load the merged LLM with lora: null"
            )
        names = load_parameters(self, state, path, hint=self._variant_hint(tuple(state["llama_proj.weight"].shape)), copy=not check_only)
        if not check_only:
            log.info("loaded %s from %s", ", ".join(names), path)

    def _variant_hint(self, found: tuple[int, ...]) -> str:
        """Which released variant a ``llama_proj.weight`` shape belongs to, vs this model's."""
        source = "Q-Former" if self.qformer is not None else f"{PATCHES_PER_TOKEN} ViT patches"
        return projection_mismatch_hint(found, tuple(self.llama_proj.weight.shape), source)

    def place(self, device: str | torch.device) -> MiniGPT4:
        """Move the model to ``device``, except an 8-bit LLM (``low_resource``), which stays on the GPU
        bitsandbytes loaded it on; image embeddings are moved to the LLM's input-embedding device."""
        device = torch.device(device)
        for name, child in self.named_children():
            if name == "llama_model" and is_quantized(child):
                continue
            child.to(device)
        for param in self._parameters.values():  # query_tokens (none in the Llama-2 variant)
            if param is not None:
                param.data = param.data.to(device)
        return self

    def reset_projection(self, seed: int = 0) -> None:
        """A fresh ``llama_proj`` (nn.Linear's default init) drawn from its own seeded generator, so the
        untrained baseline is the same projection in every run, process and evaluation."""
        g = torch.Generator().manual_seed(seed)
        bound = 1.0 / self.llama_proj.in_features**0.5
        with torch.no_grad():
            for p in (self.llama_proj.weight, self.llama_proj.bias):
                p.copy_(torch.empty(p.shape).uniform_(-bound, bound, generator=g))

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """The parameters that train (stage 2: ``llama_proj.weight`` and ``llama_proj.bias``)."""
        return {n: p.detach().clone() for n, p in self.named_parameters() if p.requires_grad}

    def freeze(self, part: str) -> None:
        """Freeze one of ``visual_encoder``, ``qformer`` (with the query tokens) or ``llama_model`` after
        construction: no gradients and always eval mode, as if built with its ``freeze_*`` flag."""
        if part not in self.frozen:
            raise ValueError(f"unknown part {part!r}; expected one of {sorted(self.frozen)}")
        self.frozen[part] = True
        getattr(self, part).requires_grad_(False).eval()
        if part == "qformer" and self.query_tokens is not None:
            self.query_tokens.requires_grad_(False)

    def train(self, mode: bool = True) -> MiniGPT4:
        """Like ``nn.Module.train`` but frozen parts always stay in eval mode."""
        super().train(mode)
        for name, frozen in self.frozen.items():
            if frozen:
                getattr(self, name).eval()
        if self.llm_checkpointing and self.frozen["llama_model"]:
            # transformers checkpoints a decoder layer only in training mode: the frozen LLM's layers say so
            # themselves, while their submodules (attention dropout) stay in eval mode
            for layer in self.llama_model.modules():
                if isinstance(layer, GradientCheckpointingLayer):
                    layer.training = mode
        return self

    @property
    def device(self) -> torch.device:
        return self.llama_proj.weight.device

    @property
    def prompt_template(self) -> str:
        return self.template.template

    # ---- images ---------------------------------------------------------------------------
    def _vit_autocast(self) -> contextlib.AbstractContextManager:
        if self.device.type == "cuda" and self.vit_precision != "fp32":
            return torch.autocast("cuda", dtype=DTYPES[self.vit_precision])
        return contextlib.nullcontext()

    @property
    def vision_cut(self) -> str:
        """The cut point after the whole vision stack: ``qformer``, or ``vit`` without a Q-Former."""
        return "qformer" if self.qformer is not None else "vit"

    @property
    def feature_cut(self) -> str | None:
        """Where the frozen part of the vision stack ends, so its output can be cached: ``qformer``
        (ViT and Q-Former frozen: the Q-Former's [B,Q,768]), ``vit`` (only the ViT frozen, or no
        Q-Former: its [B,257,1408]) or None (the ViT trains: nothing to cache)."""
        if not self.frozen["visual_encoder"]:
            return None
        return "qformer" if self.frozen.get("qformer") else "vit"

    def _vit(self, images: torch.Tensor) -> torch.Tensor:
        images = images.to(self.device)
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen["visual_encoder"]):
            with self._vit_autocast():
                return self.visual_encoder(pixel_values=images).last_hidden_state.float()

    def _image_tokens(self, feats: torch.Tensor) -> torch.Tensor:
        """ViT features [B,1+N,W] -> the image tokens for ``llama_proj``: the Q-Former's [B,Q,768], or
        without one the patches (CLS dropped) 4 at a time in raster order, [B,N/4,4W]."""
        feats = feats.to(device=self.device, dtype=torch.float32)
        if self.qformer is None:
            patches = feats[:, 1:, :]
            b, n, w = patches.shape
            return patches.reshape(b, n // PATCHES_PER_TOKEN, PATCHES_PER_TOKEN * w)
        atts = torch.ones(feats.shape[:-1], dtype=torch.long, device=feats.device)
        # the Q-Former needs a graph when it trains or when the ViT before it does
        qformer_grad = not (self.frozen["qformer"] and self.frozen["visual_encoder"])
        with torch.set_grad_enabled(torch.is_grad_enabled() and qformer_grad):
            return self.qformer(
                query_embeds=self.query_tokens.expand(feats.shape[0], -1, -1), encoder_hidden_states=feats, encoder_attention_mask=atts
            ).last_hidden_state

    def _project(self, queries: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        embeds = self.llama_proj(queries.to(device=self.device, dtype=self.llama_proj.weight.dtype))
        llm_input = self.llama_model.get_input_embeddings().weight
        embeds = embeds.to(device=llm_input.device, dtype=llm_input.dtype)
        return embeds, torch.ones(embeds.shape[:-1], dtype=torch.long, device=embeds.device)

    def encode_img(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Images [B,3,S,S] -> (LLM input embeddings [B,Q,H], attention mask [B,Q])."""
        return self._project(self._image_tokens(self._vit(images)))

    @torch.no_grad()
    def frozen_features(self, images: torch.Tensor, cut: str) -> torch.Tensor:
        """The frozen vision stack's output at ``cut`` (see ``feature_cut``), fp32, no graph."""
        if cut not in ("qformer", "vit") or (cut == "qformer" and self.qformer is None):
            raise ValueError(f"cut must be 'vit'{' or qformer' if self.qformer is not None else ''}, got {cut!r}")
        feats = self._vit(images)
        return feats if cut == "vit" else self._image_tokens(feats)

    def embed_features(self, features: torch.Tensor, cut: str) -> tuple[torch.Tensor, torch.Tensor]:
        """``encode_img``'s result from ``frozen_features(images, cut)`` (e.g. read from the cache)."""
        return self._project(self._image_tokens(features) if cut == "vit" else features)

    def _image_embeds(self, samples: dict[str, Any]) -> torch.Tensor:
        if samples.get("features") is not None:
            return self.embed_features(samples["features"], samples.get("feature_cut") or self.feature_cut)[0]
        return self.encode_img(samples["image"])[0]

    # ---- text -----------------------------------------------------------------------------
    def text_ids(self, text: str) -> list[int]:
        """Token ids of ``text`` with no BOS or EOS (none for the empty text)."""
        return self.llama_tokenizer(text, add_special_tokens=False).input_ids if text else []

    def _end_sym_ids(self) -> list[int]:
        """Token ids of ``end_sym`` as it is tokenised after a word (as in ``"a caption###"``)."""
        word = self.text_ids("a")
        joint = self.text_ids("a" + self.end_sym)
        tail = joint[len(word) :]
        if joint[: len(word)] == word and tail and self.llama_tokenizer.decode(tail).strip() == self.end_sym:
            return tail
        return self.text_ids(self.end_sym)

    def answer_ids(self, answer: str) -> list[int]:
        """Answer tokens truncated to leave room for ``end_sym``, then the ``end_sym`` tokens."""
        return self.text_ids(answer)[: self.max_txt_len - len(self.end_ids)] + self.end_ids

    def assemble(
        self, img_embeds: torch.Tensor, instructions: list[str], answers: list[str] | None = None, pad_left: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``[BOS] prompt-before [image] prompt-after [answer end_sym]`` per sample, padded.

        Returns (inputs_embeds [B,L,H], attention_mask [B,L], labels [B,L]); labels are -100 except on
        the answer and end_sym tokens. Training pads right; generation pads left.
        """
        tok, embed = self.llama_tokenizer, self.llama_model.get_input_embeddings()
        dev = embed.weight.device  # the LLM's input device (an 8-bit LLM may sit apart from the ViT)
        img_embeds = img_embeds.to(dev)
        rows, labels = [], []
        for i, instruction in enumerate(instructions):
            before, after = self.template.split(instruction)
            pre, post = [tok.bos_token_id] + self.text_ids(before), self.text_ids(after)
            ans = self.answer_ids(answers[i]) if answers is not None else []
            text = embed(torch.tensor(pre + post + ans, device=dev))
            rows.append(torch.cat([text[: len(pre)], img_embeds[i], text[len(pre) :]]))
            labels.append([-100] * (len(pre) + img_embeds.shape[1] + len(post)) + ans)
        return pad_rows(rows, labels, embed(torch.tensor([tok.pad_token_id], device=dev))[0], pad_left)

    # ---- training and generation --------------------------------------------------------
    def forward(self, samples: dict[str, Any]) -> dict[str, torch.Tensor]:
        """Token-mean cross-entropy over the answer (+ end_sym) tokens of the batch (``loss``), the
        unpadded length of each sequence (``seq_lens``) and the padded batch's ``positions``. Images
        come as ``image`` or as cached ``features`` (at ``feature_cut``)."""
        embeds, mask, labels = self.assemble(self._image_embeds(samples), list(samples["instruction_input"]), list(samples["answer"]))
        out = self.llama_model(inputs_embeds=embeds, attention_mask=mask, labels=labels, use_cache=False)
        return {"loss": out.loss, "seq_lens": mask.sum(1), "positions": mask.numel()}

    @torch.no_grad()
    def generate(
        self,
        images: torch.Tensor | None,
        instructions: list[str],
        max_new_tokens: int = 30,
        num_beams: int = 1,
        features: torch.Tensor | None = None,
        cut: str | None = None,
        **kwargs: Any,
    ) -> list[str]:
        """One caption per image: greedy (or beam) decoding that stops at ``end_sym``, template stripped.
        ``features``: the images' ``frozen_features`` at ``cut`` (default ``feature_cut``) instead of ``images``."""
        img_embeds = self._image_embeds({"image": images, "features": features, "feature_cut": cut})
        embeds, mask, _ = self.assemble(img_embeds, list(instructions), pad_left=True)
        tok = self.llama_tokenizer
        # an end_sym that is the EOS token (Llama-2's "</s>") stops generation as EOS; others as a string
        stop = {} if self.end_ids == [tok.eos_token_id] else {"stop_strings": [self.end_sym]}
        gen = GenerationConfig(
            max_new_tokens=max_new_tokens,
            num_beams=num_beams,
            do_sample=False,
            pad_token_id=tok.pad_token_id,
            bos_token_id=tok.bos_token_id,
            eos_token_id=tok.eos_token_id,
            **stop,
            **kwargs,
        )
        out = self.llama_model.generate(inputs_embeds=embeds, attention_mask=mask, generation_config=gen, tokenizer=tok)
        texts = tok.batch_decode(out, skip_special_tokens=True)
        return [t.split(self.end_sym)[0].strip() for t in texts]
