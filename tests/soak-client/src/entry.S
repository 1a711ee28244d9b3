// soak-client's assembly: the arm64 Image header and the one entry every run and every
// restart goes through, the secondary-CPU entry, and the EL1 vector table.
//
// Everything runs with the MMU off at EL1 and at EL2, so data accesses are Device-nGnRnE:
// aligned only, no exclusives, no caches. A plain store made at EL2 or on another CPU is
// seen by a plain load here, and nothing needs cleaning before HVC_SOFT_RESTART.
//
// Constants and Rust symbols come from src/start.rs (the operands of its global_asm!),
// never retyped here. The linker symbols __soak_* come from link.ld.

// ---------------------------------------------------------------------------------------
// The arm64 Image header (Documentation/arch/arm64/booting.rst, "Call the kernel image").
// ---------------------------------------------------------------------------------------
.pushsection .text.head, "ax"
.global soak_client_start
soak_client_start:
    b       soak_entry                  // code0
    .long   0                           // code1
    .quad   0                           // text_offset: run at the 2 MiB-aligned base itself
    .quad   __soak_image_size           // image_size: header to end of .soak_state (link.ld)
    .quad   {IMAGE_FLAGS}               // flags
    .quad   0                           // res2
    .quad   0                           // res3
    .quad   0                           // res4
    .long   {IMAGE_MAGIC}               // magic "ARM\x64"
    .long   0                           // res5

// The only entry, from the boot loader (hypstub: EL1 with hypstub.el=1, x0 = DTB, x1..x3
// = 0) and from the client's own HVC_SOFT_RESTART (hyp-abi.rst: at EL2, MMU and caches off,
// DAIF masked, x0..x2 = the caller's x2..x4 = DTB, restarts so far, RESTART_TOKEN; hypstub
// keeps x3..x30, so x3 = the caller's x3 = restarts again). x0..x3 reach Rust untouched;
// x9..x11 are scratch.
soak_entry:
    mrs     x9, CurrentEL
    cmp     x9, #(2 << 2)
    b.ne    soak_el1_entry
    // At EL2 with the token in x2: our own restart. Record what the stub gave us, then drop
    // to EL1 at this same entry (the stub's HCR_EL2 still runs EL1 in AArch64, RW = 1).
    // Without the token we were started at EL2 by something that is not hypstub: go on at
    // EL2, and Rust reports that there is no stub to soak.
    movz    x9, #{TOKEN_0}
    movk    x9, #{TOKEN_1}, lsl #16
    movk    x9, #{TOKEN_2}, lsl #32
    movk    x9, #{TOKEN_3}, lsl #48
    cmp     x2, x9
    b.ne    soak_el1_entry
    adrp    x9, {STATE}
    add     x9, x9, :lo12:{STATE}
    ldr     x10, [x9, #{ST_EL2_ENTRIES}]
    add     x10, x10, #1
    str     x10, [x9, #{ST_EL2_ENTRIES}]
    mrs     x10, CurrentEL
    str     x10, [x9, #{ST_EL2_CURRENT_EL}]
    mrs     x10, sctlr_el2
    str     x10, [x9, #{ST_EL2_SCTLR}]
    mrs     x10, daif
    str     x10, [x9, #{ST_EL2_DAIF}]
    mrs     x10, vbar_el2
    str     x10, [x9, #{ST_EL2_VBAR}]
    // ELR_EL2 = the Image's first instruction, SPSR_EL2 = EL1h with DAIF masked. ERET is a
    // context synchronization event, so no ISB is needed before it.
    adrp    x10, soak_client_start
    add     x10, x10, :lo12:soak_client_start
    msr     elr_el2, x10
    mov     x10, #{SPSR_EL1H_MASKED}
    msr     spsr_el2, x10
    eret

soak_el1_entry:
    // Zero .bss (16-byte aligned and sized, link.ld) at every entry: a restart starts the
    // client afresh; only .soak_state carries over.
    adrp    x9, __soak_bss_start
    add     x9, x9, :lo12:__soak_bss_start
    adrp    x10, __soak_bss_end
    add     x10, x10, :lo12:__soak_bss_end
1:  cmp     x9, x10
    b.hs    2f
    stp     xzr, xzr, [x9], #16
    b       1b
2:
    adrp    x9, soak_boot_stack_top
    add     x9, x9, :lo12:soak_boot_stack_top
    mov     sp, x9
    adrp    x9, soak_el1_vectors
    add     x9, x9, :lo12:soak_el1_vectors
    msr     vbar_el1, x9
    // Arm ARM, "Synchronization requirements for System registers": the new VBAR_EL1 is
    // only guaranteed to be used after a context synchronization event.
    isb
    bl      {MAIN}
    b       .
.popsection

// ---------------------------------------------------------------------------------------
// Secondary CPUs: the PSCI CPU_ON entry (the stub enters it at EL1, x0 = context id, MMU
// off, DAIF masked). Reports in, then turns itself off.
// ---------------------------------------------------------------------------------------
.pushsection .text.soak_secondary, "ax"
.global soak_secondary_entry
soak_secondary_entry:
    adrp    x10, soak_el1_vectors
    add     x10, x10, :lo12:soak_el1_vectors
    msr     vbar_el1, x10
    isb
    // Mailbox slot = context id bits 7:0; a value out of range goes to the stray slot, so
    // the boot CPU can say what arrived.
    and     x9, x0, #0xff
    mov     x10, #{STRAY_SLOT}
    cmp     x9, #{MAX_CPUS}
    csel    x9, x9, x10, lo
    adrp    x10, {MAILBOXES}
    add     x10, x10, :lo12:{MAILBOXES}
    add     x10, x10, x9, lsl #{MAILBOX_SHIFT}
    mrs     x11, CurrentEL
    str     x11, [x10, #{MB_CURRENT_EL}]
    mrs     x11, mpidr_el1
    str     x11, [x10, #{MB_MPIDR}]
    // The data before the arrival word, the arrival word before CPU_OFF (Arm ARM, "Data
    // Synchronization Barrier"). The arrival word is the context id itself, never zero.
    dsb     sy
    str     x0, [x10, #{MB_ARRIVED}]
    dsb     sy
    movz    x0, #{PSCI_CPU_OFF_LO}
    movk    x0, #{PSCI_CPU_OFF_HI}, lsl #16
    hvc     #0
    // CPU_OFF returned (it must not): say so in the mailbox and park.
    str     x0, [x10, #{MB_OFF_RETURNED}]
    dsb     sy
3:  wfe
    b       3b
.popsection

// ---------------------------------------------------------------------------------------
// EL1 vector table (Arm ARM, "Exception vectors": 16 slots of 0x80 bytes, 2 KiB aligned).
// The client expects no exception at EL1 at all, so every slot reports and stops.
// ---------------------------------------------------------------------------------------
.macro el1_ventry slot
    .balign 0x80
    mov     x0, #\slot
    b       soak_el1_unexpected
.endm

.pushsection .text.soak_el1_vectors, "ax"
.balign 0x800
soak_el1_vectors:
    .irp slot, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15
    el1_ventry \slot
    .endr

soak_el1_unexpected:
    // A dedicated stack: the fault may well be a bad SP.
    adrp    x9, soak_exception_stack_top
    add     x9, x9, :lo12:soak_exception_stack_top
    mov     sp, x9
    mrs     x1, esr_el1
    mrs     x2, elr_el1
    mrs     x3, far_el1
    mrs     x4, spsr_el1
    bl      {EL1_EXCEPTION}
    b       .
.popsection

// ---------------------------------------------------------------------------------------
// Stacks, in .bss (zeroed at every entry, sized from Rust). Secondaries need none.
// ---------------------------------------------------------------------------------------
.pushsection .bss.soak_stacks, "aw", %nobits
.balign 16
soak_boot_stack:
    .space  {BOOT_STACK_SIZE}
soak_boot_stack_top:
soak_exception_stack:
    .space  {EXCEPTION_STACK_SIZE}
soak_exception_stack_top:
.popsection
