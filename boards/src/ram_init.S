// Assembler macros for a board's reset entry, run with the MMU off (all memory is Device
// memory there: only aligned stores, no exclusives). Included in front of each board's
// entry.S, which purges them at its end. The linker scripts align every bound to 16 bytes.

// Zeroes [\start, \end). Uses x9, x10.
.macro zero_ram start, end
    ldr     x9, =\start
    ldr     x10, =\end
9001:
    cmp     x9, x10
    b.hs    9002f
    stp     xzr, xzr, [x9], #16
    b       9001b
9002:
.endm

// Zeroes the stub's RAM and .bss and copies .data from its load address (sections.ld).
// Uses x9..x13.
.macro init_ram
    zero_ram __stub_bss_start, __stub_bss_end
    zero_ram __bss_start, __bss_end
    ldr     x9, =__data_start
    ldr     x10, =__data_end
    ldr     x11, =__data_lma
9003:
    cmp     x9, x10
    b.hs    9004f
    ldp     x12, x13, [x11], #16
    stp     x12, x13, [x9], #16
    b       9003b
9004:
.endm
