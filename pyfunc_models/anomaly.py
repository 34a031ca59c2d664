"""Anomaly detection: is this transaction unusual?

Evidence, with every statistic learned from the training ledger:

- amount: a robust (median/MAD, mean-deviation fallback) z-score of log |amount|
  against the merchant's history, or its category's (or type's) when the merchant
  is new, read as a tail share of the training rows; a merchant with a few rows is
  read between its own amounts and its group's (`few_rows_center`); a merchant never
  seen multiplies it by how often rare merchants occur in this ledger;
- an IsolationForest on those engineered features (z-scores, merchant history),
  combined with the amount evidence by Fisher's method;
- duplicates inside the scored batch: same day, same description, same amount
  (score 1: always flagged, whatever the threshold).

The score is 1 minus the smallest p-value. Labels are never a feature.

Real ledgers carry no anomaly labels, so a model is judged on planted ones (`plant_anomalies`):
copies of held-out rows made into the kinds it exists to find (spikes, double charges, merchants
never seen), added to the untouched rows. A ledger with labels (the generator's `anomaly_label`)
is judged on its labels instead. The threshold is chosen on a validation slice later than the
training rows (`planted_threshold` or `labelled_threshold`), and is the served default.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
from scipy.stats import chi2
from sklearn.ensemble import IsolationForest
from sklearn.ensemble._iforest import _average_path_length
from sklearn.metrics import average_precision_score, precision_recall_curve

from pyfunc_models import config
from pyfunc_models.features import merchant_keys
from pyfunc_models.kept_beside import KeptBeside
from pyfunc_models.ledger import LedgerError, request_rows
from pyfunc_models.predictor import LedgerPredictor, predictor_behind
from pyfunc_models.splits import time_split
from pyfunc_models.task import SAME_DAY, Gate, ModelTask, Monitoring, Option, Purpose, Sample, Watch, Watched
from pyfunc_models.training import MIN_ROWS_PER_CLASS, NotEnoughData, TrainingOutcome, small_split_warning

MIN_HISTORY = 5  # rows a merchant needs before its own statistics are trusted
LEAVE_ONE_OUT_UP_TO = 64  # a merchant's training rows are read without themselves up to this many (`others_z`)
MAD_TO_SD = 1.4826  # MAD of a normal distribution times this is its standard deviation
MEAN_AD_TO_SD = 1.2533  # mean absolute deviation to sd, the fallback when MAD is 0
DEFAULT_MIN_PRECISION = 0.8  # with labels: catch as much as possible while 8 in 10 flags are real
# Without labels, the threshold may flag at most this share of the validation slice's untouched rows (and at least
# one of them may always be flagged, so that a slice of 20 rows does not force a threshold above all of them).
MAX_FLAG_RATE = 0.05

PLANTED_KINDS = ("spike", "duplicate", "unusual_merchant")  # the generator's label names, so metrics line up
PLANTED_SHARE = 0.10  # planted rows per held-out row...
MIN_PLANTED_PER_KIND = 5  # ...but at least this many of each kind, so that one row moves a recall by at most 0.2
SPIKE_FACTORS = (3.0, 10.0)  # a planted spike is its row's own amount times a factor drawn log-uniformly from these
VALIDATION_PLANTING = 4  # times as many planted rows on the validation slice, counted as PLANTED_SHARE (see there)
PLANTING_SEED = 1207  # fixed: a model's test rows and every gate evaluation of one ledger get the same planted rows
MIN_ROWS = 50  # 30 to learn from, 10 to choose the threshold on, 10 to test on
REASON_TEXT_LENGTH = 50  # characters of a description quoted in a reason (bank text runs long)
_CONSONANTS, _VOWELS = tuple("bdfgklmnprstvz"), tuple("aeiou")


def robust_stats(values: np.ndarray, groups: np.ndarray) -> pd.DataFrame:
    """Per group: count, median and a robust scale (MAD; mean absolute deviation when MAD is 0)."""
    frame = pd.DataFrame({"group": groups, "value": values})
    median = frame.groupby("group")["value"].median()
    deviation = (frame["value"] - frame["group"].map(median)).abs()
    grouped = deviation.groupby(frame["group"])
    scale = (grouped.median() * MAD_TO_SD).where(lambda s: s > 0, grouped.mean() * MEAN_AD_TO_SD)
    return pd.DataFrame({"count": frame.groupby("group").size(), "median": median, "scale": scale})


def tail_probability(sorted_reference: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Share of reference values at least as large as each value, (k + 1) / (n + 1), never 0."""
    at_least = len(sorted_reference) - np.searchsorted(sorted_reference, values, side="left")
    return (at_least + 1) / (len(sorted_reference) + 1)


def _words(texts) -> set:
    return {word for text in texts for word in re.findall(r"[^\W\d_]+", str(text).casefold())}


def _made_up_names(rng, count: int, taken: set) -> list:
    """`count` distinct names of two words of two or three consonant-vowel syllables, no word of them in `taken`."""
    syllables = np.array([consonant + vowel for consonant in _CONSONANTS for vowel in _VOWELS], dtype=object)
    names, taken = [], set(taken)
    while len(names) < count:
        lengths = rng.integers(2, 4, size=(count - len(names), 2))
        drawn = syllables[rng.integers(0, len(syllables), size=(count - len(names), 2, 3))]
        for length, parts in zip(lengths, drawn):
            words = ["".join(part[:n]) for n, part in zip(length, parts)]
            if words[0] != words[1] and taken.isdisjoint(words):
                taken.update(words)
                names.append(" ".join(words).upper())
    return names


def planting_share(rows: int) -> float:
    """The share of `rows` held-out rows to plant: PLANTED_SHARE, or enough for MIN_PLANTED_PER_KIND of each kind."""
    return max(PLANTED_SHARE, MIN_PLANTED_PER_KIND * len(PLANTED_KINDS) / max(rows, 1))


def plant_anomalies(rows: pd.DataFrame, seed: int, share: float, avoid=()) -> tuple[pd.DataFrame, np.ndarray]:
    """The rows plus round(share * len(rows)) planted anomalies after them, and each row's kind ('' = untouched).

    Planted rows are copies of rows drawn (seeded) from `rows`, split as evenly as possible between:
    - spike: the amount times a factor drawn log-uniformly from SPIKE_FACTORS (relative to that row's own amount);
    - duplicate: an exact copy of the row (same day, text and amount): a double charge;
    - unusual_merchant: the description replaced by a made-up name (consonant-vowel syllables, no word of it in any
      description of `rows` or `avoid`) and the amount drawn from the amounts of `rows` of the same sign.
    Everything comes from the rows given; the original rows are returned first and unchanged.
    """
    if share < 0:
        raise ValueError(f"share must be at least 0, got {share}")
    base = rows.reset_index(drop=True)
    count = int(round(share * len(base)))
    per_kind = np.full(len(PLANTED_KINDS), count // len(PLANTED_KINDS))
    per_kind[: count % len(PLANTED_KINDS)] += 1
    rng = np.random.default_rng(seed)
    amounts = base["amount"].to_numpy(dtype=float)

    def draw(pool, size):
        pool = pool if len(pool) else np.arange(len(base))
        return base.iloc[rng.choice(pool, size=size, replace=size > len(pool))].copy()

    spikes = draw(np.flatnonzero(amounts != 0), per_kind[0])
    factors = np.exp(rng.uniform(*np.log(SPIKE_FACTORS), len(spikes)))
    spikes["amount"] = np.round(spikes["amount"].to_numpy(dtype=float) * factors, 2)
    duplicates = draw(np.arange(len(base)), per_kind[1])
    strangers = draw(np.arange(len(base)), per_kind[2])
    strangers["description"] = _made_up_names(rng, len(strangers), _words(base["description"]) | _words(avoid))
    signs, stranger_signs = np.sign(amounts), np.sign(strangers["amount"].to_numpy(dtype=float))
    stranger_amounts = np.zeros(len(strangers))
    for sign in np.unique(stranger_signs):
        alike = stranger_signs == sign
        stranger_amounts[alike] = rng.choice(amounts[signs == sign], size=alike.sum())
    strangers["amount"] = stranger_amounts
    kinds = np.repeat(np.array(("",) + PLANTED_KINDS, dtype=object), [len(base), *per_kind])
    return pd.concat([base, spikes, duplicates, strangers], ignore_index=True), kinds


def _first_words(merchants) -> np.ndarray:
    return np.array([key.split(" ")[0] for key in merchants], dtype=object)


def quoted(description) -> str:
    """A description as written, spaces collapsed, cut to REASON_TEXT_LENGTH characters ('...' marks a cut)."""
    text = " ".join(str(description).split())
    return text if len(text) <= REASON_TEXT_LENGTH else text[: REASON_TEXT_LENGTH - 3].rstrip() + "..."


def amount_groups(rows: pd.DataFrame) -> np.ndarray:
    """Whose amounts a row is compared with when its merchant has too little history: its category, else its type."""
    categories = rows["category"].to_numpy(dtype=object)
    return np.where(categories != "", categories, "type:" + rows["type"].to_numpy(dtype=object))


class FlatForest:
    """A fitted IsolationForest's trees as flat arrays (every tree's nodes one after another; a leaf points to itself),
    so that a few rows walk all the trees at once: one numpy step per level instead of one call per tree.

    Each leaf carries the path length `score_samples` adds for it (its depth plus the average path length of the
    samples it holds, minus 1), computed as scikit-learn computes it, and the trees' lengths are summed in tree order
    (a cumulative sum, not numpy's pairwise sum), so the scores are score_samples' to the last bit.
    """

    def __init__(self, forest: IsolationForest):
        trees = forest.estimators_
        offsets = np.cumsum([0] + [tree.tree_.node_count for tree in trees])
        parts = {"feature": [], "threshold": [], "left": [], "right": [], "path_length": []}
        for i, (tree, columns) in enumerate(zip(trees, forest.estimators_features_)):
            nodes = tree.tree_
            leaf = nodes.children_left == -1
            own = np.arange(nodes.node_count)
            parts["left"].append(np.where(leaf, own, nodes.children_left) + offsets[i])
            parts["right"].append(np.where(leaf, own, nodes.children_right) + offsets[i])
            parts["feature"].append(np.where(leaf, 0, np.asarray(columns)[np.maximum(nodes.feature, 0)]))
            parts["threshold"].append(np.where(leaf, np.inf, nodes.threshold))
            parts["path_length"].append(forest._decision_path_lengths[i] + forest._average_path_length_per_tree[i]
                                        - 1.0)
        self.feature, self.threshold, self.left, self.right, self.path_length = (
            np.concatenate(parts[name]) for name in ("feature", "threshold", "left", "right", "path_length"))
        self.roots = offsets[:-1]
        self.levels = max(tree.tree_.max_depth for tree in trees)
        self.denominator = len(trees) * _average_path_length([forest._max_samples])  # score_samples' normaliser

    def path_lengths(self, X: np.ndarray) -> np.ndarray:
        """Each row's path lengths summed over the trees; `X` float32, as the trees compare it."""
        nodes = np.tile(self.roots, (len(X), 1))
        rows = np.arange(len(X))[:, None]
        for _ in range(self.levels):
            # float32 values against float64 thresholds, as the trees' own apply compares them
            nodes = np.where(X[rows, self.feature[nodes]] <= self.threshold[nodes], self.left[nodes], self.right[nodes])
        return np.cumsum(self.path_length[nodes], axis=1)[:, -1]


# Walking all trees at once costs rows x trees x levels numpy work; the trees' own apply wins on larger batches
# (200 trees, interleaved: 1 row 0.04 vs 0.7 ms, 100 rows 1.52 vs 1.60 ms, 150 rows 2.26 vs 2.07 ms).
FLAT_WALK_MAX_ROWS = 100
# Each fitted forest's FlatForest, made on its first scoring (see kept_beside).
_FLAT = KeptBeside()


def isolation_scores(forest: IsolationForest, features: np.ndarray) -> np.ndarray:
    """`forest.score_samples(features)` without the joblib dispatch and per-tree input checks that are most of its
    cost on a few rows: up to FLAT_WALK_MAX_ROWS rows through the forest's `FlatForest`, more through each tree's
    own `apply`, summing the same path lengths in the same tree order, so the same numbers. `features` are ours
    (`_features`: finite, three columns), so the float32 cast is the only check kept.
    Reads the forest's private per-tree path lengths (scikit-learn 1.9); tests compare it with score_samples."""
    X = np.ascontiguousarray(features, dtype=np.float32)
    flat = _FLAT.get(forest, FlatForest)
    if len(X) <= FLAT_WALK_MAX_ROWS:
        depths = flat.path_lengths(X)
    else:
        depths = np.zeros(len(X))
        whole = forest._max_features == X.shape[1]
        for i, (tree, columns) in enumerate(zip(forest.estimators_, forest.estimators_features_)):
            leaves = tree.tree_.apply(X if whole else np.ascontiguousarray(X[:, columns]))
            depths += forest._decision_path_lengths[i][leaves] + forest._average_path_length_per_tree[i][leaves] - 1.0
    denominator = flat.denominator
    return -(2 ** -np.divide(depths, denominator, out=np.ones_like(depths), where=denominator != 0))


def batch_duplicates(transactions: pd.DataFrame) -> np.ndarray:
    """For each row, the position of an earlier identical row in the batch (same day, text and amount), else -1."""
    if len(transactions) < 2:  # nothing to repeat; the grouping below costs 3 ms even so
        return np.full(len(transactions), -1)
    key = pd.DataFrame({
        "date": transactions["date"].to_numpy(),
        "text": transactions["description"].str.lower().str.split().str.join(" ").to_numpy(),
        "amount": transactions["amount"].to_numpy(),
    })
    first = key.groupby(["date", "text", "amount"], sort=False).cumcount()
    positions = np.arange(len(key))
    first_position = pd.Series(positions).groupby([key["date"], key["text"], key["amount"]],
                                                  sort=False).transform("min")
    return np.where(first.to_numpy() > 0, first_position.to_numpy(), -1)


class CategoryZscore:
    """The baseline a user has without the model: how many robust scales (MAD) log |amount| lies above its
    category's median, learned from reference rows. A category with fewer than MIN_HISTORY reference rows (the MAD
    of two amounts says nothing) is replaced by the row's type (expense, income); where that too has fewer, 0."""

    def fit(self, reference: pd.DataFrame) -> "CategoryZscore":
        log_amount = np.log1p(np.abs(reference["amount"].to_numpy(dtype=float)))
        self.category_stats_ = robust_stats(log_amount, amount_groups(reference))
        self.type_stats_ = robust_stats(log_amount, reference["type"].to_numpy(dtype=object))
        positive = self.category_stats_["scale"][self.category_stats_["scale"] > 0]
        self.scale_floor_ = float(positive.median() * 0.1) if len(positive) else 0.01  # as the detector's floor
        return self

    def score(self, rows: pd.DataFrame) -> np.ndarray:
        by_category = self.category_stats_.reindex(amount_groups(rows))
        by_type = self.type_stats_.reindex(rows["type"].to_numpy(dtype=object))
        enough = (by_category["count"].fillna(0) >= MIN_HISTORY).to_numpy()[:, None]
        stats = pd.DataFrame(np.where(enough, by_category.to_numpy(), by_type.to_numpy()), columns=by_category.columns)
        z = ((np.log1p(np.abs(rows["amount"].to_numpy(dtype=float))) - stats["median"].to_numpy(dtype=float))
             / np.maximum(stats["scale"].to_numpy(dtype=float), self.scale_floor_))
        known = stats["count"].to_numpy(dtype=float) >= MIN_HISTORY  # NaN (never seen) compares False
        return np.where(known, np.nan_to_num(z, nan=0.0), 0.0)


COUNT, MEDIAN, SCALE = range(3)  # the columns of robust_stats, as StatisticsLookup gives them


def _filled(values: np.ndarray, fill) -> np.ndarray:
    """`values` with NaN replaced by `fill` (a number or an array of the same length), as pandas' fillna."""
    return np.where(np.isnan(values), fill, values)


class StatisticsLookup:
    """A `robust_stats` table read by key with a dict: (count, median, scale) rows as floats, NaN for a key the table
    does not hold, the numbers `stats.reindex(keys).to_numpy()` gives, without pandas' index machinery (most of the
    detector's feature cost on a few rows)."""

    def __init__(self, stats: pd.DataFrame):
        table = stats[["count", "median", "scale"]].to_numpy(dtype=float)
        self.values = np.vstack([table, np.full((1, 3), np.nan)])  # the last row answers a key never seen
        self.position = dict(zip(stats.index.tolist(), range(len(table))))

    def __call__(self, keys) -> np.ndarray:
        unseen = len(self.values) - 1
        return self.values[np.array([self.position.get(key, unseen) for key in keys], dtype=np.intp)]


class StatisticsLookups:
    """A detector's four statistics tables as StatisticsLookup, made on its first scoring (see _LOOKUPS)."""

    def __init__(self, detector: "AnomalyDetector"):
        self.merchant = StatisticsLookup(detector.merchant_stats_)
        self.first_word = StatisticsLookup(detector.first_word_stats_)
        self.group = StatisticsLookup(detector.group_stats_)
        self.type = StatisticsLookup(detector.type_stats_)


# Each detector's StatisticsLookups, made on its first scoring (see kept_beside); fit forgets the detector's, since it
# replaces the tables.
_LOOKUPS = KeptBeside()


def pooled_within_scale(merchant_stats: pd.DataFrame, floor: float) -> float:
    """How much one merchant's log amounts vary around its own median, pooled over the ledger's merchants with at
    least two rows: the root of their scales' squares weighted by rows - 1 (a pooled variance), at least `floor`."""
    repeated = merchant_stats[merchant_stats["count"] >= 2]
    weights = (repeated["count"] - 1).to_numpy(dtype=float)
    scales = _filled(repeated["scale"].to_numpy(dtype=float), 0.0)
    if weights.sum() == 0:
        return floor
    return max(float(np.sqrt((weights * scales ** 2).sum() / weights.sum())), floor)


def others_median(values: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each value, the median of the other values of its key and how many there are (NaN and 0 when none)."""
    codes = pd.factorize(keys)[0]
    order = np.lexsort((values, codes))  # by key, then by value
    ordered, ordered_codes = values[order], codes[order]
    sizes = np.bincount(codes)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])[ordered_codes]
    rank, others = np.arange(len(values)) - starts, sizes[ordered_codes] - 1

    def other(k):  # the k-th smallest of the others: the k-th of the key's values, one further once past the row
        return ordered[np.minimum(starts + k + (k >= rank), len(values) - 1)]

    median = np.where(others > 0, (other((others - 1) // 2) + other(others // 2)) / 2, np.nan)
    medians, counts = np.empty(len(values)), np.empty(len(values))
    medians[order], counts[order] = median, others
    return medians, counts


def others_z(values: np.ndarray, keys: np.ndarray, floor: float, with_the_row: np.ndarray) -> np.ndarray:
    """Each value's z-score against the other values of its key, as `robust_stats` reads a key (median; MAD, or the
    mean absolute deviation where the MAD is 0; a scale of at least `floor`): how a next value of the key is read.
    A key of more than LEAVE_ONE_OUT_UP_TO values keeps `with_the_row` (its z-scores with the value included: one
    value moves a large key's median and scale too little to matter); a key of one value has no others and keeps it
    too. Keys of one size are read together, a matrix of each value's others per key (numpy, no loop per key)."""
    z = np.array(with_the_row, dtype=float)
    codes = pd.factorize(keys)[0]
    order = np.argsort(codes, kind="stable")
    sizes = np.bincount(codes)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    for size in np.unique(sizes[(sizes >= 2) & (sizes <= LEAVE_ONE_OUT_UP_TO)]).tolist():
        at = order[starts[sizes == size][:, None] + np.arange(size)]  # (keys, size): the rows of each key
        leave_out = np.array([np.delete(np.arange(size), i) for i in range(size)])  # (size, size - 1)
        step = max(1, 2_000_000 // (size * size))  # keys per chunk: a few million cells at a time
        for chunk in range(0, len(at), step):
            rows = at[chunk:chunk + step]
            own = values[rows]
            others = own[:, leave_out]  # (keys, size, size - 1): each value's others
            median = np.median(others, axis=2)
            deviation = np.abs(others - median[..., None])
            scale = np.median(deviation, axis=2) * MAD_TO_SD
            scale = np.where(scale > 0, scale, deviation.mean(axis=2) * MEAN_AD_TO_SD)
            z[rows] = (own - median) / np.maximum(scale, floor)
    return z


def few_rows_center(own_median, rows, group_median, group_scale, within_scale: float):
    """Where a merchant with few rows is centred, and how far its next amount may stray, in log amount.

    The normal-normal model: the merchant's centre is drawn from its group's amounts (mean `group_median`, spread
    `group_scale`) and each of its rows strays from that centre by `within_scale` (`pooled_within_scale`). Its
    `rows` rows, at median `own_median`, give the centre's posterior, and the next amount's spread is the pooled one
    plus the centre's uncertainty. A few identical rents sit at their own amount; one odd row moves it little.

    The pooled spread is that of the ledger's typical merchant; with a few rows it is not known that this merchant is
    as steady, so its spread is never below its group's shrunk by sqrt(rows + 1) (a fuel station with three visits
    may vary as fuel does). A group scale of inf is a group never seen: the merchant's own rows alone."""
    known = np.isfinite(group_scale)
    prior_precision = np.where(known, 1.0 / np.square(group_scale), 0.0)
    data_precision = rows / within_scale ** 2
    precision = prior_precision + data_precision
    center = (prior_precision * np.where(known, group_median, 0.0)
              + data_precision * np.where(rows > 0, own_median, 0.0)) / precision
    spread = np.maximum(np.sqrt(within_scale ** 2 + 1.0 / precision),
                        np.where(known, group_scale, 0.0) / np.sqrt(rows + 1))
    return center, spread


class AnomalyDetector(LedgerPredictor):
    """Fitted statistics + IsolationForest + threshold; scores raw transactions with a reason each."""

    baseline_: CategoryZscore | None = None  # set by fit; None in a detector pickled before it carried one
    within_scale_: float | None = None  # set by fit; None in a detector pickled before it read merchants with few rows
    # What the contract parses of a request: what the statistics, the forest's features and the duplicate check
    # read. Payment method, status, reference and receipt URL are neither parsed nor kept (0.1 ms of a one-row
    # request); an enumeration never refuses a row, so the answers and refusals are those of parsing every column,
    # except that a list or object in one of those is no longer refused, as for the category and amount models.
    read_columns = ("date", "type", "description", "amount", "category")
    only_read = True

    def __init__(self, seed: int = 42):
        self.seed = seed

    # --- what is learned -------------------------------------------------------------
    def fit(self, rows: pd.DataFrame) -> "AnomalyDetector":
        _LOOKUPS.forget(self)
        log_amount = np.log1p(np.abs(rows["amount"].to_numpy(dtype=float)))
        merchants = merchant_keys(rows["description"])
        self.merchant_stats_ = robust_stats(log_amount, merchants)
        # Bank text often puts the city after a one-word name ("STAPLES SAN JOSE"): the first word is a coarser key.
        self.first_word_stats_ = robust_stats(log_amount, _first_words(merchants))
        self.group_stats_ = robust_stats(log_amount, amount_groups(rows))
        self.type_stats_ = robust_stats(log_amount, rows["type"].to_numpy(dtype=object))
        positive = pd.concat([self.merchant_stats_["scale"], self.group_stats_["scale"]])
        # Groups whose amounts never vary (a fixed subscription) still need a scale: a tenth of the typical one.
        self.scale_floor_ = float(positive[positive > 0].median() * 0.1) if (positive > 0).any() else 0.01
        self.within_scale_ = pooled_within_scale(self.merchant_stats_, self.scale_floor_)
        counts = self.first_word_stats_["count"]
        # How ordinary a rare or new merchant is in this ledger: the share of rows from rare merchants.
        self.novelty_rate_ = float(counts[counts < MIN_HISTORY].sum() / counts.sum())
        features, z_reference, _ = self._features(rows, held_out=True)
        self.z_reference_ = np.sort(z_reference)
        self.forest_ = IsolationForest(n_estimators=200, random_state=self.seed).fit(features)
        self.forest_reference_ = np.sort(-self.forest_.score_samples(features))
        self.baseline_ = CategoryZscore().fit(rows)  # what the gate compares this model with, from the same rows
        self.threshold_ = 0.99
        return self

    def _lookups(self) -> "StatisticsLookups":
        return _LOOKUPS.get(self, StatisticsLookups)

    def _features(self, rows: pd.DataFrame, held_out: bool = False):
        """The forest's features, each row's amount z-score and what its reason quotes. `held_out` (the training
        rows themselves): each row is read against its merchant's other rows only, as its next row will be read
        (`others_z`, `others_median`); against a median and scale that include the row itself, a merchant of 5 to 20
        rows reads its own amounts as closer than a next one will be, and every later row looks rarer than it is
        (a bakery's 1.5x the usual was flagged)."""
        log_amount = np.log1p(np.abs(rows["amount"].to_numpy(dtype=float)))
        merchants = merchant_keys(rows["description"])
        lookups = self._lookups()
        by_name, by_first_word = lookups.merchant(merchants), lookups.first_word(_first_words(merchants))
        named = by_name[:, COUNT] >= MIN_HISTORY  # NaN (never seen) compares False
        merchant = np.where(named[:, None], by_name, by_first_word)
        count = _filled(by_first_word[:, COUNT], 0.0)
        trusted = merchant[:, COUNT] >= MIN_HISTORY  # NaN (never seen) compares False
        groups = amount_groups(rows)
        group = lookups.group(groups)
        # A category with fewer than MIN_HISTORY rows (the MAD of two amounts is about 0, so any amount would look
        # extreme) is compared with its type's amounts instead, as the baseline does; its reason then names the type.
        rare = ~(group[:, COUNT] >= MIN_HISTORY)
        if rare.any():
            kinds = rows["type"].to_numpy(dtype=object)
            by_type = lookups.type(kinds)
            use_type = rare & ~np.isnan(by_type[:, COUNT])
            group = np.where(use_type[:, None], by_type, group)
            groups = np.where(use_type, "type:" + kinds, groups)
        # An unknown group (new category) falls back to the row's amount itself: no evidence either way.
        group_median = _filled(group[:, MEDIAN], log_amount)
        group_scale = np.maximum(_filled(group[:, SCALE], self.scale_floor_), self.scale_floor_)
        z_group = (log_amount - group_median) / group_scale
        z_merchant = (log_amount - merchant[:, MEDIAN]) / np.maximum(_filled(merchant[:, SCALE], self.scale_floor_),
                                                                      self.scale_floor_)
        z_reference = np.where(trusted, z_merchant, z_group)
        if held_out and trusted.any():  # its own name's other rows, or its first word's (as `merchant` reads them)
            # every row of a name read by name (`named`) is here, and only those
            z_reference[named] = others_z(log_amount[named], merchants[named], self.scale_floor_, z_merchant[named])
            words = _first_words(merchants)
            by_word = np.isin(words, words[trusted & ~named])  # every row of those first words, named ones too
            if by_word.any():
                z_word = others_z(log_amount[by_word], words[by_word], self.scale_floor_, z_merchant[by_word])
                wanted = (trusted & ~named)[by_word]
                z_reference[np.flatnonzero(by_word)[wanted]] = z_word[wanted]
        reference_median = np.where(trusted, merchant[:, MEDIAN], group_median)
        # A merchant with a few rows of its own name (a monthly rent in a four-month ledger) is read between its own
        # amounts and its group's, by how many rows it has (see few_rows_center). Only its own name's: a new name
        # that shares a first word with a few rows ("ACME HARDWARE" after three "ACME CORP PAYROLL") is new.
        own_rows = _filled(by_name[:, COUNT], 0.0)
        few = (own_rows > 0) & ~trusted & (self.within_scale_ is not None)
        if few.any():
            own_median, own_count = by_name[few, MEDIAN], own_rows[few]
            if held_out:
                own_median, own_count = others_median(log_amount[few], merchants[few])
            known_group = ~np.isnan(group[few, MEDIAN])  # an unknown group says nothing about the merchant
            center, spread = few_rows_center(own_median, own_count, group_median[few],
                                             np.where(known_group, group_scale[few], np.inf), self.within_scale_)
            z_reference[few] = (log_amount[few] - center) / np.maximum(spread, self.scale_floor_)
            reference_median[few] = center
        # Relative features only: a large amount that is usual for its merchant is not odd.
        features = np.column_stack([np.clip(z_reference, -50, 50), np.clip(z_group, -50, 50), np.log1p(count)])
        context = {"merchants": merchants, "count": count, "trusted": trusted | few,
                   "reference_median": reference_median, "groups": groups}
        return features, z_reference, context

    # --- scoring -----------------------------------------------------------------------
    def score(self, transactions: pd.DataFrame):
        features, z_reference, context = self._features(transactions)
        p_amount = tail_probability(self.z_reference_, z_reference)
        unseen = context["count"] == 0
        p_amount = np.where(unseen, p_amount * max(self.novelty_rate_, 1 / (len(self.forest_reference_) + 1)), p_amount)
        p_forest = tail_probability(self.forest_reference_, -isolation_scores(self.forest_, features))
        duplicate_of = batch_duplicates(transactions)
        p_duplicate = np.where(duplicate_of >= 0, 0.0, 1.0)  # an exact repeat is the strongest evidence there is
        # The forest backs up the statistics (Fisher's method) rather than voting alone: alone, it flags
        # every rare-but-ordinary row (a small refund) as often as real spikes.
        p_row = chi2.sf(-2 * (np.log(p_amount) + np.log(p_forest)), 4)
        evidence = np.column_stack([p_row, p_duplicate])
        strongest = evidence.argmin(axis=1)
        score = 1 - evidence.min(axis=1)
        return score, strongest, duplicate_of, unseen, context

    @staticmethod
    def _reason(kind, duplicate_of, unseen, amount, reference_median, description, group, trusted):
        if kind == 1:
            return f"duplicate of row {duplicate_of}"
        ratio = abs(amount) / max(np.expm1(reference_median), 0.01)
        # Quote the merchant as the user wrote it, not the lower-case key the statistics are grouped by.
        usual_for = quoted(description) if trusted else group.removeprefix("type:")
        text = f"amount {ratio:.1f}x the usual for {usual_for or 'this kind of transaction'}"
        return f"merchant never seen ({quoted(description) or 'no name'}); {text}" if unseen else text

    def predict(self, transactions: pd.DataFrame, threshold: float | None = None) -> pd.DataFrame:
        if threshold is None:
            threshold = self.threshold_
        if not 0 <= float(threshold) <= 1:
            raise LedgerError(f"param 'threshold' is {threshold}; expected a score between 0 and 1")
        score, strongest, duplicate_of, unseen, context = self.score(transactions)
        flagged = score >= float(threshold)
        amounts = transactions["amount"].to_numpy(dtype=float)
        descriptions = transactions["description"].to_numpy(dtype=object)
        reasons = np.full(len(score), "", dtype=object)
        for i in np.flatnonzero(flagged):
            reasons[i] = self._reason(strongest[i], duplicate_of[i], unseen[i], amounts[i],
                                      context["reference_median"][i], descriptions[i],
                                      context["groups"][i], context["trusted"][i])
        return pd.DataFrame({"anomaly_score": np.round(score, 6), "is_anomaly": flagged,
                             "reason": reasons.astype(str)})



def size_warnings(test_rows: int, labels_count, ledger_rows: int) -> list:
    """When the test rows, or the labelled anomalies among them, are too few for the figures to mean much
    (training.small_split_warning's rule; a warning, never a refusal)."""
    found = [small_split_warning("anomaly", test_rows, ledger_rows, "transactions")]
    if labels_count is not None and labels_count < MIN_ROWS_PER_CLASS:
        enough = math.ceil(MIN_ROWS_PER_CLASS * ledger_rows / max(labels_count, 1))
        found.append(f"anomaly: its recall and precision are measured on {int(labels_count)} labelled anomalies in "
                     f"the test rows, too few to mean much ({MIN_ROWS_PER_CLASS} needed); about {enough} transactions "
                     f"at this ledger's anomaly rate would hold {MIN_ROWS_PER_CLASS}; this ledger has {ledger_rows}.")
    return [warning for warning in found if warning]


# --- choosing the threshold ------------------------------------------------------------------
def labelled_threshold(scores: np.ndarray, labels: np.ndarray, min_precision: float) -> float:
    """With labelled validation rows: the lowest threshold (most recall) whose precision is still at least
    `min_precision`, or the best-F1 one if none reaches it."""
    precision, recall, thresholds = precision_recall_curve(labels, scores)
    precise = np.flatnonzero(precision[:-1] >= min_precision)
    if precise.size:
        return float(thresholds[precise[0]])
    f1 = 2 * precision[:-1] * recall[:-1] / np.maximum(precision[:-1] + recall[:-1], 1e-12)
    return float(thresholds[np.flatnonzero(f1 >= f1.max() - 1e-12)[-1]])


def planted_threshold(scores: np.ndarray, planted: np.ndarray, max_flag_rate: float = MAX_FLAG_RATE,
                      planted_share: float = PLANTED_SHARE) -> float:
    """Without labels: the threshold with the best F1 of planted vs untouched validation rows, among those that
    flag at most `max_flag_rate` of the untouched rows.

    However many rows were planted (many, so that recall is traced finely), they count together as
    `planted_share` of the untouched rows, the share the test rows are planted at: the threshold is the best one
    for the F1 the model is judged on. At least one untouched row may always be flagged, so that the choice stays
    sane on a slice of 20 rows; an untouched row scored 1 (a repeated charge in the batch) is flagged by every
    threshold and is not counted. Of equally good thresholds the lowest (most recall) is taken, then placed
    halfway, on the log(1 - score) scale, between the lowest score it flags and the highest one it leaves. If
    none keeps within the cap, the threshold is 1: only certainties are flagged.
    """
    planted = np.asarray(planted, dtype=bool)
    untouched = ~planted
    weight = planted_share * untouched.sum() / max(planted.sum(), 1)
    allowed = max(1, math.floor(max_flag_rate * untouched.sum())) + (untouched & (scores >= 1)).sum()
    order = np.argsort(-scores, kind="stable")
    ordered = scores[order]
    caught, false_alarms = np.cumsum(planted[order]) * weight, np.cumsum(untouched[order])
    last_of_score = np.r_[ordered[1:] != ordered[:-1], True]  # a threshold flags every row of a score or none
    candidates, caught, false_alarms = ordered[last_of_score], caught[last_of_score], false_alarms[last_of_score]
    f1 = np.where(false_alarms <= allowed,
                  2 * caught / np.maximum(caught + false_alarms + planted.sum() * weight, 1e-12), -1.0)
    if f1.max() < 0:
        return 1.0
    best = np.flatnonzero(f1 >= f1.max() - 1e-12)[-1]
    if best + 1 == len(candidates) or candidates[best] >= 1:
        return float(min(candidates[best], 1.0))
    return float(1 - math.sqrt((1 - candidates[best]) * (1 - candidates[best + 1])))


# --- measuring ---------------------------------------------------------------------------------
def detection_metrics(anomalous: np.ndarray, kinds: np.ndarray, scores: np.ndarray, flagged: np.ndarray,
                      planted: bool) -> dict:
    """Precision, recall, F1, PR-AUC of anomalous vs untouched rows, the flag rate of the untouched ones and the
    recall per kind (`recall_<kind>` on labels; `recall_planted` and `recall_planted_<kind>` on planted rows)."""
    anomalous, flagged = np.asarray(anomalous, dtype=bool), np.asarray(flagged, dtype=bool)
    caught = (anomalous & flagged).sum()
    precision = caught / max(flagged.sum(), 1)
    recall = caught / max(anomalous.sum(), 1)
    metrics = {
        "precision": float(precision),
        "recall": float(recall),
        "f1": float(2 * precision * recall / max(precision + recall, 1e-12)),
        "pr_auc": float(average_precision_score(anomalous, scores)) if anomalous.any() else float("nan"),
        "flagged_rate": float(flagged.mean()),
        "flag_rate_untouched": float(flagged[~anomalous].mean()) if (~anomalous).any() else float("nan"),
        ("planted_anomalies" if planted else "labelled_anomalies"): float(anomalous.sum()),
    }
    prefix = "recall_planted" if planted else "recall"
    if planted:
        metrics["recall_planted"] = float(recall)
    for kind in sorted(set(kinds[anomalous])):
        metrics[f"{prefix}_{kind}"] = float(flagged[kinds == kind].mean())
    return metrics


def earlier_days_zscores(reference: pd.DataFrame, rows: pd.DataFrame) -> np.ndarray:
    """Each row's category z-score against the reference rows of earlier days only (0 on the first day)."""
    scores = np.zeros(len(rows))
    reference_dates, row_dates = reference["date"].to_numpy(), rows["date"].to_numpy()
    for day in np.unique(row_dates):
        earlier = reference[reference_dates < day]
        if len(earlier):
            on_day = row_dates == day
            scores[on_day] = CategoryZscore().fit(earlier).score(rows[on_day])
    return scores


def flag_top(scores: np.ndarray, count: int) -> np.ndarray:
    """The `count` highest-scoring rows (the earlier row first on a tie): a baseline flags as many rows as the model."""
    flagged = np.zeros(len(scores), dtype=bool)
    flagged[np.argsort(-scores, kind="stable")[:count]] = True
    return flagged


def labels_of(rows: pd.DataFrame):
    """(anomalous, kinds) from the `anomaly_label` column, or None when the rows carry no labelled anomaly."""
    if config.ANOMALY_LABEL not in rows:
        return None
    kinds = rows[config.ANOMALY_LABEL].to_numpy(dtype=object)
    return (kinds != "", kinds) if (kinds != "").any() else None


def evaluation_rows(rows: pd.DataFrame, seed: int = PLANTING_SEED, avoid=(), plants: float = 1):
    """(rows to score, anomalous, kinds, how): the rows and their labels if they carry any, else the rows with
    planted anomalies added (`plant_anomalies` at `plants` times `planting_share`)."""
    labelled = labels_of(rows)
    if labelled is not None:
        return rows.reset_index(drop=True), labelled[0], labelled[1], "labels"
    planted, kinds = plant_anomalies(rows, seed, plants * planting_share(len(rows)), avoid=avoid)
    return planted, kinds != "", kinds, "planted"


# --- the training task -------------------------------------------------------------------------
class AnomalyTask(ModelTask):
    """Not a candidate search: one detector, fitted on the past, its threshold chosen on a later slice."""

    model_type = "anomaly"
    registered_name = "titans-finance-anomaly-detection"
    purpose = Purpose(
        question="Is this transaction unusual: an amount spike, a double charge, a merchant never seen?",
        answer="one answer per transaction: an anomaly score from 0 to 1, is_anomaly (score at or above `threshold`) "
               "and a short reason for each flagged row.",
        outputs="per row: `anomaly_score` (0..1), `is_anomaly`, `reason`",
        evaluated_on="its training run's held-out test rows with planted anomalies added (or the anomalies the "
                     "ledger labels)")
    gate = Gate(key_metric="f1", greater_is_better=True, tolerance=0.02, relative=False, beat=("category_zscore",),
                floors={"recall": (0.3, True), "flag_rate_untouched": (0.10, False)})
    # A row's answer depends on the other rows of its day (a double charge): batch scoring sends each day whole.
    batch_plan = SAME_DAY
    row_reference_columns = ("reason",)  # "duplicate of row 3"
    options = (Option("max_flag_rate", MAX_FLAG_RATE, "without anomaly labels: the most of the ordinary (untouched) "
                      "validation rows the threshold may flag while it catches planted anomalies"),)
    serving_params = {"threshold": 0.99}  # a placeholder: training sets the threshold it chose
    report_metrics = ("precision", "recall", "f1", "pr_auc", "flag_rate_untouched", "recall_spike",
                      "recall_duplicate", "recall_unusual_merchant")
    # Labels exist only where a ledger carries them (the generator's); a real one is watched by its flag rate.
    monitoring = Monitoring(inputs=("description", "amount", "category", "type"), labels=(config.ANOMALY_LABEL,),
                            watched=(Watched("precision", True), Watched("recall", True)))

    def __init__(self, max_flag_rate: float = MAX_FLAG_RATE, min_precision: float = DEFAULT_MIN_PRECISION):
        self.max_flag_rate = max_flag_rate
        self.min_precision = min_precision

    def train(self, ledger: pd.DataFrame, seed: int = 42, test_fraction: float = 0.2, on_candidate=None,
              log=print) -> TrainingOutcome:
        ledger = AnomalyDetector.answerable(ledger, log=log)
        if len(ledger) < MIN_ROWS:
            raise NotEnoughData(f"anomaly detection needs at least {MIN_ROWS} transactions (about 60% to learn from, "
                                f"20% to choose its threshold on, 20% to test on); the ledger has {len(ledger)}")
        try:
            past, test = time_split(ledger, test_fraction)
            train, validation = time_split(past, 0.25)
        except ValueError as error:
            raise NotEnoughData(f"anomaly detection: {error}") from None
        log(f"anomaly: {len(train)} train / {len(validation)} validation / {len(test)} test rows "
            f"(time-ordered, test from {test['date'].min().date()})")
        # The served detector is the one whose threshold was chosen: refitting would shift its scores.
        detector = AnomalyDetector(seed).fit(train)
        everywhere = ledger["description"]  # a planted merchant's name is in none of them
        rows, anomalous, _, chosen_on = evaluation_rows(validation, seed, everywhere, VALIDATION_PLANTING)
        scores = detector.score(rows)[0]
        if chosen_on == "labels":
            threshold = labelled_threshold(scores, anomalous, self.min_precision)
            how = f"most recall at precision >= {self.min_precision} on labelled validation rows"
        else:
            threshold = planted_threshold(scores, anomalous, self.max_flag_rate)
            how = (f"best F1 of {anomalous.sum()} planted vs {(~anomalous).sum()} untouched validation rows, planted "
                   f"counted as {PLANTED_SHARE:.0%}, flagging at most {self.max_flag_rate:.0%} of the untouched")
        log(f"  threshold {threshold:.6f} ({how})")
        detector.threshold_ = threshold
        self.serving_params = {"threshold": threshold}

        rows, anomalous, kinds, evaluated_on = evaluation_rows(test, avoid=everywhere)
        planted = evaluated_on == "planted"
        scored = detector.predict(rows)
        scores, flagged = scored["anomaly_score"].to_numpy(), scored["is_anomaly"].to_numpy()
        metrics = {"threshold": threshold, **detection_metrics(anomalous, kinds, scores, flagged, planted)}
        # Baseline on the same rows, from the detector's own training rows, flagging as many rows as it does.
        baseline_scores = detector.baseline_.score(rows)
        baseline = detection_metrics(anomalous, kinds, baseline_scores, flag_top(baseline_scores, flagged.sum()),
                                     planted)
        log(f"  evaluated on {evaluated_on} anomalies: f1 {metrics['f1']:.3f} (category z-score {baseline['f1']:.3f}), "
            f"recall {metrics['recall']:.3f}, untouched rows flagged {metrics['flag_rate_untouched']:.3f}")
        if planted:
            self.report_metrics = ("precision", "recall_planted", "f1", "pr_auc", "flag_rate_untouched",
                                   *(f"recall_planted_{kind}" for kind in PLANTED_KINDS))
        outcome = TrainingOutcome(predictor=detector, chosen=None, candidates=[], metrics=metrics,
                                  baseline_metrics={"category_zscore": baseline}, train=train, test=test,
                                  test_predictions=scored,
                                  params={"evaluated_on": evaluated_on, "threshold_chosen_on": chosen_on})
        from pyfunc_models import plots  # matplotlib is for training runs only: a server never loads it

        outcome.artifacts["score_distribution.png"] = plots.score_distribution(scores, anomalous, threshold)
        evidence = pd.concat([rows.reset_index(drop=True), scored], axis=1).assign(anomaly_kind=kinds)
        outcome.artifacts["flagged_test_rows.csv"] = evidence[flagged].to_csv(index=False)
        outcome.warnings.extend(size_warnings(len(test), labels_count=metrics.get("labelled_anomalies"),
                                              ledger_rows=len(ledger)))
        return outcome


    def gate_metrics(self, predict, ledger: pd.DataFrame, **options) -> dict:
        return gate_metrics(predict, ledger)

    def monitored_rows(self, ledger: pd.DataFrame) -> pd.DataFrame:
        return AnomalyDetector.answerable(ledger)

    def watch(self, predict, rows: pd.DataFrame, history: pd.DataFrame) -> Watch:
        answers = predict(request_rows(rows))  # the whole period at once: a double charge is seen in its batch
        flagged = answers["is_anomaly"].to_numpy(dtype=bool)
        samples = {}
        labelled = labels_of(rows)
        if labelled is not None:
            columns = {"anomalous": labelled[0].astype(float), "flagged": flagged.astype(float)}
            samples = {
                "precision": Sample(columns, lambda c: float((c["anomalous"] * c["flagged"]).sum()
                                                             / max(c["flagged"].sum(), 1))),
                "recall": Sample(columns, lambda c: float((c["anomalous"] * c["flagged"]).sum()
                                                          / max(c["anomalous"].sum(), 1)))}
        return Watch({"anomaly_score": answers["anomaly_score"].to_numpy(dtype=float), "flagged": flagged}, samples)


def _training_baseline(predict):
    """The category z-score fitted beside the model being scored, when `predict` is a loaded pyfunc of ours."""
    detector = predictor_behind(predict)
    return detector.baseline_ if isinstance(detector, AnomalyDetector) else None


def gate_metrics(predict, ledger: pd.DataFrame) -> dict:
    """Score any anomaly model on an evaluation ledger: on its labels if it carries any, else on planted anomalies
    (`plant_anomalies` with PLANTING_SEED, so every model is scored on identical rows; labels never sent).

    Returns the model's `detection_metrics` and, as `baseline_category_zscore_<metric>`, those of the category
    z-score on the same rows, flagging as many rows as the model. The baseline learns from the model's own training
    rows when `predict` is a loaded pyfunc's (as in the training run's test metrics); otherwise each row's
    statistics come from the evaluation ledger's rows of earlier days (`earlier_days_zscores`).
    """
    rows, anomalous, kinds, evaluated_on = evaluation_rows(AnomalyDetector.answerable(ledger))
    scored = predict(request_rows(rows))
    scores, flagged = scored["anomaly_score"].to_numpy(dtype=float), scored["is_anomaly"].to_numpy(dtype=bool)
    planted = evaluated_on == "planted"
    trained_beside = _training_baseline(predict)
    baseline_scores = trained_beside.score(rows) if trained_beside is not None else earlier_days_zscores(ledger, rows)
    baseline = detection_metrics(anomalous, kinds, baseline_scores, flag_top(baseline_scores, flagged.sum()), planted)
    return {**detection_metrics(anomalous, kinds, scores, flagged, planted),
            **{f"baseline_category_zscore_{name}": value for name, value in baseline.items()}}
