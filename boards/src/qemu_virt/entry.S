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
    ldr     x0, =HYPSTUB_QEMU_VIRT_L1
    ldr     x1, ={RAM_START}
    ldr     x2, ={PAYLOAD_LOWEST}
    bl      hypstub_el1_mmu_on
    mov     x0, x19
    bl      qemu_virt_el1_main
1:  wfe
    b       1b

.purgem zero_ram
.purgem init_ram
