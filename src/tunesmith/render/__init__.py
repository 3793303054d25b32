"""Hearing and seeing scores: WAV through a SoundFont, PNG piano-rolls."""

from tunesmith.render.audio import default_soundfont, render_wav, synthesize, write_wav
from tunesmith.render.image import render_png

__all__ = ["default_soundfont", "render_png", "render_wav", "synthesize", "write_wav"]
