// Raspberry Pi 4 entry points. kernel8.img is loaded at 0x8_0000; the Pi firmware's armstub
// (or hypstub's) enters it on the boot CPU at EL2, MMU off, x0 = DTB. Secondary CPUs wait in
// the armstub's spin table and come here only when the EL1 stage takes them over
// (hypstub.el=1).
.section .text.entry, "ax"
.global _start
_start:
    mov     x20, x0
    // Only the boot CPU (Aff0 = 0) may run the firmware; another core sent here (a firmware
    // that releases all cores at the kernel) parks for good.
    mrs     x9, mpidr_el1
    tst     x9, #0xff
    b.ne    9f
    // Loaded where linked? A Pi firmware that does not honour config.txt's
    // kernel_address=0x80000 (newer ones load 64-bit kernels at 0x200000) runs this image
    // elsewhere, where every absolute address is wrong: say so with position-independent
    // code only, and stop.
    adr     x9, _start
    ldr     x10, =_start
    cmp     x9, x10
    b.ne    .Lrpi4_wrong_place
    mrs     x19, CurrentEL
    ubfx    x19, x19, #2, #2
    cmp     x19, #2
    b.ne    1f
    // SCTLR_EL2 resets to an UNKNOWN value on hardware: define it, MMU and caches off.
    ldr     x9, ={SCTLR_EL2_MMU_OFF}
    msr     sctlr_el2, x9
    // From here on any exception at EL2 is reported by the stub (Arm ARM D1.3.1).
    ldr     x9, =hypstub_el2_vectors
    msr     vbar_el2, x9
    isb
    // The boot CPU (slot 0) takes the first EL2 stack.
1:  ldr     x9, =HYPSTUB_EL2_STACKS
    mov     x10, #{STACK_SIZE}
    add     x9, x9, x10
    mov     sp, x9
    // Zero the shared page, the stub's RAM and .bss, copy .data.
    zero_ram __shared_start, __shared_end
    init_ram
    mov     x0, x19
    mov     x1, x20
    bl      rpi4_el2_main
9:  wfe
    b       9b

// The message on the mini-UART (the Pi 4's console on GPIO 14/15), then on the PL011: the
// DTB is not read yet. Each waits a bounded time for room (AUX_MU_LSR bit 5 set, UARTFR.TXFF
// clear) and drops the byte after that, so a UART nobody enabled cannot hang it.
.Lrpi4_wrong_place:
    ldr     x3, ={MINI_UART_FALLBACK}
    mov     x6, #0x14                           // AUX_MU_LSR
    mov     x7, #0                              // room when bit 5 is set
    bl      .Lrpi4_wrong_place_puts
    ldr     x3, ={PL011_FALLBACK}
    mov     x6, #0x18                           // UARTFR
    mov     x7, #1                              // room when bit 5 (TXFF) is clear
    bl      .Lrpi4_wrong_place_puts
    b       9b

// x3 = UART data register, x6 = status offset, x7 = 1 if status bit 5 means "full".
.Lrpi4_wrong_place_puts:
    adr     x1, .Lrpi4_wrong_place_msg
1:  ldrb    w2, [x1], #1
    cbz     w2, 4f
    mov     x5, #0x100000
2:  ldr     w4, [x3, x6]
    ubfx    w4, w4, #5, #1
    cmp     w4, w7
    b.ne    3f
    subs    x5, x5, #1
    b.ne    2b
    b       1b
3:  str     w2, [x3]
    b       1b
4:  ret
.Lrpi4_wrong_place_msg:
    .asciz "\r\nhypstub: kernel8.img is linked at 0x80000 but was loaded elsewhere: put kernel_address=0x80000 in config.txt; stopping\r\n"
.balign 4

// The boot CPU arrives here at EL1 from the stub, MMU off, x0 = DTB, SP_EL1 set. What was
// written with the MMU off (the shared page, the EL1 stage's RAM) and the image and what
// follows it must not meet stale lines once the caches are on: hypstub_el1_mmu_on
// invalidates them by VA first.
.section .text.rpi4_el1_entry, "ax"
.global rpi4_el1_entry
rpi4_el1_entry:
    mov     x19, x0
    ldr     x0, =HYPSTUB_RPI4_EARLY
    ldr     x1, =HYPSTUB_RPI4_EARLY_RUNS
    mov     x2, #{EARLY_RUNS}
    bl      hypstub_el1_early_map
    ldr     x0, =HYPSTUB_RPI4_EARLY
    ldr     x1, ={EARLY_START}
    ldr     x2, ={EARLY_END}
    bl      hypstub_el1_mmu_on
    mov     x0, x19
    bl      rpi4_el1_main
1:  wfe
    b       1b

// A secondary CPU released from the firmware's spin table by the EL1 stage (hypstub.el=1):
// EL2, MMU off. It takes its slot's EL2 stack (slot = MPIDR Aff0), installs the stub
// (rpi4_secondary_el2_main sets EL2 up as for the boot CPU) and drops to rpi4_park at EL1.
.section .text.rpi4_secondary_entry, "ax"
.global rpi4_secondary_entry
rpi4_secondary_entry:
    ldr     x9, ={SCTLR_EL2_MMU_OFF}
    msr     sctlr_el2, x9
    ldr     x9, =hypstub_el2_vectors
    msr     vbar_el2, x9
    isb
    mrs     x19, mpidr_el1
    and     x19, x19, #0xff
    cmp     x19, #{MAX_CPUS}
    b.hs    2f
    ldr     x9, =HYPSTUB_EL2_STACKS
    add     x10, x19, #1
    mov     x11, #{STACK_SIZE}
    madd    x9, x10, x11, x9
    mov     sp, x9
    mov     x0, x19
    bl      rpi4_secondary_el2_main
2:  wfe
    b       2b

// A secondary CPU at EL1, MMU and caches off, x0 = its slot, with the stub at EL2: it says
// it is parked, then waits for a non-zero release word and enters it with x0..x3 = 0, as
// booting.rst asks of a spin table. With the MMU off its loads are Non-cacheable and see
// what the payload cleaned to PoC before its `sev`.
.section .text.rpi4_park, "ax"
.global rpi4_park
rpi4_park:
    ldr     x1, =HYPSTUB_RPI4_SHARED
    add     x2, x1, #{SHARED_PARKED}
    mov     x3, #1
    str     x3, [x2, x0, lsl #3]
    dsb     sy
    sev
    add     x2, x1, #{SHARED_RELEASE}
    add     x2, x2, x0, lsl #3
1:  ldr     x4, [x2]
    cbnz    x4, 2f
    wfe
    b       1b
    // The payload's CPU from here: it starts on the stub's EL1 vectors for a payload, so
    // that a fault before it installs its own is reported as its own.
2:  ldr     x5, =hypstub_el1_payload_vectors
    msr     vbar_el1, x5
    isb
    mov     x0, xzr
    mov     x1, xzr
    mov     x2, xzr
    mov     x3, xzr
    br      x4

.purgem zero_ram
.purgem init_ram
