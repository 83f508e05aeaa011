"""minigpt4-chat: a piped three-turn conversation (one answer line each, the history in the prompt),
``error:`` lines for a bad image and a bad checkpoint; and the chat's first answer under the plain
template equals minigpt4-caption's caption for the same config and checkpoint."""

from __future__ import annotations

import subprocess
import sys

import pytest

from minigpt4.chat import ChatSession, GenerationSettings, load_engine
from minigpt4.cli import chat as cli_chat
from minigpt4.evaluation.caption_images import caption
from minigpt4.utils.prompt import IMAGE_PLACEHOLDER, PromptTemplate
from tests.helpers.chat import PHOTOS, chat_config, run_folder
from tests.helpers.paths import FIRST_INSTRUCTION, REPO
from tests.helpers.processes import subprocess_env

MAX_NEW_TOKENS = 10


def chat(args: list, stdin: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "minigpt4.cli", "chat", *map(str, args)]
    return subprocess.run(cmd, input=stdin, cwd=REPO, env=subprocess_env(), capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def setup(tiny_stack, tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("chat_cli")
    cfg = chat_config(root, tiny_stack, max_new_tokens=MAX_NEW_TOKENS)
    return {"root": root, "cfg": cfg, "run": run_folder(root, tiny_stack)}


def test_a_piped_conversation_answers_one_line_per_turn_with_the_history_in_the_prompt(setup):
    turns = ["What is this?", "/image missing.jpg", "Tell me more.", "/settings temperature=hot", "And the colours?"]
    proc = chat(
        ["--cfg-path", setup["cfg"], "--ckpt", setup["run"], PHOTOS[0], "--max-new-tokens", "8", "--show-prompt"], "\n".join(turns) + "\n"
    )
    assert proc.returncode == 1, proc.stderr  # two lines failed; every question was still answered
    answers = proc.stdout.splitlines()
    assert len(answers) == 3 and all(answers)
    assert "checkpoint_1.pth" in proc.stderr  # a run folder: its latest checkpoint
    assert "error: cannot read image missing.jpg: no such file" in proc.stderr
    assert "error: setting temperature='hot': expected a number" in proc.stderr
    prompts = [line for line in proc.stderr.splitlines() if line.startswith("prompt: ")]
    assert len(prompts) == 3
    third = eval(prompts[2][len("prompt: ") :])  # noqa: S307 (our own repr)
    assert third.count(IMAGE_PLACEHOLDER) == 1
    assert f"What is this?###Assistant: {answers[0]}###Human: Tell me more.###Assistant: {answers[1]}###" in third
    assert third.endswith("###Human: And the colours?###Assistant: ")


def test_a_bad_checkpoint_is_an_error_line_and_status_2(setup, capsys):
    broken = setup["root"] / "broken.pth"
    broken.write_text("not a checkpoint")
    assert cli_chat(["--cfg-path", str(setup["cfg"]), "--ckpt", str(broken)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.strip().splitlines()[-1].startswith(f"error: cannot load {broken}: not a PyTorch checkpoint")


@pytest.mark.parametrize("variant", ["tiny", "tiny_llama2"])
def test_the_plain_greedy_first_answer_is_the_caption(variant, tiny_stack, tiny_llama2_stack, tmp_path):
    stack = tiny_stack if variant == "tiny" else tiny_llama2_stack
    cfg = str(chat_config(tmp_path, stack, model_type=variant, max_new_tokens=MAX_NEW_TOKENS))
    ckpt = str(run_folder(tmp_path, stack, epochs=1, scale=0.05) / "checkpoint_0.pth")
    captions, skipped = caption(cfg, [str(p) for p in PHOTOS], ckpt)
    assert skipped == 0 and all(c["caption"] for c in captions)
    if variant == "tiny_llama2":  # its image tokens are ViT patches: even random weights caption each photo apart
        assert len({c["caption"] for c in captions}) == 2
    engine = load_engine(cfg, ckpt)
    question = FIRST_INSTRUCTION.split("</Img>", 1)[1].strip()  # what a user types after adding the image
    for photo, expected in zip(PHOTOS, captions):
        session = ChatSession(engine, "plain", GenerationSettings(max_new_tokens=MAX_NEW_TOKENS))
        session.add_image(photo)
        assert session.answer(question) == expected["caption"]
        assert session.last_prompt == PromptTemplate(engine.model.prompt_template).wrap(FIRST_INSTRUCTION)


def test_a_lora_run_chats_with_its_adapters_and_swaps_them_with_the_projection(tiny_llama2_stack, tmp_path):
    from tests.helpers.configs import tiny_model_section
    from tests.helpers.evaluation import adapted_lora_checkpoint

    cfg = str(chat_config(tmp_path, tiny_llama2_stack, model_type="tiny_llama2", max_new_tokens=MAX_NEW_TOKENS))
    run = tmp_path / "lora_run"
    run.mkdir()
    lora = {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["q_proj", "v_proj"]}
    model = tiny_model_section(tiny_llama2_stack, model_type="tiny_llama2", lora=lora)
    adapted_lora_checkpoint(model, run / "config.yaml", run / "checkpoint_3.pth")
    question = FIRST_INSTRUCTION.split("</Img>", 1)[1].strip()
    (expected,), _ = caption(cfg, [str(PHOTOS[0])], str(run / "checkpoint_3.pth"))
    (baseline,), _ = caption(cfg, [str(PHOTOS[0])])

    engine = load_engine(cfg, run_dir=str(run))  # the adapter settings come from the run's config.yaml
    assert list(engine.checkpoints) == ["pretrained", "checkpoint_3"] and engine.current == "checkpoint_3"

    def answer() -> str:
        session = ChatSession(engine, "plain", GenerationSettings(max_new_tokens=MAX_NEW_TOKENS))
        session.add_image(PHOTOS[0])
        return session.answer(question)

    assert answer() == expected["caption"]
    engine.use("pretrained")  # adapters and projection back as built: the untrained model's caption
    assert answer() == baseline["caption"] != expected["caption"]
    engine.use("checkpoint_3")
    assert answer() == expected["caption"]
