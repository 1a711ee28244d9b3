//! What every firmware binary built on this crate shares around the boot flow: the step
//! from the stub's set-up at EL2 to the EL1 stage, the EL1 heap, and (through
//! [`el1_runtime!`](crate::el1_runtime)) the global allocator, the panic handler and the
//! EL1 fault handler, so that a board binary holds only its boot story.
//!
//! The symbols `__heap_start`, `__heap_end`, `__el1_stack_top` and `__image_end` come from
//! `linker/sections.ld`, which every firmware image links with.

use core::ops::Range;

use el2_stub::console::line;
use el2_stub::regs::{self, CpuFeatures};

unsafe extern "C" {
    static __heap_start: u8;
    static __heap_end: u8;
    static __el1_stack_top: u8;
    static __image_end: u8;
}

/// The EL1 stage's first heap, which the linker script reserves (`.heap`).
#[must_use]
pub fn heap() -> Range<usize> {
    core::ptr::addr_of!(__heap_start) as usize..core::ptr::addr_of!(__heap_end) as usize
}

/// The top of the EL1 stage's stack (`.stack`).
#[must_use]
pub fn el1_stack_top() -> u64 {
    core::ptr::addr_of!(__el1_stack_top) as u64
}

/// The end of the image's bytes (load address of `.data` plus its size).
#[must_use]
pub fn image_end() -> u64 {
    core::ptr::addr_of!(__image_end) as u64
}

/// On the boot CPU at EL2, MMU off: sets EL2 up for an EL1 guest, installs the stub's
/// vectors, tells `report` what the CPU has (to print it where the console is known), and
/// drops to `el1_entry` at EL1 on the EL1 stack with x0 = `x0`.
pub fn start_el1(
    el1_entry: unsafe extern "C" fn(),
    x0: u64,
    report: impl FnOnce(&CpuFeatures),
) -> ! {
    let f = CpuFeatures::read();
    regs::init_el2_for_el1(&f);
    el2_stub::handler::install_vectors();
    report(&f);
    regs::drop_to_el1(el1_entry as *const () as u64, el1_stack_top(), x0)
}

/// Started at an EL other than 2: says so with `hint` (what the user should change) on
/// `put`, and parks the CPU.
pub fn wrong_el(put: fn(&str), el: u64, hint: &str) -> ! {
    line(
        put,
        format_args!("hypstub: started at EL{el}, but the stub needs EL2: {hint}"),
    );
    line(put, format_args!("hypstub: stopping"));
    loop {
        aarch64_cpu::asm::wfe();
    }
}

/// The panic handler's body: the message on `put`, then `stop`.
pub fn panic(put: fn(&str), info: &core::panic::PanicInfo<'_>, stop: fn() -> !) -> ! {
    line(put, format_args!("hypstub: panic: {info}"));
    line(put, format_args!("hypstub: system stopped"));
    stop()
}

/// The EL1 stage's heap: the linker script's `.heap` ([`init_heap`]), plus whatever RAM a
/// board adds once all RAM is mapped ([`add_to_heap`]). A binary makes it the global
/// allocator through [`el1_runtime!`](crate::el1_runtime).
pub static HEAP: buddy_system_allocator::LockedHeap<32> =
    buddy_system_allocator::LockedHeap::empty();

/// [`HEAP`] as a global allocator.
pub struct GlobalHeap;

// SAFETY: every call goes to `HEAP`, a `LockedHeap`, which is a correct allocator (it locks
// around its free lists).
unsafe impl core::alloc::GlobalAlloc for GlobalHeap {
    unsafe fn alloc(&self, layout: core::alloc::Layout) -> *mut u8 {
        // SAFETY: the caller's contract, passed on.
        unsafe { core::alloc::GlobalAlloc::alloc(&HEAP, layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: core::alloc::Layout) {
        // SAFETY: the caller's contract, passed on.
        unsafe { core::alloc::GlobalAlloc::dealloc(&HEAP, ptr, layout) }
    }
}

/// Gives the linker script's heap to [`HEAP`]; once, first thing at EL1 (before anything
/// allocates).
pub fn init_heap() {
    let heap = heap();
    // SAFETY: the linker script reserves this RAM for the heap; the early tables map it as
    // data and nothing else uses it.
    unsafe { HEAP.lock().init(heap.start, heap.end - heap.start) };
}

/// The first heap's size in bytes.
#[must_use]
pub fn heap_size() -> usize {
    let heap = heap();
    heap.end - heap.start
}

/// Adds `r` to [`HEAP`].
///
/// # Safety
/// `r` must be free RAM, mapped as data, used by nothing else from now on (and kept busy
/// for the relocation planner).
pub unsafe fn add_to_heap(r: Range<u64>) {
    // SAFETY: per the caller's contract.
    unsafe { HEAP.lock().add_to_heap(r.start as usize, r.end as usize) };
}

/// Defines, in a firmware binary, what every EL1 stage needs once: the global allocator
/// ([`HEAP`](crate::runtime::HEAP)), the panic handler, and the EL1 fault handler
/// `hypstub_el1_exception` that the EL1 vectors call. Faults and panics are reported on
/// `console` (a lock-free `fn(&str)`) and end in `stop`.
#[macro_export]
macro_rules! el1_runtime {
    (console: $console:path, stop: $stop:path $(,)?) => {
        #[global_allocator]
        static GLOBAL_HEAP: $crate::runtime::GlobalHeap = $crate::runtime::GlobalHeap;

        /// Any exception the EL1 stage takes.
        #[unsafe(no_mangle)]
        extern "C" fn hypstub_el1_exception(frame: &$crate::runtime::Frame, slot: u64) -> ! {
            $crate::el1::report_fault($console, frame, slot, || $stop())
        }

        #[panic_handler]
        fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
            $crate::runtime::panic($console, info, || $stop())
        }
    };
}

/// The saved registers the fault handler gets.
pub use el2_stub::Frame;
