//! The integration tests of `shared`, one module per area, in one test binary (linked once).
//! Run one area with its module path, e.g. `cargo test -p sparkbridge --test it -- hostile_parsers::`.

mod extreme_times;
mod hostile_inputs;
mod hostile_parsers;
mod loops_oracle;
mod sample_dedupe_ids;
