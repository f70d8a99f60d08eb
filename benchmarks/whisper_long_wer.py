"""Per-window WER of the engine's Whisper transcript source on long espeak-ng clips of known text,
against Whisper run directly through transformers (the packaged tiny.en) on the same windows.

    PYTHONPATH=. python benchmarks/whisper_long_wer.py OUT_DIR [CLIP_IDS, e.g. 0,1,2,3]

Clips: 16 sentences written by us, in a seeded order, spoken by espeak-ng (en default voice) at
four speeds with pauses (clip 0: 67.6 s / 192 words, 1: 81.1 s / 221, 2: 95.2 s / 273,
3: 65.1 s / 169), cut into the engine's 30 s windows (``split_windows``). A window's reference is
the words whose midpoint (by character share of their sentence's span) lies inside it, so words
cut at a window boundary count against one side. The speech encoder is built from the packaged
checkpoint (frozen, as in the demo model) without the LLM; frames are encoded by the Whisper
path itself (``frames=None``, what dynamic-length models use).
"""
import sys, json, numpy as np, tempfile
from pathlib import Path
from emoreason.testing.fixtures import speak
from emoreason.audio import load_audio, SAMPLE_RATE
SENTS = [
 "The train to the airport leaves at half past nine.",
 "I waited all evening, but nobody came to see me.",
 "We won the match, I can hardly believe how great this feels!",
 "I told you three times already, and you still did not fix it!",
 "My sister planted tomatoes and beans behind the old garage.",
 "Please bring the blue folder to the meeting on Thursday.",
 "The river was cold, so we walked along the bank instead.",
 "Nobody answered the phone when the doctor called back.",
 "He painted the kitchen yellow and forgot to open the windows.",
 "The library closes early on public holidays.",
 "Our neighbours adopted a small grey cat last winter.",
 "She finished the report before lunch and went for a run.",
 "The bus was late again, and everyone was soaked by the rain.",
 "I found my grandfather's watch in a box under the stairs.",
 "They moved the concert to the park because the hall was flooded.",
 "Turn left at the bakery and the station is straight ahead.",
]
specs = [(0, 70.0, 175, 0.5), (1, 85.0, 160, 0.3), (2, 95.0, 190, 0.7), (3, 65.0, 165, 0.6)]
out = Path(sys.argv[1]); out.mkdir(parents=True, exist_ok=True)
for k, seconds, speed, gap_s in specs:
    rng = np.random.default_rng(k)
    order = rng.permutation(len(SENTS)).tolist() * 3
    pieces, words, total, spans = [], [], 0, []
    gap = np.zeros(int(gap_s * SAMPLE_RATE), np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        for j in order:
            w = load_audio(speak(SENTS[j], Path(tmp) / f"{j}.wav", speed=speed))
            if (total + w.size) / SAMPLE_RATE > seconds: break
            spans.append((total / SAMPLE_RATE, (total + w.size) / SAMPLE_RATE, SENTS[j])); pieces += [w, gap]; total += w.size + gap.size; words.append(SENTS[j])
    wave = np.concatenate(pieces)
    np.save(out / f"clip{k}.npy", wave)
    (out / f"clip{k}.txt").write_text(" ".join(words)); (out / f"clip{k}.json").write_text(json.dumps(spans))
    print(k, round(wave.size / SAMPLE_RATE, 1), "s", len(" ".join(words).split()), "words")
import json, sys, time
from pathlib import Path
import numpy as np, torch
from emoreason.audio import SAMPLE_RATE, split_windows
from emoreason.eval.wer import corpus_wer
from emoreason.weights.resolve import resolve_packaged
torch.set_num_threads(2)
D = Path(sys.argv[1])

def window_ref(spans, a, b):
    """Words whose (char-proportional) midpoint lies in [a, b)."""
    out = []
    for s, e, text in spans:
        ws = text.split(); L = sum(len(w) + 1 for w in ws); pos = 0
        for w in ws:
            mid = s + (e - s) * (pos + len(w) / 2) / L; pos += len(w) + 1
            if a <= mid < b: out.append(w)
    return " ".join(out)

from emoreason.model.encoders import load_whisper_encoder
from emoreason.model.encoders import WhisperFrames
from emoreason.model.whisper_asr import WhisperDecoderASR
p = resolve_packaged("whisper-tiny.en")
# the demo model's speech encoder is this checkpoint, frozen (no Engine: the LLM is not needed here)
asr = WhisperDecoderASR.load(p, WhisperFrames(load_whisper_encoder(p)).eval())
from transformers import WhisperForConditionalGeneration, WhisperFeatureExtractor
p = resolve_packaged("whisper-tiny.en")
ref_model = WhisperForConditionalGeneration.from_pretrained(p).eval()
fe = WhisperFeatureExtractor.from_pretrained(p)
tok = asr.tokenizer
rows = []
for k in [int(x) for x in (sys.argv[2] if len(sys.argv) > 2 else "0,1,2,3").split(",")]:
    wave = np.load(D / f"clip{k}.npy"); spans = json.loads((D / f"clip{k}.json").read_text())
    wins = split_windows(wave)
    t = time.time(); ours = asr.transcribe([c for _, _, c in wins], None); t_ours = time.time() - t
    with torch.inference_mode():
        mel = fe([c for _, _, c in wins], sampling_rate=SAMPLE_RATE, return_tensors="pt").input_features
        gen = ref_model.generate(mel, max_new_tokens=440)
    direct = [tok.decode([x for x in r if x < 50256]).strip() for r in gen.tolist()]
    for (a, b, _), o, d in zip(wins, ours, direct):
        ref = window_ref(spans, a, b)
        rows.append({"clip": k, "start": a, "end": b, "ref": ref, "ours": o.text, "direct": d,
                     "n_ref": len(ref.split()), "wer_ours": corpus_wer([ref], [o.text])["wer"],
                     "wer_direct": corpus_wer([ref], [d])["wer"], "n_words_timed": len(o.words)})
        r = rows[-1]
        print(f"clip{k} {a:5.1f}-{b:5.1f}s n={r['n_ref']:3d} WER ours {r['wer_ours']:.3f} direct {r['wer_direct']:.3f} | ours: {o.text[:60]!r} | direct: {d[:60]!r}", flush=True)
    print(f"clip{k}: ours {t_ours:.1f}s", flush=True)
refs = [r["ref"] for r in rows]
print("corpus per-window WER ours", corpus_wer(refs, [r["ours"] for r in rows]))
print("corpus per-window WER direct", corpus_wer(refs, [r["direct"] for r in rows]))
(D / "wer.json").write_text(json.dumps(rows, indent=1))
