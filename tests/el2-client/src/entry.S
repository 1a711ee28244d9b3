// el2-client's assembly: the arm64 Image header, the entry that captures the boot state,
// the check that the image runs where it is linked, and the exception vector table.
//
// Everything here runs with the MMU off, so data accesses are Device-nGnRnE: aligned
// only, no exclusives. Constants and Rust symbols come from src/start.rs (the operands of
// its global_asm!), never retyped here; the __el2c_* symbols come from link.ld.

// ---------------------------------------------------------------------------------------
// The arm64 Image header (Documentation/arch/arm64/booting.rst, "Call the kernel image"):
// 64 bytes, little-endian, code0 branches to the entry.
// ---------------------------------------------------------------------------------------
.pushsection .text.head, "ax"
.global el2_client_start
el2_client_start:
    b       primary_entry               // code0
    .long   0                           // code1
    .quad   {TEXT_OFFSET}               // text_offset (build.rs, EL2_CLIENT_TEXT_OFFSET)
    .quad   __el2c_image_size           // image_size: header to end of .bss (link.ld)
    .quad   {IMAGE_FLAGS}               // flags
    .quad   0                           // res2
    .quad   0                           // res3
    .quad   0                           // res4
    .long   {IMAGE_MAGIC}               // magic "ARM\x64"
    .long   0                           // res5

// booting.rst: x0 = DTB, x1 = x2 = x3 = 0, DAIF masked, MMU off. Checking that is the
// point of the client, so the state is captured before any instruction can change it, in
// callee-saved registers (nothing is in memory yet: .bss is not zeroed, there is no stack):
// x19..x22 = x0..x3, x23 = DAIF, x24 = CurrentEL, x25 = SCTLR_ELx of the entry EL.
primary_entry:
    mov     x19, x0
    mov     x20, x1
    mov     x21, x2
    mov     x22, x3
    mrs     x23, daif
    mrs     x24, CurrentEL
    // SCTLR of the EL the client runs at: at EL1 SCTLR_EL2 is not accessible.
    ubfx    x9, x24, #2, #2
    cmp     x9, #2
    b.ne    1f
    mrs     x25, sctlr_el2
    b       3f
1:  cmp     x9, #3
    b.ne    2f
    mrs     x25, sctlr_el3
    b       3f
2:  mrs     x25, sctlr_el1
3:
    // The client is not position independent: absolute addresses in its data (string and
    // vtable pointers the Rust code follows) are only right at the link address. Compare
    // where the header is (PC-relative) with where it was linked (an absolute literal).
    adrp    x26, el2_client_start
    add     x26, x26, :lo12:el2_client_start
    ldr     x27, .Llink_address
    cmp     x26, x27
    b.ne    misplaced

    // Zero .bss (16-byte aligned and sized, link.ld) before any Rust can rely on it.
    adrp    x9, __el2c_bss_start
    add     x9, x9, :lo12:__el2c_bss_start
    adrp    x10, __el2c_bss_end
    add     x10, x10, :lo12:__el2c_bss_end
4:  cmp     x9, x10
    b.hs    5f
    stp     xzr, xzr, [x9], #16
    b       4b
5:
    adrp    x9, el2c_boot_stack_top
    add     x9, x9, :lo12:el2c_boot_stack_top
    mov     sp, x9

    // Report any exception instead of jumping through whatever VBAR the firmware left: at
    // EL2 in VBAR_EL2 (at EL1, for a firmware that enters there by mistake, VBAR_EL1).
    // Arm ARM, "Synchronization requirements for System registers": the new VBAR is only
    // guaranteed to be used after a context synchronization event, hence the ISB.
    adrp    x9, el2c_vectors
    add     x9, x9, :lo12:el2c_vectors
    ubfx    x10, x24, #2, #2
    cmp     x10, #2
    b.ne    6f
    msr     vbar_el2, x9
    b       7f
6:  cmp     x10, #1
    b.ne    7f
    msr     vbar_el1, x9
7:  isb

    mov     x0, x19
    mov     x1, x20
    mov     x2, x21
    mov     x3, x22
    mov     x4, x23
    mov     x5, x24
    mov     x6, x25
    bl      {MAIN}
    b       .

.balign 8
.Llink_address:
    .quad   el2_client_start

// ---------------------------------------------------------------------------------------
// Not at the link address: Rust cannot run, so say so from here, in the client's usual
// format, and power off. No stack and no memory writes; only PC-relative addresses.
// x26 = where the image is, x27 = where it is linked, x24 = CurrentEL.
// ---------------------------------------------------------------------------------------
misplaced:
    adrp    x0, .Lmsg_entered
    add     x0, x0, :lo12:.Lmsg_entered
    bl      el2c_puts
    ubfx    x0, x24, #2, #2
    add     x0, x0, #0x30               // '0' + EL
    bl      el2c_putc
    adrp    x0, .Lmsg_got
    add     x0, x0, :lo12:.Lmsg_got
    bl      el2c_puts
    mov     x0, x26
    bl      el2c_puthex
    adrp    x0, .Lmsg_expected
    add     x0, x0, :lo12:.Lmsg_expected
    bl      el2c_puts
    mov     x0, x27
    bl      el2c_puthex
    adrp    x0, .Lmsg_failed
    add     x0, x0, :lo12:.Lmsg_failed
    bl      el2c_puts
    b       el2c_power_off

// el2c_putc: writes the byte in w0 to the PL011 (console.rs does the same from Rust).
// Clobbers x9, x10.
el2c_putc:
    mov     x9, #{PL011_BASE}
1:  ldr     w10, [x9, #{UARTFR}]
    tbnz    w10, #{UARTFR_TXFF_BIT}, 1b
    str     w0, [x9, #{UARTDR}]
    ret

// el2c_puts: writes the NUL-terminated string at x0. Clobbers x0, x9..x12, x30.
el2c_puts:
    mov     x12, x30
    mov     x11, x0
1:  ldrb    w0, [x11], #1
    cbz     w0, 2f
    bl      el2c_putc
    b       1b
2:  ret     x12

// el2c_puthex: writes x0 as 16 hex digits. Clobbers x0, x9..x14, x30.
el2c_puthex:
    mov     x12, x30
    mov     x11, x0
    mov     x13, #60
1:  lsr     x0, x11, x13
    and     x0, x0, #0xf
    add     x14, x0, #0x30              // '0'..'9'
    add     x0, x0, #0x57               // 'a' - 10
    cmp     x14, #0x39
    csel    x0, x14, x0, ls
    bl      el2c_putc
    subs    x13, x13, #4
    b.pl    1b
    ret     x12

// PSCI SYSTEM_OFF (QEMU exits 0); parks the CPU if it comes back.
el2c_power_off:
    movz    w0, #{SYSTEM_OFF_LO}
    movk    w0, #{SYSTEM_OFF_HI}, lsl #16
    smc     #0
    b       el2c_park

// The same through the other PSCI conduit, for the exception path only.
el2c_power_off_hvc:
    movz    w0, #{SYSTEM_OFF_LO}
    movk    w0, #{SYSTEM_OFF_HI}, lsl #16
    hvc     #0
el2c_park:
    wfe
    b       el2c_park
.popsection

.pushsection .rodata.el2c_messages, "a"
.Lmsg_entered:
    .asciz  "el2-client: entered at EL"
.Lmsg_got:
    .asciz  "\r\nel2-client: FAIL load_address: got 0x"
.Lmsg_expected:
    .asciz  " expected 0x"
.Lmsg_failed:
    .asciz  " (the client only runs at its link address)\r\nel2-client: FAILED (1 of 1)\r\n"
.popsection

// ---------------------------------------------------------------------------------------
// Exception vector table (Arm ARM, "Exception vectors": 16 slots of 0x80 bytes, 2 KiB
// aligned). The client expects no exception at all, so every slot reports and stops.
// ---------------------------------------------------------------------------------------
.macro ventry slot
    .balign 0x80
    mov     x0, #\slot
    b       el2c_unexpected
.endm

.pushsection .text.el2c_vectors, "ax"
.balign 0x800
.global el2c_vectors
el2c_vectors:
    ventry 0
    ventry 1
    ventry 2
    ventry 3
    ventry 4
    ventry 5
    ventry 6
    ventry 7
    ventry 8
    ventry 9
    ventry 10
    ventry 11
    ventry 12
    ventry 13
    ventry 14
    ventry 15

// x0 = the slot. The first exception is reported from Rust, which then powers off with
// `smc #0`. An exception while doing that (the SMC itself is UNDEFINED where there is no
// EL3 or PSCI over SMC, e.g. at EL1 on QEMU without virtualization=on) tries SYSTEM_OFF
// with `hvc #0` instead, and one more parks the CPU: never a loop of exceptions. The count
// is in .bss, zeroed before the table is installed.
el2c_unexpected:
    adrp    x9, el2c_exceptions
    add     x9, x9, :lo12:el2c_exceptions
    ldr     x10, [x9]
    add     x11, x10, #1
    str     x11, [x9]
    cmp     x10, #1
    b.eq    el2c_power_off_hvc
    b.hi    el2c_park
    // A dedicated stack: the exception may well be a bad SP.
    adrp    x9, el2c_exception_stack_top
    add     x9, x9, :lo12:el2c_exception_stack_top
    mov     sp, x9
    mrs     x9, CurrentEL
    ubfx    x1, x9, #2, #2
    cmp     x1, #2
    b.ne    1f
    mrs     x2, esr_el2
    mrs     x3, elr_el2
    mrs     x4, far_el2
    mrs     x5, spsr_el2
    b       2f
1:  mrs     x2, esr_el1
    mrs     x3, elr_el1
    mrs     x4, far_el1
    mrs     x5, spsr_el1
2:  bl      {EXCEPTION}
    b       el2c_power_off
.popsection

// ---------------------------------------------------------------------------------------
// Stacks and the exception count, in .bss (zeroed at entry, sized from Rust).
// ---------------------------------------------------------------------------------------
.pushsection .bss.el2c_stacks, "aw", %nobits
.balign 16
el2c_boot_stack:
    .space  {BOOT_STACK_SIZE}
el2c_boot_stack_top:
el2c_exception_stack:
    .space  {EXCEPTION_STACK_SIZE}
el2c_exception_stack_top:
el2c_exceptions:
    .quad   0
.popsection
