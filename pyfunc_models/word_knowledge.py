"""Word knowledge for merchants the training ledger never showed.

A category model that knows only its own ledger's strings cannot tell what `VOXTREJIN YACHT CHARTER MONACO` is; a
person can, from what the words mean. Here a sentence encoder (all-MiniLM-L6-v2, built by encoder_build, carried
inside the model) reads the description, and each category is read from a short description of what it means
(category_glosses: written once, or the category's own name for a user's own category). For a merchant never seen,
the answer blends, in log space:
  - the cosine between the description and each category's gloss (what the words mean),
  - the best cosine between the description and one phrase of the gloss ('pet hospital' is close to the phrase
    'animal hospital', less so to a gloss that also lists pet food and pet stores),
  - a TF-IDF logistic regression on the description (spellings this ledger shares across merchants),
  - how likely the row's amount is under each category's amounts in this ledger (`AmountDensity`: a fuel stop
    costs what the other fuel stops cost, a meal what the meals cost),
  - the ledger's category shares (how common each category is),
with weights learnt where they will be used: on merchants held out within the training ledger (folds grouped by
merchant), by log-loss. So the weights are also the calibration: the confidence of an unseen merchant's answer is
what such answers were worth on merchants the model had not seen.

Everything learnt comes from the training ledger; the encoder is fixed (no fine-tuning). Served: numpy,
scikit-learn and onnxruntime (no torch, no tokenizers package: the WordPiece tokenizer is below).
"""

from __future__ import annotations

import unicodedata
import warnings

import numpy as np
import pandas as pd
from scipy.special import log_softmax, softmax
from sklearn.base import clone
from sklearn.model_selection import GroupKFold

from pyfunc_models.features import _BANK_NOISE, _PROCESSOR_PREFIX, clean_text, lean
from pyfunc_models.ledger import fold_text
from pyfunc_models.splits import merchant_groups

FLOOR = 1e-4  # probability of a category a fold's text model never saw (log space needs a floor)
MIN_AMOUNT_BANDWIDTH = 0.05  # log-amount kernel width at least: 5%, however alike a ledger's amounts are
INFORMATIVE_SHARE = 0.5  # a word is read when at least this share of the merchants showing it share a category
SOURCES = ("prior", "text", "gloss", "gloss_phrase", "amount")
DEFAULT_WEIGHTS = (1.0, 1.0, 10.0, 10.0, 0.5)  # when the ledger has too few merchants to learn them on


# --- BERT uncased WordPiece tokenizer (the encoder's tokenizer.json), pure Python ----------------------------

def _is_punctuation(char: str) -> bool:
    code = ord(char)
    return 33 <= code <= 47 or 58 <= code <= 64 or 91 <= code <= 96 or 123 <= code <= 126 or \
        unicodedata.category(char).startswith("P")


def _is_cjk(code: int) -> bool:
    return any(low <= code <= high for low, high in (
        (0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F), (0x2B740, 0x2B81F),
        (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F)))


class WordPiece:
    """BertNormalizer (clean, CJK characters split, lower case, accents stripped), BertPreTokenizer (whitespace and
    punctuation) and greedy longest-match word pieces; [CLS] ... [SEP]. Gives the ids of the `tokenizers` package
    for the encoder's tokenizer.json (checked on 11,862 distinct descriptions and odd strings in many scripts)."""

    def __init__(self, vocab: dict, max_word_chars: int = 100):
        self.vocab = vocab
        self.max_word_chars = max_word_chars
        self.unk, self.cls, self.sep = vocab["[UNK]"], vocab["[CLS]"], vocab["[SEP]"]

    @staticmethod
    def normalise(text: str) -> str:
        kept = []
        for char in text:
            category = unicodedata.category(char)
            if ord(char) in (0, 0xFFFD) or (category.startswith("C") and char not in "\t\n\r"):
                continue
            kept.append(" " if char in "\t\n\r" or category == "Zs" else f" {char} " if _is_cjk(ord(char)) else char)
        decomposed = unicodedata.normalize("NFD", "".join(kept).lower())
        return "".join(c for c in decomposed if unicodedata.category(c) != "Mn")

    @staticmethod
    def words(text: str) -> list:
        out = []
        for chunk in text.split():
            current = ""
            for char in chunk:
                if _is_punctuation(char):
                    out.extend(filter(None, (current, char)))
                    current = ""
                else:
                    current += char
            if current:
                out.append(current)
        return out

    def word_ids(self, word: str) -> list:
        if len(word) > self.max_word_chars:
            return [self.unk]
        ids, start = [], 0
        while start < len(word):
            end = len(word)
            while start < end and (word[start:end] if start == 0 else "##" + word[start:end]) not in self.vocab:
                end -= 1
            if end == start:
                return [self.unk]
            ids.append(self.vocab[word[start:end] if start == 0 else "##" + word[start:end]])
            start = end
        return ids

    def ids(self, text: str, max_length: int = 128) -> list:
        pieces = [i for word in self.words(self.normalise(text)) for i in self.word_ids(word)]
        return [self.cls, *pieces[:max_length - 2], self.sep]


class SentenceEncoder:
    """Unit sentence vectors (mean of the encoder's token states) for texts, from an ONNX encoder held as bytes.

    The bytes travel inside the pickled model, so a served model (and every image built from it) has the encoder
    with it: nothing is downloaded at start-up. The onnxruntime session is made at first use, one thread (a request
    is a few rows; the server runs requests side by side), and is never pickled."""

    CACHE_SIZE = 10_000  # vectors kept by text: a new merchant's rows repeat its description

    def __init__(self, model: bytes, vocab: dict, source: str):
        self.model = model
        self.tokenizer = WordPiece(vocab)
        self.source = source
        self._session = None
        self._cache: dict = {}

    def __getstate__(self):
        return {**self.__dict__, "_session": None, "_cache": {}}

    def session(self):
        if self._session is None:
            import onnxruntime

            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = options.inter_op_num_threads = 1
            self._session = onnxruntime.InferenceSession(self.model, options, providers=["CPUExecutionProvider"])
        return self._session

    def embed(self, texts) -> np.ndarray:
        """One run per text, never a padded batch: the int8 MatMuls quantise their input per run, so a text's
        vector would depend on the texts beside it (cosine down to 0.97), and training would read descriptions
        differently from a served single-row request."""
        texts = [str(text) for text in texts]
        vectors = {}
        for text in dict.fromkeys(texts):
            vector = self._cache.get(text)
            if vector is None:
                ids = np.array([self.tokenizer.ids(text)], dtype=np.int64)
                states = self.session().run(None, {"input_ids": ids, "attention_mask": np.ones_like(ids)})[0]
                vector = states[0].mean(0)
                vector = (vector / max(float(np.linalg.norm(vector)), 1e-12)).astype(np.float32)
                if len(self._cache) >= self.CACHE_SIZE:
                    self._cache.clear()
                self._cache[text] = vector
            vectors[text] = vector
        if not texts:
            return np.zeros((0, 384), dtype=np.float32)
        return np.stack([vectors[text] for text in texts])


def embedding_text(description: str) -> str:
    """What the encoder reads of a description: no card-network or processor words, no word with a digit in it
    (store numbers, order codes). 'POS PURCHASE HARBOUR FUEL #5744 OAKDALE MN' -> 'harbour fuel oakdale mn'."""
    text = _PROCESSOR_PREFIX.sub(" ", fold_text(str(description))).replace("*", " ")
    text = " ".join(word for word in text.split() if not any(char.isdigit() for char in word))
    return " ".join(_BANK_NOISE.sub(" ", clean_text(text)).split())


def word_weights(texts, y, merchants) -> dict:
    """Per word of the training texts, the largest share of the merchants showing it that book one category. A
    merchant counts once, however many rows it has: a city or a state code that a few busy merchants of one
    category share with many merchants of other categories is still a place, not a category. A word of one
    merchant, or of merchants that agree, is 1."""
    by_word: dict = {}
    for text, label, merchant in zip(texts, y, merchants):
        for word in set(text.split()):
            by_word.setdefault(word, set()).add((merchant, label))
    weights = {}
    for word, pairs in by_word.items():
        labels = [label for _, label in pairs]
        weights[word] = max(labels.count(label) for label in set(labels)) / len(labels)
    return weights


def informative(text: str, weights: dict) -> str:
    """The text without the words the training ledger shows under many categories (whole if none is left)."""
    kept = [word for word in text.split() if weights.get(word, 1.0) >= INFORMATIVE_SHARE]
    return " ".join(kept) if kept else text


def gloss_phrases(gloss: str) -> list:
    """'pet care: pet store, veterinarian' -> ['pet care', 'pet store', 'veterinarian'] (the name, then each phrase
    of the gloss; a user's own category, glossed by its name, is one phrase)."""
    name, _, phrases = gloss.partition(": ")
    return [name, *(phrase.strip() for phrase in phrases.split(",") if phrase.strip())]


class AmountDensity:
    """How likely an amount is under each category's amounts: a Gaussian kernel density over log(1 + |amount|) of
    each category's latest `points` training rows, one bandwidth for all (Silverman's rule over every row's amount),
    tabulated at fit on a grid a tenth of the bandwidth apart and read by linear interpolation (a row costs the same
    whatever the ledger's size). `log_likelihood` is relative to a row's likeliest category (0 there, down to
    log(FLOOR) below it); a row without an amount, an amount far from every category's, or a model fitted on no
    amounts is 0 throughout: no evidence either way."""

    def __init__(self, points: int = 500, steps_per_bandwidth: int = 10):
        self.points = points
        self.steps_per_bandwidth = steps_per_bandwidth

    def fit(self, amounts, y: np.ndarray, classes: np.ndarray):
        x = np.log1p(np.abs(np.asarray(amounts, dtype=float)))
        known = ~np.isnan(x)
        spread = float(np.std(x[known])) if known.sum() > 1 else 0.0
        bandwidth = max(1.06 * spread * known.sum() ** -0.2, MIN_AMOUNT_BANDWIDTH) if spread else 1.0
        low, high = (x[known].min() - 5 * bandwidth, x[known].max() + 5 * bandwidth) if known.any() else (0.0, 1.0)
        self.grid_ = np.arange(low, high + bandwidth, bandwidth / self.steps_per_bandwidth)
        density = np.full((len(classes), len(self.grid_)), FLOOR)
        for k, category in enumerate(classes):
            points = x[known & (y == category)][-self.points:]
            if len(points):
                kernel = np.exp(-0.5 * ((self.grid_[:, None] - points[None, :]) / bandwidth) ** 2).mean(1)
                density[k] = np.maximum(kernel, FLOOR)
        self.log_density_ = np.log(density)
        return self

    def log_likelihood(self, amounts) -> np.ndarray:
        x = np.log1p(np.abs(np.asarray(amounts, dtype=float)))
        inside = (x >= self.grid_[0]) & (x < self.grid_[-1])  # False for NaN
        at = np.clip(np.searchsorted(self.grid_, np.where(inside, x, self.grid_[0]), side="right") - 1, 0,
                     len(self.grid_) - 2)
        share = ((np.where(inside, x, self.grid_[0]) - self.grid_[at]) / (self.grid_[at + 1] - self.grid_[at]))[:, None]
        logs = self.log_density_[:, at].T * (1 - share) + self.log_density_[:, at + 1].T * share
        return np.where(inside[:, None], logs - logs.max(1, keepdims=True), 0.0)


class WordKnowledge:
    """Category probabilities for merchants never seen: gloss cosine + TF-IDF + amount + prior, blended by weights
    learnt on merchants held out within the training ledger. Fitted once on a trained model's past rows (the latest
    `max_rows`); the category model asks it only about rows whose merchant its training rows did not have."""

    def __init__(self, encoder: SentenceEncoder, text_model, max_rows: int = 5_000, folds: int = 3):
        self.encoder = encoder
        self.text_model = text_model
        self.max_rows = max_rows
        self.folds = folds

    def _texts(self, rows: pd.DataFrame, weights: dict) -> list:
        return [informative(embedding_text(d), weights) for d in rows["description"]]

    def _sources(self, rows, text_model, log_prior, weights, amounts) -> list:
        text = np.full((len(rows), len(self.classes_)), FLOOR)
        text[:, np.searchsorted(self.classes_, text_model.classes_)] = lean(text_model).predict_proba(rows)
        vectors = self.encoder.embed(self._texts(rows, weights))
        best_phrase = np.maximum.reduceat(vectors @ self.phrase_vectors_.T, self.phrase_starts_, axis=1)
        return [np.tile(log_prior, (len(rows), 1)), np.log(np.maximum(text, 1e-12)), vectors @ self.gloss_vectors_.T,
                best_phrase, amounts.log_likelihood(rows["amount"])]

    def _log_prior(self, y) -> np.ndarray:
        counts = (y[:, None] == self.classes_[None, :]).sum(0) + 1.0  # one pseudo-row each: no category is impossible
        return np.log(counts / counts.sum())

    def _part(self, rows: pd.DataFrame, y: np.ndarray):
        """(text model, log prior, word weights, amount density) learnt from `rows`."""
        weights = word_weights([embedding_text(d) for d in rows["description"]], y,
                               merchant_groups(rows["description"]))
        with warnings.catch_warnings():  # scikit-learn's guess on a tiny ledger (see training.fit_candidate)
            warnings.filterwarnings("ignore", message="The number of unique classes is greater than 50%",
                                    category=UserWarning)
            text_model = clone(self.text_model).fit(rows, y)
        return text_model, self._log_prior(y), weights, AmountDensity().fit(rows["amount"], y, self.classes_)

    def fit(self, rows: pd.DataFrame, y, classes, glosses: list):
        """`classes`: the served model's categories (sorted); `glosses`: the text describing each."""
        self.classes_ = np.asarray(classes, dtype=object)
        y = np.asarray(y, dtype=object)
        if len(rows) > self.max_rows:  # the latest rows: weights need hundreds of rows, not 100k
            rows, y = rows.iloc[-self.max_rows:].reset_index(drop=True), y[-self.max_rows:]
        self.rows_ = len(rows)
        self.glosses_ = list(glosses)
        self.gloss_vectors_ = self.encoder.embed(self.glosses_)
        phrases = [gloss_phrases(gloss) for gloss in self.glosses_]
        self.phrase_vectors_ = self.encoder.embed([phrase for owned in phrases for phrase in owned])
        self.phrase_starts_ = np.cumsum([0] + [len(owned) for owned in phrases[:-1]])  # each category's first
        self.text_, self.log_prior_, self.word_weights_, self.amounts_ = self._part(rows, y)
        self.weights_, self.blend_rows_ = self._learn_weights(rows, y)
        return self

    def _learn_weights(self, rows: pd.DataFrame, y: np.ndarray) -> tuple:
        """Source weights minimising the log-loss of held-out merchants' rows, over merchant-grouped folds. A
        held-out row is scored among the categories its fold's training part has (an unseen merchant, not an
        unseen category). Too few merchants or usable rows: DEFAULT_WEIGHTS."""
        from scipy.optimize import minimize  # training only

        groups = merchant_groups(rows["description"])
        if self.folds < 2 or len(np.unique(groups)) < 2:
            return np.array(DEFAULT_WEIGHTS), 0
        stacked = [np.zeros((len(rows), len(self.classes_))) for _ in SOURCES]
        allowed = np.zeros((len(rows), len(self.classes_)), dtype=bool)
        for train, held in GroupKFold(n_splits=min(self.folds, len(np.unique(groups)))).split(rows, y, groups):
            if len(np.unique(y[train])) < 2:
                continue
            allowed[held] = np.isin(self.classes_, y[train])
            for k, source in enumerate(self._sources(rows.iloc[held], *self._part(rows.iloc[train], y[train]))):
                stacked[k][held] = source
        truth = np.searchsorted(self.classes_, y)
        usable = allowed[np.arange(len(y)), truth] & (allowed.sum(1) >= 2)
        if not usable.any():
            return np.array(DEFAULT_WEIGHTS), 0
        mask = np.where(allowed[usable], 0.0, -np.inf)
        stacked = [np.where(allowed, source, 0.0)[usable] for source in stacked]
        truth = truth[usable]

        def loss(weights):
            logits = sum(w * source for w, source in zip(weights, stacked)) + mask
            return -log_softmax(logits, axis=1)[np.arange(len(truth)), truth].mean() + 1e-4 * np.sum(weights ** 2)

        fitted = minimize(loss, np.array(DEFAULT_WEIGHTS), method="L-BFGS-B", bounds=[(0.0, 200.0)] * len(SOURCES))
        return fitted.x, int(usable.sum())

    def predict_proba(self, rows: pd.DataFrame) -> np.ndarray:
        sources = self._sources(rows, self.text_, self.log_prior_, self.word_weights_, self.amounts_)
        return softmax(sum(w * source for w, source in zip(self.weights_, sources)), axis=1)
