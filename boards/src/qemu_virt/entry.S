// QEMU virt reset entry: `-bios` puts this image in flash at 0 and starts the boot CPU here
// at EL2 (virtualization=on) with the MMU off and x0 = 0; the DTB is at the start of RAM.
// Secondary CPUs stay off until PSCI CPU_ON (they never come here).
.section .text.entry, "ax"
.global _start
_start:
    mrs     x19, CurrentEL
    ubfx    x19, x19, #2, #2
    cmp     x19, #2
    b.ne    1f
    // SCTLR_EL2 resets to an UNKNOWN value on hardware: define it, MMU and caches off.
    ldr     x9, ={SCTLR_EL2_MMU_OFF}
    msr     sctlr_el2, x9
    // Is there RAM for the firmware's own work area (the DTB area, the stub's RAM, the
    // EL1 stage's stack, heap and tables: RAM_START..PAYLOAD_LOWEST)? Checked before any of
    // it is used. QEMU virt has nothing mapped past the end of RAM, so a read there is a
    // synchronous external abort (Arm ARM D17.2.37, EC 0x25): each page's last doubleword
    // is read with a vector table that skips the faulting load and sets x15.
    ldr     x9, =hypstub_ram_probe_vectors
    msr     vbar_el2, x9
    isb
    ldr     x10, ={RAM_START}
    ldr     x11, ={PAYLOAD_LOWEST}
2:  cmp     x10, x11
    b.hs    3f
    mov     x15, #0
    ldr     x12, [x10, #4088]
    cbnz    x15, hypstub_ram_too_small
    add     x10, x10, #4096
    b       2b
3:
    // From here on any exception at EL2 is reported by the stub, never a silent spin at
    // an UNKNOWN VBAR_EL2 (Arm ARM D1.3.1).
    ldr     x9, =hypstub_el2_vectors
    msr     vbar_el2, x9
    isb
    // The boot CPU (slot 0) takes the first EL2 stack.
1:  ldr     x9, =HYPSTUB_EL2_STACKS
    mov     x10, #{STACK_SIZE}
    add     x9, x9, x10
    mov     sp, x9
    // Zero the stub's RAM and .bss, copy .data from flash.
    init_ram
    mov     x0, x19
    bl      qemu_virt_el2_main
8:  wfe
    b       8b

// The boot CPU arrives here at EL1 from the stub, MMU off, x0 = DTB, SP_EL1 set.
.section .text.qemu_virt_el1_entry, "ax"
.global qemu_virt_el1_entry
qemu_virt_el1_entry:
    mov     x19, x0
    ldr     x0, =HYPSTUB_QEMU_VIRT_EARLY
    ldr     x1, =HYPSTUB_QEMU_VIRT_EARLY_RUNS
    mov     x2, #{EARLY_RUNS}
    bl      hypstub_el1_early_map
    ldr     x0, =HYPSTUB_QEMU_VIRT_EARLY
    ldr     x1, ={RAM_START}
    ldr     x2, ={PAYLOAD_LOWEST}
    bl      hypstub_el1_mmu_on
    mov     x0, x19
    bl      qemu_virt_el1_main
1:  wfe
    b       1b

// The RAM probe's vectors: every exception skips the instruction that took it and sets
// x15 = 1. Only the probe above runs with them.
.section .text.ram_probe, "ax"
.balign 2048
hypstub_ram_probe_vectors:
.rept 16
    mrs     x15, elr_el2
    add     x15, x15, #4
    msr     elr_el2, x15
    mov     x15, #1
    eret
.balign 128
.endr

// Writes byte w0 to the PL011, waiting while its FIFO is full (FR.TXFF, bit 5). Uses w9.
.macro ram_putc
9101:
    ldr     w9, [x20, #0x18]
    tbnz    w9, #5, 9101b
    str     w0, [x20]
.endm

// Puts the string at `msg`, then the KiB from the start of RAM to `end`, in decimal.
.macro ram_put_kib msg, end
    ldr     x21, =\msg
    bl      hypstub_ram_puts
    ldr     x22, ={RAM_START}
    sub     x22, \end, x22
    lsr     x22, x22, #10
    bl      hypstub_ram_putdec
.endm

// RAM ends at x10, below x11 (the end of the work area): say so on the PL011 (no stack,
// no RAM: registers only) and power off (PSCI SYSTEM_OFF).
hypstub_ram_too_small:
    ldr     x20, ={PL011}
    ram_put_kib hypstub_ram_msg_1, x11
    ram_put_kib hypstub_ram_msg_2, x10
    ldr     x21, =hypstub_ram_msg_3
    bl      hypstub_ram_puts
    ldr     w0, =0x84000008
    smc     #0
4:  wfe
    b       4b

// Puts the NUL-terminated string at x21. Uses x0, x9, x21.
hypstub_ram_puts:
    ldrb    w0, [x21], #1
    cbz     w0, 5f
    ram_putc
    b       hypstub_ram_puts
5:  ret

// Puts x22 in decimal. Uses x0, x9, x22..x24.
hypstub_ram_putdec:
    mov     x23, #1
    mov     x24, #10
6:  mul     x0, x23, x24
    cmp     x0, x22
    b.hi    7f
    mov     x23, x0
    b       6b
7:  udiv    x0, x22, x23
    msub    x22, x0, x23, x22
    add     w0, w0, #48     // '0'
    ram_putc
    udiv    x23, x23, x24
    cbnz    x23, 7b
    ret

hypstub_ram_msg_1:
    .asciz "hypstub: RAM too small: "
hypstub_ram_msg_2:
    .asciz " KiB needed for the firmware's own RAM, "
hypstub_ram_msg_3:
    .asciz " KiB given (QEMU -m): give the machine more RAM; powering off\r\n"
.balign 4

.purgem ram_putc
.purgem zero_ram
.purgem init_ram
