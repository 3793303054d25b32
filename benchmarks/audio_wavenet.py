"""Audio WaveNet benchmarks: test NLL against μ-law unigram and LPC baselines, and cached
sampling speed against naive generation.

NLL: two WaveNets of one size, one conditioned on the piano-roll and one not, trained for
the same time on ``rendered:bach-chorales`` at 16 kHz (first ``--seconds`` of each
chorale), scored on the held-out test chorales beside a μ-law unigram and an order-32
LPC with a backward-adaptive Laplace residual over the same 256 μ-law bins
(:mod:`tunesmith.evaluation.audio`). Speed: a 20-layer, 64-channel WaveNet on one thread
sampling 1 s and 4 s of audio with the queue sampler; naive generation (a full forward
pass over the prefix per sample) timed on forward passes at several prefix lengths and
integrated over the length (running it outright at 4 s would take hours), and the
windowed naive sampler (a forward pass over the receptive field per sample) timed on a
few hundred samples.

Usage::

    python benchmarks/audio_wavenet.py train --variant cond --steps 500 --out /tmp/awn
    python benchmarks/audio_wavenet.py train --variant uncond --steps 500 --out /tmp/awn
    python benchmarks/audio_wavenet.py nll --out /tmp/awn
    python benchmarks/audio_wavenet.py speed
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from tunesmith.audio.mulaw import mu_law_encode
from tunesmith.data.audio import prepare_audio
from tunesmith.evaluation.audio import log_mel_distance, lpc_bits, unigram_bits
from tunesmith.models.audio_wavenet import AudioWaveNet, AudioWaveNetConfig, _draw
from tunesmith.models.sampling import SamplingControls

RESULTS = Path(__file__).parent / "results"
SIZE = {"channels": 24, "skip_channels": 48, "levels": 10, "blocks": 1}


def data(seconds: float):
    return prepare_audio("rendered:bach-chorales", 16000, max_seconds=seconds, progress=False,
                         report=False)


def train(args) -> None:
    from tunesmith.training.audio import train_audio

    options = dict(SIZE, roll_conditioned=args.variant == "cond")
    name = args.variant
    if args.output == "mol":  # the mixture-of-logistics output, integrated over the bins
        options.update(output="mol", mixtures=args.mixtures)
        name += "-mol"
    train_audio("audio-wavenet", data(args.seconds), options, Path(args.out) / name,
                overwrite=True, window=4000, batch_size=4, epochs=None, max_time=args.minutes,
                max_steps=args.steps,
                lr=2e-3, lr_schedule="constant", threads=1, windows_per_piece=None,
                limit_val_batches=20, early_stopping_patience=0, progress_bar=False,
                loggers=False)


@torch.no_grad()
def model_bits(model: AudioWaveNet, prepared, indices, seconds: float) -> float:
    """Bits per sample over the first ``seconds`` of the given pieces."""
    total, count = 0.0, 0
    n = int(seconds * prepared.sample_rate)
    for i in indices:
        audio = torch.tensor(prepared.audio(i)[:n])[None]
        condition = {}
        if model.config.local_channels:
            frames = -(-audio.shape[1] // prepared.hop)
            condition["roll"] = torch.tensor(prepared.roll(i)[:frames], dtype=torch.float32)[None]
        total += float(model.sample_nll(audio, condition).sum()) / math.log(2)
        count += audio.shape[1]
    return total / count


def nll(args) -> None:
    from tunesmith.training.checkpoint import load_checkpoint

    torch.set_num_threads(1)
    prepared = data(args.seconds)
    test = prepared.indices("test")
    n = int(args.eval_seconds * prepared.sample_rate)
    test_audio = [prepared.audio(i)[:n] for i in test]
    train_audio = [prepared.audio(i) for i in prepared.indices("train")]
    rows = {"mu-law unigram": unigram_bits(train_audio, test_audio),
            "LPC-32, adaptive Laplace over mu-law bins":
                lpc_bits(train_audio[: args.lpc_pieces], test_audio)}
    models = {}
    for variant in ("uncond", "cond", "uncond-mol", "cond-mol"):
        if variant.endswith("-mol") and not (Path(args.out) / variant).is_dir():
            continue  # the mixture-of-logistics runs are optional
        model, meta = load_checkpoint(Path(args.out) / variant)
        models[variant] = model
        run = meta["training"].get("run", meta["training"])
        label = ("WaveNet " + ("piano-roll conditioned" if variant.startswith("cond")
                               else "unconditioned")
                 + (f", {model.config.mixtures}-logistic mixture" if variant.endswith("-mol")
                    else ""))
        rows[label] = model_bits(model, prepared, test, args.eval_seconds)
        rows[label + " (training steps)"] = run.get("global_step")
    # MIDI-to-audio: the conditioned model's synthesis of held-out chorales vs an
    # unconditioned sample, each as log-mel distance to the SoundFont rendering
    synthesis = {"synthesis": [], "unconditioned sample": []}
    frames = int(args.synth_seconds * prepared.sample_rate) // prepared.hop
    for k, i in enumerate(test[: args.synth_pieces]):
        roll = prepared.roll(i)[:frames].astype(np.float32)
        reference = prepared.audio(i)[: frames * prepared.hop]
        controls = SamplingControls(seed=k)
        synth = models["cond"].generate(1, len(reference), controls,
                                        condition={"roll": torch.tensor(roll)[None]})[0]
        sample = models["uncond"].generate(1, len(reference), controls)[0]
        synthesis["synthesis"].append(log_mel_distance(synth.numpy(), reference, 16000))
        synthesis["unconditioned sample"].append(
            log_mel_distance(sample.numpy(), reference, 16000))
    print(json.dumps({"test pieces": len(test), "seconds each": args.eval_seconds,
                      "samples": sum(len(a) for a in test_audio), "bits per sample": rows,
                      "log-mel distance to the SoundFont rendering "
                      f"({args.synth_pieces} test chorales, {args.synth_seconds} s)":
                      {k: round(float(np.mean(v)), 3) for k, v in synthesis.items()},
                      "machine": machine()}, indent=1))


@torch.inference_mode()
def torch_queue_generate(model: AudioWaveNet, steps: int, seed: int) -> torch.Tensor:
    """The previous cached sampler: one stream, no prime, no conditioning (bins)."""
    uniforms = torch.rand(1, steps, generator=torch.Generator().manual_seed(seed))
    state = TorchQueueState(model, 1, None)
    bins = torch.empty(1, steps, dtype=torch.long)
    previous = torch.full((1,), model.silence, dtype=torch.long)
    for t in range(steps):
        bins[:, t] = _draw(state.step(previous, t), uniforms[:, t], 1.0)
        previous = bins[:, t]
    return bins


def speed(args) -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    config = AudioWaveNetConfig(channels=64, skip_channels=64, levels=10, blocks=2)
    model = AudioWaveNet(config).eval()
    rate = 16000
    results = {"layers": 20, "channels": 64, "receptive field": model.receptive_field,
               "load average before": round(os.getloadavg()[0], 2)}
    # wall-clock seconds, and this process's CPU seconds (on a shared machine the wall
    # clock also counts the time other processes held the core)
    cached, previous, cached_cpu, previous_cpu = {}, {}, {}, {}
    for seconds in (1, 4):  # the current and the previous sampler, alternating
        steps = seconds * rate
        start, cpu = time.perf_counter(), time.process_time()
        new = model.generate(1, steps, SamplingControls(seed=0))
        cached[seconds] = time.perf_counter() - start
        cached_cpu[seconds] = time.process_time() - cpu
        start, cpu = time.perf_counter(), time.process_time()
        old = torch_queue_generate(model, steps, seed=0)
        previous[seconds] = time.perf_counter() - start
        previous_cpu[seconds] = time.process_time() - cpu
        same = float((mu_law_encode(new, model.config.bits) == old).float().mean())
        results[f"cached {seconds} s: seconds"] = round(cached[seconds], 2)
        results[f"cached {seconds} s: samples/s"] = round(steps / cached[seconds])
        results[f"cached {seconds} s: samples per CPU second"] = round(steps / cached_cpu[seconds])
        results[f"previous torch-queue sampler {seconds} s: samples/s"] = round(
            steps / previous[seconds])
        results[f"previous torch-queue sampler {seconds} s: samples per CPU second"] = round(
            steps / previous_cpu[seconds])
        results[f"speed-up over the previous sampler at {seconds} s (wall, CPU)"] = [
            round(previous[seconds] / cached[seconds], 2),
            round(previous_cpu[seconds] / cached_cpu[seconds], 2)]
        results[f"same bins as the previous sampler at {seconds} s (fraction)"] = same
    results["cached cost ratio 4 s / 1 s (linear = 4)"] = round(cached[4] / cached[1], 2)
    # naive: time full forward passes over prefixes, fit a + b·L, integrate over t
    lengths = [1000, 4000, 16000, 32000, 64000]
    times = []
    bins = torch.randint(0, 256, (1, 64000))
    with torch.inference_mode():
        for length in lengths:
            model.logits(bins[:, :length])  # warm
            start = time.perf_counter()
            for _ in range(3):
                model.logits(bins[:, :length])
            times.append((time.perf_counter() - start) / 3)
    b, a = np.polyfit(lengths, times, 1)
    results["naive forward (s) at prefix lengths"] = dict(zip(lengths, [round(t, 4) for t in times],
                                                              strict=True))
    for seconds in (1, 4):
        steps = seconds * rate
        naive = a * steps + b * steps * (steps + 1) / 2
        results[f"naive full-prefix {seconds} s: estimated seconds"] = round(naive, 1)
        results[f"speed-up over full-prefix naive at {seconds} s"] = round(naive / cached[seconds])
    # windowed naive: one forward pass over the receptive field per sample
    steps = 300
    window = model.receptive_field
    with torch.inference_mode():
        start = time.perf_counter()
        for _ in range(steps):
            model.logits(bins[:, : window + 1])
        per_step = (time.perf_counter() - start) / steps
    results["windowed naive: samples/s"] = round(1 / per_step)
    results["speed-up over windowed naive"] = round(per_step * rate / cached[1], 1)
    results["load average after"] = round(os.getloadavg()[0], 2)
    (RESULTS / "audio_wavenet_speed.json").write_text(json.dumps(results, indent=1) + "\n")
    results["machine"] = machine()
    print(json.dumps(results, indent=1))


class TorchQueueState:
    """The previous cached sampler (torch ops, before the numpy step), kept to time the
    current one against in the same run. One sample at a time through an AudioWaveNet.

    Everything is preallocated and every op writes into a fixed buffer (a step is 7 ops
    per layer): per layer ``w_both`` (C, 4C) = [W_now | W_past]ᵀ of the kernel-2 dilated
    conv; a queue of d rows, row t mod d holding W_past · x_{t−d} + b + V c_t for the
    step t that reads it (written d steps earlier; the first d rows start as b + V c_t
    for the zero padding); the residual/skip 1×1 with its bias as one (C + 1, C + S)
    matrix, applied to [z | 1] and added in place to the state row [x | Σ skips].
    """

    def __init__(self, model: AudioWaveNet, n: int, frame_cond: torch.Tensor | None):
        c = model.config
        C, S = c.channels, c.skip_channels
        self.n, self.channels = n, C
        self.hop = c.local_hop if model.local_net is not None else 0
        self.embed = model.embed.weight.detach()  # (Q, C)
        self.state = torch.zeros(n, C + S)  # [x | Σ skips]
        self.both = torch.empty(n, 4 * C)  # [W_now x_t | W_past x_t]
        self.now, self.past = self.both[:, : 2 * C], self.both[:, 2 * C :]
        self.a = torch.empty(n, 2 * C)  # pre-activation
        self.z = torch.ones(n, C + 1)  # [tanh ⊙ σ | 1]
        self.z_gate = torch.empty(n, C)
        self.layers = []
        for layer in model.layers:
            w = layer.dilated.weight.detach()  # (2C, C, 2): tap 0 reads t − d, tap 1 reads t
            w_both = torch.cat([w[:, :, 1], w[:, :, 0]], dim=0).t().contiguous()  # (C, 4C)
            bias = layer.dilated.bias.detach()  # (2C,)
            if frame_cond is not None:  # (F, n, 2C): V c_f + b
                per_frame = (layer.cond(frame_cond) + bias[None, :, None]).permute(2, 0, 1)
            else:
                per_frame = bias.expand(1, n, -1)
            per_frame = list(per_frame.contiguous().unbind(0))  # F × (n, 2C)
            d = layer.dilated.dilation[0]
            queue = torch.stack([per_frame[self._frame(t, len(per_frame))] for t in range(d)])
            rs = layer.res_skip
            rs_w = torch.cat([rs.weight.detach()[:, :, 0].t(), rs.bias.detach()[None]], 0)
            self.layers.append((w_both, per_frame, list(queue.unbind(0)), d, rs_w.contiguous()))
        self.post_w = model.post.weight.detach()[:, :, 0].t().contiguous()
        self.post_b = model.post.bias.detach()
        self.out_w = model.out.weight.detach()[:, :, 0].t().contiguous()
        self.out_b = model.out.bias.detach()

    def _frame(self, t: int, frames: int) -> int:
        return min(t // self.hop, frames - 1) if self.hop else 0

    def step(self, previous: torch.Tensor, t: int) -> torch.Tensor:
        """Logits (n, Q) of bin t from bin t−1 (``previous``, (n,) long)."""
        C = self.channels
        state, both, now, past, a, z, z_gate = (self.state, self.both, self.now, self.past,
                                                 self.a, self.z, self.z_gate)
        x, filt, gate, z_out = state[:, :C], a[:, :C], a[:, C:], z[:, :C]
        state[:, :C] = self.embed[previous]  # x (n, C)
        state[:, C:] = 0  # Σ skips (n, S)
        for w_both, per_frame, queue, d, rs_w in self.layers:
            torch.mm(x, w_both, out=both)  # (n, 4C)
            slot = queue[t % d]  # W_past x_{t-d} + b + V c_t
            torch.add(now, slot, out=a)
            torch.add(past, per_frame[self._frame(t + d, len(per_frame))], out=slot)  # for t + d
            torch.tanh(filt, out=z_out)
            torch.sigmoid(gate, out=z_gate)
            z_out.mul_(z_gate)
            state.addmm_(z, rs_w)  # [x + res | skips + skip]
        h = torch.relu(torch.addmm(self.post_b, torch.relu(state[:, C:]), self.post_w))
        return torch.addmm(self.out_b, h, self.out_w)  # (n, Q)


def machine() -> str:
    return (f"{platform.processor() or platform.machine()}, torch {torch.__version__}, "
            f"{torch.get_num_threads()} thread(s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("train")
    p.add_argument("--variant", choices=("cond", "uncond"), required=True)
    p.add_argument("--minutes", type=float, default=25)
    p.add_argument("--steps", type=int, default=500, help="the same for both variants")
    p.add_argument("--output", choices=("softmax", "mol"), default="softmax",
                   help="mol: a mixture of logistics (the run goes to VARIANT-mol)")
    p.add_argument("--mixtures", type=int, default=10)
    p.add_argument("--seconds", type=float, default=8, help="first seconds of each chorale")
    p.add_argument("--out", default="/tmp/audio-wavenet-bench")
    p = sub.add_parser("nll")
    p.add_argument("--seconds", type=float, default=8)
    p.add_argument("--eval-seconds", type=float, default=2)
    p.add_argument("--lpc-pieces", type=int, default=100, help="train pieces the LPC fits")
    p.add_argument("--synth-pieces", type=int, default=2)
    p.add_argument("--synth-seconds", type=float, default=1)
    p.add_argument("--out", default="/tmp/audio-wavenet-bench")
    p = sub.add_parser("speed")
    args = parser.parse_args()
    {"train": train, "nll": nll, "speed": speed}[args.command](args)


if __name__ == "__main__":
    main()
