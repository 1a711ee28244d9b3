// The relocation engine. Entered at EL2 by the stub's HVC_SOFT_RESTART with x0 = the
// argument block, the EL2 MMU and caches off, DAIF masked (hyp-abi.rst). Position-
// independent: the planner copies it into a control page that no destination covers.
//
// 1. Check the block's magic, version and size; read everything needed from it before the
//    first copy (a kexec lesson: Linux 5.18 fixed an engine that read its arguments late).
// 2. With FLAG_MMU: load MAIR/TCR/TTBR0_EL2, invalidate the EL2 TLB, MMU and caches on, so
//    the copy runs at memory speed (Arm ARM D8.2; TCR_EL2 RES1 bits set by the planner).
// 3. Walk the page list (Linux's IND_* format) and copy each source page to the cursor,
//    64 bytes per ld1/st1; then clean the page to PoC by VA (MMU on: what the payload reads
//    with its MMU off must be in memory), or, with the MMU off, invalidate the destination
//    page first so that no stale dirty line from EL1 can later land over the copy.
// 4. Verify the digests (Hash64, reloc/src/digest.rs), report the figures, MMU off, I-cache invalidated.
// 5. Enter the payload: at EL2 with x0..x3 from the block, or at EL1 by eret (the stub
//    stays resident: VBAR_EL2 still holds its vectors).
//
// Register use: x19 block then digest array, x20 page count, x21 entry, x22..x25 the
// payload's x0..x3, x26 EL, x27 flags, x28 console, x29 start counter, TPIDR_EL2 digest
// count, x18 the counter at the end of the copy, then the ticks of the digest check.
// x0..x17 are scratch; the print helpers use x0..x11 only.

.arch armv8-a+simd

// One Hash64 step (reloc/src/digest.rs): h = m * K2, m = (h ^ w) * K1 ^ ((h ^ w) * K1 >> 32),
// with K1 in x10 and K2 in x11.
.macro HASH_STEP h, w
    eor     \h, \h, \w
    mul     \h, \h, x10
    eor     \h, \h, \h, lsr #32
    mul     \h, \h, x11
.endm

.section .text.hypstub_reloc_engine, "ax"
// 2 KiB aligned so that the vector table below keeps its alignment when the planner copies
// the engine to the start of a page.
.balign 2048
.global hypstub_reloc_engine_start
hypstub_reloc_engine_start:
    mov     x19, x0
    // The engine's own vectors while it runs (the stub's are in memory its map may not
    // cover); the stub's are kept in ELR_EL2, unused until the exit, and put back there.
    // Until the block is known good, nothing from it is used: no console, no PSCI.
    mov     x28, xzr
    mov     x27, xzr
    msr     tpidr_el2, xzr
    mrs     x9, vbar_el2
    msr     elr_el2, x9
    adr     x9, .Lreloc_vectors
    msr     vbar_el2, x9
    isb

    // 1. The block.
    ldr     x9, [x19, #{MAGIC}]
    ldr     x10, .Lreloc_magic
    cmp     x9, x10
    b.ne    .Lreloc_bad_block
    ldr     w13, [x19, #{VERSION}]
    cmp     w13, #{BLOCK_VERSION}
    b.ne    .Lreloc_bad_block
    ldr     w9, [x19, #{SIZE}]
    cmp     w9, #{BLOCK_SIZE}
    b.ne    .Lreloc_bad_block
    ldr     x28, [x19, #{CONSOLE}]
    ldr     x18, [x19, #{HEAD}]
    ldr     x21, [x19, #{ENTRY}]
    ldp     x22, x23, [x19, #{REGS}]
    ldp     x24, x25, [x19, #({REGS} + 16)]
    ldr     x26, [x19, #{EL}]
    ldr     x27, [x19, #{FLAGS}]
    ldr     x14, [x19, #{TTBR0}]
    ldr     x15, [x19, #{TCR}]
    ldr     x16, [x19, #{MAIR}]
    ldr     x9, [x19, #{DIGEST_COUNT}]
    msr     tpidr_el2, x9
    ldr     x19, [x19, #{DIGESTS}]
    mov     x20, xzr
    isb
    mrs     x29, cntpct_el0

    // 2. MMU and caches on, on the planner's identity map.
    tbz     x27, #{FLAG_MMU_BIT}, 1f
    msr     mair_el2, x16
    msr     tcr_el2, x15
    msr     ttbr0_el2, x14
    isb
    tlbi    alle2
    dsb     ish
    isb
    ldr     x9, .Lreloc_sctlr_on
    msr     sctlr_el2, x9
    isb
1:
    // The smallest data cache line (CTR_EL0.DminLine, log2 of words).
    mrs     x9, ctr_el0
    ubfx    x9, x9, #16, #4
    mov     x17, #4
    lsl     x17, x17, x9
    // Where a copied page goes next (x16, free once the MMU is on): its clean, sixteen lines
    // at a time when they divide the page, or one at a time; with the MMU off, nothing.
    adr     x16, .Lreloc_next
    tbz     x27, #{FLAG_MMU_BIT}, 1f
    adr     x16, .Lreloc_clean16
    cmp     x17, #256
    b.ls    1f
    adr     x16, .Lreloc_clean1
1:

    // 3. The page list: x0 entry, x1 destination cursor, x2 list pointer.
    mov     x0, x18
    mov     x1, xzr
    mov     x2, xzr
.Lreloc_walk:
    tbnz    x0, #2, .Lreloc_done                      // IND_DONE
    and     x3, x0, #0xfffffffffffff000
    tbz     x0, #0, 2f                          // IND_DESTINATION
    mov     x1, x3
    b       .Lreloc_next
2:  tbz     x0, #1, 3f                          // IND_INDIRECTION
    mov     x2, x3
    b       .Lreloc_next
3:  tbz     x0, #3, .Lreloc_bad_list                  // IND_SOURCE
    cbz     x1, .Lreloc_bad_list
    add     x20, x20, #1
    add     x5, x1, #4096
    tbnz    x27, #{FLAG_MMU_BIT}, 4f
    // MMU off: drop any line of the destination page first (Arm ARM D7.5.8).
    mov     x6, x1
5:  dc      ivac, x6
    add     x6, x6, x17
    cmp     x6, x5
    b.lo    5b
    // The stores below are Device accesses with the MMU off: complete the invalidation
    // first (Arm ARM D7.5.9), as Linux's MMU-off relocate_kernel did.
    dsb     sy
4:  mov     x6, x1
    // 2 KiB per iteration: 66 instructions, the loop's own 2 of them.
6:
.rept 16
    ld1     {{v0.16b, v1.16b, v2.16b, v3.16b}}, [x3], #64
    ld1     {{v4.16b, v5.16b, v6.16b, v7.16b}}, [x3], #64
    st1     {{v0.16b, v1.16b, v2.16b, v3.16b}}, [x1], #64
    st1     {{v4.16b, v5.16b, v6.16b, v7.16b}}, [x1], #64
.endr
    cmp     x1, x5
    b.lo    6b
    // x16: the MMU-on clean below that fits the line size, or .Lreloc_next (MMU off).
    br      x16
    // MMU on: clean and invalidate the page to PoC while its lines are hot (clean is what
    // the MMU-off payload needs; invalidating too leaves it no line it did not fetch).
    // (Left out only by the test-only mutant `test-skip-dest-clean`, for cargo xtask
    // cachecheck.)
    // Sixteen lines per iteration when sixteen lines divide the page (lines of at most
    // 256 bytes: every Armv8 CPU known has 64), else one.
.Lreloc_clean1:
.if {SKIP_DEST_CLEAN} == 0
8:  dc      civac, x6
    add     x6, x6, x17
    cmp     x6, x5
    b.lo    8b
.endif
    b       .Lreloc_next
.Lreloc_clean16:
.if {SKIP_DEST_CLEAN} == 0
7:
.rept 16
    dc      civac, x6
    add     x6, x6, x17
.endr
    cmp     x6, x5
    b.lo    7b
.endif
.Lreloc_next:
    cbz     x2, .Lreloc_bad_list
    ldr     x0, [x2], #8
    b       .Lreloc_walk
.Lreloc_done:
    dsb     sy
    isb
    mrs     x18, cntpct_el0
    sub     x29, x18, x29                       // ticks spent copying

    // 4. Digests: Hash64 of each destination range (reloc/src/digest.rs): four lanes over
    // each whole 32-byte block, the words after them (the last zero-padded) into lane 0,
    // then the length and the four lanes combined. Every range starts on a page (the
    // planner checks), so every load is aligned and the last word's page is the range's.
    mrs     x13, tpidr_el2
    cbz     x13, .Lreloc_report
    mov     x12, x19
    adr     x9, .Lreloc_hash_consts
    ldp     x10, x11, [x9]                      // K1, K2
.Lreloc_digest:
    ldp     x3, x4, [x12]                       // start, len
    ldr     x5, [x12, #{DIGEST_VALUE}]          // expected
    mov     x2, x3
    adr     x9, .Lreloc_hash_consts
    ldp     x14, x15, [x9, #16]                 // the lanes' start values
    ldp     x16, x17, [x9, #32]
    add     x7, x3, x4                          // end
    and     x8, x4, #~31
    add     x8, x3, x8                          // end of the whole blocks
    b       2f
1:  ldp     x0, x1, [x3], #16
    ldp     x6, x9, [x3], #16
    HASH_STEP x14, x0
    HASH_STEP x15, x1
    HASH_STEP x16, x6
    HASH_STEP x17, x9
2:  cmp     x3, x8
    b.lo    1b
3:  sub     x9, x7, x3                          // 0..31 bytes left
    cmp     x9, #8
    b.lo    4f
    ldr     x0, [x3], #8
    HASH_STEP x14, x0
    b       3b
4:  cbz     x9, 5f
    ldr     x0, [x3]                            // the last 1..7 bytes, zero-padded
    lsl     x9, x9, #3
    mov     x1, #-1
    lsl     x1, x1, x9
    bic     x0, x0, x1
    HASH_STEP x14, x0
5:  mov     x6, x4
    HASH_STEP x6, x14
    HASH_STEP x6, x15
    HASH_STEP x6, x16
    HASH_STEP x6, x17
    cmp     x6, x5
    b.ne    .Lreloc_bad_digest
    add     x12, x12, #{DIGEST_SIZE}
    subs    x13, x13, #1
    b.ne    .Lreloc_digest

.Lreloc_report:
    mrs     x17, cntpct_el0
    sub     x18, x17, x18                       // ticks spent checking the digests
    cbz     x28, .Lreloc_leave
    adr     x1, .Lreloc_msg_copied
    bl      .Lreloc_puts
    lsl     x0, x20, #12
    bl      .Lreloc_putdec
    adr     x1, .Lreloc_msg_bytes
    bl      .Lreloc_puts
    mov     x0, x20
    bl      .Lreloc_putdec
    adr     x1, .Lreloc_msg_pages
    bl      .Lreloc_puts
    mov     x0, x29
    bl      .Lreloc_putdec
    adr     x1, .Lreloc_msg_ticks
    bl      .Lreloc_puts
    mrs     x0, cntfrq_el0
    bl      .Lreloc_putdec
    adr     x1, .Lreloc_msg_hz
    bl      .Lreloc_puts
    // microseconds = ticks * 1e6 / freq
    mov     x9, #16960
    movk    x9, #15, lsl #16                    // 1_000_000
    mul     x0, x29, x9
    mrs     x9, cntfrq_el0
    udiv    x0, x0, x9
    bl      .Lreloc_putdec
    adr     x1, .Lreloc_msg_us
    bl      .Lreloc_puts
    // MiB/s = bytes * freq / ticks / 2^20
    lsl     x0, x20, #12
    mrs     x9, cntfrq_el0
    mul     x0, x0, x9
    cmp     x29, #0
    csinc   x9, x29, xzr, ne
    udiv    x0, x0, x9
    lsr     x0, x0, #20
    bl      .Lreloc_putdec
    adr     x1, .Lreloc_msg_mibs
    tbnz    x27, #{FLAG_MMU_BIT}, 11f
    adr     x1, .Lreloc_msg_mibs_nommu
11: bl      .Lreloc_puts
    mrs     x9, tpidr_el2
    cbz     x9, .Lreloc_leave
    adr     x1, .Lreloc_msg_digests
    bl      .Lreloc_puts
    mov     x0, x18
    bl      .Lreloc_putdec
    adr     x1, .Lreloc_msg_ticks_end
    bl      .Lreloc_puts

    // 5. MMU off, nothing stale in the I-cache, EL1 in its MMU-off state, then the payload.
.Lreloc_leave:
    ldr     x9, .Lreloc_sctlr_off
    msr     sctlr_el2, x9
    isb
    ic      iallu
    tlbi    alle2
    // No translation the firmware's EL1 stage cached may survive into an EL1 payload.
    tlbi    vmalle1
    dsb     nsh
    isb
    ldr     x9, .Lreloc_sctlr_el1_off
    msr     sctlr_el1, x9
    msr     tpidr_el2, xzr
    mrs     x9, elr_el2
    msr     vbar_el2, x9
    isb
    mov     x0, x22
    mov     x1, x23
    mov     x2, x24
    mov     x3, x25
    cmp     x26, #1
    b.eq    12f
    br      x21
12: msr     elr_el2, x21
    mov     x9, #{SPSR_EL1H_DAIF}
    msr     spsr_el2, x9
    eret

// Failures: say what, then stop (PSCI SYSTEM_OFF when allowed, else park).
.Lreloc_bad_block:
    adr     x1, .Lreloc_msg_bad_block
    b       .Lreloc_fail
.Lreloc_bad_list:
    adr     x1, .Lreloc_msg_bad_list
    b       .Lreloc_fail
.Lreloc_bad_digest:
    mov     x18, x2
    mov     x19, x5
    mov     x20, x6
    adr     x1, .Lreloc_msg_bad_digest
    bl      .Lreloc_puts
    mov     x0, x18
    bl      .Lreloc_puthex
    adr     x1, .Lreloc_msg_expected
    bl      .Lreloc_puts
    mov     x0, x19
    bl      .Lreloc_puthex
    adr     x1, .Lreloc_msg_got
    bl      .Lreloc_puts
    mov     x0, x20
    bl      .Lreloc_puthex
    adr     x1, .Lreloc_msg_refuse
.Lreloc_fail:
    bl      .Lreloc_puts
.Lreloc_stop:
    adr     x1, .Lreloc_msg_stopped
    bl      .Lreloc_puts
    ldr     x9, .Lreloc_sctlr_off
    msr     sctlr_el2, x9
    isb
    tbz     x27, #{FLAG_PSCI_STOP_BIT}, .Lreloc_park
    ldr     w0, .Lreloc_system_off
    smc     #0
.Lreloc_park:
    wfe
    b       .Lreloc_park

// .Lreloc_puts: x1 = NUL-terminated string. Uses x0, x1, x8..x10; x30 saved in x10.
.Lreloc_puts:
    mov     x10, x30
14: ldrb    w0, [x1], #1
    cbz     w0, 15f
    bl      .Lreloc_putc
    b       14b
15: mov     x30, x10
    ret

// .Lreloc_putdec: x0 in decimal. Uses x0..x7, x8, x9, x11; x30 saved in x11.
.Lreloc_putdec:
    mov     x11, x30
    mov     x4, x0
    ldr     x5, .Lreloc_ten19
    mov     x6, xzr                             // a digit printed yet?
    mov     x7, #10
16: udiv    x3, x4, x5
    msub    x4, x3, x5, x4
    cbnz    x3, 17f
    cbnz    x6, 17f
    cmp     x5, #1
    b.ne    18f
17: add     w0, w3, #'0'
    mov     x6, #1
    bl      .Lreloc_putc
18: udiv    x5, x5, x7
    cbnz    x5, 16b
    mov     x30, x11
    ret

// .Lreloc_puthex: x0 as 16 hex digits. Uses x0..x6, x8, x9, x11; x30 saved in x11.
.Lreloc_puthex:
    mov     x11, x30
    mov     x4, x0
    mov     x5, #60
22: lsr     x0, x4, x5
    and     x0, x0, #0xf
    cmp     x0, #10
    add     x6, x0, #'0'
    add     x0, x0, #('a' - 10)
    csel    x0, x6, x0, lo
    bl      .Lreloc_putc
    subs    x5, x5, #4
    b.pl    22b
    mov     x30, x11
    ret

// An exception while the engine runs: report it and stop. Only the current-EL slots can be
// reached (the engine runs at EL2 with interrupts masked); the table ends after them.
.Lreloc_exception:
    // A second exception while reporting the first (a bad console address, say): stop.
    mrs     x9, tpidr_el2
    tbnz    x9, #63, .Lreloc_park
    orr     x9, x9, #(1 << 63)
    msr     tpidr_el2, x9
    adr     x1, .Lreloc_msg_exception
    bl      .Lreloc_puts
    mrs     x0, esr_el2
    bl      .Lreloc_puthex
    adr     x1, .Lreloc_msg_elr
    bl      .Lreloc_puts
    mrs     x0, elr_el2
    bl      .Lreloc_puthex
    adr     x1, .Lreloc_msg_far
    bl      .Lreloc_puts
    mrs     x0, far_el2
    bl      .Lreloc_puthex
    mov     w0, #'\n'
    bl      .Lreloc_putc
    b       .Lreloc_stop

// .Lreloc_putc: w0 to the UART at x28 (none when x28 = 0), '\n' as "\r\n" (the engine never
// prints a bare '\r'). Uses x0, x8, x9.
// PL011 (PL011 TRM 3.3.3): room when UARTFR (+0x18) TXFF (bit 5) is clear; then UARTDR.
// Mini-UART (FLAG_CONSOLE_MINI_UART; BCM2711 ARM Peripherals 11.5): room when AUX_MU_LSR
// (+0x14) bit 5 is set; then AUX_MU_IO.
// A UART that has no room for 2^20 polls (one nobody enabled) is dropped, x28 = 0: the
// engine never hangs on its console.
.Lreloc_putc:
    cbz     x28, 20f
    cmp     w0, #'\n'
    b.ne    19f
    mov     w0, #'\r'
19: mov     x9, #0x100000
21: tbnz    x27, #{FLAG_MINI_UART_BIT}, 22f
    ldr     w8, [x28, #0x18]
    tbz     w8, #5, 23f
    b       24f
22: ldr     w8, [x28, #0x14]
    tbnz    w8, #5, 23f
24: subs    x9, x9, #1
    b.ne    21b
    mov     x28, xzr
    ret
23: str     w0, [x28]
    cmp     w0, #'\r'
    b.ne    20f
    mov     w0, #'\n'
    b       19b
20: ret

// Arm ARM D1.3.1: 2 KiB aligned, slots of 0x80; slots 0-7 (current EL, SP_EL0 and SP_ELx).
.balign 2048
.Lreloc_vectors:
    .rept 8
    .balign 0x80
    b       .Lreloc_exception
    .endr

// The engine's constants and messages, after the vectors: the code before them must stay
// within the first 2 KiB.
.balign 8
.Lreloc_magic:        .quad {MAGIC_VALUE}
.Lreloc_sctlr_on:     .quad {SCTLR_EL2_MMU_ON}
.Lreloc_sctlr_off:    .quad {SCTLR_EL2_MMU_OFF}
.Lreloc_sctlr_el1_off: .quad {SCTLR_EL1_MMU_OFF}
.Lreloc_ten19:        .quad 10000000000000000000
.Lreloc_system_off:   .word 0x84000008
.balign 8
.Lreloc_hash_consts:  .quad {HASH_K1}, {HASH_K2}, {HASH_IV0}, {HASH_IV1}, {HASH_IV2}, {HASH_IV3}
.Lreloc_msg_copied:   .asciz "reloc: copied "
.Lreloc_msg_bytes:    .asciz " bytes ("
.Lreloc_msg_pages:    .asciz " pages) in "
.Lreloc_msg_ticks:    .asciz " ticks at "
.Lreloc_msg_hz:       .asciz " Hz: "
.Lreloc_msg_us:       .asciz " us, "
.Lreloc_msg_mibs:     .asciz " MiB/s with the MMU and caches on\n"
.Lreloc_msg_mibs_nommu: .asciz " MiB/s with the MMU off\n"
.Lreloc_msg_digests:  .asciz "reloc: digests of every destination range match in "
.Lreloc_msg_ticks_end: .asciz " ticks\n"
.Lreloc_msg_bad_block: .asciz "reloc: the argument block has a magic, version or size this engine does not know\n"
.Lreloc_msg_bad_list: .asciz "reloc: malformed page list\n"
.Lreloc_msg_bad_digest: .asciz "reloc: digest mismatch in the destination range at 0x"
.Lreloc_msg_expected: .asciz ": expected hash64 0x"
.Lreloc_msg_got:      .asciz ", got 0x"
.Lreloc_msg_refuse:   .asciz "\nreloc: refusing to enter a corrupt payload\n"
.Lreloc_msg_stopped:  .asciz "hypstub: system stopped\n"
.Lreloc_msg_exception: .asciz "reloc: unexpected exception in the engine at EL2: ESR_EL2=0x"
.Lreloc_msg_elr:      .asciz " ELR_EL2=0x"
.Lreloc_msg_far:      .asciz " FAR_EL2=0x"
.balign 8
.global hypstub_reloc_engine_end
hypstub_reloc_engine_end:
