"""The corpora tunesmith knows, all offline.

A corpus lists its pieces (:class:`PieceSource`, cheap: no parsing) and loads one piece
into a :class:`symusic.Score` (slow for music21 formats, so :mod:`tunesmith.data.prepare`
does it in worker processes and caches the result).

* ``bach-chorales``: the Bach chorales shipped with music21, as four tracks Soprano, Alto,
  Tenor, Bass (instrumental doublings dropped; pieces without the four voices skipped);
* ``essen-folk`` and ``oneills``: the Essen folk song collection (Schaffrath, 1995) and
  O'Neill's *Music of Ireland* (1850) from music21's ABC files, one piece per tune, with
  the stable id ``file.abc#X-<number>``;
* ``jsb`` and ``nottingham``: the polyphonic piano-roll benchmarks
  (Boulanger-Lewandowski et al., ICML 2012) with their published train/valid/test split;
* ``folder:PATH``: every MIDI/ABC/MusicXML/kern file under a folder.

Corpora without a published split get a deterministic one from a hash of each piece id
(80/10/10, :func:`split_of`), independent of file order and of the other pieces.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from symusic import Score

from tunesmith.errors import ConfigError, MusicFileError
from tunesmith.music.io import (
    SUPPORTED_SUFFIXES,
    TIME_LIMIT,
    check_length,
    load_all,
    music21_to_score,
    parse_within,
)

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


def _walk(root: Path) -> list[tuple[str, int, int]]:
    """``(relative posix path, size, mtime_ns)`` of every visible file under ``root``,
    sorted (os.scandir: one stat per file, no Path objects for thousands of files)."""
    found = []
    stack = [(str(root), "")]
    while stack:
        folder, prefix = stack.pop()
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.name.startswith("."):
                    continue
                if entry.is_dir():
                    stack.append((entry.path, prefix + entry.name + "/"))
                elif entry.is_file():
                    st = entry.stat()
                    found.append((prefix + entry.name, st.st_size, st.st_mtime_ns))
    return sorted(found)


_TUNE_START = re.compile(r"(?m)^X:[ \t]*(\S*)")


def _read_text(path: Path) -> str:
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def split_abc_tunes(text: str) -> list[tuple[str, str]]:
    """Split a multi-tune ABC text into ``(X number, tune text)`` pairs.

    The file header (fields before the first ``X:``) applies to every tune, so it is
    copied into each tune right after its ``X:`` line.
    """
    starts = list(_TUNE_START.finditer(text))
    if not starts:
        return []
    header = "".join(
        line + "\n"
        for line in text[: starts[0].start()].splitlines()
        if re.match(r"^[A-Za-z]:", line)
    )
    tunes = []
    for i, match in enumerate(starts):
        end = starts[i + 1].start() if i + 1 < len(starts) else len(text)
        body = text[match.start() : end]
        first_line, _, rest = body.partition("\n")
        tunes.append((match.group(1) or str(i + 1), first_line + "\n" + header + rest))
    return tunes


def abc_tune_ids(path: Path, prefix: str) -> list[tuple[str, int]]:
    """``(piece id, tune index)`` of every tune of an ABC file, ids ``prefix#X-<number>``.

    A number repeated in the same file gets a ``~2``, ``~3``... suffix so ids stay unique.
    """
    seen: dict[str, int] = {}
    out = []
    for index, (number, _) in enumerate(split_abc_tunes(_read_text(path))):
        seen[number] = seen.get(number, 0) + 1
        suffix = f"~{seen[number]}" if seen[number] > 1 else ""
        out.append((f"{prefix}#X-{number}{suffix}", index))
    return out


_abc_cache: dict[str, list[tuple[str, str]]] = {}


def load_abc_tune(path: str | Path, tune: int) -> Score:
    """Parse one tune of a multi-tune ABC file (each tune alone: fast, and a bad tune
    does not spoil its neighbours)."""
    import music21

    path = Path(path)
    key = str(path)
    if key not in _abc_cache:
        _abc_cache.clear()  # workers walk files in order: keep only the current one
        _abc_cache[key] = split_abc_tunes(_read_text(path))
    tunes = _abc_cache[key]
    if not 0 <= tune < len(tunes):
        raise MusicFileError(path, f"has no tune #{tune + 1} (found {len(tunes)})")
    number, text = tunes[tune]
    where = f"{path}#X-{number}"
    try:
        stream = music21.converter.parse(text, format="abc", forceSource=True)
        if isinstance(stream, music21.stream.Opus):
            stream = stream.scores[0]
        score = music21_to_score(stream)
    except Exception as exc:
        raise MusicFileError(where, f"cannot parse ABC ({type(exc).__name__}: {exc})") from exc
    if score.note_num() == 0:
        raise MusicFileError(where, "the tune contains no notes")
    return score


def _load_tune(source: PieceSource, max_seconds: float | None, time_limit: float) -> Score:
    """One tune of a multi-tune ABC file, within the limits of :func:`tunesmith.music.load`."""
    where = f"{source.path}#{source.id.rpartition('#')[2]}"
    score = parse_within(where, time_limit, lambda: load_abc_tune(source.path, source.tune or 0))
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
        self.description = f"music files under {self.root}"

    def _listing(self) -> list[tuple[str, int, int]]:
        if self._files is None:
            self._files = _walk(self.root)
        return self._files

    def files(self) -> list[Path]:
        """Every visible file under the folder, sorted by relative path."""
        return [self.root / rel for rel, _, _ in self._listing()]

    def sources(self) -> tuple[list[PieceSource], list[tuple[str, str]]]:
        sources, skipped = [], []
        root = str(self.root)
        for rel, _, _ in self._listing():
            path = os.path.join(root, rel)
            suffix = os.path.splitext(rel)[1].lower()
            if suffix not in SUPPORTED_SUFFIXES:
                skipped.append((rel, f"not a music file tunesmith reads ({suffix or 'no ext'})"))
            elif suffix == ".abc":
                tunes = abc_tune_ids(Path(path), rel)
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
        return {"root": str(self.root), "files": listing}


def music21_corpus_dir() -> Path:
    """music21's bundled corpus folder, found without importing music21 (~1 s)."""
    import importlib.util

    spec = importlib.util.find_spec("music21")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("music21 is not installed; its corpus is needed for this corpus")
    return Path(next(iter(spec.submodule_search_locations))) / "corpus"


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

    def __init__(self, name: str, subfolder: str, description: str):
        folder = music21_corpus_dir() / subfolder
        if not folder.is_dir():
            raise ConfigError(f"music21's corpus has no {subfolder}/ folder ({folder})")
        super().__init__(folder, name=name)
        self.description = description

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

    def __init__(self, name: str, filename: str, steps_per_quarter: int, description: str,
                 path: str | Path | None = None):
        self.name = name
        self.description = description
        self.steps_per_quarter = steps_per_quarter
        self.file = find_benchmark_file(filename, path)
        self._rolls: dict[str, list[np.ndarray]] | None = None

    def rolls(self) -> dict[str, list[np.ndarray]]:
        if self._rolls is None:
            from tunesmith.data.polyphonic import load_polyphonic_mat

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
        return self.rolls()[source.split][source.tune]

    def load(self, source: PieceSource, max_seconds: float | None = None,
             time_limit: float = TIME_LIMIT) -> Score:
        """The roll as a one-track Score (held notes; repeated notes merge, as in the
        benchmark)."""
        from tunesmith.data.polyphonic import LOWEST_PITCH, N_KEYS
        from tunesmith.representations.pianoroll import PianorollConfig, decode

        cfg = PianorollConfig(resolution=self.steps_per_quarter, pitch_low=LOWEST_PITCH,
                              pitch_high=LOWEST_PITCH + N_KEYS - 1, track_names=["Piano"])
        return decode(self.roll(source), cfg)

    def fingerprint(self) -> dict:
        st = self.file.stat()
        return {"file": str(self.file), "size": st.st_size, "mtime": st.st_mtime_ns}


# --------------------------------------------------------------------------- registry

#: name -> one-line description (what `tunesmith data list` shows)
CORPORA = {
    "bach-chorales": "Bach chorales from music21's corpus, 4 tracks (Soprano, Alto, Tenor, Bass)",
    "essen-folk": "Essen folk songs (music21 essenFolksong/*.abc), ~8,500 monophonic tunes",
    "oneills": "O'Neill's Music of Ireland 1850 (music21 oneills1850/*.abc), ~2,000 tunes",
    "jsb": "JSB Chorales piano-roll benchmark (.mat), 1 frame per quarter, published split",
    "nottingham": "Nottingham piano-roll benchmark (.mat), 1 frame per eighth, published split",
    "folder:PATH": "every .mid/.midi/.abc/.xml/.mxl/.musicxml/.krn file under PATH",
}


def corpus_names() -> list[str]:
    return list(CORPORA)


def get_corpus(spec: str, path: str | Path | None = None) -> Corpus:
    """The corpus named by ``spec`` (a registry name, ``folder:PATH``, or a folder path).

    ``path`` points a corpus at its files: the folder (or ``.mat`` file) of the
    benchmarks, or a folder of chorale files for ``bach-chorales``.
    """
    if spec.startswith("folder:"):
        return FolderCorpus(spec[len("folder:"):])
    if spec == "bach-chorales":
        return BachChorales(path)
    if spec == "essen-folk":
        return AbcCollection("essen-folk", "essenFolksong", CORPORA["essen-folk"])
    if spec == "oneills":
        return AbcCollection("oneills", "oneills1850", CORPORA["oneills"])
    if spec == "jsb":
        return PolyphonicBenchmark("jsb", "JSB_Chorales.mat", 1, CORPORA["jsb"], path)
    if spec == "nottingham":
        return PolyphonicBenchmark("nottingham", "Nottingham.mat", 2, CORPORA["nottingham"], path)
    if Path(spec).expanduser().is_dir():
        return FolderCorpus(spec)
    raise ConfigError(
        f"unknown corpus {spec!r}; known: {', '.join(CORPORA)} (or a folder path)"
    )
