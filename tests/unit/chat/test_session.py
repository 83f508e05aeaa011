"""ChatSession on the tiny stack: history in the prompt, image splicing, stop rules, seeds, streaming,
cancelling, trimming, bad input."""

from __future__ import annotations

import pytest
import torch

from minigpt4.chat import ChatSession, GenerationSettings, load_engine
from minigpt4.chat.templates import OFFICIAL_SYSTEM
from minigpt4.errors import ChatError
from tests.helpers.chat import PHOTOS, chat_config

SHORT = GenerationSettings(max_new_tokens=12)


@pytest.fixture(scope="module")
def engine(tiny_stack, tmp_path_factory):
    return load_engine(str(chat_config(tmp_path_factory.mktemp("chat"), tiny_stack)))


def three_turns(engine, template="official") -> ChatSession:
    s = ChatSession(engine, template, SHORT)
    s.add_image(PHOTOS[0])
    for q in ("What is this?", "Tell me more.", "And the colours?"):
        s.answer(q)
    return s


def test_every_turn_is_in_the_prompt_and_the_image_sits_at_its_placeholder(engine):
    s = three_turns(engine)
    t1, t2, t3 = s.conversation.turns
    assert s.last_prompt == (
        f"{OFFICIAL_SYSTEM}###Human: <Img><ImageHere></Img> What is this?###Assistant: {t1.answer}"
        f"###Human: Tell me more.###Assistant: {t2.answer}###Human: And the colours?###Assistant: "
    )
    tok = engine.model.llama_tokenizer
    segments = engine.segments(s.last_prompt, 1)
    assert segments[0][0] == tok.bos_token_id and tok.bos_token_id not in segments[0][1:] + segments[1]
    (image,) = engine.encode([t1.images[0].pixels])
    embeds = engine.embed(s.last_prompt, [image])
    n = len(segments[0])
    assert embeds.shape[1] == engine.prompt_length(s.last_prompt, [image]) == n + image.shape[0] + len(segments[1])
    assert torch.equal(embeds[0, n : n + image.shape[0]], image)
    table = engine.model.llama_model.get_input_embeddings()
    assert torch.equal(embeds[0, :n], table(torch.tensor(segments[0])))


def test_the_answer_stops_at_the_stop_text_even_when_generation_config_names_another_eos(engine):
    first = three_turns(engine).conversation.turns[0].answer
    assert "###" not in first
    config = engine.model.llama_model.generation_config
    saved = config.eos_token_id
    s = ChatSession(engine, settings=SHORT)
    s.add_image(PHOTOS[0])
    ids = engine.model.llama_tokenizer(first, add_special_tokens=False).input_ids
    config.eos_token_id = ids[0]  # a generation_config.json whose EOS is the answer's first token
    try:
        assert s.answer("What is this?") == first
    finally:
        config.eos_token_id = saved


def test_the_seed_makes_sampling_repeatable(engine):
    def sampled(seed: int) -> str:
        s = ChatSession(engine, settings=SHORT.updated(["sample=true", "temperature=1.5", f"seed={seed}"]))
        s.add_image(PHOTOS[0])
        answer = s.answer("What is this?")
        assert s.last_seed == seed
        return answer

    assert sampled(5) == sampled(5)
    assert len({sampled(5), sampled(6), sampled(7)}) > 1
    greedy = [ChatSession(engine, settings=SHORT) for _ in range(2)]
    for s in greedy:
        s.add_image(PHOTOS[0])
    assert greedy[0].answer("hi") == greedy[1].answer("hi") and greedy[0].last_seed is None


def test_streamed_pieces_make_the_answer_and_closing_the_stream_keeps_what_was_shown(engine):
    s = ChatSession(engine, settings=GenerationSettings(max_new_tokens=30))
    s.add_image(PHOTOS[1])
    pieces = list(s.stream("What is this?"))
    assert len(pieces) > 1 and "".join(pieces) == s.conversation.turns[-1].answer
    stream = s.stream("Again?")
    first = next(stream)
    stream.close()
    assert s.conversation.turns[-1].answer == first
    assert s.answer("Once more?")  # the conversation goes on


def test_a_long_conversation_drops_its_oldest_turns_but_keeps_the_system_text_and_images(engine):
    s = ChatSession(engine, settings=SHORT)
    s.add_image(PHOTOS[0])
    s.answer("What is this?")
    s.add_image(PHOTOS[1])
    s.answer("And this one?")
    (a, b) = engine.encode([im.pixels for im in s.conversation.images()])
    full = engine.prompt_length(s.conversation.prompt(), [a, b])
    tight = SHORT.updated([f"max_length={full + 12 + 6}"])  # room for a short question, not the history
    s.answer("Compare them.", tight)
    assert len(s.notices) == 1 and "dropped the 1 oldest turn" in s.notices[0]
    assert s.last_prompt.startswith(OFFICIAL_SYSTEM) and s.last_prompt.count("<ImageHere>") == 2
    assert "What is this?" not in s.last_prompt and "Compare them." in s.last_prompt
    with pytest.raises(ChatError, match="lower max_new_tokens"):
        s.answer("x", SHORT.updated(["max_length=20"]))
    assert s.conversation.turns[-1].question == "Compare them."  # the failed question was withdrawn


def test_the_context_is_capped_by_the_llms_positions(engine):
    positions = engine.model.llama_model.config.max_position_embeddings
    assert engine.context_size(GenerationSettings(max_length=10_000)) == positions
    assert engine.context_size(GenerationSettings(max_length=100)) == 100


def test_a_bad_image_names_the_file(engine, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    s = ChatSession(engine)
    with pytest.raises(ChatError, match=f"cannot read image {broken}"):
        s.add_image(broken)
    with pytest.raises(ChatError, match="no such file"):
        s.add_image(tmp_path / "missing.jpg")


def test_the_llama2_variant_chats_with_its_own_template(tiny_llama2_stack, tmp_path):
    engine = load_engine(str(chat_config(tmp_path, tiny_llama2_stack, model_type="tiny_llama2")))
    s = ChatSession(engine, settings=SHORT)
    s.add_image(PHOTOS[0])
    s.answer("What is this?")
    assert s.last_prompt == f"{OFFICIAL_SYSTEM}<s>[INST] <Img><ImageHere></Img> What is this? [/INST] "
    assert s.conversation.template.stop == "</s>"


def test_beam_search_answers_whole(engine):
    s = ChatSession(engine, settings=SHORT.updated(["num_beams=3"]))
    s.add_image(PHOTOS[0])
    pieces = list(s.stream("What is this?"))
    assert len(pieces) == 1 and pieces[0] == s.conversation.turns[-1].answer


def test_the_terminal_streams_answers_and_reports_bad_lines(engine, capsys):
    import io

    from minigpt4.commands.chat import Terminal

    out = io.StringIO()
    term = Terminal(ChatSession(engine, settings=SHORT), out, interactive=True)
    for line in ["/image " + str(PHOTOS[0]), "What is this?", "/settings num_beams=0", "/nope"]:
        assert term.handle(line)
    (turn,) = term.session.conversation.turns
    assert out.getvalue() == f"minigpt4> {turn.answer}\n" and turn.answer and term.errors == 2
    assert term.handle("/reset") and term.session.conversation.turns == []
    assert not term.handle("/quit")
    err = capsys.readouterr().err
    assert "error: setting num_beams=0: expected 1 to 20" in err and "error: unknown command /nope" in err
