"""Makes docs/figures/continuation_<name>.png (docs/listening_experiments.md, "Continue, then listen"): four
held-out play-along clips with a pitched target, chromagrams of the true stem, the true stem through the
codec, the model's stem generated from nothing, and its continuations after a 2 s true-stem prompt with the
clip's own input and with another song's; the song's chord tones outlined, the prompt's end marked.

    python docs/figures/make_continuation_figure.py MODEL.safetensors OUT.png [CATEGORY ...]

(CATEGORY, e.g. Bass: only clips with a target of these categories, as ``compare --targets``.)

The committed figures:

    python docs/figures/make_continuation_figure.py runs/listen/export/c3k6k_noise30_s0.safetensors \
        docs/figures/continuation_tf0.png
    python docs/figures/make_continuation_figure.py runs/listen/export/c3k_tf1_noise30_s0.safetensors \
        docs/figures/continuation_tf1.png
    python docs/figures/make_continuation_figure.py runs/listen/export/c3k_bass_noise30_s0.safetensors \
        docs/figures/continuation_bass.png Bass
"""

import sys

import matplotlib
import numpy as np
import torch

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from streamlib.codec import codec_for  # noqa: E402
from streamlib.config import FRAME_RATE  # noqa: E402
from streamlib.model import load_accompanist  # noqa: E402
from streamlib.playalong import codec_round_trip, generate_clips  # noqa: E402
from streamlib.pitch import chord_frames, chroma  # noqa: E402
from streamlib.sweep import load_clips  # noqa: E402
from streamlib.tokens.categories import category_id  # noqa: E402
from streamlib.tokens.delay import added_latency_frames  # noqa: E402

PROMPT = 2 * FRAME_RATE


def main(model_path: str, out: str, *categories: str) -> None:
    torch.set_num_threads(1)
    acc = load_accompanist(model_path).eval()
    codec = codec_for(acc)
    lookahead = max(acc.spec.tf, 0) + added_latency_frames(acc.cfg.n_q)
    targets = tuple(category_id(c) for c in categories) or None
    clips = load_clips(32, 5.0, lookahead, sample_rate=codec.sample_rate, per_song=2, targets=targets)  # compare's
    shown = [c for c in clips if c.info.get("pitched")][:4]  # the control: the next shown clip's input
    panels = {
        "true stem": [c.target for c in shown],
        "through the codec": codec_round_trip(shown, codec, acc.cfg.n_q),
        "generated from nothing": generate_clips(acc, shown, codec),
        "continued, own input": generate_clips(acc, shown, codec, prompt_frames=PROMPT),
        "continued, another song's input": generate_clips(acc, shown, codec, paired=False, prompt_frames=PROMPT),
    }
    fig, ax = plt.subplots(len(shown), len(panels), figsize=(3.4 * len(panels), 2.4 * len(shown)), squeeze=False)
    for r, clip in enumerate(shown):
        start = int(round(clip.info["start_s"] * FRAME_RATE))
        _, tones = chord_frames(clip.info["chords"], start + clip.frames)
        tones = tones[:, start:start + clip.frames]
        for c, (label, stems) in enumerate(panels.items()):
            ch = chroma(stems[r][: clip.frames * codec.hop], clip.sample_rate)[:, : clip.frames]
            a = ax[r, c]
            a.imshow(ch, origin="lower", aspect="auto", cmap="magma")
            a.contour(tones[:, : ch.shape[1]], levels=[0.5], colors="cyan", linewidths=0.7)
            if label.startswith("continued"):
                a.axvline(PROMPT, color="white", lw=1.0)
            a.set_title(f"{label}\n{clip.name}, {clip.info['target']}", fontsize=8)
            a.set_yticks([0, 4, 7, 11], ["C", "E", "G", "B"], fontsize=7)
            a.set_xticks([0, 100, 200], ["0 s", "2 s", "4 s"], fontsize=7)
    fig.suptitle(f"{model_path.split('/')[-1]}: chroma of the stems (chord tones outlined; prompt ends at the white line)",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=70)


if __name__ == "__main__":
    main(*sys.argv[1:])
