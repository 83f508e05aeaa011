"""One loaded model for chatting: images prepared as the evaluation prepares them, checkpoints that swap
only the trainable weights, prompts spliced with image embeddings, and generation as a stream of tokens."""

from __future__ import annotations

import logging
import queue
import random
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig
from transformers import GenerationConfig
from transformers.generation.streamers import BaseStreamer

from minigpt4.errors import ChatError, WeightsError
from minigpt4.evaluation.caption_images import image_dataset, unreadable
from minigpt4.run_dir import PRETRAINED
from minigpt4.utils.prompt import IMAGE_PLACEHOLDER

from .settings import GenerationSettings
from .stopping import StopRule, stop_sequences
from .templates import ConversationTemplate, choose_template

log = logging.getLogger("minigpt4")
VARIANT_OF_CUT = {"qformer": "vicuna0", "vit": "llama2"}  # MiniGPT4.vision_cut -> the official variant


@dataclass(frozen=True)
class Generated:
    """Token ids generated so far (``done``: the last piece) and the sampling seed used (None: greedy)."""

    ids: list[int]
    done: bool
    seed: int | None


class _TokenQueue(BaseStreamer):
    """Receives ``generate``'s tokens on its thread (the first ``put`` is the prompt: skipped)."""

    def __init__(self) -> None:
        self.items: queue.Queue = queue.Queue()
        self.prompt_seen = False

    def put(self, value: torch.Tensor) -> None:
        if not self.prompt_seen:
            self.prompt_seen = True
            return
        self.items.put(value.reshape(-1).tolist())

    def end(self) -> None:
        pass


class ChatEngine:
    """``model`` (a built ``MiniGPT4``), ``cfg`` (its evaluation config) and the checkpoints it may
    switch between (name -> file, None for the fresh projection): one model load, only the trainable
    weights change."""

    def __init__(self, model: Any, cfg: DictConfig, checkpoints: dict[str, str | None], current: str) -> None:
        self.model = model
        self.cfg = cfg
        self.checkpoints = dict(checkpoints)
        self.base = model.trainable_state_dict()  # what "pretrained" means: the weights as built
        self.current = PRETRAINED
        self.use(current)

    # ---- checkpoints --------------------------------------------------------------------
    def use(self, name: str) -> None:
        """Make ``name`` (a key of ``checkpoints``) the model's weights; ``WeightsError`` names a bad file."""
        if name == self.current:
            return
        if name not in self.checkpoints:
            raise ChatError(f"unknown checkpoint {name!r}; expected one of {', '.join(self.checkpoints)}")
        self._restore_base()
        file = self.checkpoints[name]
        if name != PRETRAINED and file is not None:
            try:
                self.model.load_checkpoint(file)
            except (WeightsError, OSError) as e:
                self._restore_base()
                raise WeightsError(f"checkpoint {name}: {e}") from None
        self.current = name

    def _restore_base(self) -> None:
        params = dict(self.model.named_parameters())
        with torch.no_grad():
            for key, value in self.base.items():
                params[key].copy_(value)
        self.current = PRETRAINED

    # ---- templates and images -------------------------------------------------------------
    @property
    def variant(self) -> str:
        """``vicuna0`` (Q-Former image tokens) or ``llama2`` (ViT patches): the model's vision cut."""
        return VARIANT_OF_CUT[self.model.vision_cut]

    def template(self, kind: str = "official") -> ConversationTemplate:
        return choose_template(kind, self.variant, self.model.prompt_template, self.model.end_sym)

    def image(self, path: str | Path) -> torch.Tensor:
        """One image file as the evaluation prepares it (the ``evaluation_datasets`` entry's processor)."""
        path = Path(path)
        why = unreadable(path) if path.is_file() else "no such file"
        if why is not None:
            raise ChatError(f"cannot read image {path}: {why}")
        _, dataset = image_dataset(self.cfg, [str(path)])
        return dataset[0]["image"]

    @torch.no_grad()
    def encode(self, images: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Each image's LLM input embeddings [tokens, hidden], with the current checkpoint's projection."""
        if not images:
            return []
        embeds, _ = self.model.encode_img(torch.stack(list(images)))
        return list(embeds)

    # ---- prompts ------------------------------------------------------------------------------
    def segments(self, prompt: str, n_images: int) -> list[list[int]]:
        """The prompt's text around each ``<ImageHere>`` as token ids; BOS only before the first."""
        parts = prompt.split(IMAGE_PLACEHOLDER)
        if len(parts) != n_images + 1:
            raise ChatError(f"the prompt has {len(parts) - 1} {IMAGE_PLACEHOLDER} for {n_images} image(s)")
        return [([self.model.llama_tokenizer.bos_token_id] if i == 0 else []) + self.model.text_ids(p) for i, p in enumerate(parts)]

    def prompt_length(self, prompt: str, image_embeds: Sequence[torch.Tensor]) -> int:
        return sum(len(s) for s in self.segments(prompt, len(image_embeds))) + sum(e.shape[0] for e in image_embeds)

    @torch.no_grad()
    def embed(self, prompt: str, image_embeds: Sequence[torch.Tensor]) -> torch.Tensor:
        """[1, L, H]: the prompt's token embeddings with each image's embeddings at its ``<ImageHere>``."""
        table = self.model.llama_model.get_input_embeddings()
        dev = table.weight.device
        parts: list[torch.Tensor] = []
        for i, ids in enumerate(self.segments(prompt, len(image_embeds))):
            parts.append(table(torch.tensor(ids, dtype=torch.long, device=dev)))
            if i < len(image_embeds):
                parts.append(image_embeds[i].to(device=dev, dtype=table.weight.dtype))
        return torch.cat(parts).unsqueeze(0)

    def context_size(self, settings: GenerationSettings) -> int:
        """Tokens of prompt + answer: ``max_length``, at most the LLM's ``max_position_embeddings``."""
        limit = getattr(self.model.llama_model.config, "max_position_embeddings", None)
        return min(settings.max_length, limit) if limit else settings.max_length

    # ---- generation -------------------------------------------------------------------------
    def generate(
        self, embeds: torch.Tensor, settings: GenerationSettings, stop: str, cancel: threading.Event | None = None
    ) -> Iterator[Generated]:
        """The answer's token ids as they come (beam search: once, at the end). Stops at ``stop``'s
        token sequences or the tokenizer's EOS; closing the iterator (or setting ``cancel``) stops it."""
        tok = self.model.llama_tokenizer
        cancel = cancel or threading.Event()
        rule = StopRule(stop_sequences(tok, stop), tok.eos_token_id, cancel)
        seed = None
        if settings.sample:
            seed = settings.seed if settings.seed is not None else random.randrange(2**31)
        sampling = {"do_sample": True, "temperature": settings.temperature, "top_p": settings.top_p} if settings.sample else {}
        beams = {"num_beams": settings.num_beams, "length_penalty": settings.length_penalty} if settings.num_beams > 1 else {}
        gen = GenerationConfig(
            max_new_tokens=settings.max_new_tokens,
            repetition_penalty=settings.repetition_penalty,
            pad_token_id=tok.pad_token_id,
            bos_token_id=tok.bos_token_id,
            eos_token_id=tok.eos_token_id,  # the tokenizer's, whatever generation_config.json says
            **sampling,
            **beams,
        )
        streamer = _TokenQueue()
        outcome: dict[str, Any] = {}

        def work() -> None:
            try:
                if seed is not None:
                    torch.manual_seed(seed)
                out = self.model.llama_model.generate(
                    inputs_embeds=embeds,
                    attention_mask=torch.ones(embeds.shape[:2], dtype=torch.long, device=embeds.device),
                    generation_config=gen,
                    stopping_criteria=[rule],
                    streamer=streamer if settings.num_beams == 1 else None,
                )
                outcome["ids"] = out[0].tolist()
            except BaseException as e:  # noqa: BLE001 (re-raised on the caller's thread)
                outcome["error"] = e
            finally:
                streamer.items.put(None)

        thread = threading.Thread(target=work, name="minigpt4-generate", daemon=True)
        ids: list[int] = []
        thread.start()
        try:
            while (piece := streamer.items.get()) is not None:
                ids += piece
                yield Generated(list(ids), False, seed)
            thread.join()
            if "error" in outcome:
                raise outcome["error"]
            yield Generated(outcome["ids"], True, seed)
        finally:
            cancel.set()
            thread.join()

    def decode(self, ids: Sequence[int], stop: str) -> str:
        """The answer's text: special tokens dropped, cut at ``stop``."""
        text = self.model.llama_tokenizer.decode(list(ids), skip_special_tokens=True)
        return text.split(stop)[0] if stop else text
