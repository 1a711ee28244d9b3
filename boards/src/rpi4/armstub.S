// hypstub's Raspberry Pi 4 armstub: the code the Pi's VPU firmware loads at address 0 with
// `armstub=` in config.txt. All four Cortex-A72 cores start here at EL3 with the MMU off.
// Each core sets up what only EL3 can (secure configuration, IMPDEF control registers, the
// timer frequency, the GIC-400's security groups) and drops to EL2; the boot core (MPIDR
// Aff0 = 0) enters the kernel the firmware loaded, the others wait on the spin table.
// docs/armstub.md has the whole story; every constant comes from rpi4-armstub.rs.
//
// Nothing here uses a stack or memory other than page 0 (the Pi's DTB /memreserve's
// 0..0x1000), the GIC and the UARTs: the kernel owns all RAM once it runs.

// The first words: a branch over the handshake block the firmware and the kernel use.
.section .text.armstub.head, "ax"
.global _start
_start:
    b       armstub_el3

// The spin table (Linux's "spin-table" enable-method: the Pi DTB's cpu-release-addr values
// are 0xd8, 0xe0, 0xe8 and 0xf0). Secondary core n waits for a non-zero entry address in
// spin_cpu<n> (booting.rst, "CPU release").
    .org    {SPIN_CPU0}
.global spin_cpu0
spin_cpu0:
    .quad   0
.global spin_cpu1
spin_cpu1:
    .quad   0
.global spin_cpu2
spin_cpu2:
    .quad   0
// spin_cpu3 first holds the handshake: the firmware recognises an armstub that wants it by
// the magic word, writes the DTB and kernel addresses below, and zeroes these 8 bytes, which
// from then on are spin_cpu3.
.global spin_cpu3
spin_cpu3:
.global stub_magic
stub_magic:
    .word   {STUB_MAGIC}
.global stub_version
stub_version:
    .word   {STUB_VERSION}
// 0xf8 (dtb_ptr32) and 0xfc (kernel_entry32) follow: written by the firmware, not part of
// this section. The linker script leaves them out of every loadable segment (so that QEMU
// can put test values there) and the raw image has zeros there.

.section .text.armstub, "ax"
armstub_el3:
    // Every core, at EL3 with the MMU off.
    // No traps to EL3 from FP/SIMD (CPTR_EL3.TFP), trace (TTA) or CPACR/CPTR writes (TCPAC)
    // (Arm ARM, CPTR_EL3): there is no EL3 vector table to take them.
    msr     cptr_el3, xzr
    // No traps of debug and PMU registers to EL3 (MDCR_EL3 resets to an UNKNOWN value in
    // the architecture; Arm ARM, MDCR_EL3).
    msr     mdcr_el3, xzr
    // Lower ELs non-secure, AArch64, HVC enabled, SMC disabled (UNDEFINED: no PSCI here),
    // RES1 bits 5:4 (Arm ARM, SCR_EL3).
    mov     x0, #{SCR_EL3}
    msr     scr_el3, x0
    // Let EL2 reach the IMPDEF CPUACTLR, CPUECTLR, L2CTLR, L2ECTLR and L2ACTLR (Cortex-A72
    // TRM, ACTLR_EL3): Linux's errata work-arounds and KVM need them.
    mov     x0, #{ACTLR_EL3}
    msr     actlr_el3, x0
    // SMPEN: this core takes part in the cluster's coherency. The Cortex-A72 TRM
    // (CPUECTLR_EL1) requires it set before the caches and the MMU are enabled.
    mrs     x0, S3_1_C15_C2_1
    orr     x0, x0, #{CPUECTLR_SMPEN}
    msr     S3_1_C15_C2_1, x0
    // The counter's frequency as the firmware clocks it: the BCM2711's 54 MHz crystal
    // (writable only at the highest EL; Arm ARM, CNTFRQ_EL0). Every core must agree.
    ldr     x0, ={CNTFRQ_HZ}
    msr     cntfrq_el0, x0
    // booting.rst: "CNTVOFF_EL2 must be programmed with a consistent value on all CPUs".
    msr     cntvoff_el2, xzr
    // SCTLR_EL2 resets to an UNKNOWN value: define it, RES1 bits set, MMU and caches off,
    // little-endian (Arm ARM, SCTLR_EL2), as booting.rst wants EL2 for the kernel.
    ldr     x0, ={SCTLR_EL2}
    msr     sctlr_el2, x0

    mrs     x19, mpidr_el1
    and     x19, x19, #0xff                 // Aff0: the core number in the cluster
    cbnz    x19, 1f
    bl      boot_core_el3
1:  bl      gic_cpu_el3

    // To EL2h with D, A, I and F masked (Arm ARM D1.11.1: eret takes ELR_EL3 and SPSR_EL3,
    // and is context-synchronising, so the system register writes above are in effect).
    mov     x0, #{SPSR_EL2H_DAIF}
    msr     spsr_el3, x0
    adr     x0, armstub_el2
    msr     elr_el3, x0
    eret

// What the cluster and the SoC need once: core 0 only, at EL3. Leaf: clobbers x0-x3.
boot_core_el3:
    // L2 data RAM timing for the BCM2711, as the firmware's own armstub sets it: latency
    // field (bits 2:0) = 0b010 (3 cycles) and setup (bit 5) = 1 (one extra cycle) (Cortex-A72
    // TRM, L2CTLR_EL1). The fields are written, not ORed, so that a reset value cannot mix in.
    // The register is the cluster's, hence core 0.
    mrs     x0, S3_1_C11_C0_2
    mov     x1, #{L2CTLR_DATA_MASK}
    bic     x0, x0, x1
    mov     x1, #{L2CTLR_DATA_SET}
    orr     x0, x0, x1
    msr     S3_1_C11_C0_2, x0
    // The ARM-local block's timer input: the crystal, incrementing by 1, prescaler 1:1
    // (2^31 / 0x8000_0000), so that the counter runs at CNTFRQ. Registers ARM_CONTROL (+0)
    // and the core timer prescaler (+8) of the BCM2711's ARM_LOCAL block.
    ldr     x0, ={ARM_LOCAL}
    str     wzr, [x0]
    mov     w1, #{LOCAL_PRESCALER_1_1}
    str     w1, [x0, #8]
    // GIC-400 distributor, secure side (GICv2 Architecture Specification 4.3.1 GICD_CTLR,
    // 4.3.4 GICD_IGROUPRn): every SPI to group 1, the non-secure group, so that Linux owns
    // them all; then forward both groups.
    ldr     x0, ={GICD}
    ldr     w1, [x0, #{GICD_TYPER}]
    tbz     w1, #{GICD_TYPER_SECURITY_EXTN}, 4f
    and     w1, w1, #0x1f                   // ITLinesNumber: 32 * (N + 1) interrupt IDs
    mov     w2, #-1
    add     x3, x0, #{GICD_IGROUPR}
2:  cbz     w1, 3f                          // IGROUPR1..N: the SPIs (IGROUPR0 is banked)
    str     w2, [x3, x1, lsl #2]
    sub     w1, w1, #1
    b       2b
3:  mov     w1, #{GICD_CTLR_ENABLE}
    str     w1, [x0, #{GICD_CTLR}]
4:  ret

// The GIC-400's banked per-core state, secure side: every core. Leaf: clobbers x0-x1.
//
// Both GIC routines do nothing on a GIC without the Security Extensions (GICD_TYPER bit 10,
// GICv2 Architecture Specification 4.3.2), such as QEMU's raspi4b model by default: there
// every access sees one view, Linux uses group 0, and the reset state is already right.
gic_cpu_el3:
    ldr     x0, ={GICD}
    ldr     w1, [x0, #{GICD_TYPER}]
    tbz     w1, #{GICD_TYPER_SECURITY_EXTN}, 1f
    // IGROUPR0 (SGIs and PPIs) is banked per core: group 1 too.
    mov     w1, #-1
    str     w1, [x0, #{GICD_IGROUPR}]
    // CPU interface: group 1 signalled, bypass disabled (GICv2 Architecture Specification
    // 4.4.1, GICC_CTLR secure copy). Linux enables the non-secure copy itself.
    ldr     x0, ={GICC}
    mov     w1, #{GICC_CTLR_VALUE}
    str     w1, [x0, #{GICC_CTLR}]
    // The lowest priority mask: the non-secure side can only write GICC_PMR when it holds a
    // value of 0x80 or more (GICv2 Architecture Specification 4.4.2), so Linux's own write
    // takes effect.
    mov     w1, #{GICC_PMR_VALUE}
    str     w1, [x0, #{GICC_PMR}]
1:  ret

armstub_el2:
    // Every core, now at EL2 (MMU off, DAIF masked); x19 = Aff0.
    cbnz    x19, secondary
    // Boot core: the firmware's answers to the handshake, 32-bit physical addresses:
    // dtb_ptr32 at 0xf8, kernel_entry32 at 0xfc.
    mov     x5, #{DTB_PTR32}
    ldr     w0, [x5]
    ldr     w4, [x5, #4]
    cbz     w4, no_handshake
    cbz     w0, no_handshake
    // booting.rst: x0 = DTB, x1 = x2 = x3 = 0, MMU off, at EL2.
    mov     x1, xzr
    mov     x2, xzr
    mov     x3, xzr
    br      x4

secondary:
    cmp     x19, #3
    b.hi    park                            // not a Pi 4 core number: no spin slot
    adr     x5, spin_cpu0
    add     x5, x5, x19, lsl #3
    // booting.rst spin-table: wait in wfe until the word is non-zero, then jump there. With
    // the MMU off every data access is Device-nGnRnE (Arm ARM, "The effects of disabling an
    // address translation stage"), never cached, so a plain aligned 64-bit load reads
    // memory, and Linux cleans the word to the Point of Coherency and issues sev after
    // writing it (arch/arm64/kernel/smp_spin_table.c).
    // spin_cpu3 still holds the magic and version if the firmware did not clear it (a
    // firmware without the handshake, or QEMU, which cannot write under the image): that is
    // not a release either.
    ldr     x6, ={STUB_MAGIC_WORD64}
1:  wfe
    ldr     x4, [x5]
    cbz     x4, 1b
    cmp     x4, x6
    b.eq    1b
    mov     x0, xzr
    mov     x1, xzr
    mov     x2, xzr
    mov     x3, xzr
    br      x4

// The firmware left no kernel entry or no DTB: it did not recognise the stub's magic, or
// config.txt names no kernel. Say so on both UARTs and stop; never jump to address 0. The
// mini UART first: it is the console on GPIO 14/15 unless config.txt gives them to the PL011.
no_handshake:
    adr     x0, no_handshake_msg
    ldr     x1, ={MINI_UART_IO}
    ldr     x2, ={MINI_UART_LSR}
    mov     w3, #0                          // the mini UART can take a byte when bit 5 is set
    bl      uart_puts
    adr     x0, no_handshake_msg
    ldr     x1, ={PL011_DR}
    ldr     x2, ={PL011_FR}
    mov     w3, #{PL011_FR_TXFF}            // the PL011 can when TXFF is clear
    bl      uart_puts
park:
    wfe
    b       park

// Writes the NUL-terminated string at x0 to a UART with polled, raw register writes: x1 =
// data register, x2 = status register, w3 = what to flip in the status so that bit 5 set
// means "room for a byte". Gives up on a UART that is not ready within {UART_SPINS} polls
// (one the firmware left disabled). Leaf: clobbers x0, x4-x6.
uart_puts:
1:  ldrb    w4, [x0], #1
    cbz     w4, 3f
    mov     x5, #{UART_SPINS}
2:  subs    x5, x5, #1
    b.eq    3f
    ldr     w6, [x2]
    eor     w6, w6, w3
    tbz     w6, #5, 2b
    str     w4, [x1]
    b       1b
3:  ret

.ltorg

no_handshake_msg:
    .ascii  "\r\nhypstub armstub: no kernel entry or DTB address from the firmware (0xfc/0xf8 are 0): "
    .ascii  "not booting. Check config.txt (arm_64bit=1, kernel=) and the firmware's armstub "
    .asciz  "handshake (magic 0x5afe570b at 0xf0). Halted.\r\n"
    .balign 4
