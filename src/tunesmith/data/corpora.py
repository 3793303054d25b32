"""The corpora tunesmith knows, all offline.

A corpus lists its pieces (:class:`PieceSource`, cheap: no parsing) and loads one piece
into a :class:`symusic.Score` (slow for music21 formats, so :mod:`tunesmith.data.prepare`
does it in worker processes and caches the result).

* ``bach-chorales``: the Bach chorales shipped with music21, as four tracks Soprano, Alto,
  Tenor, Bass (instrumental doublings dropped; pieces without the four voices skipped);
* ``essen-folk`` and ``oneills``: the Essen folk song collection (Schaffrath, 1995) and
  O'Neill's *Music of Ireland* (1850) from music21's ABC files, one piece per tune, with
  the stable id ``file.abc#X-<number>``;
* ``palestrina``: Palestrina's mass movements from music21's kern files, 4 to 6 voices
  as six tracks (the upper voices from the top, the lowest voice always last: see
  :class:`PalestrinaMasses`), split by mass;
* ``jsb`` and ``nottingham``: the polyphonic piano-roll benchmarks
  (Boulanger-Lewandowski et al., ICML 2012) with their published train/valid/test split,
  found by :func:`find_benchmark_file` (the one locator of benchmark files);
  ``mat:PATH``: any ``.mat`` file of their layout;
* ``groove`` (``groove-beats`` without fills): the Groove MIDI Dataset's 4/4 drum
  performances in GMD's layout (``info.csv``), with GMD's split (:class:`GrooveCorpus`);
* ``folder:PATH``: every MIDI/ABC/MusicXML/kern file under a folder.

Corpora without a published split get a deterministic one from a hash of each piece id
(80/10/10, :func:`split_of`), independent of file order and of the other pieces
(``palestrina`` hashes the mass title instead, so a mass's movements share a split).

Each corpus says where its pieces come from and under what terms (``source``), which
shipped pretrained models repeat in their cards.
"""

from __future__ import annotations

import errno
import hashlib
import itertools
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from symusic import Score

from tunesmith.data.polyphonic import LOWEST_PITCH, N_KEYS, STEPS_PER_QUARTER, load_polyphonic_mat
from tunesmith.errors import ConfigError, MusicFileError
from tunesmith.music.abc import render_tunes, split_abc_tunes, tune_score
from tunesmith.music.io import (
    LOADER_VERSION,
    MUSIC21_TPQ,
    SUPPORTED_SUFFIXES,
    TIME_LIMIT,
    check_length,
    load_all,
    parse_abc,
    parse_within,
    read_text,
)
from tunesmith.representations.pianoroll import PianorollConfig, decode

SPLITS = ("train", "valid", "test")
#: fractions of the hash split, in the order of SPLITS
SPLIT_FRACTIONS = (0.8, 0.1, 0.1)

SATB = ("Soprano", "Alto", "Tenor", "Bass")


def split_of(piece_id: str, fractions: tuple[float, float, float] = SPLIT_FRACTIONS) -> str:
    """The split of a piece, from a hash of its id alone (same id -> same split, always)."""
    digest = hashlib.sha256(piece_id.encode("utf-8")).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64  # uniform in [0, 1)
    if u < fractions[0]:
        return "train"
    if u < fractions[0] + fractions[1]:
        return "valid"
    return "test"


@dataclass(frozen=True)
class PieceSource:
    """Where one piece comes from: a file, or one tune of a multi-tune ABC file."""

    id: str  # stable piece id, unique within the corpus
    path: str  # the file
    tune: int | None = None  # index of the tune in a multi-tune ABC file (0-based)
    split: str | None = None  # published split, when the corpus has one


class Corpus:
    """A collection of pieces. Subclasses fill in :meth:`sources` and :meth:`load`."""

    name: str = ""  # registry name (or "folder:/abs/path")
    description: str = ""
    #: "scores": pieces are loaded as Scores; "rolls": pieces are benchmark piano-rolls
    kind: str = "scores"
    #: fixed track names of every piece (chorales: SATB), or None when pieces vary
    track_layout: tuple[str, ...] | None = None
    #: General MIDI programs of those tracks
    track_programs: tuple[int, ...] | None = None
    #: pieces have one melody line (pick no track, merge nothing)
    monophonic: bool = False
    #: where the pieces come from and under what terms (shown in pretrained models' cards)
    source: str = "the user's own files"
    #: how pieces are split (written into the prepared data)
    split_method: str = "hash of piece id (80/10/10)"

    def sources(self) -> tuple[list[PieceSource], list[tuple[str, str]]]:
        """Every piece (sorted by id) and the files skipped before parsing (id, reason)."""
        raise NotImplementedError

    def load(self, source: PieceSource, max_seconds: float | None = None,
             time_limit: float = TIME_LIMIT) -> Score:
        """One piece as a Score. Raises MusicFileError naming the file and the reason (a
        piece past ``max_seconds`` or ``time_limit`` too: see :func:`~tunesmith.music.load`)."""
        raise NotImplementedError

    def split(self, source: PieceSource) -> str:
        return source.split or split_of(source.id)

    def fingerprint(self) -> dict:
        """What identifies this corpus's content for the cache key (paths, sizes, mtimes)."""
        raise NotImplementedError


# --------------------------------------------------------------------------- file corpora


def _walk(root: Path) -> tuple[list[tuple[str, int, int]], list[tuple[str, str]]]:
    """``(relative posix path, size, mtime_ns)`` of every visible file under ``root``,
    sorted (os.scandir: one stat per file, no Path objects for thousands of files), and
    ``(relative path, reason)`` of what could not be listed.

    Symbolic links are followed, but a folder is listed once: a link back to an
    enclosing folder (a loop) or to a folder already listed is reported, as are broken
    links and folders that cannot be read. Real folders are listed before linked ones,
    so a file keeps its real path as its id.
    """
    found, problems = [], []
    seen: dict[tuple[int, int], str] = {}  # (device, inode) of each folder listed -> its path
    stack: list[tuple[str, str]] = [(str(root), "")]
    linked: list[tuple[str, str]] = []  # folders reached through a link, listed last
    while stack or linked:
        folder, prefix = stack.pop() if stack else linked.pop()
        where = prefix.rstrip("/") or "."
        try:
            st = os.stat(folder)
            if (st.st_dev, st.st_ino) in seen:
                first = seen[(st.st_dev, st.st_ino)]
                if first == "." or where.startswith(first + "/"):
                    target = "the corpus folder" if first == "." else repr(first)
                    problems.append((where, f"symbolic link loop: leads back to {target}"))
                else:
                    problems.append((where, f"symbolic link to a folder already listed as "
                                     f"{first!r}"))
                continue
            seen[(st.st_dev, st.st_ino)] = where
            with os.scandir(folder) as scan:
                entries = sorted(scan, key=lambda e: e.name)
        except OSError as exc:
            problems.append((where, f"cannot list the folder ({exc.strerror or exc})"))
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            rel = prefix + entry.name
            try:
                if entry.is_dir():
                    (linked if entry.is_symlink() else stack).append((entry.path, rel + "/"))
                elif entry.is_file():
                    st = entry.stat()
                    found.append((rel, st.st_size, st.st_mtime_ns))
                elif entry.is_symlink():
                    problems.append((rel, _broken_link_reason(entry.path)))
            except OSError as exc:  # e.g. ELOOP from a link to itself
                problems.append((rel, _broken_link_reason(entry.path) if entry.is_symlink()
                                 else f"cannot read ({exc.strerror or exc})"))
    return sorted(found), sorted(problems)


def _broken_link_reason(path: str) -> str:
    """Why a symbolic link leads nowhere: a loop of links, or a missing target."""
    try:
        os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "symbolic link loop (the link leads back to itself)"
        return f"broken symbolic link ({exc.strerror or exc})"
    return "not a regular file or folder"


def abc_tune_ids(path: Path, prefix: str) -> list[tuple[str, int]]:
    """``(piece id, tune index)`` of every tune of an ABC file, ids ``prefix#X-<number>``.

    A number repeated in the same file gets a ``~2``, ``~3``... suffix so ids stay unique.
    """
    seen: dict[str, int] = {}
    out = []
    for index, (number, _) in enumerate(split_abc_tunes(read_text(path))):
        seen[number] = seen.get(number, 0) + 1
        suffix = f"~{seen[number]}" if seen[number] > 1 else ""
        out.append((f"{prefix}#X-{number}{suffix}", index))
    return out


#: the ABC file a worker is on: its path, its tunes, abc2midi's renditions of them
_abc_file: dict[str, Any] = {}


def load_abc_tune(path: str | Path, tune: int, time_limit: float = TIME_LIMIT) -> Score:
    """One tune of a multi-tune ABC file. abc2midi renders the whole file once (one
    process for hundreds of tunes; workers walk files in order, so only the current
    file is kept) and each tune is read on its own, so a bad tune does not spoil its
    neighbours; music21 reads the tunes abc2midi cannot (:mod:`tunesmith.music.abc`)."""
    path = Path(path)
    if _abc_file.get("path") != str(path):
        _abc_file.clear()
        tunes = split_abc_tunes(read_text(path))
        _abc_file.update(path=str(path), tunes=tunes,
                         rendered=render_tunes([text for _, text in tunes], time_limit))
    tunes = _abc_file["tunes"]
    if not 0 <= tune < len(tunes):
        raise MusicFileError(path, f"has no tune #{tune + 1} (found {len(tunes)})")
    number, text = tunes[tune]
    where = f"{path}#X-{number}"
    score = tune_score(_abc_file["rendered"][tune], text)
    if isinstance(score, str):
        parsed = parse_abc(text, where)
        score = parsed[0] if parsed else Score(MUSIC21_TPQ)
    if score.note_num() == 0:
        raise MusicFileError(where, "the tune contains no notes")
    return score


def _load_tune(source: PieceSource, max_seconds: float | None, time_limit: float) -> Score:
    """One tune of a multi-tune ABC file, within the limits of :func:`tunesmith.music.load`."""
    where = f"{source.path}#{source.id.rpartition('#')[2]}"
    score = parse_within(where, time_limit, lambda: load_abc_tune(source.path, source.tune or 0,
                                                             time_limit))
    check_length(score, where, max_seconds)
    return score


class FolderCorpus(Corpus):
    """Every music file under a folder (recursively); ids are paths relative to it."""

    def __init__(self, root: str | Path, name: str | None = None):
        self.root = Path(root).expanduser().resolve()
        if not self.root.is_dir():
            raise ConfigError(f"corpus folder {self.root} does not exist or is not a folder")
        self.name = name or f"folder:{self.root}"
        self._files: list[tuple[str, int, int]] | None = None  # listed once, on demand
        self._unlisted: list[tuple[str, str]] = []  # (path, reason) the walk could not list
        self.description = f"music files under {self.root}"

    def _listing(self) -> list[tuple[str, int, int]]:
        if self._files is None:
            self._files, self._unlisted = _walk(self.root)
        return self._files

    def files(self) -> list[Path]:
        """Every visible file under the folder, sorted by relative path."""
        return [self.root / rel for rel, _, _ in self._listing()]

    def sources(self) -> tuple[list[PieceSource], list[tuple[str, str]]]:
        listing = self._listing()  # also notes what the walk could not list
        sources, skipped = [], list(self._unlisted)
        root = str(self.root)
        for rel, _, _ in listing:
            path = os.path.join(root, rel)
            suffix = os.path.splitext(rel)[1].lower()
            if suffix not in SUPPORTED_SUFFIXES:
                skipped.append((rel, f"not a music file tunesmith reads ({suffix or 'no ext'})"))
            elif suffix == ".abc":
                try:
                    tunes = abc_tune_ids(Path(path), rel)
                except OSError as exc:
                    skipped.append((rel, f"cannot read ({exc.strerror or exc})"))
                    continue
                if len(tunes) > 1:
                    sources += [PieceSource(i, path, tune=t) for i, t in tunes]
                else:
                    sources.append(PieceSource(rel, path))
            else:
                sources.append(PieceSource(rel, path))
        return sorted(sources, key=lambda s: s.id), skipped

    def load(self, source: PieceSource, max_seconds: float | None = None,
             time_limit: float = TIME_LIMIT) -> Score:
        if source.tune is not None:
            return _load_tune(source, max_seconds, time_limit)
        return load_all(source.path, max_seconds, time_limit)[0]

    def fingerprint(self) -> dict:
        listing = hashlib.sha256(repr(self._listing()).encode()).hexdigest()
        return {"root": str(self.root), "files": listing, "loader": LOADER_VERSION}


def music21_corpus_dir() -> Path:
    """music21's bundled corpus folder, found without importing music21 (~1 s)."""
    import importlib.util

    spec = importlib.util.find_spec("music21")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("music21 is not installed; its corpus is needed for this corpus")
    return Path(next(iter(spec.submodule_search_locations))) / "corpus"


#: music21's corpus/license.txt, in one line
MUSIC21_TERMS = ("distributed with music21 (BSD-licensed software); the encodings are used with "
                 "their encoders' permission, some not for commercial use: see music21's "
                 "corpus/license.txt")


def _music21_version() -> str:
    from importlib.metadata import version

    return version("music21")


class BachChorales(FolderCorpus):
    """Bach's chorales from music21's corpus as four tracks: Soprano, Alto, Tenor, Bass.

    Parts are matched by name (the first word of ``Soprano Oboe 1 Violin1`` counts);
    instrumental parts are dropped. A piece with no voice names but exactly four parts
    (the kern files) takes them as SATB when their mean pitches descend. Anything else
    (two soprano parts, a keyboard piece, a roman-numeral analysis) is skipped with
    the reason.
    """

    track_layout = SATB
    track_programs = (52, 52, 52, 52)  # GM "Choir Aahs"
    source = f"J. S. Bach's chorales as encoded in music21's corpus, {MUSIC21_TERMS}"

    def __init__(self, root: str | Path | None = None):
        if root is None:
            root = music21_corpus_dir() / "bach"
            if not root.is_dir():
                raise ConfigError(f"music21's corpus has no Bach folder ({root})")
        super().__init__(root, name="bach-chorales")
        self.description = "Bach chorales from music21 (4 voices: SATB)"

    def sources(self) -> tuple[list[PieceSource], list[tuple[str, str]]]:
        sources, skipped = super().sources()
        skipped = [
            (i, "roman-numeral analysis, not a score" if i.endswith(".rntxt") else r)
            for i, r in skipped
        ]
        return sources, skipped

    def load(self, source: PieceSource, max_seconds: float | None = None,
             time_limit: float = TIME_LIMIT) -> Score:
        return select_satb(super().load(source, max_seconds, time_limit), source.path)

    def fingerprint(self) -> dict:
        return {**super().fingerprint(), "music21": _music21_version()}


def _voice_of(name: str) -> str | None:
    words = re.split(r"[\s\r\n,.;:/]+", name.strip().lower())
    first = re.sub(r"\d+$", "", words[0]) if words and words[0] else ""
    return {"soprano": "Soprano", "alto": "Alto", "tenor": "Tenor", "bass": "Bass"}.get(first)


def select_satb(score: Score, where: str | Path = "") -> Score:
    """Keep the four voices of a chorale, in SATB order, named Soprano, Alto, Tenor, Bass."""
    tracks = [t for t in score.tracks if t.note_num() > 0]
    voices: dict[str, list] = {v: [] for v in SATB}
    for track in tracks:
        voice = _voice_of(track.name)
        if voice:
            voices[voice].append(track)
    if all(len(v) == 0 for v in voices.values()) and len(tracks) == 4:
        means = [float(np.mean(t.notes.numpy()["pitch"])) for t in tracks]
        if all(a > b for a, b in itertools.pairwise(means)):
            voices = {v: [t] for v, t in zip(SATB, tracks, strict=True)}
    problems = [
        f"{len(voices[v])} {v.lower()} parts" for v in SATB if len(voices[v]) != 1
    ]
    if all(not voices[v] for v in SATB):
        problems = ["no part named Soprano, Alto, Tenor or Bass"]
    if problems:
        names = ", ".join(repr(t.name) for t in score.tracks)
        raise MusicFileError(where, f"not a 4-part SATB chorale ({'; '.join(problems)}: {names})")
    out = Score(score.ticks_per_quarter)
    out.tempos = score.tempos.copy()
    out.time_signatures = score.time_signatures.copy()
    out.key_signatures = score.key_signatures.copy()
    for voice in SATB:
        track = voices[voice][0].copy()
        track.name = voice
        track.program = BachChorales.track_programs[0]
        out.tracks.append(track)
    return out


class AbcCollection(FolderCorpus):
    """A folder of music21's multi-tune ABC files, one piece per tune."""

    monophonic = True

    def __init__(self, name: str, subfolder: str, description: str, source: str = ""):
        folder = music21_corpus_dir() / subfolder
        if not folder.is_dir():
            raise ConfigError(f"music21's corpus has no {subfolder}/ folder ({folder})")
        super().__init__(folder, name=name)
        self.description = description
        self.source = source or f"music21's corpus {subfolder}/, {MUSIC21_TERMS}"

    def sources(self) -> tuple[list[PieceSource], list[tuple[str, str]]]:
        sources, skipped = [], []
        for path in self.files():
            if path.suffix.lower() != ".abc":
                continue
            tunes = abc_tune_ids(path, path.name)
            if not tunes:
                skipped.append((path.name, "no tune (no X: line) in the file"))
            sources += [PieceSource(i, str(path), tune=t) for i, t in tunes]
        return sorted(sources, key=lambda s: s.id), skipped

    def load(self, source: PieceSource, max_seconds: float | None = None,
             time_limit: float = TIME_LIMIT) -> Score:
        return _load_tune(source, max_seconds, time_limit)

    def fingerprint(self) -> dict:
        return {**super().fingerprint(), "music21": _music21_version()}


#: the six tracks of ``palestrina``: the top voice, four inner slots, the lowest voice
PALESTRINA_TRACKS = ("Cantus", "Voice 2", "Voice 3", "Voice 4", "Voice 5", "Bassus")


def kern_header(path: str | Path) -> tuple[int, str]:
    """(number of ``**kern`` spines, ``!!!OPR`` title) of a Humdrum file, from its text
    alone (milliseconds, where music21 takes about a second to parse a movement)."""
    spines, title = 0, ""
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            if line.startswith("!!!OPR:") and not title:
                title = line.partition(":")[2].strip()
            elif line.startswith("**"):
                spines = sum(s == "**kern" for s in line.rstrip("\n").split("\t"))
                break
    return spines, title


class PalestrinaMasses(FolderCorpus):
    """Palestrina's mass movements from music21's corpus (Humdrum kern), 4 to 6 voices
    as six tracks: ``Cantus, Voice 2 ... Voice 5, Bassus``.

    Track layout: the movements have 3 to 8 voices (1,318 files: 498 in four voices, 477
    in five, 216 in six); the 4-6 voice ones (1,191) are kept, the others skipped with
    their count. The voices fill the six tracks in score order (top voice first), except
    that the **lowest voice always goes to the last track** and unused inner tracks stay
    empty: a 4-voice movement is ``Cantus, Altus, Tenor, -, -, Bassus``, a 6-voice one
    ``Cantus 1, Cantus 2, Altus, Tenor 1, Tenor 2, Bassus``. Why: the outer voices have
    the most distinct roles (the top line, and the bass that carries the harmony and the
    cadences), so a model sees the same kind of line in the first and last tracks of
    every piece; the inner voices move within overlapping ranges (Altus and two Tenors),
    so which inner slot holds which of them matters less. Padding at the bottom instead
    would put the bass in track 4, 5 or 6 depending on the piece. Grouping voices by
    range into four SATB tracks would merge two tenors into one track and lose the
    lines (and their unisons). Each track keeps one voice, so voice activity and voice
    leading stay per voice; the number of voices of a piece shows as empty tracks.

    Split: 80/10/10 by a hash of the **mass title** (the file's ``!!!OPR`` line, 101
    masses), not of the file: the movements of one mass share their model material
    (a parody or paraphrase mass reworks the same motet or chant in every movement),
    so a per-file split would put near-copies of test passages in train.
    """

    track_layout = PALESTRINA_TRACKS
    track_programs = (52,) * 6  # GM "Choir Aahs"
    split_method = "hash of the mass title (80/10/10 by mass)"
    source = ("Palestrina's masses, Humdrum kern encodings in music21's corpus "
              "(palestrina/), " + MUSIC21_TERMS)
    VOICES = (4, 6)  # fewest and most voices kept

    def __init__(self, root: str | Path | None = None):
        if root is None:
            root = music21_corpus_dir() / "palestrina"
            if not root.is_dir():
                raise ConfigError(f"music21's corpus has no palestrina folder ({root})")
        super().__init__(root, name="palestrina")
        self.description = CORPORA["palestrina"]

    def sources(self) -> tuple[list[PieceSource], list[tuple[str, str]]]:
        found, skipped = super().sources()
        sources = []
        low, high = self.VOICES
        for source in found:
            if not source.id.lower().endswith(".krn"):
                skipped.append((source.id, "not a kern file"))
                continue
            try:
                spines, title = kern_header(source.path)
            except OSError as exc:
                skipped.append((source.id, f"cannot read ({exc.strerror or exc})"))
                continue
            if not low <= spines <= high:
                skipped.append((source.id, f"{spines} voices (kept: {low} to {high})"))
                continue
            split = split_of(f"mass:{title}") if title else None  # untitled: by file
            sources.append(PieceSource(source.id, source.path, split=split))
        return sources, sorted(skipped)

    def load(self, source: PieceSource, max_seconds: float | None = None,
             time_limit: float = TIME_LIMIT) -> Score:
        return palestrina_tracks(super().load(source, max_seconds, time_limit), source.path)

    def fingerprint(self) -> dict:
        return {**super().fingerprint(), "music21": _music21_version(), "layout": 1}


def palestrina_tracks(score: Score, where: str | Path = "") -> Score:
    """The 4-6 voices of a movement on the six tracks of :data:`PALESTRINA_TRACKS`:
    upper voices from the first track in score order, the lowest voice in the last."""
    from symusic import Track

    voices = [t for t in score.tracks if t.note_num() > 0 and not t.is_drum]
    low, high = PalestrinaMasses.VOICES
    if not low <= len(voices) <= high:
        raise MusicFileError(where, f"has {len(voices)} voices with notes (kept: {low} to {high})")
    slots: list = [*voices[:-1], *[None] * (len(PALESTRINA_TRACKS) - len(voices)), voices[-1]]
    out = Score(score.ticks_per_quarter)
    out.tempos = score.tempos.copy()
    out.time_signatures = score.time_signatures.copy()
    out.key_signatures = score.key_signatures.copy()
    for name, voice in zip(PALESTRINA_TRACKS, slots, strict=True):
        track = voice.copy() if voice is not None else Track(name, 52, False)
        track.name = name
        track.program = 52
        out.tracks.append(track)
    return out


# --------------------------------------------------------------------------- benchmark rolls

#: default locations of the benchmark .mat files, tried in order (after $TUNESMITH_BENCHMARKS)
_REPO_ROOT = Path(__file__).resolve().parents[3]
BENCHMARK_DIRS = (
    Path("../shared/benchmarks/polyphonic"),
    _REPO_ROOT.parent / "shared" / "benchmarks" / "polyphonic",
)


def find_benchmark_file(filename: str, path: str | Path | None = None) -> Path:
    """Locate a benchmark ``.mat``: ``path`` (a folder or the file itself), else
    ``$TUNESMITH_BENCHMARKS``, else ``../shared/benchmarks/polyphonic`` relative to the
    current folder, then to the repository."""
    if path is not None:
        candidates = [Path(path)]
    else:
        env = os.environ.get("TUNESMITH_BENCHMARKS")
        candidates = ([Path(env)] if env else []) + list(BENCHMARK_DIRS)
    tried = []
    for candidate in candidates:
        candidate = candidate.expanduser()
        file = candidate if candidate.suffix.lower() == ".mat" else candidate / filename
        tried.append(str(file))
        if file.is_file():
            return file.resolve()
    raise ConfigError(
        f"cannot find {filename}; tried {', '.join(tried)} "
        "(pass --path FOLDER_OR_FILE or set TUNESMITH_BENCHMARKS)"
    )


class PolyphonicBenchmark(Corpus):
    """A piano-roll benchmark in the published ``.mat`` layout, split kept exactly.

    Pieces are ``(frames, 88)`` 0/1 rolls (MIDI 21-108), ids ``train/0007``.
    """

    kind = "rolls"
    track_layout = ("Piano",)
    track_programs = (0,)
    split_method = "published"
    source = ("the polyphonic music benchmark of Boulanger-Lewandowski, Bengio & Vincent "
              "(ICML 2012), piano-rolls as published by its authors for research use")

    def __init__(self, name: str, filename: str, steps_per_quarter: int, description: str,
                 path: str | Path | None = None):
        self.name = name
        self.description = description
        self.steps_per_quarter = steps_per_quarter
        self.file = find_benchmark_file(filename, path)
        self._rolls: dict[str, list[np.ndarray]] | None = None

    def rolls(self) -> dict[str, list[np.ndarray]]:
        if self._rolls is None:
            self._rolls = load_polyphonic_mat(self.file)
        return self._rolls

    def sources(self) -> tuple[list[PieceSource], list[tuple[str, str]]]:
        return [
            PieceSource(f"{split}/{i:04d}", str(self.file), tune=i, split=split)
            for split in SPLITS
            for i in range(len(self.rolls()[split]))
        ], []

    def roll(self, source: PieceSource) -> np.ndarray:
        """The ``(frames, 88)`` uint8 roll of one piece."""
        assert source.split is not None and source.tune is not None  # set by sources()
        return self.rolls()[source.split][source.tune]

    def load(self, source: PieceSource, max_seconds: float | None = None,
             time_limit: float = TIME_LIMIT) -> Score:
        """The roll as a one-track Score (held notes; repeated notes merge, as in the
        benchmark)."""
        cfg = PianorollConfig(resolution=self.steps_per_quarter, pitch_low=LOWEST_PITCH,
                              pitch_high=LOWEST_PITCH + N_KEYS - 1, track_names=["Piano"])
        return decode(self.roll(source), cfg)

    def fingerprint(self) -> dict:
        st = self.file.stat()
        return {"file": str(self.file), "size": st.st_size, "mtime": st.st_mtime_ns}


# --------------------------------------------------------------------------- groove (GMD)

GMD_TERMS = ("the Groove MIDI Dataset (Gillick, Roberts, Engel, Eck & Bamman, ICML 2019; "
             "https://magenta.tensorflow.org/datasets/groove), released by Google LLC under "
             "the Creative Commons Attribution 4.0 International license (CC BY 4.0)")
#: default locations of the Groove MIDI Dataset, tried in order (after $TUNESMITH_GROOVE)
GROOVE_DIRS = (Path("../shared/datasets/groove"), _REPO_ROOT.parent / "shared" / "datasets"
               / "groove")
_GMD_SPLITS = {"train": "train", "validation": "valid", "test": "test"}


def find_groove_folder(path: str | Path | None = None) -> Path:
    """The Groove MIDI Dataset folder (holding ``info.csv``): ``path``, else
    ``$TUNESMITH_GROOVE``, else ``../shared/datasets/groove`` from here, then from the
    repository."""
    env = os.environ.get("TUNESMITH_GROOVE")
    candidates = [Path(path)] if path is not None else (
        ([Path(env)] if env else []) + list(GROOVE_DIRS))
    for candidate in candidates:
        if (candidate.expanduser() / "info.csv").is_file():
            return candidate.expanduser().resolve()
    raise ConfigError(f"cannot find the Groove MIDI Dataset (info.csv) in "
                      f"{', '.join(str(c) for c in candidates)} (pass --path FOLDER or set "
                      "TUNESMITH_GROOVE)")


class GrooveCorpus(Corpus):
    """The Groove MIDI Dataset in its own layout: ``info.csv`` lists each performance
    (drummer, style, bpm, beat or fill, time signature, MIDI file, split).

    Pieces are the MIDI files of 4/4 performances (other meters are skipped with their
    reason), ids are the file paths without ``.mid``, and the split is GMD's own
    (``validation`` is tunesmith's ``valid``). ``fills=False`` keeps the beats only.
    """

    split_method = "published"
    source = GMD_TERMS

    def __init__(self, path: str | Path | None = None, fills: bool = True):
        self.root = find_groove_folder(path)
        self.fills = fills
        self.name = "groove" if fills else "groove-beats"
        self.description = CORPORA[self.name]
        self._rows: list[dict[str, str]] | None = None

    def rows(self) -> list[dict[str, str]]:
        """The rows of ``info.csv`` (dicts by column name)."""
        if self._rows is None:
            import csv

            with open(self.root / "info.csv", newline="", encoding="utf-8") as f:
                self._rows = list(csv.DictReader(f))
            needed = {"midi_filename", "split", "time_signature", "beat_type", "style", "bpm"}
            if self._rows and not needed <= set(self._rows[0]):
                raise ConfigError(f"{self.root / 'info.csv'}: missing columns "
                                  f"{', '.join(sorted(needed - set(self._rows[0])))}")
        return self._rows

    def row_of(self, piece_id: str) -> dict[str, str]:
        """The info.csv row of a piece id."""
        for row in self.rows():
            if row["midi_filename"].removesuffix(".mid") == piece_id:
                return row
        raise ConfigError(f"{piece_id!r} is not a performance of {self.root / 'info.csv'}")

    def sources(self) -> tuple[list[PieceSource], list[tuple[str, str]]]:
        sources, skipped = [], []
        for row in self.rows():
            piece_id = row["midi_filename"].removesuffix(".mid")
            if row["time_signature"] != "4-4":
                meter = row["time_signature"].replace("-", "/")
                skipped.append((piece_id, f"time signature {meter} is not 4/4"))
            elif not self.fills and row["beat_type"] == "fill":
                continue
            elif row["split"] not in _GMD_SPLITS:
                skipped.append((piece_id, f"unknown split {row['split']!r} in info.csv"))
            else:
                sources.append(PieceSource(piece_id, str(self.root / row["midi_filename"]),
                                           split=_GMD_SPLITS[row["split"]]))
        return sorted(sources, key=lambda s: s.id), skipped

    def load(self, source: PieceSource, max_seconds: float | None = None,
             time_limit: float = TIME_LIMIT) -> Score:
        return load_all(source.path, max_seconds, time_limit)[0]

    def fingerprint(self) -> dict:
        st = (self.root / "info.csv").stat()
        return {"root": str(self.root), "info": [st.st_size, st.st_mtime_ns],
                "fills": self.fills, "loader": LOADER_VERSION}


# --------------------------------------------------------------------------- registry

#: name -> one-line description (what `tunesmith data list` shows)
CORPORA = {
    "bach-chorales": "Bach chorales from music21's corpus, 4 tracks (Soprano, Alto, Tenor, Bass)",
    "essen-folk": "Essen folk songs (music21 essenFolksong/*.abc), ~8,500 monophonic tunes",
    "palestrina": "Palestrina's masses (music21 palestrina/*.krn), 4-6 voices as 6 tracks, "
                  "~1,190 movements",
    "oneills": "O'Neill's Music of Ireland 1850 (music21 oneills1850/*.abc), ~2,000 tunes",
    "jsb": "JSB Chorales piano-roll benchmark (.mat), 1 frame per quarter, published split",
    "nottingham": "Nottingham piano-roll benchmark (.mat), 1 frame per eighth, published split",
    "groove": "Groove MIDI Dataset (GMD, CC BY 4.0): 1,150 drum performances by 10 drummers, "
              "4/4 beats and fills, GMD's split (--path FOLDER)",
    "groove-beats": "the beats of the Groove MIDI Dataset, without the fills",
    "mat:PATH": "a piano-roll .mat file in the benchmarks' layout (traindata/validdata/testdata)",
    "folder:PATH": "every .mid/.midi/.abc/.xml/.mxl/.musicxml/.krn file under PATH",
}


def corpus_names() -> list[str]:
    return list(CORPORA)


def get_corpus(spec: str, path: str | Path | None = None) -> Corpus:
    """The corpus named by ``spec`` (a registry name, ``folder:PATH``, or a folder path).

    ``path`` points a corpus at its files: the folder (or ``.mat`` file) of the
    benchmarks, or a folder of chorale (kern) files for ``bach-chorales``
    (``palestrina``).
    """
    if spec.startswith("folder:"):
        return FolderCorpus(spec[len("folder:"):])
    if spec == "bach-chorales":
        return BachChorales(path)
    if spec == "essen-folk":
        return AbcCollection("essen-folk", "essenFolksong", CORPORA["essen-folk"],
                             source="the Essen folk song collection (Schaffrath, 1995) in "
                                    f"music21's corpus (essenFolksong/), {MUSIC21_TERMS}")
    if spec == "palestrina":
        return PalestrinaMasses(path)
    if spec == "oneills":
        return AbcCollection("oneills", "oneills1850", CORPORA["oneills"],
                             source="O'Neill's Music of Ireland (1850, public domain) in "
                                    f"music21's corpus (oneills1850/), {MUSIC21_TERMS}")
    if spec == "jsb":
        return PolyphonicBenchmark("jsb", "JSB_Chorales.mat", 1, CORPORA["jsb"], path)
    if spec == "nottingham":
        return PolyphonicBenchmark("nottingham", "Nottingham.mat", 2, CORPORA["nottingham"], path)
    if spec in ("groove", "groove-beats"):
        return GrooveCorpus(path, fills=spec == "groove")
    if spec.startswith("mat:"):
        file = Path(spec[len("mat:"):]).expanduser()
        if file.suffix.lower() != ".mat":
            raise ConfigError(f"{spec}: a mat: corpus names a .mat file")
        return PolyphonicBenchmark(f"mat:{file.resolve()}", file.name,
                                   STEPS_PER_QUARTER.get(file.stem, 1),
                                   f"piano-rolls of {file.name}", file)
    if Path(spec).expanduser().is_dir():
        return FolderCorpus(spec)
    raise ConfigError(
        f"unknown corpus {spec!r}; known: {', '.join(CORPORA)} (or a folder path)"
    )
