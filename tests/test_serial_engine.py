"""The engine on a serial line: host driver -> serial framing -> a byte pipe (in process) or a
pseudo-terminal (through pyserial) -> the Verilated engine behind its UART and bridge, bit-exact
with the golden model, also when the line loses and damages bytes."""

import json
import os
import pickle
import random
import threading
import warnings

import numpy as np
import pytest

from pse_hdl.cli import main
from pse_hdl.config import PRESETS
from pse_hdl.host.bus import run
from pse_hdl.host.driver import Driver
from pse_hdl.host.link import LinkError
from pse_hdl.host.serial_bus import SerialBus
from pse_hdl.host.serial_sim import SimPort
from sim.engine_ref import check_run, random_case, run_firmware

# One worker runs the module: a second would set up the module's fixtures again and wait on the
# first one's build of its serial-link model with nothing to do.
pytestmark = pytest.mark.xdist_group("serial_engine")

CFG = PRESETS["up5k"].replace(period=3, warmup=2)


@pytest.fixture(scope="module")
def port():
    p = SimPort(CFG)
    yield p
    p.close()


class NoisyPort:
    """A line that damages what crosses it: a flipped bit, a lost byte or garbage before a
    frame on the way out, with probability ``p`` a frame; on the way back, each byte lost with
    probability ``p / 25``."""

    def __init__(self, port, rng, p):
        self.port, self.rng, self.p = port, rng, p
        self.damaged = self.lost_replies = 0

    def write(self, data):
        data = bytearray(data)
        if len(data) > 2 and self.rng.random() < self.p:
            self.damaged += 1
            k = self.rng.randrange(1, len(data) - 1)
            kind = self.rng.choice(["flip", "lose", "garbage"])
            if kind == "flip":
                data[k] ^= 1 << self.rng.randrange(8)
            elif kind == "lose":
                del data[k]
            else:
                data[:0] = bytes(self.rng.getrandbits(8) for _ in range(5))
        return self.port.write(bytes(data))

    def read(self, size=1):
        data = self.port.read(size)
        kept = bytes(b for b in data if self.rng.random() >= self.p / 25)
        self.lost_replies += len(data) - len(kept)
        return kept

    @property
    def in_waiting(self):
        return self.port.in_waiting

    def reset_input_buffer(self):
        self.port.reset_input_buffer()


# Small enough that any allocation fits the up5k zones (256 16-bit weights).
SHAPES = [[(10, 16), (6, 10)], [(16, 12)], [(1, 64), (7, 1)]]


@pytest.mark.parametrize("seed", range(3))
def test_random_networks_over_the_serial_link(port, seed):
    case = random_case(CFG, np.random.default_rng(2000 + seed), shapes=SHAPES[seed], samples=8)
    bus = SerialBus(port, CFG)
    logits, stats, allocs = run(run_firmware(case, bus))
    check_run(case, logits, stats, allocs)
    assert bus.retried == 0 and port.framing_errors == 0


def test_a_damaged_line_costs_retries_not_results(port):
    """Requests and replies damaged at random: every frame is retried until it gets through,
    a retried frame's writes run once (a repeated SNAPSHOT or ALLOCATE would change the codes),
    and the run is still bit-exact."""
    case = random_case(CFG, np.random.default_rng(7), shapes=SHAPES[0], samples=8)
    noisy = NoisyPort(port, random.Random(7), 0.08)
    bus = SerialBus(noisy, CFG, retries=8)
    logits, stats, allocs = run(run_firmware(case, bus))
    check_run(case, logits, stats, allocs)
    assert noisy.damaged >= 5 and noisy.lost_replies >= 3
    assert bus.retried >= (noisy.damaged + noisy.lost_replies) // 2


def test_garbage_and_a_lost_end_are_recovered_without_reset(port):
    drv = Driver(SerialBus(port, CFG), CFG)
    port.write(bytes(random.Random(1).getrandbits(8) for _ in range(300)))   # line noise
    port.write(bytes([0x12, 0x34]))                 # a frame that never ends
    run(drv.identify())                             # the next frame recovers
    run(drv.write_window("MASTER", list(range(20))))
    assert run(drv.read_window("MASTER", 20)) == list(range(20))


class DeadPort:
    """A port whose far end never answers (no bitstream, wrong baud rate)."""
    in_waiting = 0

    def write(self, data):
        return len(data)

    def read(self, size=1):
        return b""

    def reset_input_buffer(self):
        pass


def test_no_reply_is_a_clear_link_error():
    bus = SerialBus(DeadPort(), CFG, retries=2)
    with pytest.raises(LinkError, match=r"failed after 3 attempts .* no reply.* baud rate "
                                        r"\(1000000\)"):
        run(Driver(bus, CFG).identify())


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """A scikit-learn digits MLP 64-32-10 (pickled) and its data (.npz): the up5k design."""
    from sklearn.datasets import load_digits
    from sklearn.neural_network import MLPClassifier
    x, y = load_digits(return_X_y=True)
    x = x / 16
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = MLPClassifier((32,), max_iter=300, random_state=0).fit(x[:1200], y[:1200])
    d = tmp_path_factory.mktemp("digits")
    (d / "mlp.pkl").write_bytes(pickle.dumps(model))
    np.savez(d / "data.npz", x=x[1200:], y=y[1200:])
    cfg = d / "up5k.toml"
    cfg.write_text('[pse]\npreset = "up5k"\nperiod = 4\nwarmup = 2\n')
    return d


def test_digits_over_the_serial_port_in_process(digits, capsys):
    """``pse run --backend board --port sim``: the digits MLP through the driver, the serial
    framing and the engine's Verilog behind its UART, checked sample by sample."""
    assert main(["run", str(digits / "mlp.pkl"), "--data", str(digits / "data.npz"),
                 "--config", str(digits / "up5k.toml"), "--backend", "board", "--port", "sim",
                 "--samples", "10", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["backend"] == "board" and out["bit_exact"] is True and out["test_samples"] == 10
    assert out["link_retries"] == 0 and out["uart_limited_samples_per_s"] > 50
    assert main(["run", str(digits / "mlp.pkl"), "--data", str(digits / "data.npz"),
                 "--config", str(digits / "up5k.toml"), "--samples", "10", "--json"]) == 0
    model = json.loads(capsys.readouterr().out)
    for key in ("pse_accuracy", "bits_per_weight", "mac_cycle_ratio", "precision_shares"):
        assert out[key] == pytest.approx(model[key], rel=1e-12), key


def test_digits_over_a_pseudo_terminal(digits, capsys):
    """The same through pyserial on a pseudo-terminal: a thread carries the bytes between the
    terminal and the simulated board's UART pins, as a USB-UART would."""
    master, slave = os.openpty()
    import tty
    tty.setraw(slave)
    board = SimPort(PRESETS["up5k"])
    stop = threading.Event()

    def carry():
        import select
        while not stop.is_set():
            ready, _, _ = select.select([master], [], [], 0.01)
            if ready:
                board.write(os.read(master, 4096))
            out = board.read(max(1, board.in_waiting)) if board.in_waiting else b""
            if not out:
                board.run(20_000)
                out = board.read(board.in_waiting) if board.in_waiting else b""
            if out:
                os.write(master, out)
    t = threading.Thread(target=carry, daemon=True)
    t.start()
    try:
        assert main(["run", str(digits / "mlp.pkl"), "--data", str(digits / "data.npz"),
                     "--config", str(digits / "up5k.toml"), "--backend", "board",
                     "--port", os.ttyname(slave), "--samples", "3", "--json"]) == 0
    finally:
        stop.set()
        t.join()
        board.close()
        os.close(master)
        os.close(slave)
    out = json.loads(capsys.readouterr().out)
    assert out["bit_exact"] is True and out["test_samples"] == 3


@pytest.mark.parametrize("args,message", [
    (["--backend", "board"], "--backend board needs --port"),
    (["--port", "sim"], "--port and --baud go with --backend board"),
    (["--backend", "board", "--port", "/no/such/tty"], "serial port '/no/such/tty' cannot be "
                                                      "opened at 1000000 baud"),
])
def test_link_mistakes_are_one_line(digits, args, message, capsys, monkeypatch):
    monkeypatch.delenv("PSE_PORT", raising=False)
    assert main(["run", str(digits / "mlp.pkl"), "--data", str(digits / "data.npz"),
                 "--config", str(digits / "up5k.toml"), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_board_mistakes_are_refused_before_any_build(tmp_path, capsys):
    fast = tmp_path / "fast.toml"
    fast.write_text('[pse]\npreset = "up5k"\nuart_baud = 4000000\n')
    odd = tmp_path / "odd.toml"
    odd.write_text('[pse]\nuart_baud = 2000000\n')
    afile = tmp_path / "afile"
    afile.write_text("")
    for args, message in [
            (["board", "de10", "--engine"], "board must be one of icebreaker, ulx3s"),
            (["board", "ulx3s", "--config", "up5k"], "--config goes with --engine"),
            (["board", "icebreaker", "--engine", "--config", str(fast)],
             "uart_baud must be at most a quarter of the board clock (3000000 at 12 MHz)"),
            (["board", "ulx3s", "--engine", "--config", str(odd)],
             "uart_baud 2000000 is 4.2% off at a 25 MHz clock"),
            (["board", "ulx3s", "--engine", "-o", str(afile)], "exists and is not a directory")]:
        assert main(args) == 2, args
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, err


def test_another_configurations_bitstream_is_a_clear_error(port):
    """The board runs a bitstream of another configuration: one line saying so, before
    anything is written."""
    from pse_hdl.host.driver import IdentifyError
    other = CFG.replace(max_layers=1)
    with pytest.raises(IdentifyError, match=r"built for another configuration .*--config"):
        run(Driver(SerialBus(port, other), other).identify())
    run(Driver(SerialBus(port, CFG), CFG).identify())      # the right one is fine


def test_a_new_session_is_never_taken_for_a_retry(port):
    """The bridge remembers the last executed sequence byte across host sessions; a new
    session's first writes must still run, whatever the last session ended on."""
    drv = Driver(SerialBus(port, CFG), CFG)
    run(drv.write_window("MASTER", [5]))
    assert run(drv.read_window("MASTER", 1)) == [5]     # the session's frame 1 executed
    fresh = Driver(SerialBus(port, CFG), CFG)           # a new session numbers from 1 again
    run(fresh.write_window("MASTER", [7]))
    assert run(fresh.read_window("MASTER", 1)) == [7]
