"""Peak RSS of the part of `emoreason analyze` that grows with the clip: decoding, windows, and the
acoustic cues of every window and of the whole clip (what the engine computes; no model).

    python benchmarks/long_audio_memory.py FILE.wav [--cues-module PATH]

``--cues-module`` measures another version of ``emoreason/cues.py`` (e.g. the pre-block one from
``git show 799403e:emoreason/cues.py > /tmp/old_cues.py``; it is then given the file read whole,
as the old loader did). Prints one line: seconds, peak RSS (MB), RSS after loading, cue time.
"""
from __future__ import annotations

import argparse
import importlib.util
import resource
import time


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("file")
    p.add_argument("--cues-module", default=None, help="path of another cues.py to measure")
    args = p.parse_args()
    from emoreason.audio import SAMPLE_RATE, split_windows

    if args.cues_module:
        import soundfile as sf

        spec = importlib.util.spec_from_file_location("other_cues", args.cues_module)
        cues = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(cues)
        data, _ = sf.read(args.file, dtype="float32")  # whole file at once, like the old loader
        wave = data if data.ndim == 1 else data.mean(1)
    else:
        from emoreason import cues
        from emoreason.audio import load_audio

        wave = load_audio(args.file)
    loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.time()
    for _, _, chunk in split_windows(wave):  # per-window cues (segments), then the whole clip's
        cues.measure_cues(chunk, SAMPLE_RATE, None)
    cues.measure_cues(wave, SAMPLE_RATE, None)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{args.file}: {wave.size / SAMPLE_RATE:.0f} s, peak RSS {peak:.0f} MB (after loading {loaded:.0f} MB), "
          f"cues {time.time() - start:.1f} s")


if __name__ == "__main__":
    main()
