"""The file-named emotional-speech corpora by name: what ``emoreason data import KIND`` and
``emoreason demo --corpus KIND:PATH`` accept.

Each kind names its scanning module (imported on first use, so ``--help`` stays instant), its
default number of speaker folds and where users get it. :func:`import_corpus` scans and imports.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from emoreason.errors import UserError

if TYPE_CHECKING:  # the CLI reads KINDS to build its parsers: keep numpy / audio out of that import
    from emoreason.data.importers.common import ImportSummary
    from emoreason.data.importers.named import Scan, SplitOptions, Transcriber


@dataclass(frozen=True)
class CorpusKind:
    """One importable corpus."""

    name: str
    module: str
    title: str
    folds: int
    """Default number of speaker folds (leave-k-speakers-out; k = speakers / folds)."""
    official: bool
    """The release defines its own split (``--split-by official``), used by default when it is speaker-based."""
    default_split: str
    url: str
    licence: str
    layout: str

    def scan(self, root: str | Path, **options: Any) -> Scan:
        module = importlib.import_module(f"emoreason.data.importers.{self.module}")
        return module.scan(Path(root), **options)


KINDS: dict[str, CorpusKind] = {k.name: k for k in (
    CorpusKind("ravdess", "ravdess", "RAVDESS (speech part)", 6, False, "speaker",
               "https://zenodo.org/record/1188976", "CC BY-NC-SA 4.0",
               "Actor_01/03-01-05-01-01-01-01.wav ..."),
    CorpusKind("cremad", "cremad", "CREMA-D", 5, False, "speaker",
               "https://github.com/CheyneyComputerScience/CREMA-D", "Open Database License (ODbL)",
               "AudioWAV/1001_DFA_ANG_XX.wav ..."),
    CorpusKind("tess", "tess", "TESS (Toronto emotional speech set)", 2, False, "speaker",
               "https://tspace.library.utoronto.ca/handle/1807/24487", "see the release page",
               "OAF_angry/OAF_back_angry.wav ..."),
    CorpusKind("emodb", "emodb", "EmoDB (Berlin database of emotional speech)", 5, False, "speaker",
               "http://emodb.bilderbar.info/", "free download; see the release page",
               "wav/03a01Fa.wav ..."),
    CorpusKind("savee", "savee", "SAVEE (Surrey audio-visual expressed emotion)", 4, False, "speaker",
               "http://kahlan.eps.surrey.ac.uk/savee/", "free for research, registration required",
               "AudioData/DC/a01.wav or DC_a01.wav ..."),
    CorpusKind("esd", "esd", "ESD (Emotional Speech Dataset), English speakers", 5, True, "speaker",
               "https://hltsingapore.github.io/ESD/", "research use, licence agreement required",
               "0011/0011.txt, 0011/Angry/[train/]0011_000351.wav ..."),
    CorpusKind("msppodcast", "msppodcast", "MSP-Podcast", 5, True, "official",
               "https://ecs.utdallas.edu/research/researchlabs/msp-lab/MSP-Podcast.html",
               "academic licence agreement (UT Dallas)", "Labels/labels_consensus.csv, Audios/*.wav"),
)}


def get_kind(name: str) -> CorpusKind:
    kind = KINDS.get(name.lower().replace("-", "").replace("_", ""))
    if kind is None:
        raise UserError(f"unknown corpus {name!r} (known: {', '.join(KINDS)})")
    return kind


def import_corpus(kind: str, root: str | Path, out_dir: str | Path, *, options: SplitOptions | None = None,
                  tasks: str | None = None, emotions: Sequence[str] | None = None,
                  transcriber: Transcriber | None = None, transcriber_name: str | None = None,
                  scan_options: dict[str, Any] | None = None) -> ImportSummary:
    """Scan ``root`` as corpus ``kind`` and import it into ``out_dir`` (:func:`import_clips`).

    ``options``: the split; default: the kind's own default (leave-k-speakers-out with its fold
    count, fold 1, seed 0; MSP-Podcast its official split). ``scan_options``: the corpus module's
    extras (RAVDESS ``calm_as``, ESD ``languages``).
    """
    from emoreason.data.importers.named import SplitOptions, import_clips

    k = get_kind(kind)
    options = options or SplitOptions(split_by=k.default_split, folds=k.folds)
    scan = k.scan(root, **(scan_options or {}))
    return import_clips(scan, out_dir, source=k.name, options=options, tasks=tasks, emotions=emotions,
                        transcriber=transcriber, transcriber_name=transcriber_name)
