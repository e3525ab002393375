"""Makes docs/figures/guidance_<name>.png (docs/listening_experiments.md, "Input dropout that does not stall, and
guidance"): four held-out bass clips of the 480-song set, chromagrams of the input mix, the true bass, the true bass
through the codec, the model's bass generated from nothing without guidance, with classifier-free guidance, and with
guidance on another song's input; the song's chord tones outlined, its beats as ticks on the top edge.

    python docs/figures/make_guidance_figure.py MODEL.safetensors OUT.png GUIDANCE

The committed figure:

    python docs/figures/make_guidance_figure.py runs/listen/export/bass4_drop20ptf1p_s0.safetensors \
        docs/figures/guidance_bass4_tf1p.png 4
"""

import sys

import matplotlib
import torch

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from streamlib.codec import codec_for  # noqa: E402
from streamlib.config import FRAME_RATE  # noqa: E402
from streamlib.model import load_accompanist  # noqa: E402
from streamlib.pitch import chord_frames, chroma  # noqa: E402
from streamlib.playalong import codec_round_trip, generate_clips  # noqa: E402
from streamlib.sweep import load_clips  # noqa: E402
from streamlib.tokens.categories import category_id  # noqa: E402
from streamlib.tokens.delay import added_latency_frames  # noqa: E402


def main(model_path: str, out: str, guidance: str) -> None:
    torch.set_num_threads(1)
    g = float(guidance)
    acc = load_accompanist(model_path).eval()
    codec = codec_for(acc)
    lookahead = max(acc.spec.tf, 0) + added_latency_frames(acc.cfg.n_q)
    clips = load_clips(48, 5.0, lookahead, root="data/synth480", sample_rate=codec.sample_rate, per_song=2,
                       targets=(category_id("Bass"),))  # compare --play-along 48's clips
    shown = clips[:4]
    panels = {
        "input mix": [c.input_mix for c in shown],
        "true bass": [c.target for c in shown],
        "true bass through the codec": codec_round_trip(shown, codec, acc.cfg.n_q),
        "generated, no guidance": generate_clips(acc, shown, codec),
        f"generated, guidance {g:g}": generate_clips(acc, shown, codec, guidance=g),
        f"guidance {g:g}, another song's input": generate_clips(acc, shown, codec, guidance=g, paired=False),
    }
    fig, ax = plt.subplots(len(shown), len(panels), figsize=(3.2 * len(panels), 2.4 * len(shown)), squeeze=False)
    for r, clip in enumerate(shown):
        start = int(round(clip.info["start_s"] * FRAME_RATE))
        _, tones = chord_frames(clip.info["chords"], start + clip.frames)
        tones = tones[:, start:start + clip.frames]
        beats = [(b - clip.info["start_s"]) * FRAME_RATE for b in clip.info.get("beats") or []]
        for c, (label, stems) in enumerate(panels.items()):
            ch = chroma(stems[r][: clip.frames * codec.hop], clip.sample_rate)[:, : clip.frames]
            a = ax[r, c]
            a.imshow(ch, origin="lower", aspect="auto", cmap="magma")
            a.contour(tones[:, : ch.shape[1]], levels=[0.5], colors="cyan", linewidths=0.7)
            for b in beats:
                if 0 <= b < ch.shape[1]:
                    a.plot([b, b], [10.6, 11.5], color="white", lw=1.0)
            a.set_title(f"{label}\n{clip.name}", fontsize=8)
            a.set_yticks([0, 4, 7, 11], ["C", "E", "G", "B"], fontsize=7)
            a.set_xticks([0, 100, 200], ["0 s", "2 s", "4 s"], fontsize=7)
    fig.suptitle(f"{model_path.split('/')[-1]}: chroma (chord tones outlined, beats ticked at the top)", fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=70)


if __name__ == "__main__":
    main(*sys.argv[1:])
