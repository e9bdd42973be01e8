"""SmolLM2-Instruct's chat template, read from the embedded GGUF's metadata."""

from __future__ import annotations

from actadd.chat import render, render_prompt

SYSTEM = (
    "<|im_start|>system\n"
    "You are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
)


def test_smollm2_user_message_renders_in_its_chatml_format(smollm2):
    # the GGUF's template adds this default system turn when the first message is not one
    text = render(smollm2, [{"role": "user", "content": "Hi there"}])
    assert text == SYSTEM + "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n"
    own = render_prompt(smollm2, "Hi there", system="Be brief.")
    assert own == (
        "<|im_start|>system\nBe brief.<|im_end|>\n"
        "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n"
    )


def test_smollm2_rendered_prompt_has_one_leading_token_and_special_markers(smollm2):
    toks = smollm2.to_tokens(render_prompt(smollm2, "Hi there"))[0].tolist()
    tok = smollm2.tokenizer
    endoftext, im_start, im_end = (
        tok.convert_tokens_to_ids(t) for t in ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
    )
    assert toks[0] == endoftext and toks.count(endoftext) == 1
    assert toks[1] == im_start and toks.count(im_start) == 3 and toks.count(im_end) == 2
