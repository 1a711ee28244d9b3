// The built-in demo payload for QEMU virt: a small position-independent arm64 Image that the
// firmware relocates with the engine like any `-kernel`, and that reports the booting.rst
// entry contract it finds (EL, x0..x3, MMU, DAIF) on the PL011, then powers off.
// It is bytes in the firmware's read-only data, never executed in place.
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
1:  mov     x19, x0
    orr     x20, x1, x2
    orr     x20, x20, x3
    mrs     x21, CurrentEL
    ubfx    x21, x21, #2, #2
    mrs     x22, daif
    mov     x23, #{PL011}
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
    ldr     w0, .Ldemo_system_off
    smc     #0
8:  wfe
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

.Ldemo_putc:
    cmp     w0, #'\n'
    b.ne    13f
    mov     w9, #'\r'
12: ldr     w8, [x23, #0x18]
    tbnz    w8, #5, 12b
    str     w9, [x23]
13: ldr     w8, [x23, #0x18]
    tbnz    w8, #5, 13b
    str     w0, [x23]
    ret

.balign 4
.Ldemo_fdt_magic:    .word 0xedfe0dd0                // 0xd00dfeed as stored, read little-endian
.Ldemo_system_off:   .word 0x84000008
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
