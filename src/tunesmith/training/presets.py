"""``bench nll --preset auto``: a model and its training settings chosen from the data.

The rules read the training split of a benchmark ``.mat`` (piano-rolls of 88 keys) and
the cores this process may use, never the file's name. Each rule and the figures it
rests on (docs/benchmarks.md, "--preset auto"):

====  ===========================================  ========================================
rule  reads                                        chooses
====  ===========================================  ========================================
R1    median train piece length m (frames)         m >= 128: ``frame-transformer`` (relative
                                                   attention over the whole piece: long
                                                   pieces repeat material it can copy;
                                                   Nottingham, m = 255: 1.31 vs TCN 1.98);
                                                   else ``tcn`` (JSB, m = 57: 5.31 vs 5.81)
R2    —                                            the NADE head (exact; 0.9–2.9 nats below
                                                   independent sigmoids on both benchmarks)
R3    train frames F                               F < 50,000: small (TCN kernel 3, 2
                                                   levels; Transformer 96 wide, 2 layers);
                                                   else large (TCN kernel 6, 4 levels, Bai
                                                   et al.'s; Transformer 128 wide, 3 layers)
R4    train frames F                               dropout 0.5 if F < 50,000, else 0.2
R5    keys sounding in train, lowest a, highest b  NADE over keys [a − 3, b + 4) (the others
                                                   keep independent sigmoids: exact, cheaper);
                                                   the Transformer only (the TCN's head has
                                                   no range option)
R6    the estimated tonic of each train piece      transposition augmentation (−5..6) only if
      (Krumhansl–Schmuckler)                       no tonic holds 20 % of the pieces (keys
                                                   spread evenly); JSB (80 % on C) and
                                                   Nottingham lost by it
R7    longest train piece                          > 2,048 frames: train on windows of 512
                                                   frames (memory; scoring stays whole)
R8    —                                            batch 8; TCN lr 2e-3, clip 0.4;
                                                   Transformer lr 1e-3, clip 1.0; lr halved
                                                   after 2 flat epochs; stop after 8;
                                                   at most 300 epochs
R9    train frames F, cores c                      time budget 30 · (F / 15,000) · (2 / c)
                                                   minutes, within [30, 180]; one torch
                                                   thread per run (the figures' setting)
R10   the family of R1                             TCN: context-note dropout 0.2
                                                   (``input_dropout``) and SWA of the
                                                   weights from epoch 40, at most 1,000
                                                   epochs (JSB, 2 seeds: 5.33 -> below 5.0);
                                                   Transformer: EMA of the weights, decay
                                                   0.999 (Nottingham, 2 seeds: 1.27 ->
                                                   1.20); context-note dropout hurt it
====  ===========================================  ========================================

Options given by hand (``--set``, ``--lr``...) override the preset's.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from tunesmith.music.keys import keys_from_histograms
from tunesmith.representations.pianoroll import pitch_class_counts

#: R1: median train length (frames) from which attention over the piece is chosen
LONG_MEDIAN = 128
#: R3, R4: train frames from which the larger model and lighter dropout are chosen
LARGE_FRAMES = 50_000
#: R6: augment only if no tonic holds this share of the train pieces
TONIC_SHARE = 0.20
#: R7: longest piece from which training reads windows, and their length
WINDOW_FROM, WINDOW = 2048, 512
#: R9: minutes per 15,000 train frames on 2 cores, and the bounds
MINUTES_PER_15K, MIN_MINUTES, MAX_MINUTES = 30.0, 30.0, 180.0
#: R5: the families whose NADE head takes a key range (nade_low/nade_high)
NADE_RANGE_FAMILIES = ("frame-transformer", "lstm-nade")
#: R10: the TCN's context-note dropout, first SWA epoch and epoch cap
TCN_INPUT_DROPOUT, TCN_SWA_START, TCN_MAX_EPOCHS = 0.2, 40, 1000
#: R10: the decay of the Transformer's EMA of the weights
TRANSFORMER_EMA_DECAY = 0.999
#: MIDI pitch of key 0 of the benchmark rolls
LOWEST_PITCH = 21


@dataclasses.dataclass
class Preset:
    model: str
    options: dict[str, Any]
    settings: dict[str, Any]  # TrainSettings fields
    facts: dict[str, Any]  # what the rules read
    reasons: list[str]  # one line per rule: what it read and chose

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def data_facts(train: Sequence[np.ndarray], cores: int) -> dict[str, Any]:
    """What the rules read from the train pieces ((T, 88) rolls) and the cores."""
    lengths = np.array([len(p) for p in train])
    sounding = np.flatnonzero(np.concatenate(train).any(axis=0))
    counts = np.stack([pitch_class_counts(np.asarray(p), p.shape[1], LOWEST_PITCH)
                       for p in train])  # (pieces, 12) note-frames per pitch class
    totals = counts.sum(axis=1, keepdims=True)
    histograms = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
    tonics = Counter(k.tonic for k in keys_from_histograms(histograms) if k is not None)
    top_share = max(tonics.values()) / len(train) if tonics else 0.0
    return {
        "pieces": len(train), "frames": int(lengths.sum()),
        "median_length": float(np.median(lengths)), "longest": int(lengths.max()),
        "lowest_key": int(sounding.min()) if len(sounding) else 0,
        "highest_key": int(sounding.max()) if len(sounding) else train[0].shape[1] - 1,
        "top_tonic_share": round(top_share, 3), "cores": int(cores),
    }


def auto_preset(train: Sequence[np.ndarray], cores: int) -> Preset:
    """The rules of this module applied to the train pieces and the cores."""
    f = data_facts(train, cores)
    keys = train[0].shape[1]
    long_pieces = f["median_length"] >= LONG_MEDIAN
    large = f["frames"] >= LARGE_FRAMES
    reasons = []
    if long_pieces:
        model = "frame-transformer"
        options: dict[str, Any] = ({"d_model": 128, "n_layers": 3, "d_ff": 512} if large
                                   else {"d_model": 96, "n_layers": 2, "d_ff": 384})
        settings: dict[str, Any] = {"lr": 1e-3, "gradient_clip": 1.0}
    else:
        model = "tcn"
        options = ({"kernel_size": 6, "levels": 4} if large else
                   {"kernel_size": 3, "levels": 2})
        settings = {"lr": 2e-3, "gradient_clip": 0.4}
    reasons.append(f"R1 median train length {f['median_length']:.0f} frames "
                   f"{'>=' if long_pieces else '<'} {LONG_MEDIAN}: {model}")
    options["head"] = "nade"
    reasons.append("R2 NADE head")
    reasons.append(f"R3 {f['frames']:,} train frames {'>=' if large else '<'} "
                   f"{LARGE_FRAMES:,}: {'large' if large else 'small'} "
                   + ", ".join(f"{k}={v}" for k, v in options.items() if k != "head"))
    options["dropout"] = 0.2 if large else 0.5
    reasons.append(f"R4 dropout {options['dropout']}")
    low, high = max(0, f["lowest_key"] - 3), min(keys, f["highest_key"] + 4)
    if model in NADE_RANGE_FAMILIES:
        options["nade_low"], options["nade_high"] = low, high
        reasons.append(f"R5 keys {f['lowest_key']}–{f['highest_key']} sound in train: NADE "
                       f"over [{low}, {high})")
    else:
        reasons.append(f"R5 keys {f['lowest_key']}–{f['highest_key']} sound in train; the "
                       f"{model}'s NADE head runs over all keys (it has no range option)")
    if f["top_tonic_share"] < TONIC_SHARE:
        settings["transpose"] = [-5, 6]
        reasons.append(f"R6 most common tonic on {f['top_tonic_share']:.0%} of pieces "
                       f"< {TONIC_SHARE:.0%}: transpose -5..6")
    else:
        reasons.append(f"R6 most common tonic on {f['top_tonic_share']:.0%} of pieces: "
                       "no transposition")
    if f["longest"] > WINDOW_FROM:
        settings["window"] = WINDOW
        reasons.append(f"R7 longest piece {f['longest']:,} > {WINDOW_FROM:,} frames: train "
                       f"on windows of {WINDOW}")
    else:
        reasons.append(f"R7 longest piece {f['longest']:,} frames: whole pieces")
    settings.update({"batch_size": 8, "lr_decay_patience": 2, "early_stopping_patience": 8,
                     "epochs": 300, "threads": 1})
    reasons.append(f"R8 batch 8, lr {settings['lr']:g}, clip {settings['gradient_clip']}")
    minutes = MINUTES_PER_15K * f["frames"] / 15_000 * 2 / max(1, f["cores"])
    settings["max_time"] = round(min(MAX_MINUTES, max(MIN_MINUTES, minutes)), 1)
    reasons.append(f"R9 {f['frames']:,} frames, {f['cores']} cores: "
                   f"{settings['max_time']:g} minutes")
    if model == "tcn":
        options["input_dropout"] = TCN_INPUT_DROPOUT
        settings.update({"swa_start": TCN_SWA_START, "epochs": TCN_MAX_EPOCHS})
        reasons.append(f"R10 tcn: context-note dropout {TCN_INPUT_DROPOUT}, SWA from epoch "
                       f"{TCN_SWA_START}, at most {TCN_MAX_EPOCHS:,} epochs")
    else:
        settings["ema_decay"] = TRANSFORMER_EMA_DECAY
        reasons.append(f"R10 {model}: EMA of the weights (decay {TRANSFORMER_EMA_DECAY}), no "
                       "context-note dropout")
    return Preset(model, options, settings, f, reasons)
