"""Lesson 08's widget: a prompt box and a guidance slider over a text-to-image model.

Precomputed prompts show instantly (a dropdown); a new prompt typed in the box is drawn live, with fewer
DDIM steps, at every guidance weight at once, and then joins the dropdown. Beside the samples: the CLIP
score (mean cosine similarity of the samples' image embeddings to the prompt's text embedding) against w.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import torch

from ._base import _FigureWidget, _figure, _gray, _tiles

__all__ = ["TextToImageExplorer", "text_to_image_explorer", "prompt_sweep"]


@torch.no_grad()
def prompt_sweep(model, diffusion, clip, prompt: str, ws: Sequence[float], n: int = 8, num_steps: int = 20,
                 seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` samples of ``prompt`` at every w in ``ws``, all from the same noise, and their CLIP scores.

    Returns:
        (samples (len(ws), n, 1, 16, 16) in [-1, 1] on the CPU, clip_score (len(ws),) mean cosine similarity).
    """
    from ..text2image import encode_prompts, sample

    cond = encode_prompts(clip, [prompt] * n)
    null = encode_prompts(clip, [""] * n)
    x_T = torch.randn((n, 1, 16, 16), generator=torch.Generator().manual_seed(seed))
    dev = next(model.parameters()).device
    out = torch.stack([sample(model, diffusion, cond, null, float(w), num_steps, seed, x_T=x_T.to(dev)).cpu()
                       for w in ws])
    text = clip.encode_text([prompt]).cpu()                                     # (1, D)
    score = torch.stack([(clip.encode_image(x.to(clip.device)).cpu() @ text.T).mean() for x in out])
    return out, score


@dataclass(eq=False)
class TextToImageExplorer(_FigureWidget):
    """Prompt dropdown + prompt box + guidance slider over text-to-image samples.

    Attributes:
        prompt_picker: ``ipywidgets.Dropdown`` of the prompts drawn so far (value: the prompt).
        prompt_box, generate_button: type a prompt of the caption vocabulary and press the button.
        slider: ``ipywidgets.SelectionSlider`` over ``ws``. status: an ``ipywidgets.HTML`` line (errors too).
        image, widget, figure, image_artist, score_line, w_line, title: the display.
        samples: prompt → (len(ws), n, 1, 16, 16); scores: prompt → (len(ws),) CLIP score.
    """

    prompt_picker: Any
    prompt_box: Any
    generate_button: Any
    slider: Any
    status: Any
    image: Any
    widget: Any
    figure: Any
    image_artist: Any
    score_line: Any
    w_line: Any
    title: Any
    ws: tuple
    ncol: int
    samples: dict
    scores: dict
    draw: Any
    renders: int = field(default=0)

    @property
    def w(self) -> float:
        return float(self.slider.value)

    @property
    def prompt(self) -> str:
        return str(self.prompt_picker.value)

    def update(self, *_args) -> None:
        """Show the current prompt at the current w: set_data on the artists, re-render one PNG."""
        i, p = self.ws.index(self.w), self.prompt
        self.image_artist.set_data(_tiles(self.samples[p][i], self.ncol).numpy())
        self.score_line.set_ydata(self.scores[p].numpy())
        self.w_line.set_xdata([self.w, self.w])
        self.title.set_text(f'"{p or "(empty prompt: unconditional)"}",  w = {self.w:g}:  CLIP score '
                            f"{float(self.scores[p][i]):.3f}")
        self._show_figure()

    def add_prompt(self, prompt: str) -> None:
        """Draw ``prompt`` live (all w at once) unless it is already there, then show it."""
        prompt = prompt.strip()
        if prompt not in self.samples:
            try:
                self.samples[prompt], self.scores[prompt] = self.draw(prompt)
            except ValueError as err:                    # a word count or type problem: say it in the widget
                self.status.value = f"<span style='color:#b00'>{err}</span>"
                return
            self.prompt_picker.options = list(self.prompt_picker.options) + [prompt]
        self.status.value = f"drew “{prompt}” at w = {', '.join(f'{w:g}' for w in self.ws)}"
        if self.prompt_picker.value == prompt:
            self.update()
        else:
            self.prompt_picker.value = prompt             # observe() calls update()

    def _on_generate(self, *_args) -> None:
        self.add_prompt(self.prompt_box.value)


def text_to_image_explorer(model, diffusion, clip, prompts: Sequence[str], ws: Sequence[float] = (0.0, 1.0, 2.0, 3.0, 5.0),
                           n: int = 8, num_steps: int = 20, live_steps: int = 10, seed: int = 0,
                           figsize=(9.0, 3.0), dpi: int = 80) -> TextToImageExplorer:
    """The lesson 08 explorer: precompute ``prompts`` (DDIM-``num_steps``), draw new ones live (``live_steps``).

    Args:
        model, diffusion, clip: ``text2image.load_text2image()``'s first three values.
        prompts: the prompts shown at once (the first one first); words outside the caption vocabulary
            become ``<unk>`` (the tiny text tower knows ~40 words).
        ws: guidance weights; n: samples per prompt; seed: the shared noise (same for every w and prompt).
    Returns:
        a :class:`TextToImageExplorer`; display it (last line of a cell) to use it.
    """
    import ipywidgets as widgets

    from ..text2image import _check_prompts

    prompts = _check_prompts(list(prompts), clip.config.max_len)
    ws = tuple(float(w) for w in ws)
    if not ws or len(set(ws)) != len(ws):
        raise ValueError(f"ws must be distinct guidance weights, e.g. (0, 1, 2, 3, 5); got {ws}.")
    samples, scores = {}, {}
    for p in dict.fromkeys(prompts):
        samples[p], scores[p] = prompt_sweep(model, diffusion, clip, p, ws, n, num_steps, seed)

    def draw(prompt: str):
        _check_prompts([prompt], clip.config.max_len)
        return prompt_sweep(model, diffusion, clip, prompt, ws, n, live_steps, seed)

    ncol = max(1, -(-n // 2))
    start_w = 2.0 if 2.0 in ws else ws[0]
    first = prompts[0]
    fig = _figure(figsize, dpi)
    gs = fig.add_gridspec(1, 2, width_ratios=[1.4, 1], wspace=0.3)
    ax_img, ax_sc = fig.add_subplot(gs[0, 0]), fig.add_subplot(gs[0, 1])
    image_artist = ax_img.imshow(_tiles(samples[first][ws.index(start_w)], ncol).numpy(), cmap=_gray(), vmin=-1,
                                 vmax=1, interpolation="nearest")
    ax_img.set_axis_off()
    ax_img.set_title(f"{n} samples, the same noise for every w and prompt", fontsize=9)
    score_line, = ax_sc.plot(list(ws), scores[first].numpy(), "o-", color="C0")
    ax_sc.set_ylim(-0.2, 1.0)
    ax_sc.set_xlabel("guidance weight w", fontsize=8)
    ax_sc.set_title("CLIP score: cos(image, prompt)", fontsize=9)
    ax_sc.tick_params(labelsize=7)
    w_line = ax_sc.axvline(start_w, color="C3", lw=1)
    title = fig.suptitle("", fontsize=10)
    fig.subplots_adjust(left=0.02, right=0.98, top=0.8, bottom=0.17)

    picker = widgets.Dropdown(options=list(samples), value=first, description="prompt",
                              layout=widgets.Layout(width="45%"))
    box = widgets.Text(value="", placeholder="a photo of a large dark bag", description="new",
                       layout=widgets.Layout(width="35%"))
    button = widgets.Button(description="draw")
    slider = widgets.SelectionSlider(options=[(f"{w:g}", w) for w in ws], value=start_w, description="w",
                                     continuous_update=True, layout=widgets.Layout(width="50%"))
    status = widgets.HTML(value=f"{len(samples)} prompts precomputed; type another and press draw "
                                f"(DDIM-{live_steps}, all w at once)")
    image = widgets.Image(value=b"", format="png")
    ui = widgets.VBox([widgets.HBox([picker, slider]), widgets.HBox([box, button]), status, image])
    explorer = TextToImageExplorer(
        prompt_picker=picker, prompt_box=box, generate_button=button, slider=slider, status=status, image=image,
        widget=ui, figure=fig, image_artist=image_artist, score_line=score_line, w_line=w_line, title=title, ws=ws,
        ncol=ncol, samples=samples, scores=scores, draw=draw)
    picker.observe(explorer.update, names="value")
    slider.observe(explorer.update, names="value")
    button.on_click(explorer._on_generate)
    explorer.update()
    return explorer
