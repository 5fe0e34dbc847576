// C interface of a Verilated PSE engine for pse_hdl.host.verilated (ctypes).
//
// The host speaks the engine's bus (pse_hdl/rtl/bus.py): requests {addr, write, data}, read
// responses {data}. Every call below runs the clock itself, in C++, until its bus transaction
// is done, so Python issues commands and bulk transfers and never steps cycles. PSE_ADDR_BITS is
// set by the build (the register map's address width).
#include <cstdint>
#include <memory>

#include "Vpse_engine.h"
#include "verilated.h"
#if VM_TRACE
#if PSE_TRACE_FST
#include "verilated_fst_c.h"
typedef VerilatedFstC Trace;
#else
#include "verilated_vcd_c.h"
typedef VerilatedVcdC Trace;
#endif
#endif

#ifndef PSE_ADDR_BITS
#error "build with -DPSE_ADDR_BITS=<the register map's address bits>"
#endif

// Verilator escapes the double underscores of the port names (bus__req__valid).
#define req_valid bus___05Freq___05Fvalid
#define req_ready bus___05Freq___05Fready
#define req_payload bus___05Freq___05Fpayload
#define rsp_valid bus___05Frsp___05Fvalid
#define rsp_ready bus___05Frsp___05Fready
#define rsp_payload bus___05Frsp___05Fpayload

namespace {

struct Sim {
    std::unique_ptr<VerilatedContext> ctx;
    std::unique_ptr<Vpse_engine> top;
    uint64_t cycles = 0;
#if VM_TRACE
    std::unique_ptr<Trace> trace;
    bool tracing = false;
#endif
};

void step(Sim* s) {
    // Inputs are set while the clock is low; the rising edge samples them.
    s->top->clk = 1;
    s->top->eval();
#if VM_TRACE
    if (s->tracing) s->trace->dump(2 * s->cycles + 1);
#endif
    s->top->clk = 0;
    s->top->eval();
#if VM_TRACE
    if (s->tracing) s->trace->dump(2 * s->cycles + 2);
#endif
    s->cycles++;
}

uint64_t request(uint32_t addr, bool write, uint32_t data) {
    return (uint64_t(addr) & ((uint64_t(1) << PSE_ADDR_BITS) - 1))
           | (uint64_t(write) << PSE_ADDR_BITS) | (uint64_t(data) << (PSE_ADDR_BITS + 1));
}

// Offer a request until the engine takes it (at most `limit` cycles); 0 on success.
int offer(Sim* s, uint64_t payload, uint64_t limit) {
    s->top->req_valid = 1;
    s->top->req_payload = payload;
    s->top->eval();
    for (uint64_t n = 0; n < limit; n++) {
        bool taken = s->top->req_ready;
        step(s);
        if (taken) {
            s->top->req_valid = 0;
            s->top->eval();
            return 0;
        }
    }
    s->top->req_valid = 0;
    return 1;
}

int response(Sim* s, uint32_t* data, uint64_t limit) {
    s->top->rsp_ready = 1;
    s->top->eval();
    for (uint64_t n = 0; n < limit; n++) {
        bool valid = s->top->rsp_valid;
        uint32_t d = s->top->rsp_payload;
        step(s);
        if (valid) {
            *data = d;
            s->top->rsp_ready = 0;
            s->top->eval();
            return 0;
        }
    }
    return 1;
}

const uint64_t LIMIT = 1u << 20;   // cycles a single bus transfer may wait: a stuck bus

}  // namespace

extern "C" {

void* pse_create(void) {
    Sim* s = new Sim;
    s->ctx.reset(new VerilatedContext);
#if VM_TRACE
    s->ctx->traceEverOn(true);
#endif
    s->top.reset(new Vpse_engine{s->ctx.get()});
    s->top->clk = 0;
    s->top->rst = 0;
    s->top->req_valid = 0;
    s->top->rsp_ready = 0;
    s->top->eval();
    return s;
}

void pse_destroy(void* p) {
    Sim* s = static_cast<Sim*>(p);
#if VM_TRACE
    if (s->trace) s->trace->close();
#endif
    s->top->final();
    delete s;
}

void pse_reset(void* p, int cycles) {
    Sim* s = static_cast<Sim*>(p);
    s->top->rst = 1;
    for (int i = 0; i < cycles; i++) step(s);
    s->top->rst = 0;
    s->top->eval();
}

uint64_t pse_cycles(void* p) { return static_cast<Sim*>(p)->cycles; }

void pse_run(void* p, uint64_t cycles) {
    Sim* s = static_cast<Sim*>(p);
    for (uint64_t i = 0; i < cycles; i++) step(s);
}

int pse_write_block(void* p, uint32_t addr, const uint32_t* data, uint32_t count) {
    Sim* s = static_cast<Sim*>(p);
    for (uint32_t i = 0; i < count; i++)
        if (offer(s, request(addr + i, true, data[i]), LIMIT)) return 1;
    return 0;
}

int pse_read_block(void* p, uint32_t addr, uint32_t* out, uint32_t count) {
    Sim* s = static_cast<Sim*>(p);
    for (uint32_t i = 0; i < count; i++) {
        if (offer(s, request(addr + i, false, 0), LIMIT)) return 1;
        if (response(s, &out[i], LIMIT)) return 1;
    }
    return 0;
}

// Read `addr` until (word & mask) == value; 0 with the word in *out, 1 after `limit` reads.
int pse_wait(void* p, uint32_t addr, uint32_t mask, uint32_t value, uint64_t limit,
             uint32_t* out) {
    Sim* s = static_cast<Sim*>(p);
    for (uint64_t n = 0; n < limit; n++) {
        if (offer(s, request(addr, false, 0), LIMIT)) return 2;
        if (response(s, out, LIMIT)) return 2;
        if ((*out & mask) == value) return 0;
    }
    return 1;
}

int pse_trace_open(void* p, const char* path) {
#if VM_TRACE
    Sim* s = static_cast<Sim*>(p);
    s->trace.reset(new Trace);
    s->top->trace(s->trace.get(), 99);
    s->trace->open(path);
    return 0;
#else
    (void)p; (void)path;
    return 1;
#endif
}

void pse_trace_enable(void* p, int on) {
#if VM_TRACE
    static_cast<Sim*>(p)->tracing = on;
#else
    (void)p; (void)on;
#endif
}

void pse_trace_close(void* p) {
#if VM_TRACE
    Sim* s = static_cast<Sim*>(p);
    if (s->trace) { s->trace->close(); s->trace.reset(); }
    s->tracing = false;
#else
    (void)p;
#endif
}

}  // extern "C"
