import dataclasses
from pathlib import Path

import pytest

from pse_hdl.config import ConfigError, PRESETS, PSEConfig, from_arg, load, preset, save

INVALID = [
    ({"lanes": 3}, "lanes must be a power of two"),
    ({"lanes": 0}, "lanes"),
    ({"lanes": 128}, "lanes"),
    ({"lanes": 4.0}, "lanes must be an integer"),
    ({"precisions": (4, 32)}, "precisions"),
    ({"precisions": ()}, "precisions"),
    ({"precisions": (8, 4)}, "ascending"),
    ({"precisions": (4, 4, 8)}, "precisions"),
    ({"precisions": (3, 8)}, "precisions"),
    ({"act_bits": 2}, "act_bits"),
    ({"weight_bits": 8}, "weight_bits must be at least the largest precision 16"),
    ({"acc_bits": 20}, "acc_bits"),
    ({"zone_word_bits": 24}, "zone_word_bits"),
    ({"zone_depth": 1000}, "zone_depth"),
    ({"master_depth": 3}, "master_depth"),
    ({"master_depth": 1000}, "master_depth must be a multiple of 16, not 1000"),
    ({"one_port_below": -1}, "one_port_below must be an integer between 0 and 4294967296, "
                             "not -1"),
    ({"max_rows": 100}, "max_rows"),
    ({"max_cols": 0}, "max_cols"),
    ({"ema_rate": 0.0}, "ema_rate"),
    ({"ema_rate": 0.7}, "ema_rate must be a number in (0, 0.5]"),
    ({"ema_rate": "0.1"}, "ema_rate"),
    ({"ema_rate": 0.001, "ema_rate_bits": 4}, "cannot be represented"),
    ({"ema_power_of_two": True}, "power of two 2**-k"),
    ({"ema_frac_bits": -1}, "ema_frac_bits"),
    ({"thresholds": (1, 2)}, "thresholds must be 3 integers"),
    ({"thresholds": (5, 3, 9)}, "non-decreasing"),
    ({"thresholds": (-1, 3, 9)}, "thresholds must lie in"),
    ({"thresholds": (1, 2, 1 << 40)}, "thresholds must lie in"),
    ({"hysteresis": -5}, "hysteresis"),
    ({"hysteresis": 10}, "needs hysteresis_shift = 0"),     # a fixed band, and one that follows
    ({"hysteresis_shift": -1}, "hysteresis_shift"),
    ({"hysteresis_shift": 65}, "hysteresis_shift"),
    ({"period": 0}, "period"),
    ({"warmup": -1}, "warmup"),
    ({"reversible": "yes"}, "reversible must be true or false"),
    ({"importance_form": "exact"}, "importance_form must be one of"),
    ({"mac_digit_bits": 3}, "mac_digit_bits"),
    ({"mac_digit_bits": 8}, "mac_digit_bits must be 4"),   # was refused only by the MAC's RTL
    ({"hist_bins": 1}, "hist_bins"),
    ({"hist_sub_bits": 9}, "hist_sub_bits"),
    ({"desc_stride": 3}, "desc_stride"),
    ({"meta_encoding": "huffman"}, "meta_encoding must be one of"),
    ({"meta_bits": -0.5}, "meta_bits must be 0 (the longest code) or an average code length"),
    ({"meta_bits": "1.5"}, "meta_bits"),
    ({"zone_depth": (2048, 1024)}, "zone_depth must be one depth or one per precision"),
]


@pytest.mark.parametrize("changes,message", INVALID, ids=[str(c) for c, _ in INVALID])
def test_invalid_values_name_the_field(changes, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")
                       .replace("*", r"\*").replace("[", r"\[")):
        PSEConfig(**changes)


def test_default_is_the_specification():
    cfg = PSEConfig()
    assert cfg.precisions == (4, 8, 16)
    assert cfg.act_bits == 8 and cfg.weight_bits == 16
    assert cfg.ema_num / (1 << cfg.ema_rate_bits) == pytest.approx(0.1, abs=1 / 512)
    assert cfg.code_bits == 2
    assert cfg.reversible


def test_power_of_two_rate():
    cfg = PSEConfig(ema_rate=1 / 16, ema_power_of_two=True)
    assert cfg.ema_num == 16


def test_derived_widths():
    cfg = PSEConfig()
    assert cfg.ema_bits == 16 and cfg.importance_bits == 32
    assert cfg.per_word(4) == 8 and cfg.per_word(16) == 2
    assert [cfg.mac_cost(b) for b in (4, 8, 16)] == [1, 2, 4]
    assert preset("wide").code_bits == 3
    assert [PSEConfig().code_length(k) for k in range(4)] == [1, 2, 3, 3]
    assert [PSEConfig(meta_encoding="fixed").code_length(k) for k in range(4)] == [2] * 4


def test_zone_and_metadata_depths_follow_the_master_store():
    """Zone depth 0 sizes the zones from ``master_depth`` (the main zone, of the lowest precision
    of 4 bits or more, holds it at 4 bits, rounded down to a power of two; the others half as
    many words), and
    ``meta_bits`` sizes the metadata: the default holds the digits network in 24 DP16KD of
    zones and metadata (2 x (2048 + 1024 + 1024 + 1024) words of 32 bits)."""
    cfg = PSEConfig()
    assert cfg.zone_depths == (2048, 1024, 1024) and cfg.meta_depth == 1024
    assert PSEConfig(master_depth=2 * 19456).zone_depths == (4096, 2048, 2048)
    assert PSEConfig(master_depth=64, lanes=32).zone_depths == (32, 32, 32)   # at least lanes
    assert PSEConfig(precisions=(8, 16), thresholds=(1, 2)).zone_depths == (2048, 1024)
    assert PSEConfig(precisions=(2, 4, 8, 16),
                     thresholds=(1, 2, 3, 4)).zone_depths == (1024, 2048, 1024, 1024)
    assert PSEConfig(zone_depth=512).zone_depths == (512,) * 3
    # 0: every weight's longest code; beyond the longest or below the shortest code, those
    assert PSEConfig(meta_bits=0).meta_depth == PSEConfig(meta_bits=7).meta_depth == 19456 * 3 // 32
    assert PSEConfig(meta_encoding="fixed").meta_depth == 19456 * 2 // 32
    assert PSEConfig(precisions=(16,), thresholds=(1,)).meta_depth == 19456 // 32


def test_an_engine_sized_for_the_network():
    """``fitted``: the layer limits and the master store follow the network's layers; the
    zones hold every weight at 4 bits, no deeper than the configuration's own while the master
    store holds the network; the descriptors' fields narrow with it; the rest is kept."""
    cfg = PSEConfig()
    demo = cfg.fitted([(256, 64), (10, 256)])
    assert (demo.max_rows, demo.max_cols, demo.max_layers, demo.master_depth) == (256, 256, 2,
                                                                                 18944)
    assert demo.zone_depths == cfg.zone_depths and demo.layer_desc_bits == cfg.layer_desc_bits
    iris = cfg.fitted([(16, 4), (3, 16)])
    assert (iris.max_rows, iris.max_cols, iris.master_depth, iris.master_bank) == (16, 16, 112,
                                                                                   128)
    assert iris.zone_depths == (16, 16, 16)
    # Both its layers are under ``one_port_below`` weights, fetched on one port: one lane.
    assert iris.lanes == 1 and cfg.fitted([(32, 64), (10, 32)]).lanes == 4
    assert PSEConfig(one_port_below=0).fitted([(16, 4), (3, 16)]).lanes == 4
    assert (iris.layer_desc_bits, iris.split_desc_bits) == (58, 49)   # 102 and 93 by default
    # Zones of every weight at 4 bits plus a word a layer: 2,368 weights, 296 + 2 words.
    assert cfg.fitted([(32, 64), (10, 32)]).zone_depths == (512, 256, 256)
    # A network larger than the configuration grows it; the rest is the configuration's.
    big = preset("wide").fitted([(300, 64), (10, 300)])
    assert (big.max_rows, big.max_cols, big.master_depth) == (512, 512, 22208)
    assert big.zone_depths == (4096, 4096, 2048, 2048) and big.lanes == 16
    assert big.precisions == preset("wide").precisions
    assert PSEConfig(desc_stride=64).fitted([(16, 4), (3, 16)]).desc_stride == 16
    assert preset("up5k").fitted([(32, 64), (10, 32)]).zone_depths == (256, 128, 128)
    with pytest.raises(ConfigError, match=r"no engine holds this network \(1 layers, 16000000 "
                                          r"weights, layers up to 4096x4096\): zone_depth"):
        cfg.fitted([(4000, 4000)])
    with pytest.raises(ConfigError, match="layers of at least 1x1"):
        cfg.fitted([(0, 3)])


def test_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        PSEConfig().lanes = 8


@pytest.mark.parametrize("name", PRESETS)
def test_toml_round_trip(name, tmp_path):
    path = tmp_path / "c.toml"
    save(preset(name), path)
    assert load(path) == preset(name)


def test_toml_starts_from_a_preset_and_rejects_unknown_fields(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[pse]\npreset = "wide"\nlanes = 8\n')
    cfg = load(path)
    assert cfg.lanes == 8 and cfg.precisions == (2, 4, 8, 16)
    path.write_text("[pse]\nlane = 8\n")
    with pytest.raises(ConfigError, match="unknown field.*lane"):
        load(path)
    path.write_text("[pse]\nlanes = 3\n")
    with pytest.raises(ConfigError, match="lanes must be a power of two"):
        load(path)
    path.write_text("[pse\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load(path)


def test_the_masks_example_is_the_masks_preset():
    """``examples/input_masks.toml`` (the commented configuration) and the ``masks`` preset (what
    ``--config masks`` gives without the repository) are one configuration."""
    example = Path(__file__).resolve().parent.parent / "examples" / "input_masks.toml"
    assert from_arg(str(example)) == preset("masks") and preset("masks").input_masks


def test_unknown_preset_lists_the_valid_ones():
    with pytest.raises(ConfigError, match="tiny, default, masks, up5k, wide"):
        preset("huge")
    with pytest.raises(ConfigError, match="--config must be a preset"):
        from_arg("huge")


def test_descriptor_widths_are_defined_once():
    """The RTL's descriptor layouts and the footprint's widths come from one field list."""
    from pse_hdl.config import PRESETS
    from pse_hdl.rtl.zones.layouts import row_desc_layout, split_layout
    for cfg in [*PRESETS.values(), PSEConfig(precisions=(2, 4, 8, 16),
                                             thresholds=(1, 2, 3, 4), desc_stride=4)]:
        assert row_desc_layout(cfg).size == cfg.row_desc_bits
        assert split_layout(cfg).size == cfg.split_desc_bits


def test_the_low_bits_example_is_the_default_with_the_2_bit_class():
    """``examples/low_bits.toml`` (README, docs/ALLOCATION.md) changes the precision set, its
    thresholds and the memories' sizes only, and the demo's network calibrates on it at 3
    bits."""
    from pathlib import Path

    from pse_hdl.workflow import run_demo
    path = Path(__file__).resolve().parent.parent / "examples" / "low_bits.toml"
    cfg = from_arg(str(path))
    assert cfg.precisions == (2, 4, 8, 16)
    default = PSEConfig().to_dict()
    assert {k for k, v in cfg.to_dict().items() if v != default[k]} == {
        "precisions", "thresholds", "zone_depth", "meta_bits"}
    fig = run_demo(cfg, target_bits=3.0).figures
    assert fig["bits_per_weight"] <= 3.0 and fig["pse_accuracy"] > 0.95


def test_the_input_masks_example_is_the_default_with_masked_layers():
    """``examples/input_masks.toml`` (README, docs/ALLOCATION.md) changes ``input_masks`` and
    the histogram's resolution only (16 bins an octave over the default's range), and the demo's
    network then stores a layer masked within the 4-bit budget."""
    from pathlib import Path

    from pse_hdl.workflow import run_demo
    path = Path(__file__).resolve().parent.parent / "examples" / "input_masks.toml"
    cfg = from_arg(str(path))
    default = PSEConfig().to_dict()
    assert {k for k, v in cfg.to_dict().items() if v != default[k]} == {
        "input_masks", "hist_sub_bits", "hist_bins"}
    assert cfg.hist_bins >> cfg.hist_sub_bits == default["hist_bins"] >> default["hist_sub_bits"]
    fig = run_demo(cfg).figures
    assert fig["masked_layers"] and fig["bits_per_weight"] <= 4.0
    assert fig["pse_accuracy"] > 0.97
