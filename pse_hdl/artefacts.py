"""A design's artefacts: the engine written out for a network (Verilog, memory images, the
register writes that load it, the C header, the report and the host's input and output
formats in it), and a design saved to one ``.npz`` and read back. :meth:`Design.write <pse_hdl.api.Design.write>`, :meth:`Design.save
<pse_hdl.api.Design.save>` and :func:`pse_hdl.load` call these."""

import json
from pathlib import Path

import numpy as np

from .config import PSEConfig
from .errors import InputError
from .files import savez_atomic, to_json, write_atomic
from .importers import Source, read_npz
from .model.network import FloatMLP


def io_formats(design):
    """How a host turns samples into the engine's INPUT words and its RESULT words back
    into values (``report.json`` says it for a host program of one's own): ``input``: each
    sample scaled per feature (``scale``, ``offset``: a Pipeline's scalers and the
    equalization's scales, ``equalized``, if any; else null),
    times ``2**frac_bits``, rounded, saturated to ``bits``-bit signed; ``output``: the last
    layer's accumulators (``bits``), divided by ``2**frac_bits`` (a classifier's class is
    the largest's row, ``classes``)."""
    net, first, last = design.source.net, design.qnet.layers[0], design.qnet.layers[-1]
    scaled = net.in_scale is not None
    return {"input": {"bits": design.cfg.act_bits, "frac_bits": int(first.fx),
                      "scale": net.in_scale.tolist() if scaled else None,
                      "offset": net.in_offset.tolist() if scaled else None,
                      "scaling": design.source.info.get("input_scaling"),
                      "equalized": bool(design.source.info.get("equalized"))},
            "output": {"bits": design.cfg.acc_bits, "frac_bits": int(last.fx + last.fw),
                       "classes": None if design.classes is None
                       else [c.item() if hasattr(c, "item") else c for c in design.classes]}}


def write(design, directory):
    """The engine for ``design``'s network: ``pse_engine.v``, the register writes that load the
    network (``load.txt``: address value, hexadecimal, the firmware's order), memory images
    (``masters.hex``, ``biases.hex``, ``ric_baseline.hex``), ``config.toml``,
    ``pse_regs.h``, and ``report.json``. Returns the directory."""
    from . import config as config_mod
    from .host.bus import run
    from .host.driver import Driver
    from .host.firmware import Firmware
    from .host.model_bus import ModelBus
    from .regmap import c_header
    from .rtl import generate_verilog
    out = Path(directory)
    if out.exists() and not out.is_dir():
        raise InputError(f"{str(out)!r} exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    cfg = design.cfg
    writes = []

    class Recorder(ModelBus):
        async def write(self, addr, value):
            writes.append((addr, value & 0xFFFF_FFFF))
            await super().write(addr, value)
    fw = Firmware(Driver(Recorder(cfg), cfg), design.qnet, design.thresholds, design.policy)
    run(fw.load())
    files = {
        "pse_engine.v": generate_verilog("engine", cfg),
        "load.txt": "".join(f"{a:05x} {v:08x}\n" for a, v in writes),
        "masters.hex": "".join(f"{int(v) & 0xFFFF:04x}\n" for q in design.qnet.layers
                               for v in q.master.ravel()),
        "biases.hex": "".join(f"{int(v) & 0xFFFF_FFFF:08x}\n" for q in design.qnet.layers
                              for v in q.bias),
        "ric_baseline.hex": "".join(f"{int(v):08x}\n" for a in design.qnet.baseline
                                    for v in a),
        "pse_regs.h": c_header(cfg),
        "report.json": to_json(design.report(), indent=2) + "\n",
    }
    for name, text in files.items():
        write_atomic(out / name, text)
    config_mod.save(cfg, out / "config.toml")
    return out


def save(design, path):
    """The design (float network, calibration data, configuration, allocation) in one
    ``.npz``; :func:`load` reads it back."""
    path = Path(path)
    if path.suffix != ".npz":
        raise InputError(f"a design is saved as .npz, not {str(path)!r}")
    if not path.parent.is_dir():
        raise InputError(f"the directory of {str(path)!r} does not exist")
    meta = {"config": design.cfg.to_dict(), "kind": design.source.kind, "task": design.task,
            "shares": list(design.shares), "thresholds": design.thresholds,
            "uniform": design.uniform, "masked": design.masked,
            "target_bits": design.target_bits, "mode": design.mode,
            "recalibrate_every": design.recalibrate_every, "adapt": design.adapt,
            "max_mac": design.max_mac, "max_loss": design.max_loss,
            "input_scaling": design.source.info.get("input_scaling"),
            "equalized": bool(design.source.info.get("equalized"))}
    data = {"pse_design": np.array(json.dumps(meta)), "n_layers": len(design.qnet.layers),
            "x_calib": design.x_cal, "y_calib": design.y_cal,
            "relu": np.array(design.source.net.relu, bool)}
    for l, (w, b) in enumerate(zip(design.source.net.weights, design.source.net.biases)):
        data[f"W{l}"], data[f"b{l}"] = w, b
    if design.source.classes is not None:
        data["classes"] = np.asarray(design.source.classes)
    if design.source.net.in_scale is not None:
        data["in_scale"], data["in_offset"] = design.source.net.in_scale, \
            design.source.net.in_offset
    return savez_atomic(path, **data)


def load(path):
    """A :class:`~pse_hdl.api.Design` saved with :func:`save`."""
    from .api import Design
    path = Path(path)
    if not path.exists():
        raise InputError(f"design file {str(path)!r} does not exist")
    z = read_npz(path)
    try:
        meta = json.loads(str(z["pse_design"]))
        n = int(z["n_layers"])
        net = FloatMLP([z[f"W{l}"] for l in range(n)], [z[f"b{l}"] for l in range(n)],
                       z.get("in_scale"), z.get("in_offset"), z.get("relu"))
        x_cal, y_cal = z["x_calib"], z["y_calib"]
        classes = z.get("classes")
    except KeyError as e:
        raise InputError(f"{path} is not a saved pse-hdl design: it has no {e.args[0]!r} "
                         f"(Design.save writes one)") from None
    except ValueError as e:
        raise InputError(f"{path} is not a saved pse-hdl design: {e}") from None
    cfg = PSEConfig.from_dict(meta["config"], source=str(path))
    source = Source(net, meta["kind"], meta["task"], classes,
                    info={"input_scaling": meta.get("input_scaling"),
                          "equalized": meta.get("equalized", False)})
    design = Design(cfg, source, x_cal, y_cal, meta["task"],
                    recalibrate_every=meta["recalibrate_every"])
    design.set_allocation(meta["shares"], meta["thresholds"], meta["target_bits"], meta["mode"],
                          meta.get("uniform"), meta.get("masked"))
    design.adapt = meta.get("adapt")
    design.max_mac = meta.get("max_mac")
    design.max_loss = meta.get("max_loss")
    return design
