"""Waveforms, no models: load/save (soundfile), resample (soxr), μ-law, STFT/mel features,
SoundFont synthesis. The audio domain's lowest layer, beside :mod:`tunesmith.music`."""
