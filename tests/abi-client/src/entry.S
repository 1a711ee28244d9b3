// abi-client's assembly: the arm64 Image header and boot entry, the secondary-CPU entry,
// the EL1 vector table, and the EL2 code the client hands to hypstub (two HVC_SOFT_RESTART
// targets and a vector table for HVC_SET_VECTORS).
//
// Everything here runs with the MMU off at EL1 and at EL2, so data accesses are
// Device-nGnRnE: aligned only, no exclusives, no caches. That is what makes the hand-offs
// simple: a plain store made at EL2 or on another CPU is seen by a plain load here.
//
// Constants and Rust symbols come from src/start.rs (the operands of its global_asm!),
// never retyped here. The linker symbols __abi_* come from link.ld.

// ---------------------------------------------------------------------------------------
// The arm64 Image header (Documentation/arch/arm64/booting.rst, "Call the kernel image"):
// 64 bytes, little-endian, code0 branches to the entry.
// ---------------------------------------------------------------------------------------
.pushsection .text.head, "ax"
.global abi_client_start
abi_client_start:
    b       primary_entry               // code0
    .long   0                           // code1
    .quad   0                           // text_offset: run at the 2 MiB-aligned base itself
    .quad   __abi_image_size            // image_size: header to end of .bss (link.ld)
    .quad   {IMAGE_FLAGS}               // flags
    .quad   0                           // res2
    .quad   0                           // res3
    .quad   0                           // res4
    .long   {IMAGE_MAGIC}               // magic "ARM\x64"
    .long   0                           // res5

// booting.rst: entered with x0 = DTB, x1 = x2 = x3 = 0, MMU off, DAIF masked. x0..x3 go
// to Rust untouched because checking them is the first test; x9..x11 are free scratch.
primary_entry:
    // Zero .bss (16-byte aligned and sized, link.ld) before any Rust can rely on it.
    adrp    x9, __abi_bss_start
    add     x9, x9, :lo12:__abi_bss_start
    adrp    x10, __abi_bss_end
    add     x10, x10, :lo12:__abi_bss_end
1:  cmp     x9, x10
    b.hs    2f
    stp     xzr, xzr, [x9], #16
    b       1b
2:
    adrp    x9, abi_boot_stack_top
    add     x9, x9, :lo12:abi_boot_stack_top
    mov     sp, x9
    // What the boot loader left in VBAR_EL1, for the checks (and the abi.fault=el1 mode).
    mrs     x9, vbar_el1
    adrp    x10, {ENTRY_VBAR_EL1}
    str     x9, [x10, :lo12:{ENTRY_VBAR_EL1}]
    // Report any unexpected EL1 exception instead of jumping through a stale VBAR_EL1.
    adrp    x9, abi_el1_vectors
    add     x9, x9, :lo12:abi_el1_vectors
    msr     vbar_el1, x9
    // Arm ARM, "Synchronization requirements for System registers": the new VBAR_EL1
    // is only guaranteed to be used after a context synchronization event.
    isb
    bl      {MAIN}
    b       .
.popsection

// ---------------------------------------------------------------------------------------
// Secondary CPUs: the PSCI CPU_ON entry (x0 = context id, MMU off, DAIF masked).
// Records what it was given in its mailbox, then turns itself off again.
// ---------------------------------------------------------------------------------------
.pushsection .text.abi_secondary, "ax"
.global abi_secondary_entry
abi_secondary_entry:
    mrs     x12, vbar_el1               // as the stub left it, for the mailbox
    // The slot comes from the context id (CONTEXT_BASE + slot); an id outside that range
    // means the stub passed the wrong x0, and the CPU reports into the stray slot instead,
    // so that the boot CPU can say what arrived.
    movz    x11, #{CONTEXT_BASE_LO}
    movk    x11, #{CONTEXT_BASE_HI}, lsl #16
    sub     x10, x0, x11
    mov     x9, #{STRAY_SLOT}
    cmp     x10, #{MAX_CPUS}
    csel    x9, x10, x9, lo
    // SP = top of this slot's stack.
    adrp    x10, abi_secondary_stacks
    add     x10, x10, :lo12:abi_secondary_stacks
    mov     x11, #{SECONDARY_STACK_SIZE}
    madd    x10, x9, x11, x10
    add     sp, x10, x11
    // Faults here are reported like the boot CPU's.
    adrp    x10, abi_el1_vectors
    add     x10, x10, :lo12:abi_el1_vectors
    msr     vbar_el1, x10
    isb
    // Fill the mailbox, then publish it: DSB SY completes the data stores before the
    // arrival flag is written, and the flag before CPU_OFF (Arm ARM, "Data
    // Synchronization Barrier").
    adrp    x10, {MAILBOXES}
    add     x10, x10, :lo12:{MAILBOXES}
    add     x10, x10, x9, lsl #{MAILBOX_SHIFT}
    mrs     x11, CurrentEL
    str     x11, [x10, #{MB_CURRENT_EL}]
    str     x0, [x10, #{MB_X0}]
    mrs     x11, mpidr_el1
    str     x11, [x10, #{MB_MPIDR}]
    str     x12, [x10, #{MB_VBAR_EL1}]
    dsb     sy
    mov     x11, #1
    str     x11, [x10, #{MB_ARRIVED}]
    dsb     sy
    // PSCI CPU_OFF: does not return when it succeeds.
    movz    x0, #{PSCI_CPU_OFF_LO}
    movk    x0, #{PSCI_CPU_OFF_HI}, lsl #16
    smc     #0
    b       .
.popsection

// Faults on purpose at EL1 before installing any vectors of the client's own
// (abi.fault=el1-secondary): the CPU_ON entry is a BRK, so the stub's EL1 vectors for a
// payload must report it and stop the machine.
.pushsection .text.abi_secondary_fault, "ax"
.global abi_secondary_fault_entry
abi_secondary_fault_entry:
    brk     #1
    b       .

// abi_el1_fault_on_vectors(x0 = VBAR_EL1): puts back the VBAR_EL1 the boot CPU was entered
// with and executes a BRK (abi.fault=el1): a fault before the client's own vectors.
.global abi_el1_fault_on_vectors
abi_el1_fault_on_vectors:
    msr     vbar_el1, x0
    isb
    brk     #0
    b       .
.popsection

// ---------------------------------------------------------------------------------------
// EL1 vector table (Arm ARM, "Exception vectors": 16 slots of 0x80 bytes, 2 KiB aligned).
// The client expects no exception at EL1 at all, so every slot reports and stops.
// ---------------------------------------------------------------------------------------
.macro el1_ventry slot
    .balign 0x80
    mov     x0, #\slot
    b       abi_el1_unexpected
.endm

.pushsection .text.abi_el1_vectors, "ax"
.balign 0x800
.global abi_el1_vectors
abi_el1_vectors:
    el1_ventry 0
    el1_ventry 1
    el1_ventry 2
    el1_ventry 3
    el1_ventry 4
    el1_ventry 5
    el1_ventry 6
    el1_ventry 7
    el1_ventry 8
    el1_ventry 9
    el1_ventry 10
    el1_ventry 11
    el1_ventry 12
    el1_ventry 13
    el1_ventry 14
    el1_ventry 15

abi_el1_unexpected:
    // A dedicated stack: the fault may well be a bad SP.
    adrp    x9, abi_exception_stack_top
    add     x9, x9, :lo12:abi_exception_stack_top
    mov     sp, x9
    mrs     x1, esr_el1
    mrs     x2, elr_el1
    mrs     x3, far_el1
    mrs     x4, spsr_el1
    bl      {EL1_EXCEPTION}
    b       .
.popsection

// ---------------------------------------------------------------------------------------
// HVC_SOFT_RESTART targets (hyp-abi.rst). The stub enters them at EL2 with x0..x2 = the
// caller's x2..x4, EL2 MMU and caches off, DAIF masked. They use x0..x18 only (the caller
// declared those clobbered) and no stack (SP_EL2 is the stub's), and go back to the caller
// at EL1 through abi_el2_return_to_el1.
// ---------------------------------------------------------------------------------------
.pushsection .text.abi_el2, "ax"
.global abi_el2_record_entry
abi_el2_record_entry:
    adrp    x9, {EL2_RECORD}
    add     x9, x9, :lo12:{EL2_RECORD}
    mrs     x10, CurrentEL
    str     x10, [x9, #{REC_CURRENT_EL}]
    str     x0, [x9, #{REC_X0}]
    str     x1, [x9, #{REC_X1}]
    str     x2, [x9, #{REC_X2}]
    mrs     x10, sctlr_el2
    str     x10, [x9, #{REC_SCTLR_EL2}]
    mrs     x10, daif
    str     x10, [x9, #{REC_DAIF}]
    mrs     x10, vbar_el2
    str     x10, [x9, #{REC_VBAR_EL2}]
    mov     x10, #1
    str     x10, [x9, #{REC_RAN}]
    b       abi_el2_return_to_el1

// Faults at EL2 on purpose (abi.fault=el2): the stub's vectors must report it and stop.
.global abi_el2_fault_entry
abi_el2_fault_entry:
    udf     #0
    // Only reached if the stub resumed after the UDF instead of stopping.
    b       abi_el2_return_to_el1

// Back to the caller at EL1: ELR_EL2 = the resume label the caller stored in the record,
// SPSR_EL2 = EL1h with DAIF masked (SPSR_EL2.M = 0b0101). ERET restores PSTATE from SPSR_EL2
// and is itself a context synchronization event, so no ISB is needed before it.
abi_el2_return_to_el1:
    adrp    x9, {EL2_RECORD}
    add     x9, x9, :lo12:{EL2_RECORD}
    ldr     x10, [x9, #{REC_RESUME}]
    msr     elr_el2, x10
    mov     x10, #{SPSR_EL1H_MASKED}
    msr     spsr_el2, x10
    eret

// ---------------------------------------------------------------------------------------
// The client's own EL2 vector table for HVC_SET_VECTORS (hyp-abi.rst: 2 KiB aligned).
// Like Linux's stub, only "lower EL, AArch64, synchronous" is live; every other slot spins
// silently (nothing else should ever arrive while this table is installed).
// ---------------------------------------------------------------------------------------
.macro el2_dead_slot
    .balign 0x80
    b       .
.endm

.balign 0x800
.global abi_client_el2_vectors
abi_client_el2_vectors:
    .rept 8                             // 0x000..0x380: current EL, SP_EL0 and SP_ELx
    el2_dead_slot
    .endr

    .balign 0x80                        // 0x400: lower EL, AArch64, synchronous
9000:
    // HVC_RESET_VECTORS with x1 = the table to go back to (the stub's, as the client
    // recorded it): put it back and report success like the stub would.
    cmp     x0, #{HVC_RESET_VECTORS}
    b.ne    1f
    msr     vbar_el2, x1                // used from the ERET on (context synchronization)
    mov     x0, #0
    eret
    // Anything else: answer with a value no stub would give, proving this table is live.
1:  movz    x0, #{CLIENT_MAGIC_LO}
    movk    x0, #{CLIENT_MAGIC_HI}, lsl #16
    eret
    .if (. - 9000b) > 0x80
    .error "EL2 vector slot larger than 0x80 bytes"
    .endif

    .rept 7                             // 0x480..0x780: lower EL IRQ..SError, AArch32
    el2_dead_slot
    .endr
.popsection

// ---------------------------------------------------------------------------------------
// Stacks, in .bss (zeroed at entry, sized from Rust).
// ---------------------------------------------------------------------------------------
.pushsection .bss.abi_stacks, "aw", %nobits
.balign 16
abi_boot_stack:
    .space  {BOOT_STACK_SIZE}
abi_boot_stack_top:
abi_exception_stack:
    .space  {EXCEPTION_STACK_SIZE}
abi_exception_stack_top:
abi_secondary_stacks:
    .space  {SECONDARY_STACKS_SIZE}
.popsection
