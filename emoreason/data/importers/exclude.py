"""Leave a benchmark's test clips out of a training import (``data import iemocap --exclude-manifest``).

    exclude = ExcludeList.load("data/iemocap_ab/manifest.jsonl", id_pattern=TURN_ID)
    exclude.match_id("Ses01F_impro01_F000")      # True when an exclude row names that utterance
    exclude.match_hashes(["<sha256>", ...])      # [True, False, ...]
    exclude.report()                             # "exclude manifest ...: 1004 of 1004 clips found ..."

The exclude manifest is one of our manifests (typically ``data import audiobench
AudioLLMs/iemocap_emotion_test``). An utterance is left out when

- its utterance id appears in an exclude row (its ``id``, ``audio`` or ``meta``, e.g. AudioBench's
  ``other_attributes``), found with the corpus' id pattern; or
- its audio has the content hash of an exclude row's audio
  (:func:`emoreason.data.clip_hashes.hash_clips`: sha256 of the decoded float32 16 kHz samples).

The importer hashes the wav it wrote, and the exclude manifest's audio was written by the same
importer code (decode -> 16 kHz mono -> 16-bit wav), so the same recording matches whatever
lossless container the benchmark shipped it in; a lossy re-encode or a trimmed copy does not, which
is why :meth:`ExcludeList.report` says how many of the benchmark's clips were found.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from emoreason.audio import AudioError
from emoreason.data.manifest import read_manifest, resolve_audio
from emoreason.errors import UserError


@dataclass
class ExcludeList:
    """The clips of an exclude manifest, by content hash and by utterance id.

    Every value is the key of one distinct clip (the first row id using that audio file), so the
    emotion and sentiment rows of one clip count once."""

    manifest: Path
    hashes: dict[str, str]
    """Content hash -> clip key."""
    utterances: dict[str, str]
    """Utterance id (as the corpus spells it) -> clip key."""
    clips: int
    """Distinct audio files in the exclude manifest."""
    found: set[str] = field(default_factory=set)
    """Clip keys matched so far."""

    @classmethod
    def load(cls, manifest: str | Path, id_pattern: re.Pattern[str] | None = None,
             cache_file: str | Path | None = None) -> ExcludeList:
        """Read ``manifest`` and hash its audio (cached, see ``hash_clips``). A missing or
        unreadable clip is an error: an exclusion with holes would leak test clips silently."""
        from emoreason.data.clip_hashes import hash_clips

        manifest = Path(manifest)
        if not manifest.is_file():
            raise UserError(f"--exclude-manifest {manifest}: no such file")
        rows = read_manifest(manifest)
        keys: dict[Path, str] = {}
        utterances: dict[str, str] = {}
        for row in rows:
            key = keys.setdefault(resolve_audio(row, manifest).resolve(), row.id)
            if id_pattern is not None:
                # ids hide in different places per benchmark (AudioBench: other_attributes); search them all
                text = json.dumps([row.id, row.audio, row.meta], ensure_ascii=False)
                for utt in id_pattern.findall(text):
                    utterances.setdefault(utt, key)
        paths = list(keys)
        try:
            digests = hash_clips(paths, cache_file)
        except (OSError, AudioError) as e:
            raise UserError(f"--exclude-manifest {manifest}: cannot hash its audio ({e})") from None
        hashes: dict[str, str] = {}
        for path, digest in zip(paths, digests):
            hashes.setdefault(digest, keys[path])
        return cls(manifest, hashes, utterances, clips=len(paths))

    def match_id(self, utterance: str) -> bool:
        """True (and the clip counted as found) when an exclude row names ``utterance``."""
        key = self.utterances.get(utterance)
        if key is None:
            return False
        self.found.add(key)
        return True

    def match_hashes(self, digests: list[str]) -> list[bool]:
        """For each content hash: is it the audio of an exclude row (counted as found)?"""
        out = []
        for digest in digests:
            key = self.hashes.get(digest)
            if key is not None:
                self.found.add(key)
            out.append(key is not None)
        return out

    def report(self) -> str:
        """One line for the import summary: how much of the exclude manifest this import held."""
        line = f"exclude manifest {self.manifest}: {len(self.found)} of {self.clips} clips found in this import"
        missing = self.clips - len(self.found)
        if missing:
            line += (f"; {missing} not found (not in this corpus, or their audio differs: lossy re-encode, "
                     f"trimmed; and no utterance id names them)")
        return line
