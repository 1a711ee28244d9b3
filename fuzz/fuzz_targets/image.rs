//! The `image` fuzz target: see `hypstub_fuzz::image`.
#![no_main]
hypstub_fuzz::target!(image);
