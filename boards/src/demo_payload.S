// The built-in demo payload: a small position-independent arm64 Image that the firmware
// relocates with the engine like any payload, and that reports the booting.rst entry
// contract it finds (EL, x0..x3, MMU, DAIF) on the console, then powers off.
// It is bytes in the firmware's read-only data, never executed in place. Its three
// configuration words after the header (demo.rs writes them into the staged copy) say where
// the console is, which kind it is, and how to power off; the defaults are QEMU virt's.
.section .rodata.hypstub_demo_payload, "a"
.balign 4096
.global hypstub_demo_payload_start
hypstub_demo_payload_start:
    b       1f                              // code0
    .word   0                               // code1
    .quad   0                               // text_offset
    .quad   hypstub_demo_payload_end - hypstub_demo_payload_start  // image_size
    .quad   0b1010                          // flags: little-endian, 4 KiB pages, anywhere
    .quad   0, 0, 0                         // res2..res4
    .word   0x644d5241                      // magic "ARM\x64"
    .word   0                               // res5
.Ldemo_console:  .quad {PL011}                  // +0x40: console UART registers
.Ldemo_kind:     .quad 0                        // +0x48: 0 = PL011, 1 = BCM2835 mini-UART
.Ldemo_power:    .quad 0                        // +0x50: 0 = PSCI SYSTEM_OFF by smc, else the
                                                //        BCM2711 PM block's address
1:  mov     x19, x0
    orr     x20, x1, x2
    orr     x20, x20, x3
    mrs     x21, CurrentEL
    ubfx    x21, x21, #2, #2
    mrs     x22, daif
    ldr     x23, .Ldemo_console
    ldr     x25, .Ldemo_kind
    cmp     x21, #2
    b.ne    2f
    mrs     x24, sctlr_el2
    b       3f
2:  mrs     x24, sctlr_el1
3:  adr     x1, .Ldemo_msg_el
    bl      .Ldemo_puts
    add     w0, w21, #'0'
    bl      .Ldemo_putc
    adr     x1, .Ldemo_msg_x0
    bl      .Ldemo_puts
    mov     x0, x19
    bl      .Ldemo_puthex
    adr     x1, .Ldemo_msg_x1
    bl      .Ldemo_puts
    adr     x1, .Ldemo_yes
    cbz     x20, 4f
    adr     x1, .Ldemo_no
4:  bl      .Ldemo_puts
    adr     x1, .Ldemo_msg_mmu
    bl      .Ldemo_puts
    adr     x1, .Ldemo_yes
    mov     x9, #0b101                      // SCTLR_ELx.M and C
    tst     x24, x9
    b.eq    5f
    adr     x1, .Ldemo_no
5:  bl      .Ldemo_puts
    adr     x1, .Ldemo_msg_daif
    bl      .Ldemo_puts
    adr     x1, .Ldemo_yes
    cmp     x22, #0x3c0
    b.eq    6f
    adr     x1, .Ldemo_no
6:  bl      .Ldemo_puts
    // The DTB QEMU wrote starts with the FDT magic, big-endian.
    adr     x1, .Ldemo_msg_dtb
    bl      .Ldemo_puts
    ldr     w9, [x19]
    ldr     w10, .Ldemo_fdt_magic
    adr     x1, .Ldemo_yes
    cmp     w9, w10
    b.eq    7f
    adr     x1, .Ldemo_no
7:  bl      .Ldemo_puts
    adr     x1, .Ldemo_msg_off
    bl      .Ldemo_puts
    ldr     x9, .Ldemo_power
    cbnz    x9, 14f
    ldr     w0, .Ldemo_system_off
    smc     #0
8:  wfe
    b       8b
    // BCM2711 power off, as Linux's bcm2835_wdt does it: PM_RSTS asks the firmware to halt
    // (partition 63), then a watchdog reset after 10 ticks (PM_WDOG, PM_RSTC full reset).
    // Every write carries the PM password in bits 31:24.
    // First let the UART send the last line: the watchdog fires ~150 us after PM_WDOG.
    // PL011: UARTFR.BUSY (bit 3) clear; mini-UART: AUX_MU_LSR bit 6 (transmitter idle).
14: mov     x11, #0x100000
15: subs    x11, x11, #1
    b.eq    18f
    cbnz    x25, 16f
    ldr     w8, [x23, #0x18]
    tbnz    w8, #3, 15b
    b       18f
16: ldr     w8, [x23, #0x14]
    tbz     w8, #6, 15b
18: ldr     w10, .Ldemo_pm_halt
    str     w10, [x9, #0x20]
    ldr     w10, .Ldemo_pm_wdog
    str     w10, [x9, #0x24]
    ldr     w10, .Ldemo_pm_reset
    str     w10, [x9, #0x1c]
    b       8b

.Ldemo_puts:
    mov     x10, x30
9:  ldrb    w0, [x1], #1
    cbz     w0, 10f
    bl      .Ldemo_putc
    b       9b
10: mov     x30, x10
    ret

.Ldemo_puthex:
    mov     x11, x30
    mov     x4, x0
    mov     x5, #60
11: lsr     x0, x4, x5
    and     x0, x0, #0xf
    cmp     x0, #10
    add     x6, x0, #'0'
    add     x7, x0, #('a' - 10)
    csel    x0, x6, x7, lo
    bl      .Ldemo_putc
    subs    x5, x5, #4
    b.pl    11b
    mov     x30, x11
    ret

// PL011: wait while UARTFR.TXFF; mini-UART: wait for AUX_MU_LSR bit 5 (transmitter empty).
.Ldemo_putc:
    cmp     w0, #'\n'
    b.ne    13f
    mov     w9, #'\r'
    cbnz    x25, 15f
12: ldr     w8, [x23, #0x18]
    tbnz    w8, #5, 12b
    str     w9, [x23]
    b       13f
15: ldr     w8, [x23, #0x14]
    tbz     w8, #5, 15b
    str     w9, [x23]
13: cbnz    x25, 16f
17: ldr     w8, [x23, #0x18]
    tbnz    w8, #5, 17b
    str     w0, [x23]
    ret
16: ldr     w8, [x23, #0x14]
    tbz     w8, #5, 16b
    str     w0, [x23]
    ret

.balign 4
.Ldemo_fdt_magic:    .word 0xedfe0dd0                // 0xd00dfeed as stored, read little-endian
.Ldemo_system_off:   .word 0x84000008
.Ldemo_pm_halt:      .word 0x5a000555
.Ldemo_pm_wdog:      .word 0x5a00000a
.Ldemo_pm_reset:     .word 0x5a000020
.Ldemo_msg_el:       .asciz "demo payload: entered at EL"
.Ldemo_msg_x0:       .asciz " with x0=0x"
.Ldemo_msg_x1:       .asciz "; x1..x3 zero: "
.Ldemo_msg_mmu:      .asciz "; MMU and D-cache off: "
.Ldemo_msg_daif:     .asciz "; DAIF masked: "
.Ldemo_msg_dtb:      .asciz "; x0 points at an FDT: "
.Ldemo_yes:          .asciz "yes"
.Ldemo_no:           .asciz "NO"
.Ldemo_msg_off:      .asciz "\ndemo payload: powering off\n"
.balign 8
.global hypstub_demo_payload_end
hypstub_demo_payload_end:
