"""The web demo (gradio): chat about uploaded images with streamed answers, the generation settings as
controls, and a run's checkpoints side by side (one model; only the trainable weights swap). The
``/answer`` endpoint serves scripts: ``Client(url).predict(handle_file(IMAGE), QUESTION, api_name="/answer")``."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import gradio as gr

from minigpt4.errors import UserError

from .conversation import Conversation
from .engine import ChatEngine
from .session import ChatImage, ChatSession
from .settings import FIELDS, GenerationSettings
from .templates import TEMPLATE_CHOICES

log = logging.getLogger("minigpt4")
MAX_SIDE = 4  # checkpoints answering side by side
MODEL = "model"  # the concurrency group of every event that runs the model: one at a time
# the controls of the numeric settings: (lowest, highest, step) of their sliders
SLIDERS = {
    "max_new_tokens": (1, 1000, 1),
    "temperature": (0.05, 2.0, 0.05),
    "top_p": (0.05, 1.0, 0.05),
    "num_beams": (1, 10, 1),
    "repetition_penalty": (1.0, 2.0, 0.05),
    "length_penalty": (-2.0, 2.0, 0.1),
    "max_length": (64, 4096, 1),
}


def _control(key: str, default: Any) -> gr.components.Component:
    what = FIELDS[key][3]
    if key == "sample":
        return gr.Checkbox(value=default, label="sample (off: greedy, repeatable)", info=what, elem_id=f"set-{key}")
    if key == "seed":
        return gr.Number(value=default, precision=0, label="seed (empty: a new one per answer)", elem_id=f"set-{key}")
    low, high, step = SLIDERS[key]
    return gr.Slider(low, high, value=default, step=step, label=key, info=what, elem_id=f"set-{key}")


def _settings(values: tuple) -> GenerationSettings:
    raw = dict(zip(FIELDS, values))
    for key, (kind, *_) in FIELDS.items():
        if raw[key] is not None and kind is int:
            raw[key] = int(raw[key])
    return GenerationSettings(**raw)


def _messages(conv: Conversation | None, partial: str = "") -> list[dict[str, Any]]:
    """A conversation as the chatbot shows it: each image, the question, the answer (``partial``: the
    open turn's answer so far)."""
    out: list[dict[str, Any]] = []
    for turn in conv.turns if conv else []:
        out += [{"role": "user", "content": {"path": im.path}} for im in turn.images]
        if turn.question:
            out.append({"role": "user", "content": turn.question})
        if turn.answer is not None or partial:
            out.append({"role": "assistant", "content": turn.answer if turn.answer is not None else partial})
    return out


def build_demo(engine: ChatEngine, title: str, defaults: GenerationSettings | None = None, template: str = "official") -> gr.Blocks:
    """The app; launch it with ``launch`` (or ``demo.launch``) after ``demo.queue()``."""
    defaults = defaults or GenerationSettings()
    names = list(engine.checkpoints)
    first = engine.current

    def in_columns(selected: list[str]) -> list[str]:
        """The checkpoints shown: the selected ones in the run's order, at most ``MAX_SIDE``."""
        return [n for n in names if n in selected][:MAX_SIDE]

    def histories(selected: list[str], state: dict, streaming: str = "", partial: str = "") -> list:
        """Each column's messages, ``streaming``'s with its answer so far (plain values: no re-layout)."""
        shown = in_columns(selected)
        return [_messages(state["convs"].get(n), partial if n == streaming else "") for n in shown + [None] * (MAX_SIDE - len(shown))]

    def columns(selected: list[str], state: dict | None) -> list:
        convs = (state or {}).get("convs", {})
        shown = in_columns(selected)
        return [
            gr.Chatbot(
                visible=i < len(shown),
                label=shown[i] if i < len(shown) else "",
                value=_messages(convs.get(shown[i])) if i < len(shown) else [],
            )
            for i in range(MAX_SIDE)
        ]

    def respond(message: dict, selected: list[str], kind: str, state: dict | None, *values: Any) -> Iterator[tuple]:
        if not selected:
            raise gr.Error("Pick at least one checkpoint.")
        if len(selected) > MAX_SIDE:
            gr.Warning(f"Only the first {MAX_SIDE} checkpoints are shown side by side.")
        selected = in_columns(selected)
        try:
            settings = _settings(values)
            if state is None or state["template"] != kind:
                state = {"template": kind, "convs": {}}
            images = [ChatImage(f, engine.image(f)) for f in message.get("files") or []]
            text = (message.get("text") or "").strip()
            for name in selected:
                conv = state["convs"].setdefault(name, Conversation(engine.template(kind)))
                for im in images:
                    conv.add_image(im)
            seeds = []
            for name in selected:
                yield (gr.MultimodalTextbox(value=None), state, f"{name} is answering ...", *histories(selected, state))
                engine.use(name)
                session = ChatSession(engine, kind, settings, state["convs"][name])
                partial = ""
                for piece in session.stream(text, settings):
                    partial += piece
                    yield (gr.skip(), gr.skip(), gr.skip(), *histories(selected, state, name, partial))
                seeds.append(session.last_seed)
                for note in session.notices:
                    gr.Warning(f"{name}: {note}")
        except UserError as e:
            log.error("%s", e)
            raise gr.Error(str(e)) from None
        how = f"sampled (seed {', '.join(map(str, seeds))})" if settings.sample else "greedy"
        if settings.num_beams > 1:
            how += f", {settings.num_beams} beams"
        turn = len(state["convs"][selected[0]].turns)
        done = f"Answered by {', '.join(selected)} (turn {turn}): {how}, max_new_tokens {settings.max_new_tokens}"
        yield (gr.skip(), state, done, *columns(selected, state))

    def new_conversation(selected: list[str]) -> tuple:
        return (None, "", *columns(selected, None))

    def answer(image: str | None, question: str) -> str:
        """The first selected checkpoint's answer about ``image`` in a new conversation, with the demo's
        default template and settings (greedy unless the command line asked for sampling)."""
        try:
            engine.use(first)
            session = ChatSession(engine, template, defaults)
            if image:
                session.add_image(image)
            return session.answer(question or "")
        except UserError as e:
            raise gr.Error(str(e)) from None

    with gr.Blocks(title="MiniGPT-4", analytics_enabled=False) as demo:
        state = gr.State(None)
        gr.Markdown(f"### MiniGPT-4: {title}")
        with gr.Row():
            with gr.Column(scale=1, min_width=260):
                picked = gr.CheckboxGroup(names, value=[first], label="Checkpoints (pick two or more to compare)", elem_id="checkpoints")
                kind = gr.Radio(list(TEMPLATE_CHOICES), value=template, label="Conversation template", elem_id="template")
                with gr.Accordion("Generation settings", open=False):
                    controls = [_control(k, getattr(defaults, k)) for k in FIELDS]
                reset = gr.Button("New conversation", elem_id="reset")
            with gr.Column(scale=3):
                with gr.Row():
                    bots = [
                        gr.Chatbot(label=first if i == 0 else "", visible=i == 0, elem_id=f"chat-{i}", height=460) for i in range(MAX_SIDE)
                    ]
                box = gr.MultimodalTextbox(
                    file_types=["image"],
                    file_count="multiple",
                    placeholder="Add image(s) and ask a question",
                    show_label=False,
                    elem_id="ask",
                )
                status = gr.Markdown("", elem_id="status")
        with gr.Row(visible=False):  # the /answer endpoint's inputs and output
            api_image = gr.File(type="filepath")
            api_question = gr.Textbox()
            api_answer = gr.Textbox()
            api_button = gr.Button()
        box.submit(
            respond, [box, picked, kind, state, *controls], [box, state, status, *bots], api_visibility="private", concurrency_id=MODEL
        )
        picked.change(new_conversation, [picked], [state, status, *bots], api_visibility="private")  # same questions for all
        reset.click(new_conversation, [picked], [state, status, *bots], api_visibility="private")
        kind.change(new_conversation, [picked], [state, status, *bots], api_visibility="private")
        api_button.click(answer, [api_image, api_question], api_answer, api_name="answer", concurrency_id=MODEL)
    return demo
