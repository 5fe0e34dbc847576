// C interface of a Verilated serial engine (UART, bridge, engine) for pse_hdl.host.serial_sim.
//
// The model's only ports are the UART pins. This shim is the far end of the line: a
// transmitter that sends the bytes Python queued onto `rx` (8N1, PSE_DIVISOR cycles a bit, back
// to back) and a receiver that decodes `tx` into a byte queue Python reads. pse_serial_read runs
// the clock in C++ until enough bytes came back or a cycle budget (the port's timeout) is spent.
#include <cstdint>
#include <deque>
#include <memory>

#include "Vpse_serial.h"
#include "verilated.h"

#ifndef PSE_DIVISOR
#error "build with -DPSE_DIVISOR=<clock cycles a bit>"
#endif

namespace {

struct Sim {
    std::unique_ptr<VerilatedContext> ctx;
    std::unique_ptr<Vpse_serial> top;
    uint64_t cycles = 0;
    std::deque<uint8_t> to_rx, from_tx;
    uint32_t shreg = 0; int bits = 0, timer = 0;            // the line driver
    int state = 0, rtimer = 0, rbits = 0; uint32_t byte = 0; // the line receiver
    uint64_t framing_errors = 0;
};

void cycle(Sim* s) {
    if (!s->bits && !s->to_rx.empty()) {
        s->shreg = 0x200u | (uint32_t(s->to_rx.front()) << 1);
        s->to_rx.pop_front();
        s->bits = 10;
        s->timer = PSE_DIVISOR;
    }
    s->top->rx = s->bits ? (s->shreg & 1) : 1;
    s->top->clk = 1;
    s->top->eval();
    s->top->clk = 0;
    s->top->eval();
    s->cycles++;
    if (s->bits && --s->timer == 0) {
        s->shreg >>= 1;
        s->bits--;
        s->timer = PSE_DIVISOR;
    }
    int line = s->top->tx;
    if (s->state == 0) {
        if (!line) { s->state = 1; s->rtimer = PSE_DIVISOR / 2; }
    } else if (--s->rtimer == 0) {
        s->rtimer = PSE_DIVISOR;
        if (s->state == 1) {                                 // the middle of the start bit
            if (line) s->state = 0; else { s->state = 2; s->rbits = 0; s->byte = 0; }
        } else if (s->state == 2) {
            s->byte |= uint32_t(line) << s->rbits;
            if (++s->rbits == 8) s->state = 3;
        } else {                                             // the stop bit
            if (line) s->from_tx.push_back(uint8_t(s->byte)); else s->framing_errors++;
            s->state = 0;
        }
    }
}

}  // namespace

extern "C" {

void* pse_serial_create(void) {
    Sim* s = new Sim;
    s->ctx.reset(new VerilatedContext);
    s->top.reset(new Vpse_serial{s->ctx.get()});
    s->top->clk = 0;
    s->top->rst = 0;
    s->top->rx = 1;
    s->top->eval();
    return s;
}

void pse_serial_destroy(void* p) {
    Sim* s = static_cast<Sim*>(p);
    s->top->final();
    delete s;
}

void pse_serial_reset(void* p, int cycles) {
    Sim* s = static_cast<Sim*>(p);
    s->top->rst = 1;
    for (int i = 0; i < cycles; i++) cycle(s);
    s->top->rst = 0;
    s->top->eval();
}

uint64_t pse_serial_cycles(void* p) { return static_cast<Sim*>(p)->cycles; }

uint64_t pse_serial_framing_errors(void* p) { return static_cast<Sim*>(p)->framing_errors; }

uint32_t pse_serial_waiting(void* p) { return uint32_t(static_cast<Sim*>(p)->from_tx.size()); }

void pse_serial_write(void* p, const uint8_t* data, uint32_t count) {
    Sim* s = static_cast<Sim*>(p);
    s->to_rx.insert(s->to_rx.end(), data, data + count);
}

// Run until `count` bytes came back or `limit` cycles passed; copy out up to `count` bytes and
// return how many.
uint32_t pse_serial_read(void* p, uint8_t* out, uint32_t count, uint64_t limit) {
    Sim* s = static_cast<Sim*>(p);
    for (uint64_t n = 0; n < limit && s->from_tx.size() < count; n++) cycle(s);
    uint32_t k = 0;
    while (k < count && !s->from_tx.empty()) { out[k++] = s->from_tx.front(); s->from_tx.pop_front(); }
    return k;
}

// Run `cycles` cycles (the line keeps sending what is queued).
void pse_serial_run(void* p, uint64_t cycles) {
    Sim* s = static_cast<Sim*>(p);
    for (uint64_t n = 0; n < cycles; n++) cycle(s);
}

}  // extern "C"
