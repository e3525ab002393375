"""Makes docs/figures/codec_decoder_bass.png (docs/codec_experiments.md, "The frame-rate trap"): the bundled
clip's bass (first 5 s), its log-mel spectrogram and chromagram, original and through each codec given
(checkpoints or decoder-only training states), 4 levels.

    python docs/figures/make_codec_decoder_figure.py [OUT.png] LABEL=PATH [LABEL=PATH ...]

(OUT.png: another file of docs/figures than codec_decoder_bass.png.)

The committed figure (the first frame-rate decoder's weights kept aside before the retrained one replaced them):

    python docs/figures/make_codec_decoder_figure.py "first frame-rate decoder=runs/codec-dec/book_parent.safetensors" \
        "4-hop window (B, 3,000 steps)=runs/codec-dec/B_m4_s0/train_state.pt" \
        "integrated phase (C, 2,117 steps)=runs/codec-dec/C_m4_int_s0/train_state.pt"
"""

import sys
from pathlib import Path

import matplotlib
import numpy as np
import torch

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from streamlib.codec import CausalCodec, load_codec  # noqa: E402
from streamlib.codec.figures import log_mel  # noqa: E402
from streamlib.codec.train import model_from_state  # noqa: E402
from streamlib.config import CodecConfig, config_from_dict  # noqa: E402
from streamlib.data.examples import load_example  # noqa: E402
from streamlib.pitch import chroma  # noqa: E402


def codec_at(path: str) -> CausalCodec:
    if path.endswith(".pt"):
        model, meta = model_from_state(path)
        return CausalCodec(config_from_dict(CodecConfig, meta["codec_config"]), model).eval()
    return load_codec(path)


def main(specs: list[str], out: Path = Path(__file__).with_name("codec_decoder_bass.png")) -> None:
    clip = load_example("test_clip")
    bass = next(s for s, info in clip.info["stems"].items() if info["category_name"] == "Bass")
    x = clip.stems[bass][: 5 * clip.sample_rate].astype(np.float32)
    panels = {"original": x}
    with torch.inference_mode():
        for spec in specs:
            label, path = spec.split("=", 1)
            codec = codec_at(path)
            y = codec.decode(codec.encode(torch.from_numpy(x)[None, None], n_q=4)).reshape(-1).numpy()
            panels[label] = y[: len(x)]
    fig, ax = plt.subplots(2, len(panels), figsize=(3.6 * len(panels), 5.4), sharey="row")
    for i, (label, audio) in enumerate(panels.items()):
        ax[0, i].imshow(log_mel(audio, clip.sample_rate, 80)[:40], origin="lower", aspect="auto",
                        extent=(0, 5, 0, 40))
        ax[0, i].set_title(label, fontsize=9)
        ax[1, i].imshow(chroma(audio, clip.sample_rate), origin="lower", aspect="auto", extent=(0, 5, -0.5, 11.5))
        ax[1, i].set_xlabel("s")
    ax[0, 0].set_ylabel("mel band (lowest 40 of 80)")
    ax[1, 0].set_yticks(range(12), ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"], fontsize=7)
    ax[1, 0].set_ylabel("pitch class")
    fig.suptitle("the bundled clip's bass through the codec (4 levels): log-mel (top), chroma (bottom)", fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=80)
    print("wrote", out)


if __name__ == "__main__":
    args = sys.argv[1:]
    if args and args[0].endswith(".png"):
        main(args[1:], Path(__file__).with_name(args[0]))
    else:
        main(args)
