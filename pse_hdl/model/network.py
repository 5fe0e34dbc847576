"""Networks: scikit-learn import, the ``.npz`` format, fixed-point conversion (SPEC section 2).

Float network: layers ``y = act(W x + b)`` with ``W`` out x in, ReLU on hidden layers (or
identity where ``FloatMLP.relu`` says so: a PCA before an MLP, say), identity on the last.
Fixed point, per layer l (all scales powers of two):

* input activations ``x_q = sat_act(round(x * 2**fx))``, fx chosen so the calibration maximum
  fits (``fx = floor(log2(2**(act_bits-1) / max|x|))``);
* master weights ``W_q = sat_w(round(W * 2**fw))`` with the same rule for ``weight_bits``;
* bias ``b_q = sat_acc(round(b * 2**(fx + fw)))``, in accumulator units;
* hidden outputs requantized with ``shift = fx + fw - fx_next``; the last layer's accumulator is
  the logit (argmax, ties to the lowest index).

``.npz`` format: ``n_layers``; for each layer l, float ``W{l}`` (out x in) and ``b{l}``; after
quantization also ``Wq{l}`` (int), ``bq{l}``, ``fx{l}``, ``fw{l}``, ``shift{l}``, ``relu{l}``
and the profiled baseline ``A{l}`` (EMA state per input) when present.
"""

import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..files import savez_atomic
from .fixed import saturate, signed_range
from .layer import one_blas_thread

__all__ = ["FloatMLP", "QuantLayer", "QuantNet", "digits_splits", "train_digits",
           "quantize_network", "quantize_input", "default_network"]


@dataclass
class FloatMLP:
    weights: list   # W_l: out x in
    biases: list
    # A per-feature affine the host applies to the samples first (a scikit-learn Pipeline's
    # scalers): layer 0 sees ``x * in_scale + in_offset``. None: the samples as they are.
    in_scale: np.ndarray = None
    in_offset: np.ndarray = None
    # Per layer, whether a ReLU follows it. None: every hidden layer, not the last (whose
    # outputs are the logits). A hidden layer without one is linear (a PCA's projection).
    relu: list = None

    def __post_init__(self):
        n = len(self.weights)
        relu = [l < n - 1 for l in range(n)] if self.relu is None else \
            [bool(r) for r in np.asarray(self.relu).reshape(-1)]
        if len(relu) != n or (relu and relu[-1]):
            raise ValueError(f"relu must have a flag per layer ({n}), the last one false, not "
                             f"{self.relu!r}")
        self.relu = relu

    def prepare(self, x):
        """The samples as layer 0 takes them (the host-side scaling, if any)."""
        x = np.asarray(x, np.float64)
        return x if self.in_scale is None else x * self.in_scale + self.in_offset

    @classmethod
    def from_sklearn(cls, mlp):
        if getattr(mlp, "activation", "relu") != "relu":
            raise ValueError(f"only ReLU MLPs are supported, not activation={mlp.activation!r}")
        return cls([np.asarray(w, np.float64).T for w in mlp.coefs_],
                   [np.asarray(b, np.float64) for b in mlp.intercepts_])

    def forward(self, x, upto=None):
        """Float activations entering each layer (and the logits last)."""
        acts = [self.prepare(x)]
        for l, (w, b) in enumerate(zip(self.weights, self.biases)):
            z = acts[-1] @ w.T + b
            acts.append(np.maximum(z, 0) if self.relu[l] else z)
        return acts

    def predict(self, x):
        return np.argmax(self.forward(x)[-1], axis=1)

    def equalized(self, x_calib):
        """The same function with every input's range balanced against its weight column's
        (cross-layer equalization, Nagel et al. 2019, on the input side): input j scaled by
        ``s_j = sqrt(max|W[:, j]| / max|x_j|)`` on the host (folded into ``in_scale`` and
        ``in_offset``) and layer 0's column j divided by it, so one power-of-two scale serves
        inputs of very different ranges, and the weights, without starving the small ones. An
        input that is zero on ``x_calib`` or has no weight keeps its scale. Returns
        ``(network, s)``."""
        x = self.prepare(x_calib)
        rx, rw = np.abs(x).max(axis=0), np.abs(self.weights[0]).max(axis=0)
        s = np.ones(len(rx))
        ok = (rx > 0) & (rw > 0)
        s[ok] = np.sqrt(rw[ok] / rx[ok])
        scale = np.ones(len(s)) if self.in_scale is None else self.in_scale
        offset = np.zeros(len(s)) if self.in_offset is None else self.in_offset
        net = FloatMLP([self.weights[0] / s[None, :]] + list(self.weights[1:]),
                       list(self.biases), scale * s, offset * s, list(self.relu))
        return net, s


@dataclass
class QuantLayer:
    master: np.ndarray      # int, out x in
    bias: np.ndarray        # int, accumulator units
    fx: int                 # input activation fraction bits
    fw: int                 # master weight fraction bits
    shift: int              # requantization shift of the output
    relu: bool

    @property
    def shape(self):
        return self.master.shape


@dataclass
class QuantNet:
    layers: list
    baseline: list = field(default_factory=list)   # profiled EMA state per layer (may be empty)

    def save(self, path, float_net=None):
        data = {"n_layers": len(self.layers)}
        for l, q in enumerate(self.layers):
            data.update({f"Wq{l}": q.master, f"bq{l}": q.bias, f"fx{l}": q.fx, f"fw{l}": q.fw,
                         f"shift{l}": q.shift, f"relu{l}": q.relu})
            if float_net is not None:
                data.update({f"W{l}": float_net.weights[l], f"b{l}": float_net.biases[l]})
            if self.baseline:
                data[f"A{l}"] = self.baseline[l]
        np.savez(path, **data)

    @classmethod
    def load(cls, path):
        with np.load(path) as z:
            n = int(z["n_layers"])
            layers = [QuantLayer(z[f"Wq{l}"].astype(np.int64), z[f"bq{l}"].astype(np.int64),
                                 int(z[f"fx{l}"]), int(z[f"fw{l}"]), int(z[f"shift{l}"]),
                                 bool(z[f"relu{l}"])) for l in range(n)]
            baseline = [z[f"A{l}"].astype(np.int64) for l in range(n)] if "A0" in z else []
        return cls(layers, baseline)


def _frac_bits(peak, bits):
    """Largest f with ``peak * 2**f <= 2**(bits-1)`` (the top value may saturate by one LSB)."""
    if peak <= 0:
        return bits - 1
    return int(np.floor(np.log2((1 << (bits - 1)) / peak)))


def quantize_input(x, fx, cfg):
    q, _ = saturate(np.round(np.asarray(x, np.float64) * 2.0 ** fx).astype(np.int64),
                    cfg.act_bits)
    return q


def quantize_network(net, x_calib, cfg):
    """Fixed-point network; activation scales from the float activations on ``x_calib``."""
    acts = net.forward(x_calib)
    fxs = [_frac_bits(float(np.max(np.abs(a))), cfg.act_bits) for a in acts[:-1]]
    layers = []
    for l, (w, b) in enumerate(zip(net.weights, net.biases)):
        fw = _frac_bits(float(np.max(np.abs(w))), cfg.weight_bits)
        lo, hi = signed_range(cfg.weight_bits)
        wq = np.clip(np.round(w * 2.0 ** fw), lo, hi).astype(np.int64)
        bq, _ = saturate(np.round(b * 2.0 ** (fxs[l] + fw)).astype(np.int64), cfg.acc_bits)
        last = l == len(net.weights) - 1
        shift = 0 if last else fxs[l] + fw - fxs[l + 1]
        if shift < 0:
            raise ValueError(f"layer {l}: requantization shift would be negative ({shift})")
        layers.append(QuantLayer(wq, bq, fxs[l], fw, shift, net.relu[l]))
    return QuantNet(layers)


def digits_splits(seed=0):
    """Bundled digits data, scaled to [0, 1], split 55% train / 15% calibration / 30% test."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    d = load_digits()
    x, y = d.data / 16.0, d.target
    x_rest, x_test, y_rest, y_test = train_test_split(x, y, test_size=0.30, random_state=seed,
                                                      stratify=y)
    x_train, x_cal, y_train, y_cal = train_test_split(x_rest, y_rest, test_size=0.15 / 0.70,
                                                      random_state=seed, stratify=y_rest)
    return {"train": (x_train, y_train), "calib": (x_cal, y_cal), "test": (x_test, y_test)}


DEFAULT_HIDDEN = (256,)
DEFAULT_ALPHA = 1e-2


def train_digits(hidden=DEFAULT_HIDDEN, seed=0, splits=None, alpha=DEFAULT_ALPHA):
    """Train the default MLP deterministically (a few seconds on one core)."""
    import warnings
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier
    splits = splits or digits_splits(seed)
    mlp = MLPClassifier(hidden_layer_sizes=hidden, activation="relu", alpha=alpha,
                        max_iter=400, random_state=seed)
    with warnings.catch_warnings(), one_blas_thread:     # small products: see one_blas_thread
        warnings.simplefilter("ignore", ConvergenceWarning)
        mlp.fit(*splits["train"])
    return FloatMLP.from_sklearn(mlp)


def _read_cached(path, hidden):
    """The cached network at ``path``, or None if the file is not a whole, valid one (an
    interrupted write of an older version, a disk error, a file put there by hand)."""
    import zipfile
    try:
        # Opened here, so the file is closed whatever np.load makes of its content.
        with open(path, "rb") as f, np.load(f) as z:
            n = int(z["n_layers"])
            net = FloatMLP([np.asarray(z[f"W{l}"], np.float64) for l in range(n)],
                           [np.asarray(z[f"b{l}"], np.float64) for l in range(n)])
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None
    shapes = [w.shape for w in net.weights]
    want = [(h, i) for h, i in zip((*hidden, 10), (64, *hidden))]
    ok = shapes == want and all(b.shape == (w.shape[0],) for w, b in zip(net.weights, net.biases))
    finite = all(np.all(np.isfinite(a)) for a in (*net.weights, *net.biases))
    return net if ok and finite else None


def default_network(cache_dir=None, hidden=DEFAULT_HIDDEN, seed=0, alpha=DEFAULT_ALPHA):
    """The default digits MLP, trained once and cached as ``.npz`` float weights."""
    cache_dir = Path(cache_dir or Path.home() / ".cache" / "pse-hdl")
    path = cache_dir / f"digits_mlp_{'x'.join(map(str, hidden))}_a{alpha:g}_s{seed}.npz"
    if path.exists():
        net = _read_cached(path, hidden)
        if net is not None:
            return net
        print(f"pse: the cached network {path} is unreadable or not the expected MLP; "
              f"training it again", file=sys.stderr)
    net = train_digits(hidden, seed, alpha=alpha)
    cache_dir.mkdir(parents=True, exist_ok=True)
    data = {"n_layers": len(net.weights)}
    for l, (w, b) in enumerate(zip(net.weights, net.biases)):
        data[f"W{l}"], data[f"b{l}"] = w, b
    savez_atomic(path, **data)          # another process never reads half a file
    return net
