"""Are the notes in a codec's tokens but hidden from a linear probe? (docs/codec_experiments.md, "The notes
from the MIDI"). Prints the bass-note and chord-root probes of ``streamlib.codec.pitch_eval`` on the held-out
set with other features of the same codes: the codebook vectors, one-hot codes, and an MLP in place of the
logistic regression (also on the audio, the reference). Then the first level's perplexity (the card's measure,
over every excerpt) split by mixes and stems, with the share of its most used code and without it.

    python docs/scripts/codec_probe_diagnostics.py [CODEC.safetensors] [--data data/synth-heldout]
"""

import argparse

import numpy as np
import torch

from streamlib.codec import load_codec
from streamlib.codec import pitch_eval as pe


def one_hot(codes: torch.Tensor, levels: int, size: int) -> np.ndarray:
    c = codes[:levels].numpy()
    out = np.zeros((c.shape[1], levels * size), np.float32)
    for level in range(levels):
        out[np.arange(c.shape[1]), level * size + c[level]] = 1
    return out


def mlp_probe(train_x, train_y, test_x, test_y, auc=False) -> float:
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), MLPClassifier((256,), alpha=1e-2, max_iter=300, random_state=0))
    model.fit(np.concatenate(train_x), np.concatenate(train_y))
    return float((model.predict(np.concatenate(test_x)) == np.concatenate(test_y)).mean())


def perplexity(codes: np.ndarray, size: int) -> float:
    p = np.bincount(codes, minlength=size) / len(codes)
    p = p[p > 0]
    return float(np.exp(-(p * np.log(p)).sum()))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("checkpoint", nargs="?", default=None)
    p.add_argument("--data", default="data/synth-heldout")
    args = p.parse_args()
    torch.set_num_threads(1)
    codec = load_codec(args.checkpoint)
    excerpts = pe.load_excerpts(args.data)
    with torch.inference_mode():
        pe._encode_all(codec, excerpts)
        e_x = {id(e): pe._embed(codec, e.codes, 4) for e in excerpts}
    mixes = [e for e in excerpts if e.kind == "mix"]
    basses = [e for e in excerpts if e.kind == "bass"]
    n = mixes[0].codes.shape[-1]
    sounding = lambda y: y >= 0  # noqa: E731
    bass_note = lambda e: pe._lowest_pitch_class(e.midi, e.start, n)  # noqa: E731
    chord_root = lambda e: pe._chord_roots(e, n)  # noqa: E731
    tables = codec.codebook_tables(4)
    rank = np.linalg.matrix_rank(np.concatenate([e_x[id(e)] for e in basses]), tol=1e-3)
    print(f"rank of the bass frames' e_x: {rank} of {tables[0].shape[-1]} dimensions")

    def vectors(e):  # each level's codebook vector before its projection to the latent
        return np.concatenate([q.codebook.weight.detach()[e.codes[i]].numpy()
                               for i, q in enumerate(codec.model.quantizer.quantizers[:4])], axis=1)

    features = {"e_x (the card's probe)": lambda e: e_x[id(e)],
                "codebook vectors, 4 x 8 dims": vectors,
                "one-hot codes, level 1": lambda e: one_hot(e.codes, 1, codec.codebook_size),
                "one-hot codes, 4 levels": lambda e: one_hot(e.codes, 4, codec.codebook_size)}
    for name, feature in features.items():
        print(f"{name}: bass note {pe._probe_task(basses, feature, bass_note, sounding):.3f}, "
              f"chord root {pe._probe_task(mixes, feature, chord_root, sounding):.3f}")
    linear, pe.probe = pe.probe, mlp_probe
    try:
        print(f"MLP on e_x: bass note {pe._probe_task(basses, lambda e: e_x[id(e)], bass_note, sounding):.3f}, "
              f"chord root {pe._probe_task(mixes, lambda e: e_x[id(e)], chord_root, sounding):.3f}")
        sr = codec.sample_rate
        audio = lambda e: np.concatenate([pe._log_chroma(e.audio, sr, n), pe._log_mel(e.audio, sr, n)], axis=1)  # noqa: E731
        print(f"MLP on the audio's chroma + log-mel: bass note {pe._probe_task(basses, audio, bass_note, sounding):.3f}")
    finally:
        pe.probe = linear
    for kind, group in (("every excerpt", excerpts), ("mixes", mixes),
                        ("stems", [e for e in excerpts if e.kind != "mix"])):
        codes = torch.cat([e.codes[0] for e in group]).numpy()
        top = np.bincount(codes, minlength=codec.codebook_size).argmax()
        print(f"level-1 perplexity, {kind}: {perplexity(codes, codec.codebook_size):.0f}; its most used code "
              f"{np.mean(codes == top):.1%} of frames; without it {perplexity(codes[codes != top], codec.codebook_size):.0f}")


if __name__ == "__main__":
    main()
