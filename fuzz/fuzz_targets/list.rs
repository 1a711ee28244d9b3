//! The `list` fuzz target: see `hypstub_fuzz::list`.
#![no_main]
hypstub_fuzz::target!(list);
