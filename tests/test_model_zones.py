"""Golden model: zone packing, metadata, descriptors, footprint, tagged transfers."""

import numpy as np
import pytest

from pse_hdl.config import ConfigError, PSEConfig, preset
from pse_hdl.model.quant import effective_weights, quantize
from pse_hdl.model.layer import weight_costs
from pse_hdl.model.pa import code_bits_of
from pse_hdl.model.transfer import (dtype, fields, lane_schedule, lane_streams, layer_stream,
                                    port_schedule, port_streams)
from pse_hdl.model.zones import (check_fit, decode_meta, encode_meta, footprint_bits,
                                 pack_layer, pack_words, place_layers, split_points,
                                 unpack_layer, unpack_words)

CONFIGS = {"default": PSEConfig(), "wide": preset("wide").replace(desc_stride=8),
           "fixed-meta": PSEConfig(meta_encoding="fixed", desc_stride=1),
           "p8-16-w64": PSEConfig(precisions=(8, 16), thresholds=(1, 2), zone_word_bits=64)}
SHAPES = {"one-row": (1, 37), "one-col": (23, 1), "square": (16, 16), "ragged": (13, 29),
          "one": (1, 1)}
CODEMAPS = ["random", "all-pruned", "all-top", "all-low", "sparse90"]


def make(cfg, shape, kind, seed):
    rng = np.random.default_rng(seed)
    n = len(cfg.precisions)
    master = rng.integers(-32768, 32768, shape)
    codes = {"random": lambda: rng.integers(0, n + 1, shape),
             "all-pruned": lambda: np.zeros(shape, np.int64),
             "all-top": lambda: np.full(shape, n),
             "all-low": lambda: np.ones(shape, np.int64),
             "sparse90": lambda: np.where(rng.random(shape) < 0.9, 0,
                                          rng.integers(1, n + 1, shape))}[kind]()
    shifts = [int(rng.integers(0, 16 - b + 1)) for b in cfg.precisions]
    return master, codes, shifts


@pytest.mark.parametrize("cfgname", CONFIGS)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("kind", CODEMAPS)
def test_pack_unpack_inverse(cfgname, shape, kind):
    cfg = CONFIGS[cfgname]
    for seed in range(3):
        master, codes, shifts = make(cfg, SHAPES[shape], kind, seed)
        image = pack_layer(codes, master, shifts, cfg)
        got_codes, values, eff = unpack_layer(image, cfg)
        assert np.array_equal(got_codes, codes)
        assert np.array_equal(eff, effective_weights(codes, master, shifts, cfg))
        for k, bits in enumerate(cfg.precisions, start=1):
            sel = codes == k
            assert np.array_equal(values[sel], quantize(master[sel], bits, shifts[k - 1]))
            assert image.counts[k - 1] == sel.sum()
            assert len(image.words[k - 1]) == -(-sel.sum() // cfg.per_word(bits))
        assert np.all(values[codes == 0] == 0)


@pytest.mark.parametrize("cfgname", CONFIGS)
@pytest.mark.parametrize("shape", SHAPES)
def test_a_uniform_layer_stores_its_class_and_no_codes(cfgname, shape):
    """Whatever codes a uniform layer is given, its image holds every weight in its class's
    zone, no metadata, descriptors whose metadata offsets are 0, and unpacks to that class."""
    cfg = CONFIGS[cfgname]
    n = len(cfg.precisions)
    for k in range(1, n + 1):
        master, codes, shifts = make(cfg, SHAPES[shape], "random", k)
        image = pack_layer(codes, master, shifts, cfg, uniform=k)
        full = np.full(codes.shape, k)
        assert image.meta == [] and image.uniform == k
        assert image.counts[k - 1] == codes.size and sum(image.counts) == codes.size
        assert (image.descriptors[:, -1] == 0).all() and (image.splits[:, -1] == 0).all()
        assert np.array_equal(image.splits, split_points(full, cfg, k))
        got_codes, _, eff = unpack_layer(image, cfg)
        assert np.array_equal(got_codes, full)
        assert np.array_equal(eff, effective_weights(full, master, shifts, cfg))
        coded = pack_layer(full, master, shifts, cfg)
        assert image.words == coded.words
        assert footprint_bits([coded], cfg)["total"] - footprint_bits([image], cfg)["total"] \
            == len(coded.meta) == codes.size * cfg.code_length(k)


@pytest.mark.parametrize("cfgname", CONFIGS)
def test_descriptors_point_at_row_starts(cfgname):
    cfg = CONFIGS[cfgname]
    master, codes, shifts = make(cfg, (37, 11), "random", 9)
    image = pack_layer(codes, master, shifts, cfg)
    lengths = np.array([cfg.code_length(k) for k in range(len(cfg.precisions) + 1)])
    if not cfg.desc_stride:                      # the default keeps no row descriptors
        assert image.descriptors.shape == (0, len(cfg.precisions) + 1) and cfg.desc_depth == 0
        return
    for d, row in enumerate(range(0, 37, cfg.desc_stride)):
        for k in range(1, len(cfg.precisions) + 1):
            assert image.descriptors[d, k - 1] == (codes[:row] == k).sum()
        meta_off = image.descriptors[d, -1]
        assert meta_off == lengths[codes[:row]].sum()
        # A walk started at the descriptor decodes the row's codes.
        assert np.array_equal(decode_meta(image.meta, 11, cfg, start=meta_off), codes[row])


def test_unary_metadata_lengths():
    cfg = PSEConfig()
    assert encode_meta(np.array([0, 1, 2, 3]), cfg) == [0, 1, 0, 1, 1, 0, 1, 1, 1]
    fixed = PSEConfig(meta_encoding="fixed")
    assert encode_meta(np.array([0, 1, 2, 3]), fixed) == [0, 0, 1, 0, 0, 1, 1, 1]


def test_words_are_lsb_first_twos_complement():
    assert pack_words([1, -1, 0, 7, -8, 2, 3, 4], 4, 32) == [0x4328_70F1]
    assert unpack_words([0x4328_70F1], 4, 32, 8).tolist() == [1, -1, 0, 7, -8, 2, 3, 4]
    assert pack_words([-2, 1, 0], 2, 32) == [0b00_01_10]


@pytest.mark.parametrize("stride", [0, 8])
def test_footprint_counts_every_stored_bit(stride):
    cfg = PSEConfig(desc_stride=stride)
    master, codes, shifts = make(cfg, (64, 64), "random", 1)
    image = pack_layer(codes, master, shifts, cfg)
    fp = footprint_bits([image], cfg)
    words = sum(len(w) for w in image.words)
    lengths = np.array([1, 2, 3, 3])
    assert fp["values"] == words * 32
    assert fp["metadata"] == lengths[codes].sum()
    assert fp["descriptors"] == (8 * cfg.row_desc_bits if stride else 0)
    assert fp["split_descriptors"] == 3 * cfg.split_desc_bits
    assert fp["total"] == (fp["values"] + fp["metadata"] + fp["descriptors"]
                           + fp["split_descriptors"] + cfg.layer_desc_bits)
    assert fp["bits_per_weight"] == pytest.approx(fp["total"] / 4096)


def test_all_pruned_layer_costs_only_metadata():
    cfg = PSEConfig()
    image = pack_layer(np.zeros((8, 8), int), np.ones((8, 8), int), [0, 0, 0], cfg)
    fp = footprint_bits([image], cfg)
    assert fp["values"] == 0 and fp["metadata"] == 64


def test_zone_overflow_names_sizes():
    cfg = PSEConfig(zone_depth=16)
    image = pack_layer(np.full((8, 8), 3), np.ones((8, 8), int), [0, 0, 0], cfg)
    with pytest.raises(ConfigError, match="16-bit weights needs 32 words but its zone_depth is 16"):
        place_layers([image], cfg)
    a = pack_layer(np.full((4, 8), 1), np.ones((4, 8), int), [0, 0, 0], PSEConfig())
    b = pack_layer(np.full((4, 8), 1), np.ones((4, 8), int), [0, 0, 0], PSEConfig())
    place_layers([a, b], PSEConfig())
    assert a.base == (0, 0, 0) and b.base == (4, 0, 0)


def test_transfer_stream():
    cfg = PSEConfig()
    codes = np.array([[0, 1, 0, 3], [0, 0, 0, 0], [2, 0, 0, 0]])
    values = np.array([[0, -3, 0, 1000], [0, 0, 0, 0], [77, 0, 0, 0]])
    s = layer_stream(codes, values, (4, 2, 0), cfg)
    assert s.dtype == dtype(cfg)
    assert [tuple(int(v) for v in r) for r in s] == [
        (-3, 1, 4, 1, 0, 0), (1000, 3, 0, 3, 0, 1),     # row 0: two weights, last on the second
        (0, 0, 0, 0, 1, 1),                             # row 1 all pruned: one end marker
        (77, 2, 2, 0, 2, 1)]
    assert [f[0] for f in fields(cfg)] == list(dtype(cfg).names)
    assert sum(w for _, w, _ in fields(cfg)) == 16 + 2 + 4 + 8 + 8 + 1


@pytest.mark.parametrize("ports", [1, 2, 4, 16])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("kind", CODEMAPS)
def test_port_streams_are_the_lane_streams(ports, shape, kind):
    cfg = PSEConfig(lanes=ports)
    for seed in range(3):
        master, codes, shifts = make(cfg, SHAPES[shape], kind, seed)
        values = np.where(codes > 0, master >> 8, 0)
        whole = layer_stream(codes, values, shifts, cfg)
        parts = port_streams(codes, values, shifts, cfg)
        assert len(parts) == ports
        # Port k carries exactly what MAC lane k takes: chunks of equal MAC cost.
        for a, b in zip(parts, lane_streams(codes, values, shifts, cfg)):
            np.testing.assert_array_equal(a, b)
        live = [p[p["code"] > 0] for p in parts]
        # Concatenated, the ports carry the layer's weights in order, the same fields but last.
        joined = np.concatenate(live)
        for f in ("value", "code", "shift", "column", "row"):
            np.testing.assert_array_equal(joined[f], whole[whole["code"] > 0][f])
        costs = [int(weight_costs(code_bits_of(x["code"], cfg), cfg).sum()) for x in live]
        total = sum(costs)
        # Lane k starts once the cost before it reaches ceil(k C / P): no lane before the last
        # non-empty one ends more than one weight's cost short of its share.
        prefix = np.cumsum([0] + costs)
        for k in range(1, ports):
            if len(live[k]):
                assert prefix[k] >= -(-k * total // ports)
        # Every all-pruned row's marker is sent once; every port ends each row it touches.
        markers = sorted(int(r) for p in parts for r in p[p["code"] == 0]["row"])
        assert markers == sorted(int(r) for r in whole[whole["code"] == 0]["row"])
        for p in parts:
            for row in set(int(r) for r in p["row"]):
                assert p[p["row"] == row]["last"].tolist()[-1] == 1
                assert sum(p[p["row"] == row]["last"]) == 1
        # The schedule read from the split descriptors is the lanes' schedule where a lane works.
        for (row, cont), (lrow, lcont), part in zip(port_schedule(codes, cfg),
                                                    lane_schedule(parts), parts):
            if len(part):
                assert (row, bool(cont)) == (lrow, lcont)
            else:
                assert cont == 0


def test_split_points_give_the_walk_state():
    cfg = PSEConfig(lanes=4, one_port_below=0)
    codes = np.array([[0, 1, 0, 3], [0, 0, 0, 0], [2, 0, 1, 1]])
    s = split_points(codes, cfg)
    # Costs of the 5 survivors 1, 4, 2, 1, 1 (C = 9): lanes start where the cost before them
    # reaches 3, 5 and 7, one weight apart at least: survivors 2, 3, 4 = positions 8, 10, 11.
    assert s[:, 2].tolist() == [8, 10, 11]
    # Row 2 col 0, not a continuation; one 4-bit and one 16-bit weight and 11 code bits before.
    assert s[0].tolist() == [2, 0, 8, 0, 1, 0, 1, 11]
    assert s[1, :4].tolist() == [2, 2, 10, 1] and s[2, :4].tolist() == [2, 3, 11, 1]
    empty = split_points(np.zeros((2, 3), int), cfg)
    assert empty[:, 2].tolist() == [6, 6, 6] and empty[:, 0].tolist() == [2, 2, 2]
    assert empty[:, 3].tolist() == [0, 0, 0]
    # Under one_port_below the layer is one chunk: every other port starts at its end, and
    # its split descriptors are not stored.
    one = cfg.replace(one_port_below=13)
    s1 = split_points(codes, one)
    assert s1[:, :4].tolist() == [[3, 0, 12, 0]] * 3
    assert s1[0, 4:].tolist() == [3, 1, 1, 19]            # the counts and the code bits
    image = pack_layer(codes, np.ones((3, 4), int), [0, 0, 0], one)
    assert footprint_bits([image], one)["split_descriptors"] == 0
    assert footprint_bits([pack_layer(codes, np.ones((3, 4), int), [0, 0, 0], cfg)],
                          cfg)["split_descriptors"] == 3 * cfg.split_desc_bits


@pytest.mark.parametrize("change, match", [
    (dict(max_layers=1), "the network has 2 layers but max_layers is 1"),
    (dict(master_depth=1024), "master store needs 1600 weights but master_depth is 1024"),
    (dict(max_rows=16), r"layer 0 is 32x40 but the configuration allows at most 16x256"),
])
def test_network_that_does_not_fit_is_rejected_with_sizes(change, match):
    cfg = PSEConfig().replace(**change)
    with pytest.raises(ConfigError, match=match):
        check_fit([(32, 40), (10, 32)], cfg)



@pytest.mark.parametrize("cfgname", CONFIGS)
@pytest.mark.parametrize("shape", SHAPES)
def test_a_masked_layer_stores_its_kept_columns_only(cfgname, shape):
    """A masked layer's image holds the kept columns' weights in its class's zone, as the
    dense layer of those columns would (the same words, split descriptors of that walk), no
    codes, and the kept columns' indices priced as its metadata; it unpacks to its codes."""
    cfg = CONFIGS[cfgname]
    rng = np.random.default_rng(7)
    for k in range(1, len(cfg.precisions) + 1):
        for keep in (0.0, 0.4, 1.0):
            master, _, shifts = make(cfg, SHAPES[shape], "random", k)
            rows, cols = master.shape
            kept = np.flatnonzero(rng.random(cols) < keep)
            codes = np.zeros((rows, cols), np.int64)
            codes[:, kept] = k
            image = pack_layer(codes, master, shifts, cfg, uniform=k, masked=True)
            assert image.meta == [] and image.kept.tolist() == kept.tolist()
            dense = pack_layer(codes[:, kept], master[:, kept], shifts, cfg, uniform=k)
            assert image.words == dense.words and image.counts == dense.counts
            # The walk over all columns, starting at each split's rank among the kept ones.
            walk = split_points(codes, cfg, k)
            assert np.array_equal(image.splits[:, :-1], walk[:, :-1])
            assert image.splits[:, -1].tolist() == [int(np.sum(kept < c))
                                                    for c in walk[:, 1]]
            got_codes, _, eff = unpack_layer(image, cfg)
            assert np.array_equal(got_codes, codes)
            assert np.array_equal(eff, effective_weights(codes, master, shifts, cfg))
            fp, fd = footprint_bits([image], cfg), footprint_bits([dense], cfg)
            assert fp["metadata"] == kept.size * cfg.col_bits
            assert fp["values"] == fd["values"] and fp["weights"] == codes.size
            assert fp["split_descriptors"] == (cfg.layer_ports(codes.size) - 1) \
                * cfg.split_desc_bits


def test_masked_codes_must_be_whole_columns_of_the_class():
    cfg = PSEConfig()
    master = np.ones((3, 4), np.int64)
    with pytest.raises(ValueError, match="column by column"):
        pack_layer(np.array([[1, 0, 1, 1]] * 2 + [[1, 1, 1, 1]]), master, [0, 0, 0], cfg,
                   uniform=1, masked=True)
    with pytest.raises(ValueError, match="column by column"):
        pack_layer(np.full((3, 4), 2), master, [0, 0, 0], cfg, uniform=1, masked=True)
    with pytest.raises(ValueError, match="uniform class"):
        pack_layer(np.zeros((3, 4), int), master, [0, 0, 0], cfg, masked=True)
