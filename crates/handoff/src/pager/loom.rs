//! Model checking of the state machine with loom (`RUSTFLAGS="--cfg loom"`).
