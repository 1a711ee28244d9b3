// The EL1 stage's assembly: MMU on, the switch to the full map, the vector table, and the
// point of no return (clean, then HVC_SOFT_RESTART to the relocation engine).

// hypstub_el1_early_map(x0 = tables, x1 = runs, x2 = number of runs)
// Writes the early map's runs (`mmu::Run`, 32 bytes each: u32 at, u32 count, u64 desc,
// u64 step, u64 link) into the zeroed tables at x0: entry `at` (counted from the first
// table's first entry) gets desc (+ x0 if link), the next one desc + step, and so on.
// Runs with the MMU off, before any Rust at EL1; uses no stack, only x1..x8. The tables
// are in RAM that hypstub_el1_mmu_on then invalidates, so no line predates these stores.
.section .text.hypstub_el1_early_map, "ax"
.global hypstub_el1_early_map
hypstub_el1_early_map:
    cbz     x2, 3f
    ldp     w3, w4, [x1]                        // at, count
    ldp     x5, x6, [x1, #8]                    // desc, step
    ldr     x7, [x1, #24]                       // link
    add     x1, x1, #32
    cbz     x7, 1f
    add     x5, x5, x0
1:  add     x8, x0, x3, lsl #3
2:  cbz     w4, 4f
    str     x5, [x8], #8
    add     x5, x5, x6
    sub     w4, w4, #1
    b       2b
4:  sub     x2, x2, #1
    b       hypstub_el1_early_map
3:  ret

// hypstub_el1_mmu_on(x0 = TTBR0_EL1, x1 = start, x2 = end of RAM written with the MMU off)
// Runs with the MMU off, before any Rust at EL1; uses no stack.
.section .text.hypstub_el1_mmu_on, "ax"
.global hypstub_el1_mmu_on
hypstub_el1_mmu_on:
    ldr     x9, ={MAIR_EL1}
    msr     mair_el1, x9
    ldr     x9, ={TCR_EL1}
    msr     tcr_el1, x9
    msr     ttbr0_el1, x0
    // Lines for this RAM must not predate what was written to it with the MMU off:
    // invalidate by VA to PoC before caches are on (Arm ARM D7.5.8). (Left out only by the
    // test-only mutant `test-skip-el1-invalidate`, for cargo xtask cachecheck.)
.if {SKIP_EL1_INVALIDATE} == 0
    mrs     x9, ctr_el0
    ubfx    x9, x9, #16, #4
    mov     x10, #4
    lsl     x10, x10, x9
    sub     x11, x10, #1
    bic     x1, x1, x11
1:  dc      ivac, x1
    add     x1, x1, x10
    cmp     x1, x2
    b.lo    1b
.endif
    dsb     sy
    // No stale translations from before (Arm ARM D8.13: TLB maintenance before enabling).
    tlbi    vmalle1
    dsb     nsh
    isb
    ldr     x9, ={SCTLR_EL1_MMU_ON}
    msr     sctlr_el1, x9
    isb
    ic      iallu
    dsb     nsh
    isb
    ret

// hypstub_el1_switch_tables(x0 = TTBR0_EL1, x1 = TCR_EL1)
// Replaces the translation tables. Changing live tables whose entries differ in size for the
// same addresses needs break-before-make (Arm ARM D8.14.1); with no second TTBR to hop to,
// the MMU goes off for the few instructions that swap them. Nothing here touches memory,
// so the caches, which stay on, keep serving the same data afterwards.
.section .text.hypstub_el1_switch_tables, "ax"
.global hypstub_el1_switch_tables
hypstub_el1_switch_tables:
    mrs     x9, sctlr_el1
    bic     x10, x9, #1
    dsb     ish
    msr     sctlr_el1, x10
    isb
    msr     tcr_el1, x1
    msr     ttbr0_el1, x0
    isb
    tlbi    vmalle1
    dsb     nsh
    isb
    msr     sctlr_el1, x9
    isb
    ret

// hypstub_el1_soft_restart(x0 = engine, x1 = block, x2..x3 = range A, x4..x5 = range B)
// The point of no return. The engine may copy over the EL1 stage's RAM and the payload may
// use it with its MMU off, so no dirty line of it may be left to be written back later:
// clean and invalidate both ranges to PoC by VA (Arm ARM D7.5.8) after the last store the
// EL1 stage makes, then HVC_SOFT_RESTART with x1 = engine, x2 = block (hyp-abi.rst). Uses
// no memory. Returns only if the stub refuses the call (x0 = HVC_STUB_ERR).
.section .text.hypstub_el1_soft_restart, "ax"
.global hypstub_el1_soft_restart
hypstub_el1_soft_restart:
    mrs     x9, ctr_el0
    ubfx    x9, x9, #16, #4
    mov     x10, #4
    lsl     x10, x10, x9
    sub     x11, x10, #1
    bic     x2, x2, x11
1:  cmp     x2, x3
    b.hs    2f
    dc      civac, x2
    add     x2, x2, x10
    b       1b
2:  bic     x4, x4, x11
3:  cmp     x4, x5
    b.hs    4f
    dc      civac, x4
    add     x4, x4, x10
    b       3b
4:  dsb     sy
    mov     x9, x0
    mov     x2, x1
    mov     x1, x9
    mov     x0, #{HVC_SOFT_RESTART}
    mov     x3, xzr
    mov     x4, xzr
    hvc     #0
    ret

// The EL1 stage's vectors: every exception is unexpected. Each slot saves x0..x30 and calls
// hypstub_el1_exception(frame, slot), which reports and stops.

.section .text.hypstub_el1_vectors, "ax"
.balign 0x800
.global hypstub_el1_vectors
hypstub_el1_vectors:
    vector_table hypstub_el1_save_and_report

hypstub_el1_save_and_report:
    save_frame_rest
    mov     x0, sp
    bl      hypstub_el1_exception
1:  wfe
    b       1b

.purgem save_frame_rest
.purgem restore_frame
.purgem vector_table
